"""The ``gen`` latent search against BL-enc on one target, side by side in one run: time per class and its ratio.

    .venv/bin/python benchmarks/bench_gen.py --prior /work/exp/priors/mnist_val_vae.h5
        [--model netx_models/mnist_snn.net] [--classes 0 1 2] [--threads 1] [--repeats 1] [--starts N]
        [--iterations N] [--evaluator FILE]
    .venv/bin/python benchmarks/bench_gen.py --random-prior        # no trained prior yet: an untrained decoder

Both attacks run with their defaults (``gen``: ``GenParams()``, every start of every class in one batch; BL-enc:
``BLencParams()``) on the same classes, seed 0, one after the other, each timed whole (``invert``: set-up, every
iteration, the selection of the winner and the final read-out). Times are CPU seconds of this process (with
``--threads 1`` the wall time of an unloaded core, robust to other processes on a shared machine) and wall seconds;
per class = the time over the classes attacked; the fastest of ``--repeats``. ``--random-prior`` builds the
toolkit's default VAE decoder for the target's image size with PyTorch's initial weights (seeded): the timing of a
trained prior of that architecture, not its reconstructions. With ``--evaluator`` the printed accuracy says how
often that evaluator recognises each attack's reconstructions (one draw; ``brainleaks evaluate`` for the paper's
metrics).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from brainleaks_lava.attacks import BLencParams, GenParams, adapter_for, make_attack
from brainleaks_lava.models.files import load_target


def random_prior(image_shape, seed: int = 0):
    """The default VAE decoder for ``image_shape`` (C, H, W), untrained (PyTorch's seeded initial weights)."""
    from brainleaks_lava.priors import Prior
    from brainleaks_lava.priors.vae import build_vae, default_architecture

    arch = default_architecture(image_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = build_vae(arch)
    return Prior(vae.decoder, arch["latent_dim"], tuple(image_shape), {"public_split": "none (untrained decoder)"},
                 architecture=arch)


def timed(fn, repeats: int):
    """(result of the last run, fastest CPU seconds, fastest wall seconds)."""
    cpu, wall, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return out, cpu, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--prior", help="a prior file (brainleaks train-prior)")
    src.add_argument("--random-prior", action="store_true", help="an untrained default decoder (timing only)")
    ap.add_argument("--classes", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--starts", type=int, default=None, help="gen starts per class (default: GenParams())")
    ap.add_argument("--iterations", type=int, default=None, help="gen iterations (default: GenParams())")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--evaluator", default=None, help="an evaluator file: how often it recognises each attack's result")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    target = load_target(args.model)
    adapter = adapter_for(target)
    if args.random_prior:
        shape = tuple(target.metadata.get("input_shape") or target.model.deployment.input_shape)  # the sidecar's
        prior, what = random_prior((1, *shape) if len(shape) == 2 else tuple(shape)), "random (untrained) decoder"
    else:
        from brainleaks_lava.priors.files import load_prior

        prior = load_prior(args.prior)
        what = f"{args.prior} (sha256 {prior.sha256[:12]}; public data: {prior.provenance.get('public_split', '?')})"
    overrides = {k: v for k, v in (("starts", args.starts), ("iterations", args.iterations)) if v is not None}
    gp, bp = GenParams(**overrides), BLencParams()
    n = len(args.classes)
    print(f"target {args.model}; classes {args.classes}; torch threads {args.threads}; prior: {what}")
    print(f"gen: {gp.starts} starts x {gp.iterations} iterations per class (all starts of all classes in one batch); "
          f"blenc: {bp.restarts} restart x {bp.iterations} iterations")
    runs = {}
    for name, make in (("gen", lambda: make_attack("gen", adapter, prior=prior, **overrides)),
                       ("blenc", lambda: make_attack("blenc", adapter))):
        res, cpu, wall = timed(lambda: make().invert(classes=args.classes, seed=0, progress=False), args.repeats)
        runs[name] = (res, cpu, wall)
        print(f"{name:6s}: {cpu / n:7.2f} CPU s per class ({wall / n:7.2f} wall s); twin confidence "
              f"{np.round(res.confidence, 3).tolist()}")
    ratio = runs["gen"][1] / runs["blenc"][1]
    print(f"gen / blenc time per class (CPU): {ratio:.2f}  (wall: {runs['gen'][2] / runs['blenc'][2]:.2f})")
    if args.evaluator:
        from brainleaks_lava.evaluation.classifiers import load_evaluator
        from brainleaks_lava.evaluation.score import evaluate_result

        ev = load_evaluator(args.evaluator)
        for name, (res, _, _) in runs.items():
            acc = evaluate_result(res, ev, draws=1, seed=0).summary["accuracy"]["mean"]
            print(f"{name:6s}: evaluator {args.evaluator} recognises {100 * acc:.0f} % (one draw)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
