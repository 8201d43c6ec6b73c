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

Replay-ability (:func:`replay_problems`, the same check ``hardware.replay`` refuses a file with): the fields that
NetX and Lava's fixed-point simulator would run as other numbers than the file's, whatever the input, so that
the Lava replay could not agree with the twin: a dense weight matrix NetX cannot scale into the 8-bit mantissa
as it is (``netx.reader.lava_dense_weights``: a single-signed matrix beyond 255 / -256, or one without positive
weights whose extreme Lava's clip changes), a bias beyond the 16 bits Lava's neuron model keeps it in (it wraps),
and a conv / pool weight or an input layer's drive whose single input already moves the 24-bit current to 2^23
(Lava wraps it). Such a file is "NOT ready" and ``brainleaks replay`` refuses it naming the same field. Values
NetX changes the same way for Lava and the twin (clipped mixed-sign weights, truncated fractions, clamped
delays) and values only the chip's registers cannot hold (biases beyond 13 bits, thresholds beyond 17 bits,
conv weights beyond 8 bits) make a file "NOT ready" but leave it replayable. Decays outside 0..4096 and values
of magnitude 2^31 or more are refused when the file is read.
"""
from __future__ import annotations

import numpy as np

from .reader import dense_weight_problem
from .spec import DECAY_SCALE, ConvLayer, DenseLayer, InputLayer, NetSpec, PoolLayer

STATE_LIMIT = 1 << 23  # Lava's 24-bit signed u and v
WEIGHT_RANGE = (-256, 254)
BIAS_RANGE = (-4096, 4095)
VTH_MAX = (1 << 17) - 1
LAVA_BIAS_RANGE = (-(1 << 15), (1 << 15) - 1)  # Lava's LIF models store the bias mantissa as int16 (wrapping)
SINGLE_INPUT_LIMIT = STATE_LIMIT >> 6  # synaptic input of one step that, x 64, reaches the 24-bit current's limit


def replay_problems(layer) -> list[str]:
    """The fields of ``layer`` that Lava's fixed-point simulator would run as other numbers than the file's (see
    the module docstring); each names the field (``layer/<i>/weight``) and the values."""
    where, out = f"layer/{layer.index}", []
    if isinstance(layer, DenseLayer):
        problem = dense_weight_problem(layer.weight)
        if problem:
            out.append(f"{where}/weight {problem}")
    elif isinstance(layer, (ConvLayer, PoolLayer)) and layer.weight.size:
        top = int(np.abs(layer.weight).max())
        if top >= SINGLE_INPUT_LIMIT:
            out.append(f"{where}/weight values up to magnitude {top}: one input spike moves the current by {top} x "
                       f"64 >= 2^23, beyond Loihi's 24-bit state (Lava wraps it)")
    elif isinstance(layer, InputLayer) and abs(layer.weight) + abs(layer.bias) >= SINGLE_INPUT_LIMIT:
        out.append(f"{where}/weight {layer.weight} and bias {layer.bias}: an input of 1 moves the current by "
                   f"{abs(layer.weight) + abs(layer.bias)} x 64 >= 2^23, beyond Loihi's 24-bit state (Lava wraps it)")
    b = layer.bias_array
    if b is not None and (b.min() < LAVA_BIAS_RANGE[0] or b.max() > LAVA_BIAS_RANGE[1]):
        out.append(f"{where}/bias values {int(b.min())}..{int(b.max())} exceed {LAVA_BIAS_RANGE[0]}.."
                   f"{LAVA_BIAS_RANGE[1]}: Lava's neuron model keeps the bias in 16 bits and would wrap them")
    return out


def network_replay_problems(spec: NetSpec) -> list[str]:
    """:func:`replay_problems` of every computing layer, in order."""
    return [p for layer in spec.computing for p in replay_problems(layer)]


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


def _distinct(w: np.ndarray) -> np.ndarray:
    """The distinct values of the integer array ``w``, sorted (``np.unique``; by counting when their range is
    small, as weights' are: a sort of a 784 x 3000 matrix takes a second)."""
    w = np.asarray(w).reshape(-1)
    if w.size == 0:
        return w
    lo, hi = int(w.min()), int(w.max())
    if w.dtype.kind not in "iu" or hi - lo > (1 << 22):
        return np.unique(w)
    return np.flatnonzero(np.bincount((w - lo).astype(np.int64), minlength=hi - lo + 1)) + lo


def describe(spec: NetSpec, steps: int) -> dict:
    """The layer table and the readiness summary as data (``info --json``)."""
    rows, issues, risks, blocked = [], [], [], []
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
                values = _distinct(w)
                nz = np.unique(np.abs(values[values != 0])) if np.any(values) else np.array([0])
                row["weight_levels"] = int(len(values))
                row["weight_bits"] = int(np.ceil(np.log2(max(1, int(np.abs(w).max())) + 1))) + 1
                row["weight_step"] = int(np.gcd.reduce(nz.astype(np.int64))) if nz.size else 0
            bound = _state_bound(layer, steps, 1.0)
            row["state_bound"] = bound
            where = f"layer/{layer.index} ({layer.kind})"
            problems = replay_problems(layer)
            blocked += problems
            issues += problems
            lo, hi = row.get("weight_range", [0, 0])
            if (lo < WEIGHT_RANGE[0] or hi > WEIGHT_RANGE[1]) and layer.kind != "dense" and \
                    not any(p.startswith(f"layer/{layer.index}/weight") for p in problems):
                issues.append(f"{where}: weights {lo}..{hi} exceed the 8-bit mantissa [-256, 254]")
            if layer.bias_array is not None and (layer.bias_array.min() < BIAS_RANGE[0]
                                                 or layer.bias_array.max() > BIAS_RANGE[1]) and \
                    not any(p.startswith(f"layer/{layer.index}/bias") for p in problems):
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
        "replayable": not blocked, "replay_problems": blocked,
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
    blocked = info["replay_problems"]
    lines.append("Lava replay: possible (Lava's fixed-point simulator runs the network as NetX loads it, as the twin "
                 "does)" if not blocked else
                 f"Lava replay: refused ({', '.join(p.split(' ', 1)[0] for p in blocked)}: Lava would run other "
                 f"numbers than the file's)")
    return "\n".join(lines)
