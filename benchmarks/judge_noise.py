"""How lenient each evaluator ("judge") is: the share of noise images it calls a digit with confidence >= 0.5.

    .venv/bin/python benchmarks/judge_noise.py [--data-root /work/shared/data/mnist] [--n 1000] [--seed 1001]
        [--judges netx_models/mnist_eval_snn.h5 netx_models/mnist_eval_ann.h5 ...] [--threads 1]

For every judge: its validation accuracy on split "val" (MNIST images 8000..9999 with ``--data-root``; the
vendored subset without), and on ``--n`` uniform-noise images in [0, 1] and ``--n`` smooth blob images
(``evaluation.augment.blob_images``), the fraction whose argmax is a digit (not "reject") with a posterior of
at least 0.5, the fraction sent to "reject", and the mean top posterior. Noise and blobs are drawn from
generators seeded by ``--seed`` and ``--seed + 1`` (the reject judge's training junk came from its training
generator, seed 0 by default); a spiking judge sees them rate-coded with its own time steps, seeded by
``--seed + 2``, as ``evaluate_result`` feeds it. Reads local files only.
"""
from __future__ import annotations

import argparse
import json
import time

DEFAULT_JUDGES = ("netx_models/mnist_eval_snn.h5", "netx_models/mnist_eval_ann.h5",
                  "netx_models/mnist_eval_resnet.h5", "netx_models/mnist_eval_reject.h5")
CONFIDENCE = 0.5


def judge_input(ev, images, generator):
    """What ``ev`` scores for images (N, H, W) in [0, 1]: the images, or a rate coding for a spiking judge."""
    from brainleaks_lava.data.encoding import rate_encode

    if ev.kind == "snn":
        return rate_encode(images.reshape(len(images), -1), steps=ev.steps or 25, generator=generator)
    return images


def leniency(ev, images, generator) -> dict:
    import torch

    p = ev.posterior(judge_input(ev, images, generator))
    top, arg = p.max(dim=1)
    digit = arg < ev.target_classes
    return {"digit_conf_ge_0.5": float((digit & (top >= CONFIDENCE)).float().mean()),
            "rejected": float((~digit).float().mean()),
            "mean_top_posterior": float(top.mean()),
            "most_common_class": ev.classes[int(torch.bincount(arg, minlength=ev.num_classes).argmax())]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judges", nargs="+", default=list(DEFAULT_JUDGES))
    ap.add_argument("--data-root", default=None, help="MNIST directory (default: the vendored subset)")
    ap.add_argument("--n", type=int, default=1000, help="noise images of each kind")
    ap.add_argument("--seed", type=int, default=1001)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import numpy as np
    import torch

    from brainleaks_lava.data import load_static
    from brainleaks_lava.evaluation.augment import blob_images
    from brainleaks_lava.evaluation.classifiers import load_evaluator

    torch.set_num_threads(args.threads)
    va = load_static("mnist", args.data_root, split="val")
    shape = tuple(va.images.shape[1:])
    noise = torch.rand(args.n, *shape, generator=torch.Generator().manual_seed(args.seed))
    blobs = blob_images(args.n, shape, torch.Generator().manual_seed(args.seed + 1))
    rows = []
    for path in args.judges:
        t0 = time.perf_counter()
        ev = load_evaluator(path)
        gen = torch.Generator().manual_seed(args.seed + 2)
        pred = ev.predict(judge_input(ev, torch.as_tensor(va.images), gen)).numpy()
        rows.append({"judge": path, "kind": ev.kind, "val_accuracy": float(np.mean(pred == va.labels)),
                     "val_images": int(len(va.labels)), "uniform": leniency(ev, noise, gen),
                     "blobs": leniency(ev, blobs, gen), "seconds": round(time.perf_counter() - t0, 1)})
    print(json.dumps({"data": va.source, "n": args.n, "seed": args.seed, "rows": rows}, indent=2))
    print()
    print(f"| judge | kind | val acc. ({len(va.labels)} images) | uniform noise: digit, conf >= {CONFIDENCE} "
          f"| blobs: digit, conf >= {CONFIDENCE} | uniform rejected | blobs rejected |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        u, b = r["uniform"], r["blobs"]
        print(f"| {r['judge']} | {r['kind']} | {100 * r['val_accuracy']:.2f} % | {100 * u['digit_conf_ge_0.5']:.1f} % "
              f"| {100 * b['digit_conf_ge_0.5']:.1f} % | {100 * u['rejected']:.1f} % | {100 * b['rejected']:.1f} % |")


if __name__ == "__main__":
    main()
