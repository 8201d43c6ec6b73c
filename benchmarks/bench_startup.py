"""Start-up time of the CLI against issue 32's targets: ``brainleaks --help`` under 0.5 s and ``brainleaks info`` on
a NetX file under 1 s (each the median wall time of fresh processes), and ``info`` on every shipped file.

    .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--net netx_models/mnist_snn.net]

Prints each median, its ratio to the target (<= 1.0 meets it), and the exit status of ``info`` on each shipped file.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"--help": 0.5, "info": 1.0}


def wall(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "brainleaks_lava.cli", *args], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--net", default="netx_models/mnist_snn.net")
    args = ap.parse_args()
    for name, argv in (("--help", ["--help"]), ("info", ["info", args.net])):
        t = wall(argv, args.runs)
        target = TARGETS[name]
        print(f"brainleaks {' '.join(argv)}: median {t:.3f} s of {args.runs}; target {target} s; ratio "
              f"{t / target:.2f} ({'meets' if t <= target else 'misses'} the target)")
    for f in sorted((ROOT / "netx_models").iterdir()):
        rc = subprocess.run([sys.executable, "-m", "brainleaks_lava.cli", "info", str(f)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        print(f"info {f.relative_to(ROOT)}: exit {rc}")


if __name__ == "__main__":
    main()
