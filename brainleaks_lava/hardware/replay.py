"""Replay spike trains through an exported NetX file on Lava's fixed-point simulator.

Streaming: one Lava run carries N samples. The network is built with ``reset_interval=T`` (neuron
state is reset every T steps; ``reset_offset=1`` because our files have no input layer), the samples are
concatenated in time and followed by L zero steps (L = number of dense layers, each adds one step of
delay), and the output is cut back into windows of T steps. The first L steps of window k hold the
tail of sample k-1; the twin never sees them (its output can only start L steps after its input), so
they are zeroed. The Lava runtime is always stopped, also on errors and Ctrl-C.

Voltages: with ``voltage="post"`` a Lava ``Monitor`` also records the output neurons' voltage ``v``.
Lava's fixed-point voltage is SLAYER's x 4096 and holds the post-reset value, i.e. the twin's
``v * (1 - s)`` (see :meth:`SpikingMLP.run`); it lags the twin's (undelayed) voltage by one step, so
window k is read from steps ``k*T + 1 ... k*T + T``. Its first L steps are zeroed like the spikes'.
For the ``"membrane"`` read-out (the potential before the reset) the monitor also records the output
current ``u``; where a neuron was reset (``v = 0``) the pre-reset potential is restored with Lava's own
fixed-point update, ``decay(v[t-1]) + u[t]`` (``decay(v) = sign(v) * (|v| * (4096 - dv) >> 12)``).
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..interrupts import ctrl_c_in_this_process_only
from ..models.files import read_net_layers

log = logging.getLogger(__name__)


def _lava():
    """Import Lava lazily.

    Lava calls ``multiprocessing.set_start_method('fork')`` at import and fails when the default
    context was already fixed (tqdm's lock does that on the first progress bar). If it was fixed to
    'fork' (Linux's default) nothing changes by letting Lava set it again, so the choice is cleared.
    """
    import multiprocessing
    import sys

    if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules:
        ctx = multiprocessing.context._default_context
        actual = getattr(ctx, "_actual_context", None)
        if actual is not None:
            if multiprocessing.get_start_method() != "fork":
                raise RuntimeError("Lava needs the 'fork' multiprocessing start method, but "
                                   f"'{multiprocessing.get_start_method()}' was set")
            ctx._actual_context = None
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from lava.lib.dl import netx
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.monitor.process import Monitor
    return netx, RunSteps, Loihi2SimCfg, Source, Sink, Monitor


def check_spikes(spikes, num_inputs: int | None = None, name: str = "spikes") -> np.ndarray:
    """Return ``spikes`` as a float32 (N, features, T) 0/1 array or raise ``InputError``."""
    a = np.asarray(spikes)
    if a.ndim != 3 or 0 in a.shape:
        raise InputError(f"{name} must be a non-empty (N, features, T) array, got shape {a.shape}")
    if num_inputs is not None and a.shape[1] != num_inputs:
        raise InputError(f"{name} has {a.shape[1]} features but the model takes {num_inputs} inputs")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise InputError(f"{name} holds NaN or inf")
    if not np.all((a == 0) | (a == 1)):
        raise InputError(f"{name} must be binary (0/1 spikes); found other values")
    return a.astype(np.float32)


VOLTAGE_SCALE = 4096.0  # Lava fixed-point voltage units per SLAYER voltage unit


def _run_lava(net_path: Path, data: np.ndarray, reset_interval: int | None,
              voltage: str | None = None, dv: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """One Lava run of ``data`` (features, steps).

    Returns output spikes (classes, steps) and, with ``voltage`` ("post" or "pre": after or before the
    step's reset; "pre" needs the output layer's voltage decay ``dv`` from the file), the output
    voltages (classes, steps) in SLAYER units (else None).
    """
    netx, RunSteps, Loihi2SimCfg, Source, Sink, Monitor = _lava()
    steps = data.shape[1]
    kwargs = {"reset_interval": reset_interval, "reset_offset": 1} if reset_interval else {}
    with contextlib.redirect_stdout(io.StringIO()):
        net = netx.hdf5.Network(net_config=str(net_path), **kwargs)
    try:
        net.net_config.f.close()  # NetX keeps the file open after building
    except Exception:  # pragma: no cover - attribute layout of NetDict
        pass
    source = Source(data=data)
    sink = Sink(shape=net.out.shape, buffer=steps)
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    neuron = net.layers[-1].neuron
    monitors = {}
    if voltage:
        for name in ("v", "u") if voltage == "pre" else ("v",):
            monitors[name] = Monitor()
            monitors[name].probe(getattr(neuron, name), steps)
    try:
        with ctrl_c_in_this_process_only():
            net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = _collect(sink)
        probed = {}
        for name, monitor in monitors.items():
            (data_,) = monitor.get_data().values()
            probed[name] = np.asarray(data_[name], dtype=np.int64).T  # (neurons, steps), fixed point
    finally:
        net.stop()  # always: a runtime that is not stopped leaves worker processes behind
    if not voltage:
        return out, None
    v = probed["v"]
    if voltage == "pre":
        v = pre_reset_voltage(v, probed["u"], dv)
    return out, v / VOLTAGE_SCALE


def pre_reset_voltage(v_post: np.ndarray, u: np.ndarray, dv: int) -> np.ndarray:
    """Lava's output voltage before each step's reset, from the monitored post-reset voltage and current
    (integer (neurons, steps) arrays; the first step has no predecessor and is kept as monitored).

    Where a neuron was reset its ``v`` reads 0; the potential it reached is Lava's update
    ``decay(v[t-1]) + u[t]`` with ``decay(v) = sign(v) * ((|v| * (4096 - dv)) >> 12)`` (no bias: the
    toolkit's layers have none). Elsewhere ``v`` already is that value.
    """
    prev = v_post[:, :-1]
    decayed = np.sign(prev) * ((np.abs(prev) * (4096 - dv)) >> 12)
    restored = decayed + u[:, 1:]
    pre = v_post.copy()
    pre[:, 1:] = np.where(v_post[:, 1:] == 0, restored, v_post[:, 1:])
    return pre


def _collect(sink) -> np.ndarray:
    return np.asarray(sink.data.get())


def replay(net_path: str | Path, spikes, mode: str = "stream", chunk: int = 200,
           progress: bool = True, voltage: str | None = None):
    """Output spikes (N, classes, T) of the Lava fixed-point simulation of ``net_path`` for ``spikes``.

    ``mode="stream"`` runs ``chunk`` samples per Lava run with neuron reset between samples;
    ``mode="per-sample"`` starts one Lava run per sample (slow; the reference for the streamed mode).
    With ``voltage`` ("post": after the step's reset; "pre": before it) returns
    ``(spikes, voltages)``, the output voltages (N, classes, T) in SLAYER units aligned with the twin's
    :meth:`SpikingMLP.run` (first L steps zeroed).
    """
    net_path = Path(net_path)
    layers = read_net_layers(net_path)
    n_layers = len(layers)
    x = check_spikes(spikes, num_inputs=layers[0]["weight"].shape[1])
    n, f, t = x.shape
    if t <= n_layers:
        raise InputError(f"spikes have T={t} steps; need more than the network's {n_layers} layer delays")
    if mode not in ("stream", "per-sample"):
        raise InputError(f"mode must be 'stream' or 'per-sample', got {mode!r}")
    if not isinstance(chunk, int) or chunk <= 0:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}")
    if voltage not in (None, "post", "pre"):
        raise InputError(f"voltage must be 'post', 'pre' or None, got {voltage!r}")
    dv = int(layers[-1]["vDecay"])  # the output layer's voltage decay, for restoring pre-reset values
    n_out = layers[-1]["weight"].shape[0]
    out = np.zeros((n, n_out, t), dtype=np.float32)
    volts = np.zeros((n, n_out, t), dtype=np.float64) if voltage else None
    group = chunk if mode == "stream" else 1
    t0 = time.time()
    with tqdm(total=n, desc=f"Lava replay ({mode})", unit="sample", disable=not progress, leave=False) as bar:
        for start in range(0, n, group):
            block = x[start:start + group]
            k = len(block)
            data = np.concatenate([block.transpose(1, 0, 2).reshape(f, k * t), np.zeros((f, n_layers), np.float32)], axis=1)
            res, v = _run_lava(net_path, data, reset_interval=t if mode == "stream" else None, voltage=voltage, dv=dv)
            out[start:start + k] = _windows(res[:, : k * t], k, t)
            if voltage:
                volts[start:start + k] = _windows(v[:, 1: k * t + 1], k, t)
            bar.update(k)
    out[:, :, :n_layers] = 0.0
    log.info("replayed %d samples (%s) in %.1f s", n, mode, time.time() - t0)
    if voltage:
        volts[:, :, :n_layers] = 0.0
        return out, volts
    return out


def _windows(a: np.ndarray, k: int, t: int) -> np.ndarray:
    """(neurons, k*T) -> (k, neurons, T)."""
    return a.reshape(a.shape[0], k, t).transpose(1, 0, 2)
