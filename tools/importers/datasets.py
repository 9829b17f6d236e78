"""Readers of the public preference sets whypref knows by name, with every mechanism they carry.

Each reader takes the dataset's directory (or file) as distributed and yields LabeledPairs. These
sets contain a few genuinely empty responses (a model that answered nothing), so they are kept.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tools.errors import InputError
from tools.importers.base import ImportOptions, LabelSpec, PairBuilder, parse_verdict
from tools.importers.reading import Record, allowed, json_array_records, jsonl_records, read_text
from tools.pairs import LabeledPair, Verdict


def _require_dir(path: Path, expected: str) -> None:
    if not path.exists():
        raise InputError("file does not exist", file=path)
    if not path.is_dir():
        raise InputError(f"expected the dataset's directory ({expected})", file=path)


def _member(path: Path, name: str) -> Path:
    member = path / name
    if not member.exists():
        raise InputError(f"the dataset directory lacks {name}", file=path)
    return member


# -- Auto-J --------------------------------------------------------------------------------------
AUTOJ_LABELS = {"0": Verdict.A, "1": Verdict.B, "2": Verdict.TIE}
AUTOJ_SWAPPED = {"0": Verdict.B, "1": Verdict.A, "2": Verdict.TIE}  # predictions on the swapped order


def read_autoj(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    """Auto-J pairwise test set: human labels, Auto-J-13B in both orders, 58 scenarios in 8 domains."""
    _require_dir(path, "autoj/ with testdata_pairwise.jsonl")
    groups = json.loads(read_text(_member(path, "scenario_groups.json")))
    domain_of = {s: group for group, scenarios in groups.items() if not group.startswith("_") for s in scenarios}
    original = list(jsonl_records(_member(path, "pairwise_example_output.jsonl")))
    swapped = list(jsonl_records(_member(path, "pairwise_exchange_example_output.jsonl")))
    builder = PairBuilder(
        options.source or "autoj",
        allow_empty_responses=True,
        column_names={"response_a": "response 1", "response_b": "response 2", "query": "prompt"},
    )
    records = list(jsonl_records(_member(path, "testdata_pairwise.jsonl")))
    if not len(records) == len(original) == len(swapped):
        raise InputError(
            f"{len(records)} test pairs but {len(original)} and {len(swapped)} Auto-J predictions", file=path
        )
    for record, ab, ba in zip(records, original, swapped, strict=True):
        scenario = record.text("scenario")
        if scenario not in domain_of:
            raise record.error(f"scenario {scenario!r} is not in scenario_groups.json", "scenario")
        yield builder.build(
            record,
            query=record.text("prompt"),
            response_a=record.text("response 1"),
            response_b=record.text("response 2"),
            domain=domain_of[scenario],
            labels=[
                LabelSpec("human", verdict=parse_verdict(record, "label", AUTOJ_LABELS)),
                LabelSpec(
                    "auto-j-13b",
                    verdict_ab=parse_verdict(ab, "output", AUTOJ_LABELS),
                    verdict_ba=parse_verdict(ba, "output", AUTOJ_SWAPPED),
                ),
            ],
            metadata={"scenario": scenario},
        )


# -- LLMEval2 ------------------------------------------------------------------------------------
LLMEVAL2_LABELS = {"model1": Verdict.A, "model2": Verdict.B, "tie": Verdict.TIE}


def read_llmeval2(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    """LLMEval2 benchmark (JSON Lines): human labels; the ``dataset`` field is the domain.

    Its mt-bench rows have an empty query: the dialogue is inside the responses, kept as it is.
    """
    if path.is_dir():
        path = _member(path, "LLMEval2_benchmark.jsonl")
    builder = PairBuilder(
        options.source or "llmeval2",
        allow_empty_responses=True,
        column_names={"response_a": "response1", "response_b": "response2"},
    )
    for record in jsonl_records(path):
        yield builder.build(
            record,
            query=record.text("query"),
            response_a=record.text("response1"),
            response_b=record.text("response2"),
            domain=record.text("dataset", allow_empty=False),
            labels=[LabelSpec("human", verdict=parse_verdict(record, "human", LLMEVAL2_LABELS))],
        )


# -- PandaLM -------------------------------------------------------------------------------------
PANDALM_LABELS = {"0": Verdict.TIE, "1": Verdict.A, "2": Verdict.B, "tie": Verdict.TIE}


def read_pandalm(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    """PandaLM test set: 3 annotators and their majority (``human``), GPT-3.5 and PandaLM-7B.

    The domain is the application that motivated the instruction (``motivation_app``). GPT-3.5's
    unparseable answers ("garbage") are not labels and are skipped.
    """
    _require_dir(path, "pandalm/ with testset-v1.json")
    tests = list(json_array_records(_member(path, "testset-v1.json")))
    gpt = {int(r.get("idx")): r for r in json_array_records(_member(path, "gpt-3.5-turbo-testset-v1.json"))}
    panda = {int(r.get("idx")): r for r in json_array_records(_member(path, "pandalm-7b-testset-v1.json"))}
    builder = PairBuilder(options.source or "pandalm", allow_empty_responses=True)
    for record in tests:
        idx = int(record.get("idx"))
        annotators = [parse_verdict(record, f"annotator{k}", PANDALM_LABELS) for k in (1, 2, 3)]
        labels = [LabelSpec(f"human-annotator{k}", verdict=v) for k, v in enumerate(annotators, start=1)]
        labels.append(LabelSpec("human", verdict=majority(annotators)))
        if idx in gpt and str(gpt[idx].data.get("gpt_result")).lower() != "garbage":
            labels.append(LabelSpec("gpt-3.5-turbo", verdict=parse_verdict(gpt[idx], "gpt_result", PANDALM_LABELS)))
        if idx in panda:
            labels.append(LabelSpec("pandalm-7b", verdict=parse_verdict(panda[idx], "pandalm_result", PANDALM_LABELS)))
        instruction, extra = record.text("instruction"), record.text("input")
        yield builder.build(
            record,
            query=instruction + ("\n\n" + extra if extra.strip() else ""),
            response_a=record.text("response1"),
            response_b=record.text("response2"),
            domain=record.text("motivation_app", allow_empty=False),
            labels=labels,
            metadata={"idx": idx, "cmp_key": record.data.get("cmp_key")},
        )


def majority(verdicts: list[Verdict]) -> Verdict:
    """The verdict most annotators gave; a tie when no verdict has a strict majority."""
    (top, count), *rest = Counter(verdicts).most_common()
    return top if count * 2 > len(verdicts) else Verdict.TIE


# -- LLMBar --------------------------------------------------------------------------------------
LLMBAR_LABELS = {"1": Verdict.A, "2": Verdict.B}


def read_llmbar(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    """LLMBar: any folder holding dataset.json (e.g. Processed/MT-Bench) or a tree of them.

    Human labels plus every evaluator result file, both orders (LLMBar reports the swapped order's
    winner in the original order's terms). MT-Bench and FairEval get their question categories as
    domains; the other subsets are one domain each, named after the subset.
    """
    if not path.exists():
        raise InputError("file does not exist", file=path)
    datasets = [path / "dataset.json"] if (path / "dataset.json").exists() else sorted(path.rglob("dataset.json"))
    if not datasets:
        raise InputError("no dataset.json found (expected an LLMBar dataset folder)", file=path)
    for dataset in datasets:
        yield from _read_llmbar_subset(dataset, options)


def _llmbar_categories(dataset: Path, options: ImportOptions) -> dict[str, str] | None:
    """Question -> category for MT-Bench (mt_bench_question.jsonl) and FairEval (vicuna_bench_question.jsonl)."""
    name = {"MT-Bench": "mt_bench_question.jsonl", "FairEval": "vicuna_bench_question.jsonl"}.get(dataset.parent.name)
    if name is None:
        return None
    candidates = (
        [options.questions / name if options.questions.is_dir() else options.questions]
        if options.questions
        else [ancestor / "mtbench_questions" / name for ancestor in dataset.parents]
    )
    found = next((c for c in candidates if c.exists() and allowed(c)), None)
    if found is None:
        raise InputError(f"{name} (question categories) not found; pass it with --questions", file=dataset)
    return {_first_turn(r): r.text("category") for r in jsonl_records(found)}


def _first_turn(record: Record) -> str:
    turns = record.get("turns")
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
        raise record.error("expected a list of question turns", "turns")
    return turns[0].strip()


def _read_llmbar_subset(dataset: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    subset = _llmbar_subset_name(dataset.parent)
    categories = _llmbar_categories(dataset, options)
    judges = _llmbar_judges(dataset.parent)
    builder = PairBuilder(
        options.source or f"llmbar/{subset}",
        allow_empty_responses=True,
        column_names={"response_a": "output_1", "response_b": "output_2", "query": "input"},
    )
    for index, record in enumerate(json_array_records(dataset)):
        query = record.text("input")
        if categories is None:
            domain = subset
        elif query.strip() in categories:
            domain = categories[query.strip()]
        else:
            raise record.error("question not found in the question file (no category)", "input")
        labels = [LabelSpec("human", verdict=parse_verdict(record, "label", LLMBAR_LABELS))]
        labels += [spec for judge in judges if (spec := judge(index, record)) is not None]
        yield builder.build(
            record,
            query=query,
            response_a=record.text("output_1"),
            response_b=record.text("output_2"),
            domain=domain,
            labels=labels,
        )


def _llmbar_subset_name(folder: Path) -> str:
    """'Processed/MT-Bench' -> 'MT-Bench', 'LLMBar/Adversarial/Neighbor' -> 'Adversarial/Neighbor'."""
    parts = folder.parts
    for root in ("Processed", "LLMBar"):
        if root in parts[:-1]:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(root) + 1 :])
    return folder.name


def _llmbar_judges(folder: Path) -> list:
    """One function per evaluator result file: (index, dataset record) -> LabelSpec or None."""
    judges = []
    for result in sorted(folder.glob("evaluators/*/*/result.json")):
        evaluator, strategy = result.parent.parent.name, result.parent.name
        mechanism = evaluator.lower() + ("" if strategy == "Vanilla_NoRules" else f"/{strategy.lower()}")
        rows = list(json_array_records(result))
        judges.append(_llmbar_judge(mechanism, rows))
    return judges


def _llmbar_judge(mechanism: str, rows: list[Record]):
    def label(index: int, record: Record) -> LabelSpec | None:
        if index >= len(rows):
            raise record.error(f"no {mechanism} result for this pair ({len(rows)} results)")
        row = rows[index]
        if row.text("input") != record.text("input"):
            raise row.error(f"{mechanism} result does not match dataset pair {index + 1}", "input")
        results = row.get("results")
        if isinstance(results, str):
            try:
                results = ast.literal_eval(results)
            except (ValueError, SyntaxError):
                raise row.error("unreadable results", "results") from None
        orders = results[0]
        winners = [orders.get(key, {}).get("winner") for key in ("swap = False", "swap = True")]
        if any(w not in ("1", "2") for w in winners):  # the judge gave no parseable answer
            return None
        return LabelSpec(mechanism, verdict_ab=LLMBAR_LABELS[winners[0]], verdict_ba=LLMBAR_LABELS[winners[1]])

    return label


# -- AlpacaEval ----------------------------------------------------------------------------------
def _alpaca_verdict(record: Record) -> Verdict | None:
    raw = record.data.get("preference")
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise record.error(f"unknown label {raw!r} (expected 1, 2, or 0/1.5 for a tie)", "preference") from None
    if value == 1.0:
        return Verdict.A
    if value == 2.0:
        return Verdict.B
    if value in (0.0, 1.5):
        return Verdict.TIE
    raise record.error(f"unknown label {raw!r} (expected 1, 2, or 0/1.5 for a tie)", "preference")


def read_alpaca_eval(path: Path, options: ImportOptions) -> Iterator[LabeledPair]:
    """AlpacaEval annotations.json(.gz) files (one, or every one under a folder): each annotator is a
    mechanism; the ``dataset`` field is the domain. The same pair judged by several annotators (in
    several files) becomes one pair with several labels."""
    if not path.exists():
        raise InputError("file does not exist", file=path)
    files = sorted(path.rglob("annotations.json*")) if path.is_dir() else [path]
    if not files:
        raise InputError("no annotations.json(.gz) found", file=path)
    builder = PairBuilder(
        options.source or "alpaca_eval",
        allow_empty_responses=True,
        column_names={"response_a": "output_1", "response_b": "output_2", "query": "instruction"},
    )
    merged: dict[tuple, tuple[Record, dict[str, LabelSpec]]] = {}
    for file in files:
        seen: Counter[tuple] = Counter()
        for record in json_array_records(file, read_text(file)):
            content = tuple(record.text(k) for k in ("instruction", "output_1", "output_2", "dataset"))
            key = (*content, seen[content])  # identical rows of one file stay separate pairs
            seen[content] += 1
            first, labels = merged.setdefault(key, (record, {}))
            verdict = _alpaca_verdict(record)
            if verdict is not None:
                labels[record.text("annotator")] = LabelSpec(record.text("annotator"), verdict=verdict)
    for record, labels in merged.values():
        yield builder.build(
            record,
            query=record.text("instruction"),
            response_a=record.text("output_1"),
            response_b=record.text("output_2"),
            domain=record.text("dataset", allow_empty=False),
            labels=list(labels.values()),
            metadata={"generator_1": record.data.get("generator_1"), "generator_2": record.data.get("generator_2")},
        )
