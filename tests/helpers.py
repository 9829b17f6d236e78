"""What several test modules share (benchmarks use the scripted LLMs too).

Scripted LLMs that answer whypref's own prompts (they parse the prompt templates, so they live with the
tests): a deterministic responder for every pipeline stage, one for the applications (judge, steering,
tie break) and an oracle over planted data for the discovery agent; an endpoint serving a responder;
and the stores several modules test on. The generic doubles (a scripted chat model, an OpenAI-compatible
stub server) are in ``tools.testing``."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import Concept, ConceptKind
from tools.demo_data import DEMO_MECHANISMS, demo_pairs
from tools.design import store_planted
from tools.planted import make_planted
from tools.store import ConceptStore
from tools.testing import OpenAIStub, Responder
from tools.workflows import fit_mechanism

if TYPE_CHECKING:
    from tools.planted import PlantedData


def _keys(text: str) -> list[str]:
    """Concept keys listed in a prompt ('c1: Name: definition' lines), with their names."""
    return [
        line.split(":")[0].strip()
        for line in text.splitlines()
        if line.strip()[:1] == "c" and ":" in line and line.split(":")[0].strip()[1:].isdigit()
    ]


def _names(text: str) -> dict[str, str]:
    return {
        line.split(":")[0].strip(): line.split(":")[1].strip()
        for line in text.splitlines()
        if line.strip()[:1] == "c" and ":" in line and line.split(":")[0].strip()[1:].isdigit()
    }


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0] if start in text else ""


def pipeline_responder(messages: list[dict[str, str]]) -> str:
    """A deterministic stand-in for an LLM across every whypref prompt.

    Proposals depend on what the batch shows (code blocks, doctor advice, lists); merges join names
    sharing 'Struct'; comparisons judge 'Structure' and 'Code Examples' from the texts (consistent
    under swapping) and always answer 1 for 'Engagement' (position bias, which the swap rule zeroes).
    Asked about one response (Prob-rep), P(yes) is 0.9 / 0.15 for those two by the text, 0.5 otherwise.
    """
    system, user = messages[0]["content"], messages[-1]["content"]
    if system.startswith("You organise"):
        return json.dumps({"subdomains": ["general"], "tasks": ["how-to"]})
    if system.startswith("You label"):
        n = user.count("\n[")
        return json.dumps({"tags": [{"index": i, "subdomain": "general", "task": "how-to"} for i in range(1, n + 2)]})
    if system.startswith("You study"):
        concepts = [
            {"name": "Structure", "description": "A good response is organised in steps."},
            {"name": "Engagement", "description": "A good response is engaging."},
        ]
        if "```" in user:
            concepts.append({"name": "Code Examples", "description": "A good response shows code."})
        if "doctor" in user:
            concepts.append({"name": "Safety Advice", "description": "A good response says when to see a doctor."})
        if "Rejected response" in user:
            concepts.append({"name": "Structured Steps", "description": "A good response lists numbered steps."})
        return json.dumps({"concepts": concepts})
    if system.startswith("You decide whether"):
        lines = user.splitlines()
        verdicts = []
        for n, line in enumerate(lines):
            if line.startswith("["):
                pair_text = line + lines[n + 1]  # '[i] "A": ...' then '    vs "B": ...'
                verdicts.append({"index": int(line[1 : line.index("]")]), "same": pair_text.count("Struct") >= 2})
        return json.dumps({"verdicts": verdicts})
    if system.startswith("You write precise"):
        n = sum(1 for line in user.splitlines() if line.startswith("["))
        return json.dumps(
            {
                "definitions": [
                    {
                        "index": i,
                        "definition": f"A high score indicates the response has property {i}; a low score, not.",
                    }
                    for i in range(1, n + 1)
                ]
            }
        )
    if system.startswith("You decide which"):
        names = _names(user)
        return json.dumps({key: name != "Creativity" for key, name in names.items()})
    if system.startswith("You compare"):
        first, second = _between(user, "Response 1:", "Response 2:"), _between(user, "Response 2:", "Concepts:")
        answers = {}
        for key, name in _names(user).items():
            if name == "Engagement":
                answers[key] = 1
            elif name in ("Structure", "Structured Steps"):
                answers[key] = _side("1. " in first, "1. " in second)
            elif name == "Code Examples":
                answers[key] = _side("```" in first, "```" in second)
            else:
                answers[key] = 0
        return json.dumps(answers)
    if system.startswith("You judge one property"):  # Prob-rep: the answer is {token: probability}
        response = _between(user, "Response:", "Property:")
        name = _between(user, "Property:", ".").strip()
        shows = {"Structure": "1. " in response, "Code Examples": "```" in response}.get(name)
        p_yes = 0.5 if shows is None else 0.9 if shows else 0.15
        return json.dumps({"yes": p_yes, "no": 1.0 - p_yes})
    if system.startswith("You rate"):
        response = _between(user, "Response:", "Concepts:")
        return json.dumps(
            {
                key: (7 if "1. " in response else 2) if name.startswith("Struct") else 4
                for key, name in _names(user).items()
            }
        )
    raise AssertionError(f"unexpected prompt: {system[:60]}")


def _side(first: bool, second: bool) -> int:
    return 1 if first and not second else 2 if second and not first else 0


def _concept_names(text: str) -> list[str]:
    """Names of the '- Name: definition' list after 'the following concepts' (judge and generate prompts)."""
    listed = text.split("following concepts", 1)[1] if "following concepts" in text else ""
    return [line[2:].split(":")[0].strip() for line in listed.splitlines() if line.startswith("- ")]


def application_responder(messages: list[dict[str, str]]) -> str:
    """A deterministic judge and generator for the applications (prompts judge.md and generate.md).

    The judge prefers the clearly longer response (twice as long or more), consistently in both orders;
    otherwise it answers 1, a position bias that the two orders turn into a tie. Told to consider
    only some concepts, it decides by 'List Formatting' (more numbered lines) if listed, else by
    'Length' (any difference). The generator writes a fixed paragraph, a numbered list of the concepts it is
    told to consider, and a long paragraph only when 'Length' is among them.
    """
    system, user = messages[0]["content"], messages[-1]["content"]
    if system.startswith("You are a fair judge"):
        first, second = _between(user, "Response 1:", "Response 2:"), user.split("Response 2:", 1)[1]
        for marker in ("Consider only", "Which response"):
            second = second.split(marker, 1)[0]
        names = _concept_names(user)
        la, lb = len(first.strip()), len(second.strip())
        if "List Formatting" in names:
            a, b = (len(re.findall(r"^\d+\. ", text, re.MULTILINE)) for text in (first, second))
        elif "Length" in names:
            a, b = la, lb
        else:
            a, b = int(la >= 2 * lb), int(lb >= 2 * la)
        verdict = 2 if b > a else 1
        answer: dict[str, object] = {"verdict": verdict}
        if '"reasoning"' in user:
            answer = {"reasoning": f"Response {verdict} is better.", **answer}
        return json.dumps(answer)
    if system.startswith("You are a helpful assistant"):
        names = _concept_names(user)
        text = "Here is my answer to the request, in plain words: do the simple thing first, then check that it worked."
        if names:
            text += "\n" + "\n".join(f"{i}. About {name.lower()}." for i, name in enumerate(names, 1))
        if "Length" in names:
            text += "\n" + "This part explains every step in much more detail, with background and examples. " * 3
        return json.dumps({"response": text})
    raise AssertionError(f"unexpected prompt: {system[:60]}")


class PlantedOracle:
    """A scripted LLM over planted data (``tools.design.store_planted``) for the discovery agent.

    Proposing, it names ``per_batch`` concepts from a fixed pool that interleaves the true concepts it
    knows (planted concept names) with distractors, skipping the names the prompt says are known.
    Comparing, it answers a true concept by its planted value, a distractor by a fixed pseudo-random
    value (consistent in both orders, unrelated to the labels), and a ``biased`` name always with 1
    (position bias, which the swap rule zeroes). Every concept is relevant; merges join equal names.
    """

    def __init__(
        self,
        data: PlantedData,
        known: Sequence[str],
        distractors: Sequence[str],
        biased: Sequence[str] = (),
        per_batch: int = 3,
    ) -> None:
        self.data, self.per_batch, self.biased = data, per_batch, set(biased)
        self.column = {name: j for j, name in enumerate(data.concept_names)}
        step = max(1, round(len(distractors) / max(1, len(known))))  # one true name, then distractors
        pool: list[str] = []
        fakes = [*distractors, *biased]
        for k, name in enumerate(known):
            pool += [name, *fakes[k * step : (k + 1) * step]]
        self.pool = pool + fakes[len(known) * step :]

    def __call__(self, messages: list[dict[str, str]]) -> str:
        system, user = messages[0]["content"], messages[-1]["content"]
        if system.startswith("You study"):
            avoid = {
                name.strip()
                for marker in ("common ones:", "every one of them:")
                for name in _between(user + "\n", marker, "\n").rstrip(".").split(",")
            }
            free = [name for name in self.pool if name not in avoid]
            # Where to start in the pool depends on the pairs shown, not on the names known: the measured
            # library growing by a concept must not change what a scripted run proposes.
            shown = re.sub(r"(?:common ones:|every one of them:)[^\n]*", "", user)
            start = zlib.crc32(shown.encode()) % max(1, len(free))
            names = (free[start:] + free[:start])[: self.per_batch]
            return json.dumps({"concepts": [{"name": n, "description": f"A good response shows {n}."} for n in names]})
        if system.startswith("You decide whether"):
            pairs = re.findall(r'^\[(\d+)\] "(.*?)":.*\n\s+vs "(.*?)":', user, re.MULTILINE)
            return json.dumps({"verdicts": [{"index": int(i), "same": a.lower() == b.lower()} for i, a, b in pairs]})
        if system.startswith("You write precise"):
            names = re.findall(r"^\[\d+\] (.*)$", user, re.MULTILINE)
            return json.dumps(
                {
                    "definitions": [
                        {"index": i, "definition": f"A high score indicates the response shows {n}; a low score, not."}
                        for i, n in enumerate(names, 1)
                    ]
                }
            )
        if system.startswith("You decide which"):
            return json.dumps(dict.fromkeys(_names(user), True))
        if system.startswith("You compare"):
            row = int(re.search(r"planted query (\d+)", user).group(1))  # type: ignore[union-attr]
            a_first = "Response 1: planted response A" in user
            return json.dumps({key: self._answer(name, row, a_first) for key, name in _names(user).items()})
        raise AssertionError(f"unexpected prompt: {system[:60]}")

    def _answer(self, name: str, row: int, a_first: bool) -> int:
        if name in self.biased:
            return 1
        if name in self.column:
            value = self.data.X[row, self.column[name]]
        else:
            draw = zlib.crc32(f"{name}/{row}".encode()) % 10
            value = -1 if draw < 3 else 1 if draw < 6 else 0
        if value == 0:
            return 0
        return 1 if (value > 0) == a_first else 2


@contextmanager
def served_endpoint(monkeypatch: pytest.MonkeyPatch, responder: Responder) -> Iterator[OpenAIStub]:
    """An OpenAI-compatible server on 127.0.0.1 answering with ``responder``, set as the endpoint."""
    with OpenAIStub(responder) as stub:
        monkeypatch.setenv("WHYPREF_BASE_URL", stub.base_url)
        monkeypatch.setenv("WHYPREF_MODEL", "stub-model")
        monkeypatch.setenv("WHYPREF_API_KEY", "test")
        yield stub


DATA = make_planted(
    n_domains=3,
    n_concepts=9,
    n_shared=6,
    n_pairs_per_domain=60,
    shared_active=1.0,
    specific_active=0.0,
    deviation_active=0.0,
    density=0.5,
    weight_range=(1.5, 2.5),
    random_state=0,
)
TRUE = ["shared0", "shared1", "shared2", "shared3"]  # what the oracle knows of the six true concepts
STARTING = ["Starting Noise A", "Starting Noise B"]


def oracle() -> PlantedOracle:
    return PlantedOracle(DATA, TRUE, [f"Distractor {k}" for k in range(6)], biased=["Position"], per_batch=3)


def planted_store(path, starting=STARTING) -> ConceptStore:
    """Planted pairs and labels, no planted concepts; a starting set that cannot explain the labels."""
    store = ConceptStore(path)
    store_planted(store, DATA)
    for concept in store.concepts():
        store.delete_concept(concept.id)
    for name in starting:
        store.add_concept(Concept(name=name, definition=f"A high score indicates {name}.", kind=ConceptKind.MANUAL))
    return store


def build_demo_store(path: Path, *, fitted: bool = True) -> None:
    """The demo set (3 domains, humans and a length-loving judge), measured concepts, both mechanisms fitted."""
    with ConceptStore(path) as store:
        items = demo_pairs(8)
        store.add_labeled_pairs(items, DEMO_MECHANISMS)
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([item.pair for item in items])
        if fitted:
            for mechanism in DEMO_MECHANISMS:
                fit_mechanism(store, mechanism.name)
