import pytest
from pydantic import ValidationError

from tools.importers.datasets import majority
from tools.pairs import Label, LabeledPair, Pair, Verdict, combine_orders


def make(**changes):
    fields = dict(query="What is 2+2?", response_a="4", response_b="5", domain="math", source="test") | changes
    return Pair(**fields)


def test_id_is_stable_and_content_based():
    assert make().id == make().id
    assert make(metadata={"x": 1}).id == make().id  # metadata is not content
    for change in (
        {"response_a": "four"},
        {"response_b": "6"},
        {"domain": "maths"},
        {"source": "other"},
        {"query": "What is 3+3?"},
        {"duplicate_index": 1},
    ):
        assert make(**change).id != make().id, change
        # A copy with changes is hashed afresh, though its original's id was computed (and kept) first.
        original, changed = make(), make(**change)
        update = {field: getattr(changed, field) for field in change}  # validated values (a copy skips validation)
        assert original.id != changed.id
        assert original.model_copy(update=update).id == changed.id, change


def test_query_text_becomes_one_user_turn_and_turns_are_kept():
    assert [t.model_dump() for t in make().query] == [{"role": "user", "content": "What is 2+2?"}]
    assert make(query="").query == []
    turns = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Sum?"},
    ]
    pair = make(query=turns)
    assert [t.content for t in pair.query] == ["Hi", "Hello", "Sum?"]
    assert pair.query_text == "user: Hi\n\nassistant: Hello\n\nuser: Sum?"


def test_flipped_orders_make_a_tie_and_consistent_orders_keep_the_verdict():
    assert Label(mechanism="j", verdict_ab="A", verdict_ba="B").verdict is Verdict.TIE
    assert Label(mechanism="j", verdict_ab="B", verdict_ba="B").verdict is Verdict.B
    assert Label(mechanism="j", verdict_ab="A", verdict_ba="tie").verdict is Verdict.TIE
    assert Label(mechanism="j", verdict_ab="A", verdict_ba="B").position_consistent is False
    assert combine_orders(Verdict.A, Verdict.A) is Verdict.A
    with pytest.raises(ValidationError, match="contradicts"):
        Label(mechanism="j", verdict="A", verdict_ab="A", verdict_ba="B")


def test_verdict_label_convention():
    assert [v.y for v in (Verdict.A, Verdict.B, Verdict.TIE)] == [1, -1, 0]
    assert Verdict.A.flipped() is Verdict.B and Verdict.TIE.flipped() is Verdict.TIE


def test_one_label_per_mechanism():
    with pytest.raises(ValidationError, match="more than one label"):
        LabeledPair(pair=make(), labels=[Label(mechanism="h", verdict="A"), Label(mechanism="h", verdict="B")])


@pytest.mark.parametrize(
    ("votes", "expected"),
    [("A A B", "A"), ("B B A", "B"), ("A B tie", "tie"), ("tie tie A", "tie"), ("B B B", "B")],
)
def test_majority_of_three(votes, expected):
    assert majority([Verdict(v) for v in votes.split()]) is Verdict(expected)
