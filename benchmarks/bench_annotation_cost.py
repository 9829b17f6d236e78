"""LLM calls and tokens per pair for annotation at 20, 60 and 200 concepts, with and without the
relevance filter.

Usage: ``python benchmarks/bench_annotation_cost.py [--pairs 20] [--relevant 0.25] [--tokenizer embedded]``.
Real Auto-J pairs; concepts with definitions of realistic length. A scripted model answers (so the
counts are exact and free); it marks a fixed share of concepts relevant per pair (``--relevant``;
the share a real model keeps varies, so the figure is given for that assumption). Prompt tokens are
counted with the embedded model's own tokenizer when ``--tokenizer embedded`` (needs the 'local'
extra), else estimated at 4 characters a token; completion tokens are the answers' lengths.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from tools.annotation import Annotation, AnnotationConfig
from tools.concepts import Concept
from tools.importers import read_file
from tools.llm import LLM, estimate_tokens
from tools.settings import Settings
from tools.store import ConceptStore
from tools.testing import ScriptedChat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the scripted LLMs live with the tests
from helpers import _names

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"


def responder(share: float):
    def answer(messages: list[dict[str, str]]) -> str:
        system, user = messages[0]["content"], messages[-1]["content"]
        names = _names(user)
        if system.startswith("You decide which"):
            return json.dumps({k: hashlib.sha256((user[:200] + k).encode()).digest()[0] < 256 * share for k in names})
        return json.dumps({k: 1 for k in names})

    return answer


def counter(kind: str):
    if kind != "embedded":
        return lambda text: estimate_tokens(text)
    from tools.embedded import start_embedded

    server = start_embedded(Settings(base_url=None))
    root = server.base_url.removesuffix("/v1")
    return lambda text: len(httpx.post(f"{root}/tokenize", json={"content": text}).json()["tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--relevant", type=float, default=0.25)
    parser.add_argument("--tokenizer", choices=["estimate", "embedded"], default="estimate")
    args = parser.parse_args()
    count = counter(args.tokenizer)
    items = read_file(RAW / "autoj", "autoj").items[: args.pairs]
    table = Table(
        title=f"Annotation cost per pair (Comp-rep, both orders; {args.pairs} Auto-J pairs; "
        f"filter keeps {100 * args.relevant:.0f}%; tokens: {args.tokenizer})"
    )
    for column in ("concepts", "relevance filter", "calls / pair", "prompt tokens / pair", "completion tokens / pair"):
        table.add_column(column, justify="right")
    for n in (20, 60, 200):
        for relevance in (False, True):
            with tempfile.TemporaryDirectory() as folder, ConceptStore(Path(folder) / "s.db") as store:
                store.add_labeled_pairs(items)
                store.upsert_concepts(
                    [
                        Concept(
                            name=f"Concept {i}",
                            definition=(
                                f"A high score indicates the response shows property {i} clearly and consistently; "
                                f"a low score indicates the response lacks property {i} or shows it poorly."
                            ),
                        )
                        for i in range(n)
                    ]
                )
                chat = ScriptedChat(responder=responder(args.relevant))
                llm = LLM(chat, "scripted", store=store)
                Annotation(
                    store, llm, AnnotationConfig(relevance=relevance, llm_concepts=True), Settings().max_response_chars
                ).run(list(store.pairs()))
                prompt = sum(count(m["content"]) + 4 for call in chat.calls for m in call)
                completion = llm.usage.total.completion_tokens
                table.add_row(
                    str(n),
                    "yes" if relevance else "no",
                    f"{len(chat.calls) / args.pairs:.1f}",
                    f"{prompt / args.pairs:,.0f}",
                    f"{completion / args.pairs:,.0f}",
                )
    Console().print(table)


if __name__ == "__main__":
    main()
