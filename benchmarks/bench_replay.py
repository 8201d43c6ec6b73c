"""Lava fixed-point replay: streamed (many samples per Lava run) vs one Lava run per sample, measured
side by side in one run on the same spike trains; both are checked against the twin.

By default the replay records what the equivalence check records (``check_equivalence``): every layer's
spikes and the output voltage the target's read-out uses (``v`` and ``u`` for the "membrane" read-out), and
a sample counts as identical when every layer and that voltage equal the twin's. The time is the replay's
alone (``EquivalenceReport.seconds``). ``--spikes-only`` measures the output spikes alone (``replay``).

    .venv/bin/python benchmarks/bench_replay.py [--model netx_models/mnist_snn.net] [--samples 200] \
        [--per-sample 20] [--spikes-only]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from brainleaks_lava.data import load_static
from brainleaks_lava.data.encoding import rate_encode
from brainleaks_lava.hardware.equivalence import check_equivalence, replayed_voltage, twin_outputs
from brainleaks_lava.hardware.replay import replay
from brainleaks_lava.models.files import load_snn


def _equivalence(model: str, twin, x: np.ndarray, mode: str) -> tuple[float, int]:
    report = check_equivalence(model, x, mode=mode, progress=False, twin=twin)
    return report.seconds, len(x) - len(report.mismatches)


def _spikes_only(model: str, ref: np.ndarray, x: np.ndarray, mode: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = replay(model, x, mode=mode, progress=False)
    return time.perf_counter() - t0, int(np.all(out == ref[: len(x)], axis=(1, 2)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--samples", type=int, default=200, help="samples replayed streamed")
    ap.add_argument("--per-sample", type=int, default=20, help="samples replayed one Lava run each")
    ap.add_argument("--spikes-only", action="store_true",
                    help="record the output spikes only (no other layer, no voltage)")
    args = ap.parse_args()
    twin = load_snn(args.model)
    images = load_static("mnist", None, split="val").images[: args.samples]
    x = rate_encode(images, steps=twin.spec.steps, generator=torch.Generator().manual_seed(0)).numpy()
    k = min(args.per_sample, len(x))
    if args.spikes_only:
        ref = twin_outputs(twin.model, x)
        what = "output spikes only"
        t_stream, ok_stream = _spikes_only(args.model, ref, x, "stream")
        t_single, ok_single = _spikes_only(args.model, ref, x[:k], "per-sample")
    else:
        which = replayed_voltage(twin.spec)
        what = (f"every layer's spikes and the output voltage ({which}-reset"
                f"{', v and u' if which == 'pre' else ', v'}; read-out {twin.spec.readout})" if which else
                "every layer's spikes (spike read-out: no voltage)")
        t_stream, ok_stream = _equivalence(args.model, twin, x, "stream")
        t_single, ok_single = _equivalence(args.model, twin, x[:k], "per-sample")

    rate_stream = len(x) / t_stream
    rate_single = k / t_single
    print(f"model {args.model}, T={twin.spec.steps}, real MNIST digits rate-encoded; recorded: {what}")
    print(f"streamed:   {len(x)} samples in {t_stream:.2f} s = {rate_stream:.1f} samples/s, "
          f"identical to twin: {ok_stream}/{len(x)}")
    print(f"per-sample: {k} samples in {t_single:.2f} s = {rate_single:.2f} samples/s, "
          f"identical to twin: {ok_single}/{k}")
    print(f"speed-up (samples/s streamed / per-sample): {rate_stream / rate_single:.1f}x")


if __name__ == "__main__":
    main()
