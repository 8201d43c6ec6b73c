"""BL-v2 on all classes: one batched forward/backward per iteration vs the published per-class,
per-sample loop (same math, same model, same parameters), timed side by side in one run. Then every
attack's iteration against its compute floor.

    .venv/bin/python benchmarks/bench_attacks.py [--model netx_models/mnist_snn.net] [--iterations 10]
        [--ann netx_models/mnist_ann.h5] [--repeats 3]

Iteration vs floor: the time of one iteration of each attack over all classes of the target (bl1, bl2
with the published K = 7, blenc with its default stochastic estimator on the SNN; miface on the ANN),
measured as the difference of two whole ``invert`` runs of different lengths divided by the difference of
their iteration counts (set-up and final read-out cancel; stopping rules off so every row runs every
iteration), the fastest of ``--repeats`` runs each, in CPU time of the process (robust to other processes on
the machine; with ``--threads 1`` it equals the wall time of an unloaded core). The floor: the bare matrix products such an iteration
needs at the same shapes, timed on the target's own weights: per layer the forward ``(T * N, in) x (in,
out)`` and the backward ``(T * N, out) x (out, in)`` for the input gradient (N = rows of the batch; no
weight gradients), T = 1 for the ANN. The SNN attacks are timed on the twin's fast path and, for
comparison, with it off (lava-dl's dynamics and conv3d).
"""
from __future__ import annotations

import argparse
import time

import torch

from brainleaks_lava.attacks import (BLencParams, BLv1Params, BLv2Params, BrainLeaksV1, BrainLeaksV2, EncoderAware,
                                     MIFace, MIFaceParams, adapter_for)
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


def _timed(fn) -> float:
    """CPU seconds of this process (with one torch thread: the work done, not the time spent waiting for a
    core shared with other processes)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def per_iteration(make, lo: int, hi: int, repeats: int) -> float:
    """Seconds per iteration: (best time of ``hi`` iterations - best time of ``lo``) / (hi - lo)."""
    best = {}
    for _ in range(repeats):
        for it in (lo, hi):
            t = _timed(lambda: make(it).invert(seed=0, progress=False))
            best[it] = min(best.get(it, float("inf")), t)
    return (best[hi] - best[lo]) / (hi - lo)


def matmul_floor(weights: list[torch.Tensor], rows: int, repeats: int) -> float:
    """Best time of the forward products (rows, in) x (in, out) of every layer and the backward products
    (rows, out) x (out, in) for the input gradient, on 0/1 inputs and random gradients."""
    g = torch.Generator().manual_seed(0)
    xs = [torch.bernoulli(torch.full((rows, w.shape[1]), 0.3), generator=g) for w in weights]
    gs = [torch.randn(rows, w.shape[0], generator=g) for w in weights]

    def run():
        for x, w in zip(xs, weights):
            torch.matmul(x, w.t())
        for gr, w in zip(gs, weights):
            torch.matmul(gr, w)

    run()
    return min(_timed(run) for _ in range(max(5 * repeats, 20)))


def iteration_vs_floor(snn_path: str, ann_path: str, repeats: int, only=None, old_twin: bool = True) -> None:
    snn = adapter_for(load_target(snn_path))
    twin = snn.model.twin
    classes = snn.num_classes
    steps = snn.input_shape[-1]
    w_snn = [layer.weight for layer in twin.layers]
    bl2_k = BLv2Params.reference().population
    snn_attacks = [
        ("bl1", classes, lambda i: BrainLeaksV1(snn, BLv1Params(iterations=i, stop_confidence=None)), (2, 6)),
        ("bl2", classes * bl2_k, lambda i: BrainLeaksV2(snn, BLv2Params.reference(iterations=i)), (1, 4)),
        ("blenc", classes, lambda i: EncoderAware(snn, BLencParams(iterations=i)), (2, 8)),
    ]
    print()
    print(f"attack iteration vs compute floor: {snn_path} (784-...-{classes}, T={steps}), {classes} classes, "
          f"{torch.get_num_threads()} torch thread(s), best of {repeats}")
    print(f"{'attack':8s} {'rows N':>6s} {'floor':>9s} {'iteration':>10s} {'ratio':>6s}   "
          f"{'old twin':>9s} {'ratio':>6s}  old/new")
    for name, rows, make, (lo, hi) in snn_attacks:
        if only and name not in only:
            continue
        floor = matmul_floor(w_snn, rows * steps, repeats)
        twin.set_fast(True)
        fast = per_iteration(make, lo, hi, repeats)
        twin.set_fast(False)
        old = per_iteration(make, lo, hi, repeats) if old_twin else float("nan")
        twin.set_fast(None)
        print(f"{name:8s} {rows:6d} {floor * 1e3:7.1f}ms {fast * 1e3:8.1f}ms {fast / floor:6.2f}   "
              f"{old * 1e3:7.1f}ms {old / floor:6.2f}  {old / fast:5.1f}x")
    if only and "miface" not in only:
        return
    ann = adapter_for(load_target(ann_path))
    w_ann = [layer.weight for layer in ann.model.layers]
    n = ann.num_classes
    floor = matmul_floor(w_ann, n, repeats)
    mi = per_iteration(lambda i: MIFace(ann, MIFaceParams(iterations=i, patience=10 ** 9, cost_threshold=0.0)),
                       20, 220, repeats)
    sizes = "-".join(str(w.shape[1]) for w in w_ann) + f"-{w_ann[-1].shape[0]}"
    print(f"{'miface':8s} {n:6d} {floor * 1e3:7.3f}ms {mi * 1e3:8.3f}ms {mi / floor:6.2f}   (ANN {ann_path}, {sizes})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ann", default="netx_models/mnist_ann.h5", help="the ANN target of MI-FACE")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--floor-only", action="store_true", help="skip the batched-vs-looped comparison")
    ap.add_argument("--only", default="", help="comma-separated attacks of the floor table (default: all)")
    ap.add_argument("--no-old-twin", action="store_true", help="skip timing the twin with its fast path off")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    adapter = adapter_for(load_target(args.model))
    params = BLv2Params.reference(iterations=args.iterations)
    classes = list(range(adapter.num_classes))
    floor_args = (args.model, args.ann, args.repeats, set(filter(None, args.only.split(","))), not args.no_old_twin)
    if args.floor_only:
        iteration_vs_floor(*floor_args)
        return

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
    iteration_vs_floor(*floor_args)


if __name__ == "__main__":
    main()
