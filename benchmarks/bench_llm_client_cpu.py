"""CPU the LLM client spends per call (issue #16): whypref's ``LLM.run`` against LangChain's ChatOpenAI
alone, both against an instant local OpenAI-compatible server running in another process.

Usage::

    python benchmarks/bench_llm_client_cpu.py [--calls 2000] [--concurrency 8]

Each request is distinct (nothing comes from the cache); ``LLM.run`` validates every answer against its
schema and caches it in a store. CPU is this process's (all threads), so the server's is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tools.llm import LLM, Request
from tools.store import ConceptStore

SERVER = """
import sys, time
from tools.testing import OpenAIStub
with OpenAIStub(lambda messages: '{"c1": 1, "c2": 0}') as stub:
    print(stub.base_url, flush=True)
    sys.stdin.read()
"""


class Answer(BaseModel):
    c1: int
    c2: int


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def messages(i: int) -> tuple[tuple[str, str], ...]:
    return (("system", "You compare two responses. Reply with JSON only."), ("user", f"Pair {i}: which is longer?"))


def plain(base_url: str, calls: int, concurrency: int) -> float:
    chat = ChatOpenAI(base_url=base_url, api_key="x", model="stub", max_retries=0)

    async def main() -> float:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with semaphore:
                await chat.ainvoke(list(messages(i)))

        await asyncio.gather(*(one(-i - 1) for i in range(calls)))  # warm-up: connections, imports
        started = cpu()
        await asyncio.gather(*(one(i) for i in range(calls)))
        return (cpu() - started) / calls

    return asyncio.run(main())  # one loop: pooled connections belong to it


def whypref(base_url: str, calls: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as folder, ConceptStore(Path(folder) / "c.db") as store:
        chat = ChatOpenAI(base_url=base_url, api_key="x", model="stub", max_retries=0)
        llm = LLM(chat, "stub", store=store, max_concurrency=concurrency)
        llm.run([Request("warm", messages(-i - 1), Answer, max_tokens=30) for i in range(calls)])
        started = cpu()
        answers = llm.run([Request("bench", messages(i), Answer, max_tokens=30) for i in range(calls)])
        spent = (cpu() - started) / calls
        assert all(a is not None for a in answers) and llm.usage.stage("bench").cached == 0
        return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # one client per process: LangChain shares a pooled HTTP client, bound to one event loop
        mode, base_url = args.measure
        print((plain if mode == "plain" else whypref)(base_url, args.calls, args.concurrency))
        return
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        spent = {}
        for mode in ("plain", "whypref"):
            command = [sys.executable, __file__, "--calls", str(args.calls), "--concurrency", str(args.concurrency)]
            done = subprocess.run([*command, "--measure", mode, base_url], capture_output=True, text=True, check=True)
            spent[mode] = float(done.stdout.split()[-1])
    finally:
        server.kill()
    baseline, ours = spent["plain"], spent["whypref"]
    print(f"ChatOpenAI alone: {1000 * baseline:.2f} ms CPU per call")
    print(f"whypref LLM.run:  {1000 * ours:.2f} ms CPU per call ({ours / baseline:.2f}x)")
    print(json.dumps({"chatopenai_ms": 1000 * baseline, "whypref_ms": 1000 * ours, "ratio": ours / baseline}))


if __name__ == "__main__":
    main()
