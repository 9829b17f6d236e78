"""Speed of the embedded model with 1 and 2 threads, on an idle machine and with every core busy.

Usage: ``python benchmarks/bench_embedded_threads.py [--threads 1 2] [--repeats 3]``

Each configuration runs in a fresh process (its own llama.cpp server): one warm-up call, then
``--repeats`` calls of a fixed prompt (about 300 tokens) asking for 64 tokens, at temperature 0, with 0,
1 and one-per-core CPU-bound processes running beside it. Prints prompt and generation speed (tokens/s) and
the seconds per call; that is what WHYPREF_THREADS's default (half the cores) is chosen from.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

PROMPT = (
    "Here is a response to a request. Request: How do I keep my sourdough starter healthy? Response: Feed it "
    "every day with equal weights of flour and water, keep it at room temperature, and discard half before "
    "each feeding. If it smells of acetone it is hungry; feed it more often. A clean jar and a loose lid "
    "help. If you go away, keep it in the fridge and feed it once a week. "
    * 3
    + "\nWrite three short sentences about what makes this response useful."
)


def burn() -> None:
    while True:
        pass


def measure(repeats: int) -> dict[str, float]:
    """In a child process: start the embedded model (WHYPREF_THREADS set by the parent) and time calls."""
    from langchain_openai import ChatOpenAI

    from tools.embedded import start_embedded
    from tools.settings import Settings

    started = time.perf_counter()
    server = start_embedded(Settings())
    load = time.perf_counter() - started
    chat = ChatOpenAI(base_url=server.base_url, api_key="local", model="local", max_retries=0, timeout=1800)  # type: ignore[arg-type]
    chat.invoke([("user", "Say hello.")], max_tokens=4, temperature=0)
    timings = []
    for k in range(repeats):
        began = time.perf_counter()
        message = chat.invoke([("user", PROMPT + f" ({k})")], max_tokens=64, temperature=0)
        seconds = time.perf_counter() - began
        usage = message.usage_metadata or {}
        timings.append((seconds, usage.get("input_tokens", 0), usage.get("output_tokens", 0)))
    seconds = sum(t[0] for t in timings) / repeats
    tokens = sum(t[2] for t in timings) / repeats
    return {"load": load, "seconds_per_call": seconds, "output_tokens": tokens, "tokens_per_second": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.repeats)))
        return
    console = Console()
    table = Table(title=f"Embedded model: {args.repeats} calls of about 300 prompt tokens, 64 generated")
    for column in ("threads", "busy cores beside it", "load s", "s / call", "tokens / s (whole call)"):
        table.add_column(column, justify="right")
    for busy in sorted({0, 1, os.cpu_count() or 2}):
        burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(busy)]
        for process in burners:
            process.start()
        try:
            for threads in args.threads:
                environment = {**os.environ, "WHYPREF_THREADS": str(threads)}
                command = [sys.executable, __file__, "--child", "--repeats", str(args.repeats)]
                done = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                table.add_row(
                    str(threads),
                    str(busy),
                    f"{result['load']:.1f}",
                    f"{result['seconds_per_call']:.1f}",
                    f"{result['tokens_per_second']:.1f}",
                )
                console.print(f"threads {threads}, {busy} busy: {result}", highlight=False)
        finally:
            for process in burners:
                process.terminate()
    console.print(table)


if __name__ == "__main__":
    main()
