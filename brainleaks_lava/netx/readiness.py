"""``brainleaks info`` for NetX files: a layer table and a Loihi 2 readiness summary, as text or data.

Readiness checks what the file asks of the chip's fixed-point registers:
- weights within the 8-bit mantissa NetX keeps ([-256, 254] in file units): NetX clips dense weights
  beyond it silently (the reader records how many, see ``Layer.notes``); conv and pool weights beyond it
  are not representable as they are;
- biases within the 13-bit bias mantissa (-4096..4095), thresholds within the 17-bit vThMant;
- state overflow: a worst-case bound on each layer's voltage for the deployment's steps (all inputs
  active every step, no spike resetting the voltage) against Loihi's 24-bit state (Lava wraps the current
  and clips the voltage; the twin does neither). A bound over the limit is listed as a risk, not an issue:
  real inputs rarely come near it (the replay's comparison shows whether they did);
- neuron and synapse totals.
"""
from __future__ import annotations

import numpy as np

from .spec import DECAY_SCALE, InputLayer, NetSpec

STATE_LIMIT = 1 << 23  # Lava's 24-bit signed u and v
WEIGHT_RANGE = (-256, 254)
BIAS_RANGE = (-4096, 4095)
VTH_MAX = (1 << 17) - 1


def _shape(s) -> str:
    return "x".join(map(str, s))


def _state_bound(layer, steps: int, graded_max: float) -> float:
    """Upper bound of |v| (Lava units) over ``steps`` with every input active each step."""
    n = layer.neuron
    if isinstance(layer, InputLayer):
        drive = abs(layer.weight) * graded_max + abs(layer.bias)
    else:
        w = layer.weight_array()
        if w is None:
            return 0.0
        w = np.abs(w.astype(np.float64))
        per = w.reshape(w.shape[0], -1).sum(1) if w.ndim > 1 else np.array([w.sum()])
        drive = float(per.max()) if per.size else 0.0
    u_step = drive * 64
    u = u_step * steps if n.i_decay == 0 else min(u_step * steps, u_step * DECAY_SCALE / n.i_decay)
    b = layer.bias_array
    bias = 0.0 if b is None else float(np.abs(b).max()) * 64
    per_v = u + bias
    return per_v * steps if n.v_decay == 0 else min(per_v * steps, per_v * DECAY_SCALE / n.v_decay)


def describe(spec: NetSpec, steps: int) -> dict:
    """The layer table and the readiness summary as data (``info --json``)."""
    rows, issues, risks = [], [], []
    for layer in spec.layers:
        row = {"index": layer.index, "type": layer.kind, "in": list(layer.in_shape), "out": list(layer.out_shape),
               "detail": layer.describe(), "notes": list(layer.notes)}
        if layer.computes:
            n = layer.neuron
            w = layer.weight_array()
            row.update({
                "neuron": n.to_dict(), "fan_in": layer.fan_in, "synapses": layer.synapses,
                "neurons": layer.out_size,
                "bias": None if layer.bias_array is None else [int(layer.bias_array.min()), int(layer.bias_array.max())],
                "delay": None if not layer.max_delay else [int(layer.delay.min()), layer.max_delay],
            })
            if isinstance(layer, InputLayer):
                row["weight_range"] = [layer.weight, layer.weight]
            elif w is not None:
                row["weight_range"] = [int(w.min()), int(w.max())]
                nz = np.unique(np.abs(w[w != 0])) if np.any(w) else np.array([0])
                row["weight_levels"] = int(len(np.unique(w)))
                row["weight_bits"] = int(np.ceil(np.log2(max(1, int(np.abs(w).max())) + 1))) + 1
                row["weight_step"] = int(np.gcd.reduce(nz.astype(np.int64))) if nz.size else 0
            bound = _state_bound(layer, steps, 1.0)
            row["state_bound"] = bound
            where = f"layer/{layer.index} ({layer.kind})"
            lo, hi = row.get("weight_range", [0, 0])
            if (lo < WEIGHT_RANGE[0] or hi > WEIGHT_RANGE[1]) and layer.kind != "dense":
                issues.append(f"{where}: weights {lo}..{hi} exceed the 8-bit mantissa [-256, 254]")
            if layer.bias_array is not None and (layer.bias_array.min() < BIAS_RANGE[0]
                                                 or layer.bias_array.max() > BIAS_RANGE[1]):
                issues.append(f"{where}: biases {row['bias']} exceed the 13-bit bias mantissa")
            if n.spiking and n.vth_mant > VTH_MAX:
                issues.append(f"{where}: vThMant {n.vth_mant} exceeds 17 bits")
            if bound >= STATE_LIMIT:
                risks.append(f"{where}: state may overflow 24 bits over {steps} steps (bound "
                              f"{bound / STATE_LIMIT:.1f}x the limit with all inputs active)")
            for note in layer.notes:
                issues.append(f"{where}: {note}")
        rows.append(row)
    neurons = sum(layer.out_size for layer in spec.computing)
    synapses = sum(layer.synapses for layer in spec.computing)
    return {
        "path": spec.path, "sha256": spec.sha256, "input_shape": list(spec.input_shape),
        "layers": rows, "neurons": neurons, "synapses": synapses, "settle_steps": spec.settle_steps(),
        "loihi2_ready": not issues, "issues": issues, "risks": risks,
    }


def format_table(info: dict) -> str:
    head = f"{'#':>3} {'type':8} {'in':>11} {'out':>11}  {'neuron':34} {'weights':>12} {'bits':>4} {'fan-in':>6} " \
           f"{'synapses':>9}  {'bias':>13}  {'delay':>6}  detail"
    lines = [head, "-" * len(head)]
    for r in info["layers"]:
        n = r.get("neuron")
        if n is None:
            neuron = "-"
        elif n["kind"] == "integrator":
            neuron = "integrator (no neuron group)"
        else:
            neuron = f"{n['kind']} i{n['iDecay']} v{n['vDecay']} th{n['vThMant']}"
        wr = r.get("weight_range")
        weights = "-" if wr is None else f"{wr[0]}..{wr[1]}"
        bias = "-" if not r.get("bias") else f"{r['bias'][0]}..{r['bias'][1]}"
        delay = "-" if not r.get("delay") else f"{r['delay'][0]}..{r['delay'][1]}"
        lines.append(f"{r['index']:>3} {r['type']:8} {_shape(r['in']):>11} {_shape(r['out']):>11}  {neuron:34} "
                     f"{weights:>12} {r.get('weight_bits', '-')!s:>4} {r.get('fan_in', '-')!s:>6} "
                     f"{r.get('synapses', '-')!s:>9}  {bias:>13}  {delay:>6}  {r['detail']}")
    return "\n".join(lines)


def format_readiness(info: dict) -> str:
    lines = [f"Loihi 2 readiness: {'ready' if info['loihi2_ready'] else 'NOT ready'}; "
             f"{info['neurons']} neurons, {info['synapses']} synapses; settle steps {info['settle_steps']}"]
    lines += [f"  - {issue}" for issue in info["issues"]]
    lines += [f"  - risk: {risk}" for risk in info["risks"]]
    return "\n".join(lines)
