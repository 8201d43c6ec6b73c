"""Training time of the generative priors (``brainleaks train-prior``, issue 29) on this machine's CPU threads.

    .venv/bin/python benchmarks/bench_prior.py --data-root ../shared/data/mnist [--faces-root ../shared/data/att_faces]
        [--sources mnist-val digits faces-identities:21-40] [--threads 2] [--epochs N]

Each source is trained as ``brainleaks train-prior`` trains it (``priors.vae.training_defaults``: 100 epochs for
digits, 400 for faces, unless ``--epochs``), seed 0, one after the other in this process, timed whole (the public
data loaded before the clock starts). Prints, per source: images, epochs, wall and CPU seconds, seconds per epoch
and per 1,000 images seen, the final loss. ``--epochs 5`` gives the per-epoch rate in a minute; the full default
schedule is what a user waits for. ``digits`` needs scikit-learn (``pip install .[priors]``).
"""
from __future__ import annotations

import argparse
import time

import torch

from brainleaks_lava.priors.public import load_public
from brainleaks_lava.priors.vae import train_prior, training_defaults


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="MNIST directory (for mnist-val)")
    ap.add_argument("--faces-root", default=None, help="AT&T faces directory (for faces-identities:A-B)")
    ap.add_argument("--sources", nargs="+", default=None,
                   help="public splits to train on (default: mnist-val and digits, and faces-identities:21-40 with "
                        "--faces-root)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="(default: the command's, per dataset)")
    args = ap.parse_args()
    sources = args.sources or (["mnist-val", "digits"] + (["faces-identities:21-40"] if args.faces_root else []))
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; torch {torch.__version__}")
    print("| public data | images | epochs | wall (s) | CPU (s) | s / epoch | s / 1,000 images | final loss |")
    print("|---|---|---|---|---|---|---|---|")
    for src in sources:
        dataset = "att-faces" if src.startswith("faces-identities") else "mnist"
        root = args.faces_root if dataset == "att-faces" else args.data_root
        public = load_public(src, dataset, root)
        d = training_defaults(dataset)
        epochs = args.epochs or d["epochs"]
        t0, c0 = time.perf_counter(), time.process_time()
        prior = train_prior(public.images, epochs=epochs, seed=0, threads=args.threads, progress=False,
                            shift=d["shift"], flip=d["flip"], provenance=public.provenance)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = len(public.images)
        print(f"| {src} | {n} | {epochs} | {wall:.1f} | {cpu:.1f} | {wall / epochs:.2f} | "
              f"{1000 * wall / (epochs * n):.3f} | {prior.training['final_loss']:.2f} |")


if __name__ == "__main__":
    main()
