"""Replay spike trains through a NetX file on Lava's fixed-point simulator, every layer recorded.

The Lava network is NetX's own reading of the file (``netx.hdf5.Network``), so the replay runs what a user
deploys. Two things NetX cannot build are handled here, from the same ``NetSpec`` the twin is built from:
a ``pool`` layer is written into a temporary copy of the file as the grouped convolution it is (same
weights per channel), and an ``average`` read-out layer is left out of the Lava network and applied on the
host. A file with an ``input`` layer is driven at its neurons' input with ``round(x * weight + bias)``
(NetX's input block has no compiled model for a spike source).

Alignment (measured and tested, see ``netx.twin``): layer p's spike at twin step t is Lava's at step
``k*T + t + o`` of sample k (compared from its step ``spec.clean_steps()[p]`` on), with o = 1 for files whose first layer is a synapse (the source's spikes spend
one step in its buffer) and o = 0 for files with an input layer. Streaming: the network is built with
``reset_interval=T`` and ``reset_offset`` (1, or 0 with an input layer) so that NetX resets layer p at twin
step p of every window, the samples are concatenated in time and followed by o idle steps. Steps before
``spec.settle_steps()`` of each window are zeroed on both sides: in a streamed run they still hold the
previous sample's activity in flight. NetX's reset does not clear a delayed synapse's buffer, so spikes of
the previous sample still in a synaptic delay would reach the new sample after the reset and change it at
every later step; a streamed run of a network with delays therefore runs its delayed synapses with
``hardware.delay_models``, Lava's fixed_pt models plus a clear of the buffer at the step the synapse's input
layer is reset, which makes the stream equal one run per sample (tested, every layer, with and without
biases). ``mode="per-sample"`` runs each sample alone with the same resets and Lava's own models.
The Lava runtime is always stopped, also on errors and Ctrl-C.

Recording (``hardware.shm_recorders``): every recording is written by the Lava workers, every step, into a
shared memory block the host creates before the run and unlinks after it (also on errors); the host copies
each recording out in one go, where Lava's ``Var.get()`` sends one element per message (tens of seconds for
a 3000-neuron layer). NetX's LIF neurons (CUBA layers) run a model that writes their spikes, ``v`` and
``u`` itself (``record_in_neuron``); a neuron of another kind would feed a ``SpikeRecorder`` (what a Lava
``RingBuffer`` sink receives) and have its Vars read by a ``VarRecorder`` (a RefPort, as Lava's ``Monitor``
reads them): two more processes per layer, and a post-management phase in every process at every step.
Dense synapses run ``synapse_models``' row-sum model (same integers, a fifth of the time). ``FAST_MODELS =
False`` runs Lava's own models with the recorder processes (tested equal, every layer and voltage).

Parallel replay (``workers``, ``hardware.parallel``): the samples are cut into chunks, each replayed by a
Lava runtime of its own in a forked worker process, at most ``workers`` at a time; every window starts
from reset neurons (and cleared delay buffers), so a sample's result does not depend on its chunk, and the
chunks' results are put back in sample order: identical to one worker (tested).

Voltages: the recorder reads the last computing layer's ``v`` (fixed point, lava-dl's x 4096).
It is the post-reset value; for the pre-reset potential the replay also records ``u`` and, where a neuron
was reset, restores ``decay(v[t-1]) + u[t] + bias`` with Lava's own integer update.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ..progress import progress_bar

from ..errors import InputError, ModelFileError
from ..interrupts import ctrl_c_in_this_process_only
from ..netx.reader import read_network
from ..netx.spec import AverageLayer, NetSpec, PoolLayer

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
        from lava.proc.io.source import RingBuffer as Source

        from . import shm_recorders
    return netx, RunSteps, Loihi2SimCfg, Source, shm_recorders


def check_spikes(spikes, num_inputs: int | None = None, name: str = "spikes", graded: bool = False) -> np.ndarray:
    """Return ``spikes`` as a float32 (N, features, T) 0/1 array (any finite values if ``graded``) or raise
    ``InputError``."""
    a = np.asarray(spikes)
    if a.ndim != 3 or 0 in a.shape:
        raise InputError(f"{name} must be a non-empty (N, features, T) array, got shape {a.shape}")
    if num_inputs is not None and a.shape[1] != num_inputs:
        raise InputError(f"{name} has {a.shape[1]} features but the model takes {num_inputs} inputs")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise InputError(f"{name} holds NaN or inf")
    if not graded and not np.all((a == 0) | (a == 1)):
        raise InputError(f"{name} must be binary (0/1 spikes); found other values")
    return a.astype(np.float32)


VOLTAGE_SCALE = 4096.0  # Lava fixed-point voltage units per lava-dl voltage unit

# Run NetX's LIF neurons with the models that record into shared memory themselves and its Dense synapses with
# the row-sum model (``shm_recorders.record_in_neuron``, ``synapse_models``); False: Lava's own models with
# recorder processes (the reference the fast models are tested against).
FAST_MODELS = True


@dataclass
class LavaOutputs:
    """What a replay observed, aligned with the twin's steps (see the module docstring)."""

    layers: list[np.ndarray]  # per computing layer: spikes (N, *out_shape, T), in the layer's own steps
    voltage: np.ndarray | None  # last computing layer's voltage (N, neurons, T), lava-dl units, or None
    settle: int  # leading steps of each window zeroed on both sides
    runs: int = 0  # Lava runtimes started (one per chunk when streaming, one per sample otherwise)

    @property
    def output(self) -> np.ndarray:
        """The network's output spikes (N, outputs, T): the last layer's, one step late (lava-dl's block
        convention), with an ``average`` read-out applied by the caller (``netx.readout``)."""
        s = self.layers[-1]
        s = s.reshape(s.shape[0], -1, s.shape[-1])
        out = np.zeros_like(s)
        out[..., 1:] = s[..., :-1]
        out[..., : self.settle] = 0
        return out


def _lava_file(spec: NetSpec, workdir: Path) -> tuple[Path, int | None]:
    """The file NetX should build (the user's file, or a copy with pooling as grouped convs) and the
    number of file layers to build (None: all; an average read-out layer is left to the host)."""
    import h5py

    num_layers = len(spec.layers) - 1 if isinstance(spec.layers[-1], AverageLayer) else None
    pools = [layer for layer in spec.layers if isinstance(layer, PoolLayer)]
    if not pools:
        return Path(spec.path), num_layers
    from ..fileio import atomic_path

    out = workdir / "pool_as_conv.net"
    with atomic_path(out) as tmp, h5py.File(spec.path, "r") as src, h5py.File(tmp, "w") as dst:
        dst.create_group("layer")
        for i in range(len(spec.layers)):
            src.copy(src[f"layer/{i}"], dst["layer"], name=str(i))
        for p in pools:
            g = dst[f"layer/{p.index}"]
            for key in list(g.keys()):
                if key not in ("neuron", "shape"):
                    del g[key]
            g.create_dataset("type", (1,), "S10", [b"conv"])
            g.create_dataset("weight", data=p.conv_weight())
            g.create_dataset("stride", data=np.array(p.stride))
            g.create_dataset("padding", data=np.array(p.padding))
            g.create_dataset("dilation", data=np.array(p.dilation))
            g.create_dataset("groups", data=p.in_shape[0])
    return out, num_layers


@contextlib.contextmanager
def _zero_weights_loadable(netx):
    """While NetX builds a network: a dense layer whose weights are all zero gets 8-bit weights with exponent 0.

    NetX sizes a dense layer's weight exponent from its largest weight (``optimize_weight_bits``: ``255 / max``)
    and fails on a matrix of zeros (``OverflowError`` on an infinite shift), although such a layer is legitimate
    (its neurons see only their bias) and Lava runs it exactly with any exponent. Every other matrix goes to
    NetX's own function unchanged."""
    hdf5 = netx.hdf5
    original = hdf5.optimize_weight_bits

    def optimize(weight):
        w = np.asarray(weight)
        if w.size and not np.any(w):
            return w.astype(int), 8, 0, netx.utils.SYNAPSE_SIGN_MODE.EXCITATORY
        return original(weight)

    hdf5.optimize_weight_bits = optimize
    try:
        yield
    finally:
        hdf5.optimize_weight_bits = original


def _to_lava(a: np.ndarray) -> np.ndarray:
    """(*shape, T) in lava-dl order (C, H, W) -> Lava's (W, H, C, T)."""
    return a.transpose(2, 1, 0, 3) if a.ndim == 4 else a


def _from_lava(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 1, 0, 3) if a.ndim == 4 else a


def _run_lava(spec: NetSpec, data: np.ndarray, reset_interval: int, voltage: str | None,
              record_layers: bool = True, stream: bool = False) -> tuple[list[np.ndarray], np.ndarray | None]:
    """One Lava run of ``data`` (*input_shape, steps). Returns every computing layer's spikes
    (*out_shape, steps) (only the last one's unless ``record_layers``) and, with ``voltage`` ("post" or
    "pre"), the last computing layer's voltage (neurons, steps) in lava-dl units. ``stream``: ``data``
    holds several windows of ``reset_interval`` steps; delayed synapses clear their buffer in each window
    (``hardware.delay_models``)."""
    netx, RunSteps, Loihi2SimCfg, Source, shm_recorders = _lava()
    steps = data.shape[-1]
    with tempfile.TemporaryDirectory(prefix="brainleaks-netx-") as tmp:
        path, num_layers = _lava_file(spec, Path(tmp))
        kwargs = {"reset_interval": reset_interval, "reset_offset": 0 if spec.has_input_layer else 1}
        if len(spec.input_shape) == 3 and not spec.has_input_layer:
            kwargs["input_shape"] = tuple(spec.input_shape[::-1])
        with contextlib.redirect_stdout(io.StringIO()), _zero_weights_loadable(netx):
            net = netx.hdf5.Network(net_config=str(path), num_layers=num_layers, **kwargs)
        try:
            net.net_config.f.close()  # NetX keeps the file open after building
        except Exception:  # pragma: no cover - attribute layout of NetDict
            pass
    computing = spec.computing
    if len(net.layers) != len(computing):
        raise InputError(f"{spec.path}: NetX built {len(net.layers)} layers, the spec has {len(computing)}")
    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    if stream and any(layer.max_delay for layer in computing):
        from . import delay_models

        offset = 0 if spec.has_input_layer else 1
        for p, (layer, block) in enumerate(zip(computing, net.layers)):
            cleared = delay_models.clear_each_window(getattr(block, "synapse", None), reset_interval, p + offset)
            if layer.max_delay and not cleared:
                raise RuntimeError(f"{spec.path}: layer {layer.index} has synaptic delays but NetX built a "
                                   f"{type(getattr(block, 'synapse', None)).__name__} synapse")
        run_cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=dict(delay_models.MODELS))
    if spec.has_input_layer:
        first = computing[0]
        drive = np.round(data * first.weight + first.bias).astype(np.int64)
        source = Source(data=_to_lava(drive.reshape(*spec.input_shape, steps)))
        source.s_out.connect(net.layers[0].neuron.a_in)
    else:
        source = Source(data=_to_lava(data.reshape(*spec.input_shape, steps)))
        source.s_out.connect(net.inp)
    recorded = range(len(computing)) if record_layers else [len(computing) - 1]
    last = net.layers[-1].neuron
    probes = (("v", "u") if voltage == "pre" else ("v",)) if voltage else ()
    models = dict(run_cfg.exception_proc_model_map)
    if FAST_MODELS:
        from . import synapse_models

        models.update(synapse_models.MODELS)
    with shm_recorders.SharedBuffers() as buffers:  # unlinked when the block ends, also on errors
        sinks = {}
        for p in recorded:
            neuron = net.layers[p].neuron
            sinks[p] = buffers.new(neuron.s_out.shape, steps, shm_recorders.SPIKE_DTYPE)
            if FAST_MODELS and type(neuron) in shm_recorders.NEURON_MODELS:
                shm_recorders.record_in_neuron(neuron, "s", sinks[p])
            else:
                neuron.s_out.connect(shm_recorders.SpikeRecorder(shape=neuron.s_out.shape, buffer=sinks[p]).a_in)
        monitors = {}
        for name in probes:
            var = getattr(last, name)
            monitors[name] = buffers.new(var.shape, steps, shm_recorders.VAR_DTYPE)
            if FAST_MODELS and type(last) in shm_recorders.NEURON_MODELS:
                shm_recorders.record_in_neuron(last, name, monitors[name])
            else:
                shm_recorders.VarRecorder.probe(var, monitors[name])
        if FAST_MODELS:
            models.update(shm_recorders.NEURON_MODELS)
        run_cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)
        try:
            with ctrl_c_in_this_process_only():
                net.run(condition=RunSteps(num_steps=steps), run_cfg=run_cfg)
            # (steps, *lava shape) -> (*lava shape, steps)
            spikes = {p: _from_lava(np.moveaxis(_collect(buf), 0, -1)) for p, buf in sinks.items()}
            probed = {name: _from_lava(np.moveaxis(_collect(buf), 0, -1)).reshape(-1, steps)
                      for name, buf in monitors.items()}
        finally:
            net.stop()  # always: a runtime that is not stopped leaves worker processes behind
    layers = [spikes.get(p) for p in range(len(computing))]
    if not voltage:
        return layers, None
    v = probed["v"]
    if voltage == "pre":
        out = computing[-1]
        bias = out.bias_array
        if bias is not None and len(out.out_shape) == 3:
            bias = np.repeat(bias, out.out_shape[1] * out.out_shape[2])
        v = pre_reset_voltage(v, probed["u"], out.neuron.v_decay, bias)
    return layers, v / VOLTAGE_SCALE


def pre_reset_voltage(v_post: np.ndarray, u: np.ndarray, dv: int, bias: np.ndarray | None = None) -> np.ndarray:
    """Lava's voltage before each step's reset, from the monitored post-reset voltage and current
    (integer (neurons, steps) arrays; the first step has no predecessor and is kept as monitored).

    Where a neuron was reset its ``v`` reads 0; the potential it reached is Lava's update
    ``decay(v[t-1]) + u[t] + bias * 64`` with ``decay(v) = sign(v) * ((|v| * (4096 - dv)) >> 12)``
    (``bias`` per neuron in file units; a reset step before the bias starts is in the settle steps).
    Elsewhere ``v`` already is that value.
    """
    prev = v_post[:, :-1]
    decayed = np.sign(prev) * ((np.abs(prev) * (4096 - dv)) >> 12)
    restored = decayed + u[:, 1:]
    if bias is not None:
        restored = restored + (np.asarray(bias, dtype=np.int64) << 6)[:, None]
    pre = v_post.copy()
    pre[:, 1:] = np.where(v_post[:, 1:] == 0, restored, v_post[:, 1:])
    return pre


def check_steps(spec: NetSpec, steps: int) -> None:
    if steps <= spec.settle_steps():
        raise InputError(f"spike trains have T={steps} steps; {spec.path} needs more than its "
                         f"{spec.settle_steps()} settle steps (layers plus synaptic delays)")


def check_replayable(spec: NetSpec, hint: str = "") -> None:
    """Refuse (``ModelFileError`` naming the file, the layer and the field) a network whose numbers NetX and Lava's
    fixed-point simulator would change whatever the input (``netx.readiness.replay_problems``; ``brainleaks info``
    lists the same fields): its replay could not agree with the twin. ``hint`` ends the message."""
    from ..netx.readiness import network_replay_problems

    problems = network_replay_problems(spec)
    if problems:
        more = f" (and {len(problems) - 1} more: see 'brainleaks info')" if len(problems) > 1 else ""
        raise ModelFileError(f"{spec.path}: {problems[0]}{more}; Lava would run other numbers than the file's, so "
                             f"it cannot be replayed{hint}")


MIN_PARALLEL_CHUNK = 10  # automatic worker count: at least this many samples per streamed Lava run


def check_workers(workers) -> int | None:
    """``workers`` as a positive int, or None for the automatic choice; anything else raises ``InputError``."""
    if workers is None or (isinstance(workers, str) and workers == "auto"):
        return None
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError(f"workers must be a positive integer or None / 'auto' (automatic), got {workers!r}")
    from ..safety import check_threads

    return check_threads(int(workers), "workers", minimum=1)


def auto_workers(n: int, mode: str = "stream", cpus: int | None = None) -> int:
    """The automatic worker count: min(2, CPUs, what the samples give work for). A streamed replay gives one
    worker per ``MIN_PARALLEL_CHUNK`` samples (a Lava runtime takes about as long to start as ten samples take
    to run); one run per sample gives one per sample."""
    from .parallel import cpu_count

    cpus = cpu_count() if cpus is None else cpus
    useful = n if mode == "per-sample" else n // MIN_PARALLEL_CHUNK
    return max(1, min(2, cpus, useful))


def plan_jobs(n: int, mode: str, chunk: int, workers: int) -> list[tuple[int, int]]:
    """(start, count) of every Lava job, in sample order. One run per sample: one job per sample. Streamed with
    one worker: runs of ``chunk`` samples. Streamed with several: a multiple of ``workers`` near-equal runs of
    at most ``chunk`` samples (so no worker idles in the last round)."""
    if mode == "per-sample":
        return [(i, 1) for i in range(n)]
    if workers == 1:
        return [(s, min(chunk, n - s)) for s in range(0, n, chunk)]
    runs = -(-n // chunk)
    m = min(n, workers * -(-runs // workers))
    sizes = [n // m + (i < n % m) for i in range(m)]
    starts = np.cumsum([0] + sizes[:-1])
    return [(int(s), k) for s, k in zip(starts, sizes)]


def replay_network(spec: NetSpec, spikes, mode: str = "stream", chunk: int = 200, progress: bool = True,
                   voltage: str | None = None, record_layers: bool = True, graded: bool = False,
                   workers: int | None = None) -> LavaOutputs:
    """Run ``spikes`` (N, features, T) or (N, *input_shape, T) through ``spec`` on Lava fixed_pt.

    ``mode="stream"``: ``chunk`` samples per Lava run, NetX resetting the neurons between samples;
    ``mode="per-sample"``: one run per sample (the reference for streaming). ``voltage``: "post" / "pre"
    records the last computing layer's voltage after / before the step's reset. ``graded``: the input is a
    graded drive (networks with an input layer), not 0/1 spikes. ``workers``: Lava runtimes run at the same
    time, each in a process of its own on its own samples (``hardware.parallel``; None: ``auto_workers``).
    Every sample's window starts from reset neurons, so the result does not depend on ``workers`` or
    ``chunk`` (tested: identical to one worker, every layer and the voltages).
    """
    x = np.asarray(spikes)
    n = x.shape[0] if x.ndim else 0
    x = check_spikes(x.reshape(n, -1, x.shape[-1]) if x.ndim >= 3 else x, num_inputs=spec.num_inputs,
                     graded=graded)
    t = x.shape[-1]
    check_steps(spec, t)
    check_replayable(spec)
    if mode not in ("stream", "per-sample"):
        raise InputError(f"mode must be 'stream' or 'per-sample', got {mode!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
        raise InputError(f"chunk must be a positive integer, got {chunk!r}")
    if voltage not in (None, "post", "pre"):
        raise InputError(f"voltage must be 'post', 'pre' or None, got {voltage!r}")
    if graded and not spec.has_input_layer:
        raise InputError(f"{spec.path}: a graded drive needs a network with an input layer")
    workers = check_workers(workers)
    if workers is None:
        workers = auto_workers(n, mode)
    jobs = plan_jobs(n, mode, chunk, workers)
    workers = min(workers, len(jobs))
    computing = spec.computing
    settle = spec.settle_steps()
    layers = [np.zeros((n, *layer.out_shape, t), dtype=np.float32) if record_layers or p == len(computing) - 1
              else None for p, layer in enumerate(computing)]
    n_v = computing[-1].out_size
    volts = np.zeros((n, n_v, t), dtype=np.float64) if voltage else None
    runs = 0
    t0 = time.time()

    def run_job(job):
        start, k = job
        return _replay_block(spec, x[start:start + k], mode, voltage, record_layers)

    with progress_bar(total=n, desc=f"Lava replay ({mode})", unit="sample", disable=not progress) as bar:
        def place(job, result):
            nonlocal runs
            start, k = job
            res, v = result
            for p, s in enumerate(res):
                if s is not None:
                    layers[p][start:start + k] = s
            if voltage:
                volts[start:start + k] = v
            runs += 1
            bar.update(k)

        if workers == 1:
            for job in jobs:
                place(job, run_job(job))
        else:
            from .parallel import run_forked

            _lava()  # imported once here, inherited by the workers
            run_forked(jobs, lambda job: _compact(run_job(job)), workers, place, what="Lava replay")
    for a, clean in zip(layers, spec.clean_steps()):
        if a is not None:
            a[..., :clean] = 0.0
    if voltage:
        volts[..., :settle] = 0.0
    log.info("replayed %d samples (%s, %d Lava runs, %d worker%s) in %.1f s", n, mode, runs, workers,
             "s" if workers > 1 else "", time.time() - t0)
    return LavaOutputs(layers=layers, voltage=volts, settle=settle, runs=runs)


def _replay_block(spec: NetSpec, block: np.ndarray, mode: str, voltage: str | None, record_layers: bool):
    """One Lava run of ``block`` (k, features, T), its samples concatenated in time (k = 1 with ``mode``
    "per-sample"): per computing layer its spikes (k, *out_shape, T) (None where not recorded) and the
    voltages (k, neurons, T) or None, windows aligned with the twin's steps (settle steps not yet zeroed)."""
    k, features, t = block.shape
    offset = 0 if spec.has_input_layer else 1
    computing = spec.computing
    data = np.concatenate([block.transpose(1, 0, 2).reshape(-1, k * t), np.zeros((features, offset), np.float32)],
                          axis=1)
    res, v = _run_lava(spec, data, reset_interval=t, voltage=voltage, record_layers=record_layers,
                       stream=mode == "stream")
    out = []
    for p, s in enumerate(res):
        if s is not None:
            s = s.reshape(-1, s.shape[-1])[:, offset: offset + k * t]
            s = _windows(s, k, t).reshape(k, *computing[p].out_shape, t)
        out.append(s)
    return out, (_windows(v[:, offset: offset + k * t], k, t) if voltage else None)


def _compact(result):
    """A job's result for the pipe from a worker: spike arrays as uint8 when that holds them exactly."""
    layers, v = result
    small = []
    for s in layers:
        if s is not None and s.size and s.min() >= 0 and s.max() <= 255:
            s = s.astype(np.uint8)
        small.append(s)
    return small, v


def replay(net_path: str | Path, spikes, mode: str = "stream", chunk: int = 200,
           progress: bool = True, voltage: str | None = None, input_shape=None, workers: int | None = None):
    """Output spikes (N, outputs, T) of the Lava fixed-point simulation of ``net_path`` for ``spikes``;
    with ``voltage`` ("post" / "pre") ``(spikes, voltages)``, the output voltages (N, neurons, T) aligned
    with the twin's ``run`` (see ``replay_network``, also for ``workers``)."""
    spec = read_network(net_path, input_shape=input_shape)
    res = replay_network(spec, spikes, mode=mode, chunk=chunk, progress=progress, voltage=voltage,
                         record_layers=False, workers=workers)
    return (res.output, res.voltage) if voltage else res.output


def _collect(buffer) -> np.ndarray:
    """A recording (steps, *lava shape) of a ``shm_recorders`` buffer, copied out of shared memory."""
    return buffer.read()


def _windows(a: np.ndarray, k: int, t: int) -> np.ndarray:
    """(neurons, k*T) -> (k, neurons, T)."""
    return a.reshape(a.shape[0], k, t).transpose(1, 0, 2)
