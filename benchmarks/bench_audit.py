"""Wall time of ``brainleaks audit`` on the shipped 784-3000-10 MNIST target with the shipped spiking
evaluator (the default portfolio, 20 draws, Lava replay of the winners), against the 3-minute target.

    .venv/bin/python benchmarks/bench_audit.py [--model netx_models/mnist_snn.net] [--budget 150] [--threads 2]

Prints the audit's own time split (attacks, scoring, replay) and the ratio to the target (<= 1.0 meets it).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--evaluator", default="netx_models/mnist_eval_snn.h5")
    ap.add_argument("--budget", type=float, default=150.0, help="the audit's attack budget (seconds)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from brainleaks_lava.audit import run_audit

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = run_audit(args.model, args.evaluator, Path(tmp) / "audit", budget=args.budget, progress=False)
        wall = time.perf_counter() - t0
        attacks = sum(r["seconds"] for r in rep.attacks)
    w = rep.worst_case
    print(json.dumps({"model": args.model, "threads": args.threads, "budget_s": args.budget,
                      "attacks_run": [r["name"] for r in rep.attacks], "skipped": rep.skipped,
                      "attack_seconds": round(attacks, 1),
                      "replay_seconds": rep.replay["seconds"] if rep.replay else None,
                      "wall_seconds": round(wall, 1)}, indent=2))
    print(f"worst case: attack acc. {100 * w['accuracy']['mean']:.1f} %, top-3 {100 * w['top3_accuracy']['mean']:.1f} %, "
          f"DAA {100 * w['daa']['mean']:.1f} %")
    print(f"audit wall time {wall:.1f} s; target {TARGET_SECONDS:.0f} s; ratio {wall / TARGET_SECONDS:.2f} "
          f"({'meets' if wall <= TARGET_SECONDS else 'misses'} the target)")


if __name__ == "__main__":
    main()
