"""Benchmark: wall time of `ember --help` against a bare `python -c pass`, in one run.

    .venv/bin/python bench/cli_startup.py [--runs N]

Prints the median of N runs of each and their ratio. Goal (issue 2): `ember --help`
under 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _median_seconds(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    ember = str(Path(sys.executable).parent / "ember")
    baseline = _median_seconds([sys.executable, "-c", "pass"], args.runs)
    help_time = _median_seconds([ember, "--help"], args.runs)
    print(f"python -c pass : {baseline * 1000:7.1f} ms (median of {args.runs})")
    print(f"ember --help   : {help_time * 1000:7.1f} ms (median of {args.runs})")
    print(f"ratio          : {help_time / baseline:7.2f}x   goal: ember --help < 300 ms")


if __name__ == "__main__":
    main()
