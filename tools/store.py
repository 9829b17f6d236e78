"""The SQLite concept store: one file holding pairs, labels, concepts, concept values, fitted models,
runs and the LLM call cache.

Every write is an idempotent upsert inside one transaction, so importing the same file twice, or
re-running a stage, leaves the same rows. WAL mode lets readers (the CLI, the MCP server) work while
a writer runs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import sqlite_utils
from pydantic import BaseModel, Field, JsonValue

from tools.concepts import Concept, ConceptKind, ConceptScope, ConceptValue
from tools.errors import StoreError
from tools.fitted import ModelMetrics, ModelPayload
from tools.model_names import ModelVariant
from tools.pairs import Label, LabeledPair, Mechanism, MechanismKind, Pair, Turn, Verdict, canonical_json
from tools.scores import ScoreRow

if TYPE_CHECKING:
    from tools.hmdr import HierarchicalMultiDomainRegression

SCHEMA_VERSION = 1
_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another's transaction to finish
_KEYS_PER_QUERY = 500  # keys in one "in (...)" list: far below SQLite's limit on parameters

_TABLES: dict[str, dict[str, Any]] = {
    "meta": {"columns": {"key": str, "value": str}, "pk": "key"},
    "domains": {"columns": {"name": str, "description": str}, "pk": "name"},
    "mechanisms": {"columns": {"name": str, "kind": str, "description": str}, "pk": "name"},
    "pairs": {
        "columns": {
            "id": str,
            "source": str,
            "domain": str,
            "query": str,
            "response_a": str,
            "response_b": str,
            "duplicate_index": int,
            "metadata": str,
        },
        "pk": "id",
        "foreign_keys": [("domain", "domains", "name")],
        "not_null": {"source", "domain", "query", "response_a", "response_b"},
    },
    "labels": {
        "columns": {
            "pair_id": str,
            "mechanism": str,
            "verdict": str,
            "verdict_ab": str,
            "verdict_ba": str,
        },
        "pk": ("pair_id", "mechanism"),
        "foreign_keys": [("pair_id", "pairs", "id"), ("mechanism", "mechanisms", "name")],
        "not_null": {"verdict"},
    },
    "concepts": {
        "columns": {
            "id": str,
            "name": str,
            "definition": str,
            "kind": str,
            "scope": str,
            "domains": str,
            "provenance": str,
        },
        "pk": "id",
    },
    "concept_values": {
        "columns": {"pair_id": str, "concept_id": str, "annotator": str, "value": float, "detail": str},
        "pk": ("pair_id", "concept_id", "annotator"),
        "foreign_keys": [("pair_id", "pairs", "id"), ("concept_id", "concepts", "id")],
        "not_null": {"value"},
    },
    "models": {
        "columns": {
            "id": str,
            "mechanism": str,
            "model_type": str,
            "params": str,
            "payload": str,
            "metrics": str,
            "created_at": str,
        },
        "pk": "id",
    },
    "runs": {
        "columns": {
            "id": str,
            "kind": str,
            "status": str,
            "config": str,
            "stats": str,
            "started_at": str,
            "finished_at": str,
        },
        "pk": "id",
    },
    "llm_cache": {
        "columns": {
            "key": str,
            "model": str,
            "request": str,
            "response": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "created_at": str,
        },
        "pk": "key",
    },
    # Added after schema version 1 (created when missing, so older stores open unchanged): what an
    # agent run spent on LLM calls, counted call by call so a killed run loses no count, and why each
    # concept was added, kept, merged, dropped or rejected.
    "run_usage": {
        "columns": {"run_id": str, "calls": int, "prompt_tokens": int, "completion_tokens": int},
        "pk": "run_id",
    },
    "concept_decisions": {
        "columns": {
            "run_id": str,
            "iteration": int,
            "concept_id": str,
            "action": str,
            "reason": str,
            "concept": str,
            "metrics": str,
        },
        "pk": ("run_id", "iteration", "concept_id"),
    },
    # Analyses that take seconds (bootstrap intervals, paired differences), kept as JSON by a key that
    # names all their inputs and the code (tools/result_cache.py): a repeated one is read, not redone.
    "results": {
        "columns": {"key": str, "kind": str, "value": str, "created_at": str},
        "pk": "key",
    },
}

_INDEXES: list[tuple[str, list[str]]] = [
    ("pairs", ["domain"]),
    ("pairs", ["source"]),
    ("labels", ["mechanism"]),
    ("concept_values", ["concept_id"]),
    ("models", ["mechanism"]),
    ("concept_decisions", ["run_id"]),
]


# A stored concept value: (pair id, concept id, annotator, value, detail as JSON), as written in bulk.
ValueRow = tuple[str, str, str, float, str]


_dumps = canonical_json


def _now() -> str:
    # Microseconds: the latest of a mechanism's models is the last saved, even within one second.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def content_key(payload: Any) -> str:
    """sha256 of a canonical JSON rendering: the key of every cache and content id."""
    return hashlib.sha256(_dumps(payload).encode()).hexdigest()


class ImportSummary(BaseModel):
    """What one import wrote."""

    pairs: int
    new_pairs: int
    labels: int
    domains: list[str]
    mechanisms: list[str]


class FittedModelRecord(BaseModel):
    """A fitted model as stored: what it explains, how it was fitted, its weights and its scores."""

    id: str
    mechanism: str
    model_type: ModelVariant
    params: dict[str, JsonValue] = Field(default_factory=dict)
    payload: ModelPayload
    metrics: ModelMetrics
    created_at: str = Field(default_factory=_now)

    @property
    def held_out(self) -> ScoreRow | None:
        """The model's own held-out row (non-tie accuracy, interval, beside length), if evaluated."""
        return self.metrics.evaluation.row(self.model_type) if self.metrics.evaluation else None

    def estimator(self) -> HierarchicalMultiDomainRegression:
        """The fitted estimator (scikit-learn's contract: learned attributes set by its own class)."""
        params = {k: v for k, v in self.params.items() if isinstance(v, int | float)}
        return self.payload.estimator(self.model_type, params)


class RunUsage(BaseModel):
    """LLM calls (re-asks included) and tokens a run has spent so far."""

    run_id: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


DecisionAction = Literal["added", "kept", "merged", "dropped", "rejected"]


class ConceptDecision(BaseModel):
    """Why a run added, kept, merged, dropped or rejected a concept at one iteration.

    ``concept`` is the concept as it was (definition, provenance), so a deleted concept can be restored.
    """

    run_id: str
    iteration: int
    concept_id: str
    action: DecisionAction
    reason: str
    concept: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: dict[str, JsonValue] = Field(default_factory=dict)


class CachedCall(BaseModel):
    """One LLM answer kept by content hash of (model, request)."""

    key: str
    model: str
    request: JsonValue
    response: JsonValue
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ConceptStore:
    """A whypref store in one SQLite file. Open with ``ConceptStore(path)``; use as a context manager."""

    def __init__(self, path: Path | str, *, create: bool = True, busy_timeout: float = _BUSY_TIMEOUT) -> None:
        self.path, self.busy_timeout = Path(path), busy_timeout
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no such store (import data first, e.g. `whypref import`)")
        try:
            # check_same_thread=False: the MCP server's worker threads share a store behind its lock
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=busy_timeout)
            self.db = sqlite_utils.Database(connection)
            self.db.execute("PRAGMA foreign_keys = ON;")
            self.db.enable_wal()
            self._ensure_schema()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a whypref store ({error})") from error

    # -- life cycle ---------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        fresh = not self.db["meta"].exists()
        if not fresh:
            row = next(self.db.query("select value from meta where key = 'schema_version'"), None)
            found = int(row["value"]) if row else None
            if found != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {found}, this whypref reads {SCHEMA_VERSION}")
        missing = [name for name in _TABLES if not self.db[name].exists()]
        if not missing:  # the usual case: no write lock taken just to open a store
            return
        with self.atomic():
            for name in missing:
                spec = _TABLES[name]
                self.db[name].create(  # type: ignore[union-attr]
                    spec["columns"],
                    pk=spec["pk"],
                    foreign_keys=spec.get("foreign_keys"),
                    not_null=spec.get("not_null"),
                )
            for table, columns in _INDEXES:
                if table in missing:
                    self.db[table].create_index(columns)  # type: ignore[union-attr]
            if fresh:
                self.db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)})  # type: ignore[union-attr]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ConceptStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction: everything inside lands, or nothing does.

        The outermost one takes SQLite's write lock when it begins (BEGIN IMMEDIATE): writes read table
        information first, and a deferred transaction whose snapshot another connection committed over
        cannot be upgraded ("database is locked" at once). Taken up front, concurrent writers (the MCP
        server's worker threads) wait their turn instead. Nested ones are savepoints.
        """
        if self.db.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        try:
            self.db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            raise StoreError(
                f"{self.path} is busy: another command has been writing to it for over {self.busy_timeout:g} s; "
                "nothing was written; run this again when it has finished"
            ) from error
        try:
            with self.db.atomic():
                yield
        except BaseException:
            if self.db.conn.in_transaction:
                self.db.conn.execute("ROLLBACK")
            raise
        self.db.conn.execute("COMMIT")

    def count(self, table: str) -> int:
        return self.db[table].count

    def content_digest(self) -> str:
        """A hash of every row of every table, in primary-key order: equal digests, equal content."""
        digest = hashlib.sha256()
        for name, spec in _TABLES.items():
            pk = spec["pk"] if isinstance(spec["pk"], tuple) else (spec["pk"],)
            for row in self.db.query(f"select * from [{name}] order by {', '.join(pk)}"):
                digest.update(_dumps([name, row]).encode())
        return digest.hexdigest()

    # -- pairs and labels ---------------------------------------------------------------------
    def add_labeled_pairs(self, items: Sequence[LabeledPair], mechanisms: Iterable[Mechanism] = ()) -> ImportSummary:
        """Upsert pairs, their domains, mechanisms and labels in one transaction."""
        known = {m.name: m for m in mechanisms}
        for item in items:
            for label in item.labels:
                known.setdefault(label.mechanism, Mechanism(name=label.mechanism))
        pair_rows = [self._pair_row(item.pair) for item in items]
        label_rows = [self._label_row(item.pair.id, label) for item in items for label in item.labels]
        domains = sorted({item.pair.domain for item in items})
        ids = [row["id"] for row in pair_rows]
        with self.atomic():
            existing = self._existing_ids(ids)
            self.db["domains"].upsert_all(  # type: ignore[union-attr]
                [{"name": d} for d in domains if not self._has("domains", "name", d)], pk="name"
            )
            self.upsert_mechanisms(known.values())
            # Prepared statements, as for values (sqlite-utils' upsert_all builds SQL per batch).
            self._upsert("pairs", ("id",), pair_rows)
            self._upsert("labels", ("pair_id", "mechanism"), label_rows)
        return ImportSummary(
            pairs=len(set(ids)),
            new_pairs=len(set(ids) - existing),
            labels=len(label_rows),
            domains=domains,
            mechanisms=sorted(known),
        )

    def upsert_mechanisms(self, mechanisms: Iterable[Mechanism]) -> None:
        """Record mechanisms; an unknown kind or empty description keeps what the store already says."""
        with self.atomic():
            self.db["mechanisms"].upsert_all([self._mechanism_row(m) for m in mechanisms], pk="name")  # type: ignore[union-attr]

    def _existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(r["id"] for r in self.db.query(f"select id from pairs where id in ({marks})", chunk))
        return found

    def _has(self, table: str, column: str, value: str) -> bool:
        return next(self.db.query(f"select 1 from [{table}] where [{column}] = ?", [value]), None) is not None

    def _mechanism_row(self, mechanism: Mechanism) -> dict[str, Any]:
        """Keep what is already known of a mechanism unless the new record says more."""
        row = mechanism.model_dump(mode="json")
        current = next(self.db.query("select * from mechanisms where name = ?", [mechanism.name]), None)
        if current is not None and mechanism.kind is MechanismKind.UNKNOWN:
            row["kind"] = current["kind"]
        if current is not None and not mechanism.description:
            row["description"] = current["description"]
        return row

    def _upsert(self, table: str, key: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (dicts with the same columns), replacing the other columns of a row with the same key."""
        if not rows:
            return
        columns = list(rows[0])
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        self.db.conn.executemany(
            f"insert into {table} ({', '.join(columns)}) values ({', '.join(':' + c for c in columns)}) "
            f"on conflict ({', '.join(key)}) do update set {updates}",
            rows,
        )

    @staticmethod
    def _pair_row(pair: Pair) -> dict[str, Any]:
        return {
            "id": pair.id,
            "source": pair.source,
            "domain": pair.domain,
            "query": _dumps([turn.model_dump() for turn in pair.query]),
            "response_a": pair.response_a,
            "response_b": pair.response_b,
            "duplicate_index": pair.duplicate_index,
            "metadata": _dumps(pair.metadata),
        }

    @staticmethod
    def _label_row(pair_id: str, label: Label) -> dict[str, Any]:
        return {
            "pair_id": pair_id,
            "mechanism": label.mechanism,
            "verdict": label.verdict.value,
            "verdict_ab": label.verdict_ab.value if label.verdict_ab else None,
            "verdict_ba": label.verdict_ba.value if label.verdict_ba else None,
        }

    @staticmethod
    def _pair_from_row(row: dict[str, Any]) -> Pair:
        return Pair(
            query=[Turn(**turn) for turn in json.loads(row["query"])],
            response_a=row["response_a"],
            response_b=row["response_b"],
            domain=row["domain"],
            source=row["source"],
            duplicate_index=row["duplicate_index"] or 0,
            metadata=json.loads(row["metadata"] or "{}"),
        )

    def _where(self, **filters: str | None) -> tuple[str, list[str]]:
        clauses = [(f"p.{column} = ?", value) for column, value in filters.items() if value is not None]
        if not clauses:
            return "", []
        return " where " + " and ".join(c for c, _ in clauses), [v for _, v in clauses]

    def pairs(self, *, source: str | None = None, domain: str | None = None, page: int = 2000) -> Iterator[Pair]:
        """Stored pairs, in id order, optionally of one source and/or domain. Read a page at a time, so
        memory stays flat and no read stays open while the caller writes between pages."""
        where, args = self._where(source=source, domain=domain)
        after = f"{where} and p.id > ?" if where else " where p.id > ?"
        last = ""
        while rows := list(self.db.query(f"select * from pairs p{after} order by p.id limit {page}", [*args, last])):
            yield from map(self._pair_from_row, rows)
            last = rows[-1]["id"]

    def source_counts(self, *, source: str | None = None, domain: str | None = None) -> dict[str, int]:
        """Pairs per source (of one source and/or domain), by source name."""
        where, args = self._where(source=source, domain=domain)
        query = f"select p.source, count(*) from pairs p{where} group by p.source order by p.source"
        return {name: int(n) for name, n in self.db.execute(query, args).fetchall()}

    def pair_texts(self, pair_ids: Sequence[str]) -> Iterator[tuple[str, str, str]]:
        """(query, response A, response B) of each pair, in the order given (the query as stored JSON),
        read a few hundred at a time: the texts of a large set need not fit in memory at once."""
        for start in range(0, len(pair_ids), 500):
            chunk = list(pair_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            query = f"select id, query, response_a, response_b from pairs where id in ({marks})"
            texts = {row[0]: (row[1], row[2], row[3]) for row in self.db.execute(query, chunk).fetchall()}
            missing = [p for p in chunk if p not in texts]
            if missing:
                raise StoreError(f"{self.path}: no pair with id {missing[0]!r}")
            yield from (texts[p] for p in chunk)

    def pair(self, pair_id: str) -> Pair:
        row = next(self.db.query("select * from pairs where id = ?", [pair_id]), None)
        if row is None:
            raise StoreError(f"{self.path}: no pair with id {pair_id!r}")
        return self._pair_from_row(row)

    def labeled_pairs(self, *, source: str | None = None, domain: str | None = None) -> Iterator[LabeledPair]:
        """Pairs with all their labels (for export)."""
        by_pair: dict[str, list[Label]] = {}
        where, args = self._where(source=source, domain=domain)
        query = f"select l.* from labels l join pairs p on p.id = l.pair_id{where} order by l.mechanism"
        for row in self.db.query(query, args):
            by_pair.setdefault(row["pair_id"], []).append(self._label_from_row(row))
        for pair in self.pairs(source=source, domain=domain):
            yield LabeledPair(pair=pair, labels=by_pair.get(pair.id, []))

    @staticmethod
    def _label_from_row(row: dict[str, Any]) -> Label:
        return Label(
            mechanism=row["mechanism"],
            verdict=Verdict(row["verdict"]),
            verdict_ab=row["verdict_ab"],
            verdict_ba=row["verdict_ba"],
        )

    def label_rows(
        self, *, source: str | None = None, domain: str | None = None, mechanism: str | None = None
    ) -> list[dict[str, Any]]:
        """Flat rows (pair_id, domain, source, mechanism, verdict, verdict_ab, verdict_ba) for analysis."""
        where, args = self._where(source=source, domain=domain)
        if mechanism is not None:
            where = (where + " and" if where else " where") + " l.mechanism = ?"
            args.append(mechanism)
        query = (
            "select l.pair_id, p.domain, p.source, l.mechanism, l.verdict, l.verdict_ab, l.verdict_ba "
            f"from labels l join pairs p on p.id = l.pair_id{where} order by l.pair_id, l.mechanism"
        )
        return list(self.db.query(query, args))

    def label(self, pair_id: str, mechanism: str) -> Label | None:
        """One mechanism's label of one pair, if it has one."""
        row = next(
            self.db.query("select * from labels where pair_id = ? and mechanism = ?", [pair_id, mechanism]), None
        )
        return None if row is None else self._label_from_row(row)

    def mechanisms(self) -> list[Mechanism]:
        return [Mechanism(**row) for row in self.db.query("select * from mechanisms order by name")]

    def domains(self) -> list[str]:
        return [row["name"] for row in self.db.query("select name from domains order by name")]

    def sources(self) -> list[str]:
        return [row["source"] for row in self.db.query("select distinct source from pairs order by source")]

    def check_names(self, *, domains: Iterable[str] = (), source: str | None = None) -> None:
        """StoreError naming any domain or source the store does not hold, with what it holds."""
        for kind, known, asked in (
            ("domain", self.domains(), domains),
            ("source", self.sources(), [source] * bool(source)),
        ):
            unknown = [name for name in asked if name not in known]
            if unknown:
                listing = ", ".join(map(repr, known[:20])) + (" ..." if len(known) > 20 else "") or "none"
                raise StoreError(f"no {kind} {', '.join(map(repr, unknown))} in {self.path} (it has: {listing})")

    # -- concepts and their values ------------------------------------------------------------
    def upsert_concepts(self, concepts: Iterable[Concept]) -> list[str]:
        rows = [
            {
                "id": c.id,
                "name": c.name,
                "definition": c.definition,
                "kind": c.kind.value,
                "scope": c.scope.value,
                "domains": _dumps(list(c.domains)),
                "provenance": _dumps(c.provenance),
            }
            for c in concepts
        ]
        with self.atomic():
            self.db["concepts"].upsert_all(rows, pk="id")  # type: ignore[union-attr]
        return [row["id"] for row in rows]

    def concepts(self, *, kind: ConceptKind | None = None) -> list[Concept]:
        args = [kind.value] if kind else []
        where = " where kind = ?" if kind else ""
        return [
            Concept(
                name=row["name"],
                definition=row["definition"],
                kind=ConceptKind(row["kind"]),
                scope=ConceptScope(row["scope"]),
                domains=tuple(json.loads(row["domains"])),
                provenance=json.loads(row["provenance"]),
            )
            for row in self.db.query(f"select * from concepts{where} order by id", args)
        ]

    def add_concept(self, concept: Concept) -> str:
        """Add a new concept; its id must be free and its domains known to the store."""
        if any(c.id == concept.id for c in self.concepts()):
            raise StoreError(f"concept {concept.id!r} exists (edit it instead)")
        unknown = sorted(set(concept.domains) - set(self.domains()))
        if unknown:
            raise StoreError(f"unknown domain(s) {', '.join(unknown)} (known: {', '.join(self.domains())})")
        return self.upsert_concepts([concept])[0]

    def value_counts(self) -> dict[str, int]:
        """How many values (all annotators) each concept has."""
        query = "select concept_id, count(*) n from concept_values group by concept_id"
        return {row["concept_id"]: row["n"] for row in self.db.query(query)}

    def delete_concept(self, concept_id: str) -> None:
        """Remove a concept and every value of it."""
        with self.atomic():
            self.db.execute("delete from concept_values where concept_id = ?", [concept_id])
            self.db.execute("delete from concepts where id = ?", [concept_id])

    def put_values(self, values: Iterable[ConceptValue]) -> int:
        return self.put_value_rows([(v.pair_id, v.concept_id, v.annotator, v.value, _dumps(v.detail)) for v in values])

    def put_value_rows(self, rows: Sequence[ValueRow]) -> int:
        """Store values given as rows (code that computes many values at once skips a model per value)."""
        with self.atomic():
            # One prepared statement for every row (sqlite-utils' upsert_all builds SQL per batch: 4x slower).
            self.db.conn.executemany(
                "insert into concept_values (pair_id, concept_id, annotator, value, detail) values (?, ?, ?, ?, ?) "
                "on conflict do update set value = excluded.value, detail = excluded.detail",
                rows,
            )
        return len(rows)

    def values(self) -> Iterator[ConceptValue]:
        """Every stored concept value, by annotator, pair and concept."""
        for row in self.db.query("select * from concept_values order by annotator, pair_id, concept_id"):
            yield ConceptValue(**{**row, "detail": json.loads(row["detail"]) if row["detail"] else {}})

    def pair_ids(self) -> set[str]:
        return {row["id"] for row in self.db.query("select id from pairs")}

    def valued_concepts(self, annotator: str) -> dict[str, set[str]]:
        """Pair id -> the concepts this annotator has valued on it."""
        valued: dict[str, set[str]] = defaultdict(set)
        query = "select pair_id, concept_id from concept_values where annotator = ?"
        for pair_id, concept_id in self.db.execute(query, [annotator]).fetchall():
            valued[pair_id].add(concept_id)
        return valued

    def value_details(self, concept_ids: Sequence[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(pair id, concept id, detail) of every value of these concepts: what the annotator saw (e.g.
        Comp-rep's answers in both orders)."""
        marks = ", ".join("?" * len(concept_ids))
        query = f"select pair_id, concept_id, detail from concept_values where concept_id in ({marks})"
        for pair_id, concept_id, detail in self.db.execute(query, list(concept_ids)):
            yield pair_id, concept_id, json.loads(detail or "{}")

    def valued_pairs(self, concept_ids: Sequence[str]) -> set[str]:
        """Pairs holding a value (any annotator) of at least one of ``concept_ids``."""
        if not concept_ids:
            return set()
        marks = ", ".join("?" * len(concept_ids))
        query = f"select distinct pair_id from concept_values where concept_id in ({marks})"
        return {row["pair_id"] for row in self.db.query(query, list(concept_ids))}

    def complete_pairs(self, annotator: str, concept_ids: Sequence[str]) -> set[str]:
        """Pairs holding a value of every one of ``concept_ids`` from ``annotator``."""
        marks = ", ".join("?" * len(concept_ids))
        query = (
            f"select pair_id from concept_values where annotator = ? and concept_id in ({marks}) "
            "group by pair_id having count(*) = ?"
        )
        return {row["pair_id"] for row in self.db.query(query, [annotator, *concept_ids, len(concept_ids)])}

    def pair_values(self, pair_id: str, annotator: str | None = None) -> dict[str, float]:
        """Concept id -> value on one pair (of one annotator, or of any)."""
        query = "select concept_id, value from concept_values where pair_id = ?"
        args = [pair_id]
        if annotator is not None:
            query += " and annotator = ?"
            args.append(annotator)
        return {row[0]: row[1] for row in self.db.execute(query, args).fetchall()}

    def missing_values(
        self, pair_ids: Sequence[str], concept_ids: Sequence[str], annotator: str
    ) -> list[tuple[str, str]]:
        """The (pair, concept) cells this annotator has not filled yet: what a re-run still has to do."""
        have = {
            (row["pair_id"], row["concept_id"])
            for row in self.db.query("select pair_id, concept_id from concept_values where annotator = ?", [annotator])
        }
        return [(p, c) for p in pair_ids for c in concept_ids if (p, c) not in have]

    def concept_matrix(
        self, pair_ids: Sequence[str], concept_ids: Sequence[str], annotator: str | None = None
    ) -> np.ndarray:
        """Dense (pairs x concepts) matrix of values, missing cells 0: one annotator's, or with ``annotator``
        None each concept's only annotator (a StoreError names a concept valued by two).

        The join runs in SQLite and the cells stream into numpy: no Python object per value."""
        pairs, concepts = json.dumps(list(pair_ids)), json.dumps(list(concept_ids))
        # Pairs drive the join (the primary key starts with pair_id) and each value finds its column in the
        # concepts, materialised once with an index: CROSS JOIN fixes that order (the planner cannot size
        # json_each, and its own order scans the pairs' JSON once per value).
        joined = (
            "from json_each(:pairs) r cross join concept_values v on v.pair_id = r.value "
            "cross join c on c.concept_id = v.concept_id"
            + ("" if annotator is None else " where v.annotator = :annotator")
        )
        args = {"pairs": pairs, "concepts": concepts, "annotator": annotator}
        if annotator is None:
            # Each cell says whether its annotator is the one its concept's first value has (one index
            # lookup per concept): a concept valued by two annotators shows in the pass that reads the
            # values (a second pass over the join, to group annotators by concept, took a third of the time).
            first = "select annotator from concept_values where concept_id = ? limit 1"
            found = [(self.db.execute(first, [c]).fetchone() or (None,))[0] for c in concept_ids]
            args["found"] = json.dumps(found)
            concepts_first = (
                "with c(j, concept_id, annotator) as materialized (select k.key, k.value, a.value "
                "from json_each(:concepts) k join json_each(:found) a on a.key = k.key) "
            )
            cursor = self.db.execute(
                f"{concepts_first}select r.key, c.j, v.value, v.annotator = c.annotator {joined}", args
            )
            cells = np.fromiter((x for row in cursor for x in row), dtype=np.float64).reshape(-1, 4)
            if not cells[:, 3].all():
                mixed = f"select v.concept_id, group_concat(distinct v.annotator) {joined} group by v.concept_id"
                for concept_id, annotators in self.db.execute(concepts_first + mixed, args).fetchall():
                    if "," in annotators:
                        named = ", ".join(sorted(annotators.split(",")))
                        raise StoreError(f"concept {concept_id!r} has values from {named}: choose one with --annotator")
        else:
            concepts_first = "with c(j, concept_id) as materialized (select key, value from json_each(:concepts)) "
            cursor = self.db.execute(f"{concepts_first}select r.key, c.j, v.value {joined}", args)
            cells = np.fromiter((x for row in cursor for x in row), dtype=np.float64).reshape(-1, 3)
        matrix = np.zeros((len(pair_ids), len(concept_ids)))
        matrix[cells[:, 0].astype(np.intp), cells[:, 1].astype(np.intp)] = cells[:, 2]
        return matrix

    # -- fitted models and runs ---------------------------------------------------------------
    def save_model(self, record: FittedModelRecord) -> FittedModelRecord:
        """Store the model (replacing one of the same id) as its mechanism's latest: stamped now. Returns
        the record as stored."""
        record = record.model_copy(update={"created_at": _now()})
        row = record.model_dump(mode="json")
        for column in ("params", "payload", "metrics"):
            row[column] = _dumps(row[column])
        with self.atomic():
            self.db["models"].upsert(row, pk="id")  # type: ignore[union-attr]
        return record

    def model(self, model_id: str) -> FittedModelRecord | None:
        """The stored model of this id, if any."""
        found = self._model_records(" where id = ?", [model_id])
        return found[0] if found else None

    def models(self, *, mechanism: str | None = None) -> list[FittedModelRecord]:
        """Fitted models, oldest first; one stored by a whypref whose records differ is named, not skipped."""
        return self._model_records(*((" where mechanism = ?", [mechanism]) if mechanism else ("", [])))

    def _model_records(self, where: str, args: list[str]) -> list[FittedModelRecord]:
        records = []
        for row in self.db.query(f"select * from models{where} order by created_at, id", args):
            try:
                records.append(
                    FittedModelRecord(**{**row, **{c: json.loads(row[c]) for c in ("params", "payload", "metrics")}})
                )
            except ValueError as error:
                raise StoreError(
                    f"{self.path}: model {row['id']} was stored by an older whypref; refit {row['mechanism']!r} "
                    f"(`whypref fit`) or delete the model ({str(error).splitlines()[0]})"
                ) from error
        return records

    def start_run(self, run_id: str, kind: str, config: dict[str, JsonValue]) -> None:
        row = {
            "id": run_id,
            "kind": kind,
            "status": "running",
            "config": _dumps(config),
            "stats": "{}",
            "started_at": _now(),
            "finished_at": None,
        }
        with self.atomic():
            self.db["runs"].upsert(row, pk="id")  # type: ignore[union-attr]

    def finish_run(self, run_id: str, status: str, stats: Mapping[str, Any]) -> None:
        with self.atomic():
            self.db["runs"].update(run_id, {"status": status, "stats": _dumps(stats), "finished_at": _now()})  # type: ignore[union-attr]

    def has_run(self, run_id: str) -> bool:
        return next(self.db.query("select 1 from runs where id = ?", [run_id]), None) is not None

    def run(self, run_id: str) -> dict[str, Any]:
        row = next(self.db.query("select * from runs where id = ?", [run_id]), None)
        if row is None:
            raise StoreError(f"{self.path}: no run {run_id!r}")
        return {**row, "config": json.loads(row["config"]), "stats": json.loads(row["stats"])}

    def add_run_usage(self, run_id: str, calls: int, prompt_tokens: int, completion_tokens: int) -> None:
        """Add LLM calls and tokens to what a run has spent (kept across restarts of the run)."""
        with self.atomic():
            self.db.execute(
                "insert into run_usage (run_id, calls, prompt_tokens, completion_tokens) values (?, ?, ?, ?) "
                "on conflict(run_id) do update set calls = calls + excluded.calls, "
                "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = completion_tokens + excluded.completion_tokens",
                [run_id, calls, prompt_tokens, completion_tokens],
            )

    def run_usage(self, run_id: str) -> RunUsage:
        row = next(self.db.query("select * from run_usage where run_id = ?", [run_id]), None)
        return RunUsage(**row) if row else RunUsage(run_id=run_id)

    def record_decisions(self, decisions: Iterable[ConceptDecision]) -> None:
        """Upsert concept decisions (one per run, iteration and concept: re-recording is idempotent)."""
        rows = [
            {**d.model_dump(mode="json"), "concept": _dumps(d.concept), "metrics": _dumps(d.metrics)} for d in decisions
        ]
        with self.atomic():
            self.db["concept_decisions"].upsert_all(rows, pk=("run_id", "iteration", "concept_id"))  # type: ignore[union-attr]

    def decisions(self, run_id: str) -> list[ConceptDecision]:
        query = "select * from concept_decisions where run_id = ? order by iteration, action, concept_id"
        return [
            ConceptDecision(**{**row, "concept": json.loads(row["concept"]), "metrics": json.loads(row["metrics"])})
            for row in self.db.query(query, [run_id])
        ]

    # -- computed results --------------------------------------------------------------------
    def result(self, key: str) -> str | None:
        """A stored analysis's JSON, if this key was computed here."""
        row = next(self.db.query("select value from results where key = ?", [key]), None)
        return None if row is None else str(row["value"])

    def save_result(self, key: str, kind: str, value: str) -> None:
        with self.atomic():
            self.db["results"].upsert({"key": key, "kind": kind, "value": value, "created_at": _now()}, pk="key")  # type: ignore[union-attr]

    # -- LLM call cache -----------------------------------------------------------------------
    def cached_call(self, key: str) -> CachedCall | None:
        row = next(self.db.query("select * from llm_cache where key = ?", [key]), None)
        if row is None:
            return None
        return CachedCall(**{**row, "request": json.loads(row["request"]), "response": json.loads(row["response"])})

    def cached_calls(self, keys: Sequence[str]) -> dict[str, CachedCall]:
        """The cached calls of these keys (those there are), read a few hundred keys per query."""
        found = {}
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[start : start + _KEYS_PER_QUERY]
            query = f"select * from llm_cache where key in ({', '.join('?' * len(chunk))})"
            for row in self.db.query(query, chunk):
                found[row["key"]] = CachedCall(
                    **{**row, "request": json.loads(row["request"]), "response": json.loads(row["response"])}
                )
        return found

    def cache_calls(self, calls: Sequence[CachedCall]) -> None:
        """Keep answers (or pending batch requests) by key, in one transaction."""
        now = _now()
        rows = []
        for call in calls:
            row = {**call.model_dump(mode="json"), "created_at": now}
            row["request"], row["response"] = _dumps(row["request"]), _dumps(row["response"])
            rows.append(row)
        with self.atomic():
            self.db["llm_cache"].upsert_all(rows, pk="key")  # type: ignore[union-attr]
