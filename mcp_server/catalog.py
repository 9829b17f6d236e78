"""Read-only views of what a store holds (concepts, mechanisms, fitted models), shared by the tools and
the resources so both show the same thing."""

from __future__ import annotations

from mcp_server.results import ConceptDetail, ConceptList, ConceptSummary, MechanismInfo, ModelDetail, ModelSummary
from tools.concepts import Concept, ConceptKind
from tools.errors import StoreError
from tools.stats import store_stats
from tools.store import ConceptStore
from tools.workflows import explain_global


def concept_list(store: ConceptStore, kind: ConceptKind | None = None) -> ConceptList:
    counts = store.value_counts()
    return ConceptList(concepts=[ConceptSummary.of(c, counts.get(c.id, 0)) for c in store.concepts(kind=kind)])


def find_concept(store: ConceptStore, concept_id: str) -> Concept | None:
    return next((c for c in store.concepts() if c.id == concept_id), None)


def concept_detail(store: ConceptStore, concept_id: str) -> ConceptDetail | None:
    concept = find_concept(store, concept_id)
    if concept is None:
        return None
    return ConceptDetail(id=concept.id, concept=concept, values=store.value_counts().get(concept.id, 0))


def mechanism_names(store: ConceptStore) -> set[str]:
    return {m.name for m in store.mechanisms()}


def check_mechanisms(store: ConceptStore, *names: str) -> None:
    """Raise a StoreError naming the known mechanisms if any of ``names`` is not one."""
    known = mechanism_names(store)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise StoreError(f"unknown mechanism(s) {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")


def mechanism_infos(store: ConceptStore) -> list[MechanismInfo]:
    summaries = {s.mechanism: s for s in store_stats(store).mechanisms}
    models = store.models()
    return [
        MechanismInfo(
            name=m.name,
            kind=m.kind.value,
            description=m.description,
            summary=summaries.get(m.name),
            models=[r.id for r in models if r.mechanism == m.name],
        )
        for m in store.mechanisms()
    ]


def model_summaries(store: ConceptStore) -> list[ModelSummary]:
    return [ModelSummary.of(record) for record in store.models()]


def model_detail(store: ConceptStore, model_id: str, top_k: int = 10) -> ModelDetail | None:
    record = next((r for r in store.models() if r.id == model_id), None)
    if record is None:
        return None
    explanation = explain_global(store, record.mechanism, model_id=record.id, top_k=top_k, n_bootstrap=0)
    return ModelDetail(model=ModelSummary.of(record), explanation=explanation)
