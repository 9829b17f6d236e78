"""CPU and wall time of a tuned HMDR fit (grouped CV over the penalty grid, then the refit) with BLAS left
at its default threads and with the one thread the solver now asks for (issue #16).

Usage::

    python benchmarks/bench_blas_threads.py [--pairs-per-domain 5000]

Planted data: 10 domains, 60 concepts (20 shared). The solver's products are thin, so extra BLAS threads
only add CPU time; the wall time should not grow with one thread.
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

from tools import hmdr
from tools.model_selection import grid_search_cv
from tools.planted import make_planted


def timed(data: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    grid_search_cv("hmdr", data.X, data.y, data.domains)  # type: ignore[attr-defined]
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs-per-domain", type=int, default=5000)
    args = parser.parse_args()
    data = make_planted(n_domains=10, n_concepts=60, n_shared=20, n_pairs_per_domain=args.pairs_per_domain)
    one = timed(data)
    with mock.patch.object(hmdr, "_one_blas_thread", lambda: mock.MagicMock()):  # BLAS as it comes
        default = timed(data)
    print(f"{10 * args.pairs_per_domain} pairs x 60 concepts, tuned fit:")
    print(f"  BLAS default threads: wall {default[0]:.1f} s, CPU {default[1]:.1f} s")
    print(f"  one BLAS thread:      wall {one[0]:.1f} s, CPU {one[1]:.1f} s")


if __name__ == "__main__":
    main()
