"""Stage 1 of the method: concept discovery, per domain, with an LLM.

tag queries (sub-domain, task) -> batches of 5 pairs sharing a tag -> 10 concepts per batch under
one of three framings (the generic concepts excluded in half of the batches) -> merge duplicates
(shared stemmed words or similar names, confirmed by the LLM; the more frequent name survives) ->
high/low definitions, 5 concepts per call -> shared if found in at least half of the domains.
Everything lands in the store with its provenance.
"""

from __future__ import annotations

import difflib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import Stemmer
from pydantic import BaseModel, Field

from tools.concepts import Concept, ConceptKind, ConceptScope, concept_id
from tools.errors import WhyprefError
from tools.llm import LLM, Estimate, Request, estimate_tokens
from tools.pairs import Pair, Verdict
from tools.progress import Progress, silent
from tools.prompting import cut, load_prompt
from tools.store import ConceptStore

Framing = Literal["both", "chosen", "rejected"]
FRAMINGS: tuple[Framing, ...] = ("both", "chosen", "rejected")

GENERIC_CONCEPTS: dict[str, str] = {
    "Specificity": "A good response is specific to the request rather than vague or generic.",
    "Clarity": "A good response is clear and easy to understand.",
    "Relevance": "A good response addresses what was asked.",
    "Helpfulness": "A good response helps the user achieve their goal.",
    "Empathy": "A good response shows understanding of the user's feelings and situation.",
    "Accuracy": "A good response is factually correct.",
    "Informativeness": "A good response gives useful information.",
    "Creativity": "A good response is original and imaginative where that fits.",
    "Safety": "A good response avoids harmful or dangerous content.",
    "Engagement": "A good response is engaging and holds the reader's interest.",
}

StageGuard = Callable[[str, Estimate], None]  # (stage, its cost) before it starts; raises to stop it


# -- answer schemas -------------------------------------------------------------------------------
class Taxonomy(BaseModel):
    subdomains: list[str] = Field(min_length=1, max_length=10)
    tasks: list[str] = Field(min_length=1, max_length=10)


class QueryTag(BaseModel):
    index: int
    subdomain: str
    task: str


class QueryTags(BaseModel):
    tags: list[QueryTag]


class ProposedConcept(BaseModel):
    name: str = Field(min_length=1, max_length=60)
    description: str = Field(min_length=1, max_length=400)


class Proposal(BaseModel):
    concepts: list[ProposedConcept] = Field(min_length=1, max_length=20)


class SameConcept(BaseModel):
    index: int
    same: bool


class MergeVerdicts(BaseModel):
    verdicts: list[SameConcept]


class Definition(BaseModel):
    index: int
    definition: str = Field(min_length=10, max_length=600)


class Definitions(BaseModel):
    definitions: list[Definition]


# Answer tokens per item: room for the longest answer the schema allows (about 3 characters a token, and
# JSON's keys and quotes), so that no answer that fits is cut (a cut one is asked again).
PROPOSE_TOKENS = 20 + (60 + 400) // 3  # a proposed concept's name and description
DEFINE_TOKENS = 20 + 600 // 3  # a definition


# -- configuration and results ------------------------------------------------------------------
class DiscoveryConfig(BaseModel):
    mechanism: str = "human"  # whose choices say which response was chosen
    batches_per_domain: int = Field(default=4, ge=1)
    batch_size: int = Field(default=5, ge=1)
    concepts_per_batch: int = Field(default=10, ge=1, le=20)
    taxonomy_sample: int = Field(default=30, ge=1)  # queries shown when proposing the tag lists
    min_pairs_to_tag: int = Field(default=20, ge=1)  # smaller domains are one group: tags would not help
    queries_per_tag_call: int = Field(default=10, ge=1)
    pairs_per_merge_call: int = Field(default=10, ge=1)
    concepts_per_definition_call: int = Field(default=5, ge=1)
    name_similarity: float = Field(default=0.85, gt=0, le=1)  # difflib ratio that flags a merge candidate
    include_generic: bool = True
    seed: int = 0


@dataclass
class Candidate:
    """A proposed concept name with what supports it."""

    name: str
    domains: Counter[str] = field(default_factory=Counter)
    batches: list[str] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    framings: Counter[str] = field(default_factory=Counter)
    merged: list[str] = field(default_factory=list)

    @property
    def frequency(self) -> tuple[int, int]:
        """Found in more domains first, then in more batches: the method's tie order for merges."""
        return (len(self.domains), len(self.batches))

    @classmethod
    def of(cls, concept: Concept) -> Candidate:
        """A stored concept as a candidate, from the provenance discovery gave it (or its definition)."""

        def listed(key: str) -> list[str]:
            value = concept.provenance.get(key)
            return [str(v) for v in value] if isinstance(value, list) else []

        def counted(key: str, default: dict[str, int]) -> Counter[str]:
            value = concept.provenance.get(key)
            return Counter({str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else default)  # type: ignore[arg-type]

        return cls(
            concept.name,
            domains=counted("domain_counts", dict.fromkeys(concept.domains, 1)),
            batches=listed("batches"),
            descriptions=listed("descriptions") or [concept.definition or concept.name],
            framings=counted("framings", {}),
            merged=listed("merged"),
        )

    def absorb(self, other: Candidate) -> None:
        self.domains.update(other.domains)
        self.batches += other.batches
        self.descriptions += other.descriptions
        self.framings.update(other.framings)
        self.merged += [other.name, *other.merged]


class DiscoveryResult(BaseModel):
    concepts: list[str]  # ids written to the store
    shared: int
    specific: int
    proposed: int  # distinct names the model proposed, before merging (the fixed generic ones not counted)
    merges: list[tuple[str, str]]  # (kept, absorbed)
    batches: int


# -- helpers ------------------------------------------------------------------------------------
@cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


_NAME_STOP = frozenset({"and", "of", "the", "a", "an", "to", "in", "for", "with", "on"})


def name_stems(name: str) -> set[str]:
    words = [w for w in "".join(ch.lower() if ch.isalnum() else " " for ch in name).split() if w not in _NAME_STOP]
    return set(_stemmer().stemWords(words))


def merge_candidates(names: Sequence[str], similarity: float) -> list[tuple[str, str]]:
    """Pairs of names that may be one concept: a shared stemmed word, or very similar spelling."""
    stems = {n: name_stems(n) for n in names}
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if stems[a] & stems[b] or difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio() >= similarity:
                pairs.append((a, b))
    return pairs


@dataclass
class _DomainPairs:
    domain: str
    pairs: list[Pair]
    chosen_is_a: list[bool]


def _labelled_pairs(
    store: ConceptStore,
    mechanism: str,
    source: str | None,
    domains: Sequence[str] | None,
    pair_ids: Collection[str] | None = None,
) -> list[_DomainPairs]:
    verdicts = {r["pair_id"]: r["verdict"] for r in store.label_rows(source=source, mechanism=mechanism)}
    if not verdicts:
        raise WhyprefError(f"{store.path}: no labels of mechanism {mechanism!r} to discover concepts from")
    by_domain: dict[str, _DomainPairs] = {}
    for pair in store.pairs(source=source):
        verdict = verdicts.get(pair.id)
        if verdict in (None, Verdict.TIE.value) or (domains and pair.domain not in domains):
            continue
        if pair_ids is not None and pair.id not in pair_ids:
            continue
        entry = by_domain.setdefault(pair.domain, _DomainPairs(pair.domain, [], []))
        entry.pairs.append(pair)
        entry.chosen_is_a.append(verdict == Verdict.A.value)
    if domains:
        unknown = sorted(set(domains) - set(by_domain))
        if unknown:
            raise WhyprefError(f"no labelled, non-tied pairs of {mechanism!r} in domain(s) {', '.join(unknown)}")
    return [by_domain[d] for d in sorted(by_domain)]


class Discovery:
    """Runs stage 1 over a store with one LLM; every stage's calls are cached by content."""

    def __init__(
        self,
        store: ConceptStore,
        llm: LLM,
        config: DiscoveryConfig,
        progress: Progress | None = None,
        guard: StageGuard | None = None,
    ) -> None:
        self.store, self.llm, self.config = store, llm, config
        self.progress = progress or silent
        self.guard = guard

    def _run(self, stage: str, requests: list[Request]) -> list:
        if self.guard is not None:
            self.guard(stage, self.llm.estimate(requests))
        return self.llm.run(requests, self.progress)

    # 1. tags
    def _taxonomy_requests(self, data: list[_DomainPairs]) -> list[Request[Taxonomy]]:
        prompt = load_prompt("tag_taxonomy")
        rng = random.Random(self.config.seed)
        requests = []
        for entry in data:
            if len(entry.pairs) < self.config.min_pairs_to_tag:
                continue
            queries = [cut(p.query_text, 300) for p in entry.pairs]
            sample = rng.sample(queries, min(len(queries), self.config.taxonomy_sample))
            requests.append(
                Request(
                    "tag",
                    prompt.render(domain=entry.domain, queries=sample),
                    Taxonomy,
                    max_tokens=300,
                    expected_tokens=120,
                )
            )
        return requests

    def _tag_requests(self, entry: _DomainPairs, taxonomy: Taxonomy) -> list[Request[QueryTags]]:
        prompt = load_prompt("tag_queries")
        step = self.config.queries_per_tag_call
        return [
            Request(
                "tag",
                prompt.render(
                    domain=entry.domain,
                    subdomains=taxonomy.subdomains,
                    tasks=taxonomy.tasks,
                    queries=[cut(p.query_text, 300) for p in entry.pairs[i : i + step]],
                ),
                QueryTags,
                max_tokens=40 * step,
                expected_tokens=20 * step,
            )
            for i in range(0, len(entry.pairs), step)
        ]

    def tag(self, data: list[_DomainPairs]) -> list[list[tuple[str, str]]]:
        """(sub-domain, task) of every pair of every domain; untagged pairs get ('other', 'other')."""
        small = [len(e.pairs) < self.config.min_pairs_to_tag for e in data]
        if all(small):
            return [[("other", "other")] * len(e.pairs) for e in data]
        answers = iter(self._run("tag", self._taxonomy_requests(data)))
        taxonomies = [None if is_small else next(answers) for is_small in small]
        per_domain = [self._tag_requests(e, t) if t else [] for e, t in zip(data, taxonomies, strict=True)]
        tag_answers = self._run("tag", [r for rs in per_domain for r in rs])
        tags = []
        cursor = 0
        for entry, taxonomy, requests in zip(data, taxonomies, per_domain, strict=True):
            labels = [("other", "other")] * len(entry.pairs)
            for k in range(len(requests)):
                answer = tag_answers[cursor + k]
                start = k * self.config.queries_per_tag_call
                for tag in answer.tags if answer else []:
                    i = start + tag.index - 1
                    if start <= i < min(start + self.config.queries_per_tag_call, len(labels)) and taxonomy:
                        labels[i] = (
                            tag.subdomain if tag.subdomain in taxonomy.subdomains else "other",
                            tag.task if tag.task in taxonomy.tasks else "other",
                        )
            cursor += len(requests)
            tags.append(labels)
        return tags

    # 2. batches and proposals
    def batches(
        self,
        data: list[_DomainPairs],
        tags: list[list[tuple[str, str]]],
        counts: Mapping[str, int] | None = None,
    ) -> list[tuple[str, str, list[int]]]:
        """(domain, batch id, pair indexes): groups sharing a tag, drawn by frequency; ``counts`` sets
        the number of batches of each domain (default: ``batches_per_domain`` each)."""
        rng = random.Random(self.config.seed)
        out = []
        for entry, labels in zip(data, tags, strict=True):
            groups: dict[tuple[str, str], list[int]] = defaultdict(list)
            for i, label in enumerate(labels):
                groups[label].append(i)
            keys = sorted(groups)
            weights = [len(groups[k]) for k in keys]
            n_batches = self.config.batches_per_domain if counts is None else counts.get(entry.domain, 0)
            for b in range(n_batches):
                key = rng.choices(keys, weights=weights)[0]
                members = rng.sample(groups[key], min(self.config.batch_size, len(groups[key])))
                if len(members) < self.config.batch_size:  # a rare tag: fill up from the domain
                    rest = [i for i in range(len(entry.pairs)) if i not in members]
                    members += rng.sample(rest, min(self.config.batch_size - len(members), len(rest)))
                out.append((entry.domain, f"{entry.domain}/{b}:{key[0]}|{key[1]}", members))
        return out

    def _proposal_requests(
        self, data: list[_DomainPairs], batches, known: Sequence[str] = ()
    ) -> list[tuple[Framing, Request[Proposal]]]:
        prompt = load_prompt("propose_concepts")
        rng = random.Random(self.config.seed + 1)
        entries = {e.domain: e for e in data}
        requests = []
        for number, (domain, _, members) in enumerate(batches):
            entry = entries[domain]
            framing = rng.choice(FRAMINGS)
            shown = []
            for i in members:
                pair, chosen_a = entry.pairs[i], entry.chosen_is_a[i]
                chosen, rejected = (
                    (pair.response_a, pair.response_b) if chosen_a else (pair.response_b, pair.response_a)
                )
                shown.append(
                    {
                        "query": cut(pair.query_text, 1000),
                        "chosen": cut(chosen, self.llm.max_response_chars // 2),
                        "rejected": cut(rejected, self.llm.max_response_chars // 2),
                    }
                )
            avoid = list(GENERIC_CONCEPTS) if number % 2 == 1 else []
            requests.append(
                (
                    framing,
                    Request(
                        "propose",
                        prompt.render(
                            framing=framing,
                            pairs=shown,
                            n_concepts=self.config.concepts_per_batch,
                            avoid=avoid,
                            known=list(known),
                        ),
                        Proposal,
                        max_tokens=20 + PROPOSE_TOKENS * self.config.concepts_per_batch,
                        expected_tokens=35 * self.config.concepts_per_batch,
                    ),
                )
            )
        return requests

    def propose(self, data: list[_DomainPairs], batches, known: Sequence[str] = ()) -> dict[str, Candidate]:
        """Candidates proposed for the batches; ``known`` names are shown to the model as ones to avoid."""
        framed = self._proposal_requests(data, batches, known)
        answers = self._run("propose", [r for _, r in framed])
        candidates: dict[str, Candidate] = {}
        for (domain, batch_id, _), (framing, _), answer in zip(batches, framed, answers, strict=True):
            for proposed in answer.concepts if answer else []:
                name = " ".join(proposed.name.split()).strip(" .")
                if not any(ch.isalnum() for ch in name):
                    continue
                key = concept_id(name)
                candidate = candidates.setdefault(key, Candidate(name))
                candidate.domains[domain] += 1
                candidate.batches.append(batch_id)
                candidate.descriptions.append(proposed.description)
                candidate.framings[framing] += 1
        return candidates

    # 3. merge
    def merge(
        self, candidates: dict[str, Candidate], fixed: Collection[str] = ()
    ) -> tuple[dict[str, Candidate], list[tuple[str, str]]]:
        """Merge duplicate candidates (LLM-confirmed); the more frequent survives. Keys in ``fixed``
        (concepts already kept) always survive, and two fixed ones are never compared."""
        names = sorted(
            candidates,
            key=lambda k: (k not in fixed, -candidates[k].frequency[0], -candidates[k].frequency[1], k),
        )
        by_name = {candidates[k].name: k for k in names}
        pairs = [
            (a, b)
            for a, b in merge_candidates([candidates[k].name for k in names], self.config.name_similarity)
            if not (by_name[a] in fixed and by_name[b] in fixed)
        ]
        if not pairs:
            return candidates, []
        prompt = load_prompt("merge_concepts")
        step = self.config.pairs_per_merge_call
        chunks = [pairs[i : i + step] for i in range(0, len(pairs), step)]
        requests = [
            Request(
                "merge",
                prompt.render(
                    candidates=[
                        {
                            "a": a,
                            "a_description": candidates[by_name[a]].descriptions[0],
                            "b": b,
                            "b_description": candidates[by_name[b]].descriptions[0],
                        }
                        for a, b in chunk
                    ]
                ),
                MergeVerdicts,
                max_tokens=20 * len(chunk),
                expected_tokens=12 * len(chunk),
            )
            for chunk in chunks
        ]
        answers = self._run("merge", requests)
        parent = {k: k for k in names}
        rank = {k: i for i, k in enumerate(names)}  # lower rank = more frequent: it survives

        def root(k: str) -> str:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        merges = []
        for chunk, answer in zip(chunks, answers, strict=True):
            same = {v.index for v in answer.verdicts if v.same} if answer else set()
            for i, (a, b) in enumerate(chunk, start=1):
                if i in same:
                    ra, rb = root(by_name[a]), root(by_name[b])
                    if ra != rb:
                        keep, drop = (ra, rb) if rank[ra] < rank[rb] else (rb, ra)
                        parent[drop] = keep
                        merges.append((candidates[keep].name, candidates[drop].name))
        merged: dict[str, Candidate] = {}
        for k in names:  # most frequent first, so every root is placed before what it absorbs
            r = root(k)
            if r == k:
                merged[k] = candidates[k]
        for k in names:
            r = root(k)
            if r != k:
                merged[r].absorb(candidates[k])
        return merged, merges

    # 4. definitions
    def define(self, candidates: dict[str, Candidate]) -> dict[str, str]:
        prompt = load_prompt("define_concepts")
        keys = list(candidates)
        step = self.config.concepts_per_definition_call
        chunks = [keys[i : i + step] for i in range(0, len(keys), step)]
        requests = [
            Request(
                "define",
                prompt.render(
                    concepts=[
                        {"name": candidates[k].name, "descriptions": candidates[k].descriptions[:5]} for k in chunk
                    ]
                ),
                Definitions,
                max_tokens=20 + DEFINE_TOKENS * len(chunk),
                expected_tokens=60 * len(chunk),
            )
            for chunk in chunks
        ]
        answers = self._run("define", requests)
        definitions = {}
        for chunk, answer in zip(chunks, answers, strict=True):
            given = {d.index: d.definition for d in answer.definitions} if answer else {}
            for i, k in enumerate(chunk, start=1):
                definitions[k] = given.get(i) or candidates[k].descriptions[0]
        return definitions

    # the whole stage
    def run(self, source: str | None = None, domains: Sequence[str] | None = None) -> DiscoveryResult:
        data = _labelled_pairs(self.store, self.config.mechanism, source, domains)
        tags = self.tag(data)
        batches = self.batches(data, tags)
        proposed = self.propose(data, batches)
        if not proposed:
            missing = self.llm.usage.stage("propose").missing
            raise WhyprefError(
                f"{self.llm.name} proposed no concept in {len(batches)} batches ({missing} answers did not fit "
                "the schema): nothing was stored"
            )
        from_model = len(proposed)
        if self.config.include_generic:
            for name, description in GENERIC_CONCEPTS.items():
                proposed.setdefault(concept_id(name), Candidate(name, descriptions=[description]))
        merged, merges = self.merge(proposed)
        definitions = self.define(merged)
        concepts = self.to_concepts(merged, definitions, len(data))
        ids = self.store.upsert_concepts(concepts)
        return DiscoveryResult(
            concepts=ids,
            shared=sum(c.scope is ConceptScope.SHARED for c in concepts),
            specific=sum(c.scope is ConceptScope.DOMAIN for c in concepts),
            proposed=from_model,
            merges=merges,
            batches=len(batches),
        )

    def to_concepts(
        self, candidates: dict[str, Candidate], definitions: Mapping[str, str], n_domains: int
    ) -> list[Concept]:
        """Concepts with their provenance; shared when found in at least half of ``n_domains`` domains."""
        concepts = []
        for key, c in candidates.items():
            generic = c.name in GENERIC_CONCEPTS
            shared = generic or len(c.domains) * 2 >= n_domains
            provenance: dict[str, Any] = {
                "model": self.llm.name,
                "mechanism": self.config.mechanism,
                "domain_counts": dict(sorted(c.domains.items())),
                "batches": c.batches,
                "framings": dict(c.framings),
                "descriptions": c.descriptions[:10],
                "merged": c.merged,
            }
            concepts.append(
                Concept(
                    name=c.name,
                    definition=definitions[key],
                    kind=ConceptKind.GENERIC if generic else ConceptKind.LLM,
                    scope=ConceptScope.SHARED if shared else ConceptScope.DOMAIN,
                    domains=() if shared else tuple(sorted(c.domains)),
                    provenance=provenance,
                )
            )
        return concepts

    def propose_from_pairs(
        self, pair_ids: Collection[str], batches_per_domain: Mapping[str, int], known: Sequence[str] = ()
    ) -> dict[str, Candidate]:
        """Candidates proposed from the given pairs only (e.g. those a model gets wrong), in batches of
        ``batch_size`` drawn per domain as many times as ``batches_per_domain`` says; the model is told
        the ``known`` concept names, to propose different ones. Nothing is stored."""
        data = [e for e in _labelled_pairs(self.store, self.config.mechanism, None, None, pair_ids) if e.pairs]
        batches = self.batches(data, [[("other", "other")] * len(e.pairs) for e in data], batches_per_domain)
        return self.propose(data, batches, known)

    def estimate(self, source: str | None = None, domains: Sequence[str] | None = None) -> dict[str, Estimate]:
        """Calls and tokens the run would spend. Tagging is planned exactly; later stages depend on
        earlier answers, so they are estimated from the configured sizes."""
        data = _labelled_pairs(self.store, self.config.mechanism, source, domains)
        estimates = {"tag": self.llm.estimate(self._taxonomy_requests(data))}
        step = self.config.queries_per_tag_call
        tagged = [e for e in data if len(e.pairs) >= self.config.min_pairs_to_tag]
        tag_calls = sum(-(-len(e.pairs) // step) for e in tagged)
        query_tokens = sum(estimate_tokens(p.query_text[:300]) for e in tagged for p in e.pairs)
        estimates["tag"].calls += tag_calls
        estimates["tag"].prompt_tokens += query_tokens + 150 * tag_calls
        estimates["tag"].completion_tokens += 20 * sum(len(e.pairs) for e in tagged)
        batches = self.batches(data, [[("other", "other")] * len(e.pairs) for e in data])
        estimates["propose"] = self.llm.estimate([r for _, r in self._proposal_requests(data, batches)])
        names = len(batches) * self.config.concepts_per_batch // 2 + len(GENERIC_CONCEPTS)  # about half repeat
        merge_calls = -(-names // self.config.pairs_per_merge_call)
        define_calls = -(-names // self.config.concepts_per_definition_call)
        estimates["merge"] = Estimate(
            calls=merge_calls, cached=0, prompt_tokens=400 * merge_calls, completion_tokens=120 * merge_calls
        )
        estimates["define"] = Estimate(
            calls=define_calls, cached=0, prompt_tokens=500 * define_calls, completion_tokens=300 * define_calls
        )
        return estimates
