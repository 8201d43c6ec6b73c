"""BL-v2 on all classes: one batched forward/backward per iteration vs the published per-class,
per-sample loop (same math, same model, same parameters), timed side by side in one run.

    .venv/bin/python benchmarks/bench_attacks.py [--model netx_models/mnist_snn.net] [--iterations 10]
"""
from __future__ import annotations

import argparse
import time

import torch

from brainleaks_lava.attacks import BLv2Params, BrainLeaksV2, adapter_for
from brainleaks_lava.attacks.base import target_posterior_and_grad
from brainleaks_lava.attacks.brainleaks_v2 import clamp_and_scale, nes_weights
from brainleaks_lava.models.files import load_target


def looped_bl2(adapter, classes, p: BLv2Params, gen: torch.Generator) -> torch.Tensor:
    """The published structure: for each class, for each iteration, for each population member one
    forward and backward pass of a single spike train."""
    shape = adapter.input_shape
    out = []
    for c in classes:
        prob = torch.full((1, *shape), p.init_prob)
        acc = torch.zeros_like(prob)
        mom = torch.zeros_like(prob)
        cls = torch.tensor([c])
        for _ in range(p.iterations):
            losses, grads = [], []
            for _k in range(p.population):
                x = torch.bernoulli(prob, generator=gen)
                _, loss, grad = target_posterior_and_grad(
                    adapter, x, cls, lambda s: p.xi * s.flatten(1).mean(1))
                losses.append(loss)
                grads.append(grad)
            w = nes_weights(torch.stack(losses, 1), p.mode)
            g = (w.view(1, -1, *([1] * len(shape))) * torch.stack(grads, 1)).sum(1)
            if p.mode == "paper":
                acc = p.rho * acc + (1 - p.rho) * g * g
            else:
                acc = acc + p.rho * acc + (1 - p.rho) * g * g
            mom = p.momentum * mom + g
            prob = clamp_and_scale(prob - p.lr * mom / (acc.sqrt() + p.eps))
        out.append(prob)
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    adapter = adapter_for(load_target(args.model))
    params = BLv2Params.reference(iterations=args.iterations)
    classes = list(range(adapter.num_classes))

    t0 = time.perf_counter()
    BrainLeaksV2(adapter, params).invert(classes, seed=0, progress=False)
    batched = time.perf_counter() - t0

    t0 = time.perf_counter()
    looped_bl2(adapter, classes, params, torch.Generator().manual_seed(0))
    looped = time.perf_counter() - t0

    n_passes = len(classes) * params.population * params.iterations
    print(f"model {args.model}, {len(classes)} classes, K={params.population}, {params.iterations} iterations, "
          f"{args.threads} torch thread(s), {n_passes} spike trains through forward+backward")
    print(f"batched (one pass per iteration):      {batched:8.2f} s")
    print(f"per-class, per-sample loop (published): {looped:8.2f} s")
    print(f"speed-up: {looped / batched:.1f}x")


if __name__ == "__main__":
    main()
