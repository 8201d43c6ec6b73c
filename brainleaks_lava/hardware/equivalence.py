"""Twin-vs-Lava equivalence: replay spike trains on Lava and compare with the lava-dl twin spike for spike.

For targets whose posterior is read from the output voltage (``readout`` "membrane" or "voltage") the
output voltages the posterior reads (before or after the step's reset) are compared too (exactly, in
Lava's fixed-point units), and both confidences are computed from what each side observed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..models.files import load_snn
from ..models.snn import VOLTAGE_READOUTS, posterior_from_outputs
from .replay import check_spikes, replay

log = logging.getLogger(__name__)


@dataclass
class SampleCheck:
    index: int
    target: int | None
    equal: bool  # output spikes (and, for voltage read-out targets, output voltages) identical
    first_diff: tuple[int, int] | None  # (output neuron, time step) of the first differing spike
    twin_confidence: float | None
    lava_confidence: float | None
    voltage_equal: bool | None = None  # None when the target's posterior does not use voltages


@dataclass
class EquivalenceReport:
    model: str
    samples: list[SampleCheck] = field(default_factory=list)
    mode: str = "stream"
    seconds: float = 0.0

    @property
    def agreement(self) -> float:
        return float(np.mean([s.equal for s in self.samples])) if self.samples else 0.0

    @property
    def mismatches(self) -> list[SampleCheck]:
        return [s for s in self.samples if not s.equal]

    def to_dict(self) -> dict:
        return {
            "model": self.model, "mode": self.mode, "seconds": round(self.seconds, 3),
            "samples": len(self.samples), "agreement": self.agreement,
            "mismatching_samples": [s.index for s in self.mismatches],
            "per_sample": [s.__dict__ for s in self.samples],
        }


def first_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, int] | None:
    """(neuron, step) of the earliest time step where two (neurons, T) spike rasters differ."""
    diff = np.argwhere(a != b)
    if len(diff) == 0:
        return None
    step = diff[:, 1].min()
    neuron = diff[diff[:, 1] == step][:, 0].min()
    return int(neuron), int(step)


def replayed_voltage(spec) -> str | None:
    """The output voltage a replay must record for this target's posterior: "pre" (before the step's
    reset, the "membrane" read-out), "post" (after it, "voltage") or None (spike read-out)."""
    if spec.readout not in VOLTAGE_READOUTS:
        return None
    return "pre" if spec.readout == "membrane" else "post"


def twin_outputs(model, spikes: np.ndarray, batch: int = 100, voltage: bool = False):
    """The twin's output spikes (N, C, T); with ``voltage`` also the output voltages its posterior
    reads (:meth:`SpikingMLP.run`; first L steps zeroed, as the replay does)."""
    out, volts = [], []
    with torch.no_grad():
        for i in range(0, len(spikes), batch):
            s, v = model.run(torch.as_tensor(spikes[i:i + batch], dtype=torch.float32))
            out.append(s.numpy())
            volts.append(v.double().numpy())
    out = np.concatenate(out)
    if not voltage:
        return out
    volts = np.concatenate(volts)
    volts[:, :, :len(model.blocks)] = 0.0
    return out, volts


def check_equivalence(net_path: str | Path, spikes, targets=None, twin_path: str | Path | None = None,
                      mode: str = "stream", progress: bool = True) -> EquivalenceReport:
    """Replay ``spikes`` (N, features, T) on Lava (file ``net_path``) and compare with the twin.

    The twin is rebuilt from ``twin_path`` (default: the same file); giving the file the attack used
    and a deployed copy checks that the deployed copy behaves identically.
    """
    import time

    twin = load_snn(twin_path or net_path)
    x = check_spikes(spikes, num_inputs=twin.model.num_inputs)
    if targets is not None:
        targets = np.asarray(targets)
        if targets.shape != (len(x),):
            raise InputError(f"targets must have one class per sample ({len(x)}), got shape {targets.shape}")
    t0 = time.time()
    which = replayed_voltage(twin.spec)
    use_v = which is not None
    lava, lava_v = replay(net_path, x, mode=mode, progress=progress, voltage=which) if use_v else \
        (replay(net_path, x, mode=mode, progress=progress), None)
    seconds = time.time() - t0
    ref, ref_v = twin_outputs(twin.model, x, voltage=True) if use_v else (twin_outputs(twin.model, x), None)
    if lava.shape != ref.shape:
        raise InputError(f"Lava produced outputs of shape {lava.shape}, the twin {ref.shape}: the model files differ in shape")
    p_twin = posterior_from_outputs(twin.spec, ref, ref_v).numpy()
    p_lava = posterior_from_outputs(twin.spec, lava, lava_v).numpy()
    report = EquivalenceReport(model=str(net_path), mode=mode, seconds=seconds)
    for i in range(len(x)):
        fd = first_difference(lava[i], ref[i])
        v_eq = None if not use_v else bool(np.array_equal(lava_v[i], ref_v[i]))
        y = None if targets is None else int(targets[i])
        report.samples.append(SampleCheck(
            index=i, target=y, equal=fd is None and v_eq is not False, first_diff=fd,
            twin_confidence=None if y is None else float(p_twin[i, y]),
            lava_confidence=None if y is None else float(p_lava[i, y]), voltage_equal=v_eq))
    log.info("%d/%d samples identical on Lava and the twin", len(x) - len(report.mismatches), len(x))
    return report
