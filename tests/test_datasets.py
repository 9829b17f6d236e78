"""The real public sets import with the pair counts, domains and mechanisms their papers describe."""

import json
from collections import Counter

import pytest

from tools.importers import detect_format, import_file, read_file
from tools.stats import store_stats
from tools.store import ConceptStore


@pytest.mark.parametrize(
    ("relative", "fmt", "pairs", "domains", "mechanisms"),
    [
        ("autoj", "autoj", 1392, 8, {"human", "auto-j-13b"}),
        ("llmeval2/LLMEval2_benchmark.jsonl", "llmeval2", 2553, 15, {"human"}),
        (
            "pandalm",
            "pandalm",
            999,
            None,
            {"human", "human-annotator1", "human-annotator2", "human-annotator3", "gpt-3.5-turbo", "pandalm-7b"},
        ),
        ("llmbar/Processed/MT-Bench", "llmbar", 200, 8, {"human", "gpt-4", "chatgpt", "palm2", "llama2"}),
    ],
)
def test_counts_domains_and_mechanisms(raw, relative, fmt, pairs, domains, mechanisms):
    path = raw / relative
    assert detect_format(path) == fmt
    batch = read_file(path, fmt)
    assert len(batch.items) == pairs
    assert len({i.pair.id for i in batch.items}) == pairs
    if domains is not None:
        assert len({i.pair.domain for i in batch.items}) == domains
    assert {m.name for m in batch.mechanisms} == mechanisms


def test_autoj_orders_and_domains(raw):
    items = read_file(raw / "autoj", "autoj").items
    groups = json.loads((raw / "autoj/scenario_groups.json").read_text())
    assert {i.pair.domain for i in items} == {g for g in groups if not g.startswith("_")}
    judge = [next(label for label in i.labels if label.mechanism == "auto-j-13b") for i in items]
    assert all(label.verdict_ab and label.verdict_ba for label in judge)
    # Independently: a consistent pair predicts k in the original order and the mirrored k on the swap.
    original = [json.loads(line)["output"] for line in (raw / "autoj/pairwise_example_output.jsonl").open()]
    swapped = [json.loads(line)["output"] for line in (raw / "autoj/pairwise_exchange_example_output.jsonl").open()]
    mirror = {0: 1, 1: 0, 2: 2}
    consistent = sum(mirror[s] == o for o, s in zip(original, swapped, strict=True))
    assert sum(label.position_consistent for label in judge) == consistent
    # The three identical rows of the test set stay three pairs (separate human judgements).
    assert max(i.pair.duplicate_index for i in items) == 2


def test_llmbar_gpt4_agreement_matches_the_source(raw, tmp_path):
    """LLMBar reports GPT-4's accuracy as the mean over both orders; ties-as-half is the same number."""
    folder = raw / "llmbar/Processed/MT-Bench"
    reported = json.loads((folder / "evaluators/GPT-4/Vanilla_NoRules/statistics.json").read_text())
    with ConceptStore(tmp_path / "s.db") as store:
        import_file(store, folder)
        stats = store_stats(store, reference="human")
    gpt4 = next(a for a in stats.agreement if a.mechanism == "gpt-4" and a.reference == "human")
    assert f"{100 * gpt4.accuracy:.1f}%" == reported["correct_average"]
    both = float(reported["correct_both"].split("=")[-1].strip(" %")) / 100
    assert gpt4.exact == pytest.approx(both)
    categories = Counter(
        json.loads(line)["category"] for line in (raw / "mtbench_questions/mt_bench_question.jsonl").open()
    )
    assert set(stats.counts) == set(categories)


def test_reimport_changes_nothing(raw, tmp_path):
    with ConceptStore(tmp_path / "s.db") as store:
        first = import_file(store, raw / "autoj")
        digest = store.content_digest()
        second = import_file(store, raw / "autoj")
        assert store.content_digest() == digest
    assert (first.new_pairs, second.new_pairs) == (1392, 0)


def test_alpaca_eval_merges_annotators_of_the_same_pair(raw):
    folder = raw / "alpaca_eval/gpt-3.5-turbo-0301"
    items = read_file(folder, "alpaca-eval").items
    assert len(items) == 805
    assert {label.mechanism for label in items[0].labels} == {
        "alpaca_eval_gpt4_turbo_fn",
        "alpaca_eval_cot_gpt4_turbo_fn",
    }
    assert {i.pair.domain for i in items} == {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}


def test_pandalm_majority_and_unparseable_judge_answers(raw):
    items = read_file(raw / "pandalm", "pandalm").items
    gpt = json.loads((raw / "pandalm/gpt-3.5-turbo-testset-v1.json").read_text())
    garbage = sum(str(r["gpt_result"]).lower() == "garbage" for r in gpt)
    assert sum(any(label.mechanism == "gpt-3.5-turbo" for label in i.labels) for i in items) == 999 - garbage
    for i in items[:50]:
        votes = [label.verdict for label in i.labels if label.mechanism.startswith("human-annotator")]
        human = next(label.verdict for label in i.labels if label.mechanism == "human")
        assert human in votes and (votes.count(human) >= 2 or human.value == "tie")
