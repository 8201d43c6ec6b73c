"""Lava fixed-point replay speed, every way of running it measured side by side in one run on the same spike
trains, each checked against the twin.

Rows: one Lava run per sample; streamed in one process (with Lava's own models and recorder processes, as
before the fast models, and with the fast models); streamed in parallel Lava runtimes (``--workers``). Each
with "monitors" (the output spikes and the output voltage the target's read-out needs: ``v`` and ``u`` for
the "membrane" read-out) or without them (output spikes only), and the last row records what
``brainleaks replay`` compares: every layer's spikes and the monitored voltage. A sample counts as identical
when everything the row recorded equals the twin's. Times are the replays' alone.

    .venv/bin/python benchmarks/bench_replay.py [--model netx_models/mnist_snn.net] [--samples 200] \
        [--per-sample 10] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from brainleaks_lava.data import load_static
from brainleaks_lava.data.encoding import rate_encode
from brainleaks_lava.hardware import replay as replay_mod
from brainleaks_lava.hardware.equivalence import replayed_voltage, twin_layers, twin_outputs
from brainleaks_lava.models.files import load_snn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--samples", type=int, default=200, help="samples replayed streamed")
    ap.add_argument("--per-sample", type=int, default=10, help="samples replayed one Lava run each")
    ap.add_argument("--workers", type=int, default=2, help="parallel Lava runtimes of the parallel rows")
    args = ap.parse_args()
    twin = load_snn(args.model)
    spec = twin.model.net
    images = load_static("mnist", None, split="val").images[: args.samples]
    x = rate_encode(images, steps=twin.spec.steps, generator=torch.Generator().manual_seed(0)).numpy()
    which = replayed_voltage(twin.spec)
    ref, ref_v = twin_outputs(twin.model, x, voltage=True)
    ref_layers = twin_layers(twin.model, x)
    k = min(args.per_sample, len(x))
    load0 = os.getloadavg()
    print(f"model {args.model}, T={twin.spec.steps}, {len(x)} real MNIST digits rate-encoded "
          f"(one run per sample: the first {k}); monitors: output spikes + output voltage "
          f"({which or 'none: spike read-out'}{', v and u' if which == 'pre' else ''}; read-out {twin.spec.readout})")
    print(f"load average at the start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, {os.cpu_count()} CPUs")

    def row(name, n, mode="stream", workers=1, monitors=True, layers=False, fast=True):
        replay_mod.FAST_MODELS = fast
        t0 = time.perf_counter()
        res = replay_mod.replay_network(spec, x[:n], mode=mode, progress=False, voltage=which if monitors else None,
                                        record_layers=layers, workers=workers)
        seconds = time.perf_counter() - t0
        replay_mod.FAST_MODELS = True
        same = np.all(res.output == ref[:n], axis=(1, 2))
        if monitors and which:
            same &= np.all(res.voltage == ref_v[:n], axis=(1, 2))
        if layers:
            for a, b in zip(res.layers, ref_layers):
                same &= np.all((a == b[:n]).reshape(n, -1), axis=1)
        rate = n / seconds
        print(f"{name:58s} {n:4d} samples {seconds:7.2f} s {rate:6.2f} samples/s  identical to twin "
              f"{int(same.sum())}/{n}", flush=True)
        return rate

    w = args.workers
    r = {}
    r["per-sample"] = row("one Lava run per sample, monitors", k, mode="per-sample")
    r["before"] = row("streamed serial, monitors, Lava's models + recorder procs", len(x), fast=False)
    r["serial"] = row("streamed serial, no monitors", len(x), monitors=False)
    r["serial+mon"] = row("streamed serial, monitors", len(x))
    r["par"] = row(f"streamed parallel ({w} workers), no monitors", len(x), workers=w, monitors=False)
    r["par+mon"] = row(f"streamed parallel ({w} workers), monitors", len(x), workers=w)
    r["par+all"] = row(f"streamed parallel ({w} workers), monitors + every layer", len(x), workers=w, layers=True)
    load1 = os.getloadavg()
    print(f"load average at the end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print("ratios (samples/s over samples/s, measured above):")
    for a, b, what in [("serial+mon", "per-sample", "streamed serial / one run per sample, monitors"),
                       ("serial+mon", "before", "fast models / Lava's models + recorder processes, serial, monitors"),
                       ("serial+mon", "serial", "monitors / no monitors, serial"),
                       ("par", "serial", f"parallel ({w}) / serial, no monitors"),
                       ("par+mon", "serial+mon", f"parallel ({w}) / serial, monitors"),
                       ("par+mon", "par", "monitors / no monitors, parallel"),
                       ("par+mon", "before", "parallel fast, monitors / serial before, monitors"),
                       ("par+mon", "per-sample", "parallel, monitors / one run per sample")]:
        print(f"  {what:68s} {r[a] / r[b]:6.2f}x")


if __name__ == "__main__":
    main()
