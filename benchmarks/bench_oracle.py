"""Issue 30's benchmarks: queries per second the query oracle serves (batched twin against one query at a time,
side by side in one run), and the wall time of the query-only attacks at 10^4 queries beside the white-box BL-v2.

    .venv/bin/python benchmarks/bench_oracle.py [--model netx_models/mnist_snn.net] [--threads 2] [--queries 2000]

Prints queries/s of each way of answering, their ratio, and the attacks' wall times (10 classes). Both ways answer
with the same twin and the same seeded encoder, so the answers to the same queries must be identical (printed).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import brainleaks_lava as bl
from brainleaks_lava.attacks.oracle import QueryOracle


def serve(target, queries: int, batch: int, exposes: str) -> tuple[float, np.ndarray]:
    """(queries/s, answers) of an oracle answering ``queries`` seeded images in batches of ``batch``."""
    model = target.model
    oracle = QueryOracle(target, exposes=exposes, budget=queries, seed=0, batch_size=batch, keep=0)
    x = torch.rand(queries, model.num_inputs, generator=torch.Generator().manual_seed(1))
    if model.deployment.encoding == "events":
        x = (x.unsqueeze(-1).expand(-1, -1, model.deployment.steps) < 0.2).float()
    t0 = time.perf_counter()
    out = [oracle.query(x[i:i + batch]) for i in range(0, queries, batch)]
    return queries / (time.perf_counter() - t0), np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=2000, help="queries answered by each way of serving")
    ap.add_argument("--attack-queries", type=int, default=10_000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    target = bl.load_target(args.model)
    exposes = "counts" if target.model.deployment.readout == "spikes" else "posterior"
    serve(target, 256, 256, exposes)  # warm-up
    batched, a = serve(target, args.queries, 256, exposes)
    single, b = serve(target, args.queries // 10, 1, exposes)
    same = np.array_equal(a[:len(b)], b)
    print(f"oracle on {args.model} ({args.threads} threads, exposes {exposes}): batched (256) {batched:.0f} queries/s, "
          f"one at a time {single:.0f} queries/s; ratio {batched / single:.1f}x"
          + f"; the first {len(b)} answers identical: {same}")
    for method, params in (("nes", {"queries": args.attack_queries}), ("label", {"queries": args.attack_queries}),
                           ("bl2", {})):
        t0 = time.perf_counter()
        res = bl.attack(target, method, progress=False, **params)
        wall = time.perf_counter() - t0
        used = res.extra.get("queries")
        print(f"{method}: {wall:.1f} s for 10 classes" + (f" ({used} queries, {used / wall:.0f} queries/s)"
                                                          if used else " (white-box, paper mode defaults)"))


if __name__ == "__main__":
    main()
