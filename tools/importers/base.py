"""What every importer shares: options, verdict spellings, and turning a record into a LabeledPair."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tools.importers.reading import Record, validation_problem
from tools.pairs import Label, LabeledPair, MechanismKind, Pair, Verdict

# Spellings of a verdict across common preference files (lower-cased before lookup).
VERDICT_SPELLINGS: dict[str, Verdict] = {
    **dict.fromkeys(["a", "1", "model_a", "model1", "response_a", "response1", "text_a", "output_1"], Verdict.A),
    **dict.fromkeys(["b", "2", "model_b", "model2", "response_b", "response2", "text_b", "output_2"], Verdict.B),
    **dict.fromkeys(["tie", "0", "draw", "equal", "same", "tie (bothbad)", "both_good", "both_bad"], Verdict.TIE),
}


def parse_verdict(record: Record, column: str, spellings: Mapping[str, Verdict] = VERDICT_SPELLINGS) -> Verdict:
    """The verdict in ``column``; an unknown spelling is an error that lists the accepted ones."""
    raw = record.get(column)
    key = str(int(raw) if isinstance(raw, float) and raw.is_integer() else raw).strip().lower()
    if key not in spellings:
        accepted = ", ".join(sorted(spellings))
        raise record.error(f"unknown label {raw!r} (accepted: {accepted})", column)
    return spellings[key]


class ColumnMapping(BaseModel):
    """Which columns of a generic file hold what. Two layouts: chosen/rejected, or A/B + winner."""

    query: str = "query"
    chosen: str = "chosen"
    rejected: str = "rejected"
    response_a: str = "response_a"
    response_b: str = "response_b"
    winner: str = "winner"
    domain_column: str = "domain"
    extra_labels: dict[str, str] = {}  # mechanism name -> column holding its verdict (A/B layout)


class ImportOptions(BaseModel):
    """Options of an import; the named datasets use only what applies to them."""

    mapping: ColumnMapping = ColumnMapping()
    domain: str | None = None  # a constant domain, overriding any column
    source: str | None = None  # defaults to the file's stem (generic formats) or the dataset's name
    mechanism: str = "human"  # who produced the main verdict of a generic file
    mechanism_kind: MechanismKind = MechanismKind.HUMAN
    allow_empty_responses: bool = False
    questions: Path | None = None  # LLMBar: question file(s) with categories (default: found beside the data)


@dataclass(frozen=True)
class LabelSpec:
    """A label to attach: a known verdict, or the verdicts of both presentation orders."""

    mechanism: str
    verdict: Verdict | None = None
    verdict_ab: Verdict | None = None
    verdict_ba: Verdict | None = None


@dataclass
class PairBuilder:
    """Builds validated LabeledPairs from records, translating validation errors to file/line/field."""

    source: str
    allow_empty_responses: bool
    column_names: dict[str, str] = field(default_factory=dict)  # our field -> the file's column

    def build(
        self,
        record: Record,
        *,
        query: Any,
        response_a: str,
        response_b: str,
        domain: str,
        labels: list[LabelSpec],
        metadata: dict[str, Any] | None = None,
    ) -> LabeledPair:
        if not self.allow_empty_responses:
            for ours, text in (("response_a", response_a), ("response_b", response_b)):
                if not text.strip():
                    raise record.error(
                        "empty response (pass --allow-empty-responses if the file means it)",
                        self.column_names.get(ours, ours),
                    )
        try:
            return LabeledPair(
                pair=Pair(
                    query=query,
                    response_a=response_a,
                    response_b=response_b,
                    domain=domain,
                    source=self.source,
                    metadata=_json_safe(metadata or {}),
                ),
                labels=[
                    Label(mechanism=s.mechanism, verdict=s.verdict, verdict_ab=s.verdict_ab, verdict_ba=s.verdict_ba)  # type: ignore[arg-type]
                    for s in labels
                ],
            )
        except ValidationError as error:
            problem, column = validation_problem(error, self.column_names)
            raise record.error(problem, column) from None


def _json_safe(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as JSON values: NaN (pandas' empty cell) becomes None."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in metadata.items()}


Reader = Callable[[Path, ImportOptions], Iterator[LabeledPair]]


@dataclass(frozen=True)
class Format:
    """A file format whypref imports: its reader and how it names its mechanisms' kinds."""

    name: str
    help: str
    read: Reader
    judge_kind: MechanismKind = MechanismKind.LLM_JUDGE  # kind of every mechanism not named human*

    def kind_of(self, mechanism: str, options: ImportOptions) -> MechanismKind:
        if mechanism == options.mechanism and self.judge_kind is MechanismKind.UNKNOWN:
            return options.mechanism_kind
        if mechanism.startswith("human"):
            return MechanismKind.HUMAN
        return self.judge_kind
