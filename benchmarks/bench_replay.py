"""Lava fixed-point replay: streamed (many samples per Lava run) vs one Lava run per sample, measured
side by side in one run on the same spike trains; both are checked against the twin.

    .venv/bin/python benchmarks/bench_replay.py [--model netx_models/mnist_snn.net] [--samples 200] [--per-sample 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from brainleaks_lava.hardware.equivalence import twin_outputs
from brainleaks_lava.hardware.replay import replay
from brainleaks_lava.data import load_static
from brainleaks_lava.data.encoding import rate_encode
from brainleaks_lava.models.files import load_snn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--samples", type=int, default=200, help="samples replayed streamed")
    ap.add_argument("--per-sample", type=int, default=20, help="samples replayed one Lava run each")
    args = ap.parse_args()
    twin = load_snn(args.model)
    images = load_static("mnist", None, split="val").images[: args.samples]
    x = rate_encode(images, steps=twin.spec.steps, generator=torch.Generator().manual_seed(0)).numpy()
    ref = twin_outputs(twin.model, x)

    t0 = time.perf_counter()
    streamed = replay(args.model, x, mode="stream", progress=False)
    t_stream = time.perf_counter() - t0
    k = min(args.per_sample, len(x))
    t0 = time.perf_counter()
    single = replay(args.model, x[:k], mode="per-sample", progress=False)
    t_single = time.perf_counter() - t0

    rate_stream = len(x) / t_stream
    rate_single = k / t_single
    print(f"model {args.model}, T={twin.spec.steps}, real MNIST digits rate-encoded")
    print(f"streamed:   {len(x)} samples in {t_stream:.2f} s = {rate_stream:.1f} samples/s, "
          f"identical to twin: {int(np.all(streamed == ref, axis=(1, 2)).sum())}/{len(x)}")
    print(f"per-sample: {k} samples in {t_single:.2f} s = {rate_single:.2f} samples/s, "
          f"identical to twin: {int(np.all(single == ref[:k], axis=(1, 2)).sum())}/{k}")
    print(f"speed-up (samples/s streamed / per-sample): {rate_stream / rate_single:.1f}x")


if __name__ == "__main__":
    main()
