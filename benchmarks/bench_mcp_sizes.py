"""Bytes of each MCP tool's default answer, as an assistant receives them (issue #15).

Usage::

    python benchmarks/bench_mcp_sizes.py                 # this tree
    python benchmarks/bench_mcp_sizes.py --before a3e84f9   # and the same calls on the code of that commit

The store is the demo set (300 pairs, 3 domains, humans and a length-loving judge) with its measured
concepts, both mechanisms fitted. Each tool that needs no LLM is called once with its defaults (a pair id
where one is required), through the SDK's in-memory client; the size is the JSON of the whole result
(text content and structured content), as the client gets it. Results: benchmarks/out/mcp_sizes.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("fit", {}),
    ("evaluate", {}),
    ("explain", {}),
    ("explain", {"pair_id": "<pair>"}),
    ("predict", {"pair_id": "<pair>"}),
    ("compare_mechanisms", {}),
    ("list_concepts", {}),
    ("steer", {"mechanism": "judge-verbose", "domain": "cooking"}),
]


def measure(folder: Path) -> dict[str, int]:
    """Run every call on a fresh demo store in ``folder`` with the code importable from sys.path."""
    import anyio
    from mcp.client.client import Client

    from mcp_server.server import create_server
    from mcp_server.settings import ServerSettings
    from tools.annotation import Annotation, AnnotationConfig
    from tools.demo_data import DEMO_MECHANISMS, demo_pairs
    from tools.store import ConceptStore
    from tools.workflows import fit_mechanism

    db = folder / "demo.db"
    with ConceptStore(db) as store:
        items = demo_pairs(100)
        store.add_labeled_pairs(items, DEMO_MECHANISMS)
        Annotation(store, None, AnnotationConfig(llm_concepts=False)).run([item.pair for item in items])
        for mechanism in DEMO_MECHANISMS:
            fit_mechanism(store, mechanism.name)
        pair = next(store.pairs()).id
    settings = ServerSettings(db=db, allowed_dirs=(folder,))

    async def run() -> dict[str, int]:
        sizes = {}
        async with Client(create_server(settings)) as client:
            for tool, arguments in CALLS:
                filled = {k: pair if v == "<pair>" else v for k, v in arguments.items()}
                result = await client.call_tool(tool, filled)
                if result.is_error:
                    raise RuntimeError(f"{tool}: {result.content}")
                label = tool + ("(pair)" if "pair_id" in arguments else "")
                sizes[label] = len(result.model_dump_json(by_alias=True, exclude_none=True).encode())
        return sizes

    return anyio.run(run)


def measure_commit(commit: str) -> dict[str, int]:
    """The same calls on the code of ``commit`` (a git worktree, imported from there)."""
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True)
        try:
            done = subprocess.run(
                [sys.executable, __file__, "--inner"],
                cwd=tree,
                env={"PYTHONPATH": str(tree), "PATH": ""},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            return json.loads(done.stdout.splitlines()[-1])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", metavar="COMMIT", help="Also measure the code of this commit.")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sizes = measure(Path(folder))
    if args.inner:
        print(json.dumps(sizes))
        return
    before = measure_commit(args.before) if args.before else {}
    print(f"{'tool (default answer)':28s} {'before':>10s} {'after':>10s}")
    for tool, size in sizes.items():
        old = f"{before[tool]:,}" if tool in before else "-"
        print(f"{tool:28s} {old:>10s} {size:>10,}")
    OUT.mkdir(exist_ok=True)
    (OUT / "mcp_sizes.json").write_text(json.dumps({"after": sizes, "before": before}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
