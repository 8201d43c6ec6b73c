"""Twin-vs-Lava equivalence: replay spike trains on Lava and compare with the lava-dl twin spike for spike.

For targets whose posterior is read from the output voltage (``readout`` "membrane" or "voltage") the
output voltages the posterior reads (before or after the step's reset) are compared too (exactly, in
Lava's fixed-point units), and both confidences are computed from what each side observed.

The twin computes on its own device (``load_snn(..., device=)``; Lava always runs on the CPU) where its forward
pass is the same integers there as on the CPU: 0/1 spikes into dense and input layers on the fast kernel
(``NetxTwin.device_inexact_reason``). Otherwise, on a GPU, the comparison uses a CPU copy of the twin (logged),
so that no float summation order of a GPU can make Lava and the twin look different.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..models.device import exact_float32, module_device
from ..models.files import load_snn
from ..models.snn import VOLTAGE_READOUTS
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
    layer: int | None = None  # computing layer of the first differing spike (first_diff is in it)


@dataclass
class EquivalenceReport:
    model: str
    samples: list[SampleCheck] = field(default_factory=list)
    mode: str = "stream"
    seconds: float = 0.0
    layers: int = 0  # computing layers compared
    lava_logits: np.ndarray | None = field(default=None, repr=False)  # (N, C) the read-out's logits from Lava
    queries: "QueryCheck | None" = None  # api.replay of a query-only attack's result: its oracle's answers on Lava

    @property
    def agreement(self) -> float:
        return float(np.mean([s.equal for s in self.samples])) if self.samples else 0.0

    @property
    def mismatches(self) -> list[SampleCheck]:
        return [s for s in self.samples if not s.equal]

    def to_dict(self) -> dict:
        return {
            "model": self.model, "mode": self.mode, "seconds": round(self.seconds, 3),
            "samples": len(self.samples), "agreement": self.agreement, "layers_compared": self.layers,
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
    reset: the "membrane" and "integrator" read-outs), "post" (after it, "voltage") or None (spikes)."""
    if spec.readout not in VOLTAGE_READOUTS + ("integrator",):
        return None
    return "post" if spec.readout == "voltage" else "pre"


def twin_outputs(model, spikes: np.ndarray, batch: int = 100, voltage: bool = False):
    """The twin's output spikes (N, C, T); with ``voltage`` also the output voltages its posterior
    reads (first settle steps zeroed, as the replay does). Computed on the twin's device, returned on the CPU."""
    dev = module_device(model)
    out, volts = [], []
    with torch.no_grad():
        for i in range(0, len(spikes), batch):
            s, v = model.run(torch.as_tensor(spikes[i:i + batch], dtype=torch.float32).to(dev))
            out.append(s.cpu().numpy())
            volts.append(v.double().cpu().numpy())
    out = np.concatenate(out)
    out[..., :model.settle] = 0.0
    if not voltage:
        return out
    volts = np.concatenate(volts)
    volts[:, :, :model.settle] = 0.0
    return out, volts


def twin_layers(model, spikes: np.ndarray, batch: int = 100) -> list[np.ndarray]:
    """Every computing layer's spikes of the twin (steps before each layer's clean step zeroed, as the
    replay does). Computed on the twin's device, returned on the CPU."""
    dev = module_device(model)
    per_layer = None
    with torch.no_grad():
        for i in range(0, len(spikes), batch):
            layers, _ = model.twin.run_all(torch.as_tensor(spikes[i:i + batch], dtype=torch.float32).to(dev))
            layers = [a.cpu().numpy() for a in layers]
            per_layer = layers if per_layer is None else [np.concatenate([p, a]) for p, a in zip(per_layer, layers)]
    for a, clean in zip(per_layer, model.net.clean_steps()):
        a[..., :clean] = 0.0
    return per_layer


_CPU_NOTES: set = set()


def comparison_twin(model, x: np.ndarray):
    """The twin a replay is compared with: ``model`` itself on the CPU, or on a GPU where its forward pass gives
    the CPU's numbers for the inputs ``x`` (see the module docstring); else a CPU twin rebuilt from the same
    ``NetSpec`` and deployment (said once per reason in the log)."""
    from ..netx.target import DeployedSNN

    dev = module_device(model)
    if dev.type == "cpu":
        return model
    binary = bool(np.isin(x, (0, 1)).all())
    why = model.twin.device_inexact_reason(binary)
    if why is None:
        exact_float32()
        return model
    if why not in _CPU_NOTES:
        _CPU_NOTES.add(why)
        log.info("replay: the twin side of the comparison runs on the CPU, not %s (%s: a GPU need not give the "
                 "same bits)", dev, why)
    cpu = DeployedSNN(model.net, model.deployment).eval()
    for mine, theirs in zip(cpu.twin.layers, model.twin.layers):
        mine.fast = theirs.fast  # the same path (fast kernel or lava-dl's) as the twin it replaces
    return cpu


def check_equivalence(net_path: str | Path, spikes, targets=None, twin_path: str | Path | None = None,
                      mode: str = "stream", progress: bool = True, options: dict | None = None,
                      card=None, twin=None, workers: int | None = None) -> EquivalenceReport:
    """Replay ``spikes`` (N, features, T) on Lava (file ``net_path``) and compare every layer's spikes and
    the output voltage its read-out uses with the twin.

    The twin is rebuilt from ``twin_path`` (default: the same file); giving the file the attack used
    and a deployed copy checks that the deployed copy behaves identically. ``options`` / ``card``: the
    deployment (see ``netx.deployment``). ``twin``: the target already loaded from ``twin_path or net_path``
    with these options (saves reading it again), on any device (see the module docstring). ``workers``: parallel
    Lava runtimes (``replay_network``).
    """
    import time

    from ..netx.reader import read_network
    from ..netx.target import readout_logits
    from .replay import replay_network

    if twin is None:
        twin = load_snn(twin_path or net_path, options=options, card=card)
    model = twin.model
    graded = model.graded
    x = check_spikes(spikes, num_inputs=model.num_inputs, graded=graded)
    if targets is not None:
        targets = np.asarray(targets)
        if targets.shape != (len(x),):
            raise InputError(f"targets must have one class per sample ({len(x)}), got shape {targets.shape}")
        if targets.dtype.kind not in "iu" or targets.min() < 0 or targets.max() >= model.num_classes:
            raise InputError(f"targets must be class indices in [0, {model.num_classes})")
    lava_spec = read_network(net_path, input_shape=model.net.input_shape) if twin_path else model.net
    if [layer.out_shape for layer in lava_spec.computing] != [layer.out_shape for layer in model.net.computing]:
        raise InputError(f"{net_path} and {twin_path} are different networks (layer shapes differ)")
    t0 = time.time()
    which = replayed_voltage(twin.spec)
    lava = replay_network(lava_spec, x, mode=mode, progress=progress, voltage=which, graded=graded,
                          workers=workers)
    seconds = time.time() - t0
    ref_model = comparison_twin(model, x)
    ref_layers = twin_layers(ref_model, x)
    ref, ref_v = twin_outputs(ref_model, x, voltage=True)
    if which is None:
        ref_v = None
    lava_out = lava.output
    if lava_spec.layers[-1].kind == "average":
        g = lava_spec.layers[-1].out_shape[0]
        lava_out = lava_out.reshape(len(x), g, -1, lava_out.shape[-1]).mean(2)
    dep = model.deployment
    p_twin = torch.softmax(readout_logits(dep, model.settle, ref, ref_v), 1).numpy()
    lava_logits = readout_logits(dep, model.settle, lava_out, lava.voltage)
    p_lava = torch.softmax(lava_logits, 1).numpy()
    report = EquivalenceReport(model=str(net_path), mode=mode, seconds=seconds, lava_logits=lava_logits.numpy())
    for i in range(len(x)):
        fd, layer_diff = None, None
        for p, (a, b) in enumerate(zip(lava.layers, ref_layers)):
            d = first_difference(a[i].reshape(-1, a.shape[-1]), b[i].reshape(-1, b.shape[-1]))
            if d is not None:
                fd, layer_diff = d, p
                break
        v_eq = None if which is None else bool(np.array_equal(lava.voltage[i], ref_v[i]))
        y = None if targets is None else int(targets[i])
        report.samples.append(SampleCheck(
            index=i, target=y, equal=fd is None and v_eq is not False, first_diff=fd,
            twin_confidence=None if y is None else float(p_twin[i, y]),
            lava_confidence=None if y is None else float(p_lava[i, y]), voltage_equal=v_eq,
            layer=layer_diff))
    report.layers = len(ref_layers)
    log.info("%d/%d samples identical on Lava and the twin", len(x) - len(report.mismatches), len(x))
    return report


@dataclass
class QueryCheck:
    """Oracle answers checked on Lava: ``report`` compares every layer of the queried inputs with the twin;
    ``same_answer`` (k,) says per query whether the answer computed from Lava's read-out (with the deployment's
    defense) equals the one the oracle gave the attacker."""

    report: EquivalenceReport
    same_answer: np.ndarray
    index: np.ndarray  # the queries' numbers

    @property
    def agreement(self) -> float:
        return float(self.same_answer.mean()) if len(self.same_answer) else 0.0

    def to_dict(self) -> dict:
        return {"queries": int(len(self.same_answer)), "same_answer": int(self.same_answer.sum()),
                "answer_agreement": self.agreement, "spike_agreement": self.report.agreement,
                "differing_queries": [int(i) for i in self.index[~self.same_answer]]}


def check_query_sample(net_path: str | Path, sample: dict, oracle: dict, twin, twin_path: str | Path | None = None,
                       mode: str = "stream", progress: bool = True, workers: int | None = None) -> QueryCheck:
    """Replay a query-only attack's sample of oracle queries (``AttackResult.query_sample``) on Lava and recompute
    each answer from Lava's read-out as the oracle computes it (``attacks.oracle.expose_answer``: what it
    ``exposes``, the defense's ``round_posterior`` and ``clip_counts`` from ``oracle``, the result's
    ``extra['oracle']``). ``twin``: the target as deployed when the attack ran (loaded from ``twin_path`` when that
differs from ``net_path``, as in ``check_equivalence``)."""
    from ..attacks.oracle import EXPOSURES, expose_answer

    exposes = oracle.get("exposes") if isinstance(oracle, dict) else None
    if exposes not in EXPOSURES:
        raise InputError(f"the oracle's description must name what it exposes ({', '.join(EXPOSURES)}), "
                         f"got {exposes!r}")
    report = check_equivalence(net_path, sample["inputs"], None, twin_path=twin_path, mode=mode, progress=progress,
                               twin=twin, workers=workers)
    dep = twin.model.deployment
    lava = expose_answer(torch.as_tensor(report.lava_logits), exposes, float(dep.posterior_scale),
                         oracle.get("round_posterior"), oracle.get("clip_counts"))
    given = np.asarray(sample["outputs"])
    if lava.shape != given.shape:
        raise InputError(f"the stored answers have shape {given.shape}, but this deployment answers "
                         f"{lava.shape}: replay with the deployment the attack used")
    same = (lava == given).reshape(len(given), -1).all(1)
    return QueryCheck(report=report, same_answer=same, index=np.asarray(sample["index"]))
