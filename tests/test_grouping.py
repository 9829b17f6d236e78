"""Query groups: which texts link pairs, and their layout kept in the store by the pairs' ids."""

import re
import sys

import numpy as np
import pytest

from tools.concepts import Concept, ConceptValue
from tools.design import load_design
from tools.grouping import normalise, pair_groups
from tools.pairs import Label, LabeledPair, Pair, Verdict


def test_white_space_is_python_s_one_definition():
    """normalise splits on str.isspace; the regex \\s it replaced matches the same characters."""
    space = re.compile(r"\s")
    assert all((space.match(chr(c)) is not None) == chr(c).isspace() for c in range(sys.maxunicode + 1))
    for blank in (" ", "\t", "\n", "\u00a0", "\u2028", "\u3000", "\x1c"):
        assert normalise(f"{blank}How{blank}{blank}DO I{blank}") == "how do i"


def test_pairs_sharing_a_text_are_one_group_and_empty_texts_link_nothing():
    groups = pair_groups(
        [
            ("How do I boil an egg?", "Boil it.", "Fry it."),
            ("how do  I boil an EGG?", "Poach it.", "Bake it."),  # the same query, written otherwise
            ("", "Boil it.", "Scramble it."),  # no query; shares a response with the first pair
            ("", "Other.", "Another."),  # an empty query links nothing
            ("What is 2 + 2?", "4", "5"),
        ]
    )
    assert groups.tolist() == [0, 0, 0, 1, 2]


@pytest.fixture
def labelled(store):
    pairs = [
        Pair(query=f"Question {i % 3}?", response_a=f"A{i} " * (i + 1), response_b=f"B{i}", domain="d", source="s")
        for i in range(9)
    ]
    store.add_labeled_pairs([LabeledPair(pair=p, labels=[Label(mechanism="human", verdict=Verdict.A)]) for p in pairs])
    [concept_id] = store.upsert_concepts([Concept(name="Length")])
    store.put_values([ConceptValue(pair_id=p.id, concept_id=concept_id, annotator="m", value=1.0) for p in pairs])
    return store


def test_a_design_s_layout_is_read_back_by_its_pairs_ids(labelled, monkeypatch):
    import tools.design

    first = load_design(labelled, "human")
    by_query = {pair_id: labelled.pair(pair_id).query_text for pair_id in first.pair_ids}
    group = dict(zip(first.pair_ids, first.groups.tolist(), strict=True))
    same_group = {(a, b) for a in group for b in group if group[a] == group[b]}
    assert same_group == {(a, b) for a in by_query for b in by_query if by_query[a] == by_query[b]}
    assert first.lengths.tolist() == [
        [len(labelled.pair(p).response_a), len(labelled.pair(p).response_b)] for p in first.pair_ids
    ]

    def no_texts(texts):
        raise AssertionError("the texts were read again")

    monkeypatch.setattr(tools.design, "pair_groups", no_texts)
    again = load_design(labelled, "human")
    assert np.array_equal(again.groups, first.groups) and np.array_equal(again.lengths, first.lengths)
    assert again.groups.dtype == first.groups.dtype and again.lengths.dtype == np.float64
    # Other pairs: another layout, computed from their texts.
    labelled.add_labeled_pairs(
        [
            LabeledPair(
                pair=Pair(query="New?", response_a="x", response_b="y", domain="d", source="s"),
                labels=[Label(mechanism="human", verdict=Verdict.B)],
            )
        ]
    )
    with pytest.raises(AssertionError, match="read again"):
        load_design(labelled, "human")
