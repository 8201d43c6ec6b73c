"""Where a streamed Lava replay spends its time: building the NetX network, Lava's compile and start-up (the
first ``run()`` call, one step), the steps, reading the recordings, ``stop()``, the host's own work and the
posterior, for Lava's own models with recorder processes and for the replay's fast models, one worker.

    .venv/bin/python benchmarks/profile_replay.py [--model netx_models/mnist_snn.net] [--samples 40]

The Lava run of each chunk is split into ``run(1 step)`` and ``run(the other steps)`` (the runtime keeps its
state between the two calls), so the second call's time per step is the simulator's step cost alone.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch

from brainleaks_lava.data import load_static
from brainleaks_lava.data.encoding import rate_encode
from brainleaks_lava.hardware import replay as replay_mod
from brainleaks_lava.hardware.equivalence import replayed_voltage
from brainleaks_lava.models.files import load_snn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="netx_models/mnist_snn.net")
    ap.add_argument("--samples", type=int, default=40)
    args = ap.parse_args()
    t = time.perf_counter()
    netx, *_ = replay_mod._lava()
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    twin = load_snn(args.model)
    t_load = time.perf_counter() - t
    spec = twin.model.net
    x = rate_encode(load_static("mnist", None, split="val").images[: args.samples], steps=twin.spec.steps,
                    generator=torch.Generator().manual_seed(0)).numpy()
    which = replayed_voltage(twin.spec)
    print(f"model {args.model}, {args.samples} real MNIST digits, T={twin.spec.steps}, streamed in one Lava run, "
          f"one worker; recorded: output spikes and voltage ({which}); load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"once per process: import Lava {t_import:.2f} s, load the target (twin) {t_load:.2f} s")

    from lava.magma.core.process.process import AbstractProcess
    from lava.magma.core.run_conditions import RunSteps

    times: dict = defaultdict(float)
    steps_run = [0]
    build, run, stop, collect = netx.hdf5.Network.__init__, AbstractProcess.run, AbstractProcess.stop, replay_mod._collect

    def timed_build(self, *a, **k):
        t0 = time.perf_counter()
        build(self, *a, **k)
        times["build NetX network"] += time.perf_counter() - t0

    def timed_run(self, condition=None, run_cfg=None):
        n = condition.num_steps
        t0 = time.perf_counter()
        run(self, condition=RunSteps(num_steps=1), run_cfg=run_cfg)
        t1 = time.perf_counter()
        run(self, condition=RunSteps(num_steps=n - 1), run_cfg=run_cfg)
        times["compile + start-up + 1 step"] += t1 - t0
        times["steps"] += time.perf_counter() - t1
        steps_run[0] += n - 1

    def timed_stop(self):
        t0 = time.perf_counter()
        stop(self)
        times["stop"] += time.perf_counter() - t0

    def timed_collect(buffer):
        t0 = time.perf_counter()
        out = collect(buffer)
        times["read recordings"] += time.perf_counter() - t0
        return out

    netx.hdf5.Network.__init__, AbstractProcess.run, AbstractProcess.stop = timed_build, timed_run, timed_stop
    replay_mod._collect = timed_collect
    from brainleaks_lava.netx.target import readout_logits

    for fast in (False, True):
        replay_mod.FAST_MODELS = fast
        times.clear()
        steps_run[0] = 0
        t0 = time.perf_counter()
        res = replay_mod.replay_network(spec, x, progress=False, voltage=which, record_layers=False, workers=1)
        total = time.perf_counter() - t0
        t1 = time.perf_counter()
        torch.softmax(readout_logits(twin.model.deployment, twin.model.settle, res.output, res.voltage), 1)
        times["posterior"] = time.perf_counter() - t1
        times["host (data, windows, rest)"] = total - sum(v for k, v in times.items() if k != "posterior")
        name = "fast models (neurons record, Dense row sums)" if fast else "Lava's models + recorder processes"
        print(f"\n{name}: {total:.2f} s = {len(x) / total:.1f} samples/s")
        for k, v in times.items():
            extra = f"  ({1000 * v / steps_run[0]:.2f} ms/step, {steps_run[0]} steps)" if k == "steps" else ""
            print(f"  {k:32s} {v:6.2f} s {100 * v / total:5.1f}%{extra}")


if __name__ == "__main__":
    main()
