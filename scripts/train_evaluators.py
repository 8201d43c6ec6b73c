#!/usr/bin/env python
"""Train the shipped MNIST evaluation classifiers (paper section 4.1) and print their validation accuracy.

    .venv/bin/python scripts/train_evaluators.py --data-root /work/shared/data/mnist --out-dir netx_models \\
        --epochs-ann 15 --epochs-snn 6 --threads 1 --seed 0

writes ``<out-dir>/mnist_eval_ann.h5`` (CNN on images) and ``<out-dir>/mnist_eval_snn.h5`` (spiking CNN on
T-step rate-coded images). Both are trained on split "train" and measured on split "val" of the MNIST
directory (for a directory with only the 10,000-image t10k set: images 0..7999 / 8000..9999).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from brainleaks_lava.errors import BrainleaksError  # noqa: E402
from brainleaks_lava.evaluation.classifiers import DEFAULT_POSTERIOR_SCALE, train_evaluator  # noqa: E402
from brainleaks_lava.models.training import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=None, help="MNIST idx directory (default: the vendored 1,250-image subset)")
    ap.add_argument("--out-dir", default="netx_models")
    ap.add_argument("--epochs-ann", type=int, default=15, help="0 skips the ANN evaluator")
    ap.add_argument("--epochs-snn", type=int, default=6, help="0 skips the spiking evaluator")
    ap.add_argument("--batch-ann", type=int, default=50)
    ap.add_argument("--batch-snn", type=int, default=32)
    ap.add_argument("--lr-ann", type=float, default=1e-3)
    ap.add_argument("--lr-snn", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=25, help="rate-coding time steps of the spiking evaluator")
    ap.add_argument("--posterior-scale", type=float, default=DEFAULT_POSTERIOR_SCALE,
                    help="spiking evaluator: logits = scale * output spike counts")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--no-epoch-val", action="store_true", help="skip the per-epoch validation pass")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir)
    jobs = [("ann", args.epochs_ann, args.batch_ann, args.lr_ann), ("snn", args.epochs_snn, args.batch_snn, args.lr_snn)]
    results = {}
    try:
        for kind, epochs, batch, lr in jobs:
            if epochs <= 0:
                continue
            cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=lr, seed=args.seed, threads=args.threads,
                              device=args.device)
            out = out_dir / f"mnist_eval_{kind}.h5"
            t0 = time.time()
            meta = train_evaluator(kind, "mnist", args.data_root, out, cfg, steps=args.steps,
                                   posterior_scale=args.posterior_scale,
                                   validate_each_epoch=not args.no_epoch_val)
            results[kind] = (out, meta, time.time() - t0)
            print(f"{kind}: validation accuracy {meta['validation_accuracy']:.4f} on {meta['validation_images']} "
                  f"images; per-epoch val {meta['training']['history']['val_acc']}; "
                  f"training {meta['training']['seconds']:.0f} s, total {time.time() - t0:.0f} s -> {out}",
                  flush=True)
    except BrainleaksError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for kind, (out, meta, secs) in results.items():
        print(f"{out}: {kind} validation accuracy {100 * meta['validation_accuracy']:.2f}% ({secs:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
