"""Read a NetX HDF5 network into a ``NetSpec``: the only code that knows NetX's HDF5 keys.

What NetX does with a file, the reader does too, so the specs hold what Lava runs:
- ``weight``, ``bias`` and ``delay`` are truncated toward zero (NetX's ``astype(int)``);
- dense weights whose range does not fit Loihi's 8-bit mantissa are clipped to [-256, 254] (NetX clips with
  a printed warning); the reader records which layers were clipped (``NetSpec`` readiness);
- a layer without a ``neuron`` group becomes a non-leaky integrator (iDecay 0, vDecay 4096, vThMant 2^17);
- the 'LOIHI' neuron type runs as CUBA (its theta / tauRho / scaleRho / wgtExp are not read by NetX).

Anything the twin cannot model (another layer or neuron type, graded spikes, recurrent or complex weights,
a key NetX would read that the twin ignores) is refused with one line naming the layer and the key.
"""
from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np

from ..errors import ModelFileError
from ..fileio import check_dataset, open_h5, read_dataset, sha256_file
from .spec import (DECAY_SCALE, INTEGRATOR, AverageLayer, ConvLayer, DenseLayer, FlattenLayer, InputLayer, NetSpec,
                   NeuronSpec, PoolLayer)

log = logging.getLogger(__name__)

MAX_FIXED_POINT = 2**31
MAX_LAYERS = 1000
MAX_DELAY = 62  # NetX clamps synaptic delays to this
LAYER_TYPES = ("input", "dense", "conv", "pool", "flatten", "average")
KEYS = {
    "input": {"type", "shape", "weight", "bias", "neuron"},
    "dense": {"type", "shape", "inFeatures", "outFeatures", "weight", "bias", "delay", "neuron"},
    "conv": {"type", "shape", "inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation", "groups",
             "weight", "bias", "neuron"},
    "pool": {"type", "shape", "kernelSize", "stride", "padding", "dilation", "weight", "neuron"},
    "flatten": {"type", "shape"},
    "average": {"type", "shape"},
}
NEURON_TYPES = ("CUBA", "LOIHI")
NEURON_READ = {"type", "iDecay", "vDecay", "vThMant"}
# keys NetX does not read for CUBA / LOIHI neurons (refDelay, the LOIHI surrogate parameters, the bias
# normalisation exponent); 'gradedSpike' and 'messageBits' must say unary spikes
NEURON_IGNORED = {"refDelay", "theta", "tauRho", "scaleRho", "wgtExp", "weight_exp"}


class _Where:
    def __init__(self, path: Path, index: int):
        self.path, self.index = path, index

    def __call__(self, key: str = "") -> str:
        return f"{self.path}: layer/{self.index}" + (f"/{key}" if key else "")


def _text(value) -> str:
    value = np.asarray(value).reshape(-1)
    if value.size != 1:
        raise ValueError(f"expected one text value, got {value.size}")
    v = value[0]
    return v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)


def _array(group: h5py.Group, key: str, where: _Where, max_elements: int | None = None) -> np.ndarray:
    kwargs = {} if max_elements is None else {"max_elements": max_elements}
    a = read_dataset(group[key], where(key), **kwargs)
    if a.dtype.kind not in "biuf":
        raise ModelFileError(f"{where(key)}: expected numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)) or np.any(np.abs(a) >= MAX_FIXED_POINT):
        raise ModelFileError(f"{where(key)}: values must be finite and of magnitude < 2**31")
    return a


def _ints(group, key, where, max_elements=None, notes: list | None = None) -> np.ndarray:
    """NetX reads these with ``astype(int)``: truncation toward zero (counted in ``notes``)."""
    a = _array(group, key, where, max_elements)
    t = np.trunc(a)
    if notes is not None and np.any(t != a):
        notes.append(f"{int(np.count_nonzero(t != a))} non-integer {key} values truncated by NetX")
    return t.astype(np.int64)


def _pair(group, key, where, default) -> tuple[int, int]:
    if key not in group:
        return default
    a = _ints(group, key, where, 4).reshape(-1)
    if a.size == 1:
        a = np.array([a[0], a[0]])
    if a.size != 2:
        raise ModelFileError(f"{where(key)}: expected one or two values, got {a.size}")
    return int(a[0]), int(a[1])


def _shape(group, where, key="shape") -> tuple[int, ...]:
    if key not in group:
        raise ModelFileError(f"{where(key)}: missing (the layer's neuron shape)")
    s = _ints(group, key, where, 8).reshape(-1)
    if s.size not in (1, 3) or np.any(s <= 0) or np.prod(s.astype(np.float64)) > 1e9:
        raise ModelFileError(f"{where(key)}: expected (n,) or (C, H, W) of positive sizes, got {s.tolist()}")
    return tuple(int(v) for v in s)


def _neuron(group: h5py.Group, where: _Where) -> NeuronSpec:
    if "neuron" not in group:
        return INTEGRATOR
    ng = group["neuron"]
    if not isinstance(ng, h5py.Group):
        raise ModelFileError(f"{where('neuron')}: expected a group of neuron parameters")
    keys = set(ng.keys())
    ntype = _text(read_dataset(ng["type"], where("neuron/type"), max_elements=4)) if "type" in keys else None
    if ntype is None:
        raise ModelFileError(f"{where('neuron/type')}: missing")
    if ntype not in NEURON_TYPES:
        raise ModelFileError(f"{where('neuron/type')}: neuron type '{ntype}' cannot be modelled "
                             f"(supported: {', '.join(NEURON_TYPES)})")
    unknown = sorted(keys - NEURON_READ - NEURON_IGNORED - {"gradedSpike", "messageBits"})
    if unknown:
        raise ModelFileError(f"{where('neuron/' + unknown[0])}: unsupported neuron key '{unknown[0]}' "
                             f"(the twin models {', '.join(sorted(NEURON_READ))})")
    for key in ("gradedSpike", "messageBits"):
        if key in keys:
            v = _array(ng, key, where, 1).reshape(-1)
            if v.size != 1 or v[0] != 0:
                raise ModelFileError(f"{where('neuron/' + key)}: graded spikes ({key} = {v.tolist()}) cannot be "
                                     f"modelled (unary spikes only)")
    vals = {}
    for key in ("iDecay", "vDecay", "vThMant"):
        if key not in keys:
            raise ModelFileError(f"{where('neuron/' + key)}: missing")
        v = _array(ng, key, where, 1).reshape(-1)
        if v.size != 1:
            raise ModelFileError(f"{where('neuron/' + key)}: expected one value (per-neuron values are not "
                                 f"supported), got {v.size}")
        vals[key] = int(np.trunc(v[0]))
    if not 0 <= vals["iDecay"] <= DECAY_SCALE or not 0 <= vals["vDecay"] <= DECAY_SCALE:
        raise ModelFileError(f"{where('neuron')}: iDecay {vals['iDecay']} / vDecay {vals['vDecay']} outside "
                             f"0..{DECAY_SCALE}")
    if not 0 < vals["vThMant"] < MAX_FIXED_POINT:
        raise ModelFileError(f"{where('neuron/vThMant')}: must be positive, got {vals['vThMant']}")
    ignored = tuple(sorted(keys & NEURON_IGNORED))
    return NeuronSpec(kind=ntype, i_decay=vals["iDecay"], v_decay=vals["vDecay"], vth_mant=vals["vThMant"],
                      ignored=ignored)


def netx_dense_weights(w: np.ndarray) -> tuple[np.ndarray, int]:
    """The dense weights NetX hands to Lava and how many it clipped: NetX clips a mixed-sign matrix to
    [-256, 254] when it exceeds that range (single-signed matrices it rescales losslessly)."""
    lo, hi = int(w.min()), int(w.max())
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        clipped = np.clip(w, -256, 254)
        return clipped, int(np.count_nonzero(clipped != w))
    return w, 0


def lava_dense_weights(w: np.ndarray) -> np.ndarray | None:
    """The weight of every synapse as Lava's fixed_pt ``Dense`` model applies it to a unary spike, for the dense
    matrix ``w`` NetX reads (file units, after :func:`netx_dense_weights`); None where no such weights exist
    (NetX would shift by a negative count, or Lava's per-step shift of the summed input would not be exact).

    NetX (``optimize_weight_bits``) picks a sign mode from the matrix's extremes, a shift ``s`` that scales the
    largest magnitude into the 8-bit mantissa (``floor(log2(scale))``, +1 for mixed signs), and the weight bits
    from the number of trailing zero bits all weights share; it hands Lava ``w << s``, those bits and the
    exponent ``-s``. Lava's model decides the sign mode again from the shifted matrix (a matrix whose largest
    weight is 0 is mixed for NetX and inhibitory for Lava), clips it to 8 bits ([-256, 255] mixed, [0, 255]
    excitatory, [-255, 0] inhibitory), drops ``8 - bits (+1 mixed)`` low bits of every magnitude and shifts
    each step's sum right by ``s``. An all-zero matrix runs as zeros (``hardware.replay`` gives it exponent 0;
    NetX itself divides by its largest weight)."""
    w = np.asarray(w, dtype=np.int64)
    if not np.any(w):
        return w
    hi, lo = int(w.max()), int(w.min())
    with np.errstate(divide="ignore"):
        if hi < 0:
            signed, scale = 0, -256 / lo
        elif lo >= 0:
            signed, scale = 0, 255 / hi
        else:
            signed, scale = 1, min(np.float64(127) / hi, -128 / lo)
    shift = int(np.floor(np.log2(scale))) + signed
    if shift < 0:
        return None
    low = int(np.bitwise_or.reduce(w.reshape(-1)))  # its lowest set bit: the trailing zero bits all weights share
    trailing = min(8, (low & -low).bit_length() - 1)
    bits = 8 - shift - (trailing - signed)
    shifted = w << shift
    if shifted.min() >= 0:
        magnitude, sign, dropped = np.clip(shifted, 0, 255), 1, 8 - bits
    elif shifted.max() <= 0:
        magnitude, sign, dropped = np.clip(-shifted, 0, 255), -1, 8 - bits
    else:
        magnitude, sign, dropped = np.clip(shifted, -256, 255), 1, 8 - bits + 1
    if dropped < 0:
        return None
    kept = sign * ((magnitude >> dropped) << dropped)
    if np.any(kept % (1 << shift)):
        return None
    return kept >> shift


def dense_weight_problem(w: np.ndarray) -> str | None:
    """Why NetX and Lava's fixed_pt ``Dense`` model would not run the dense matrix ``w`` (file units, after
    NetX's clip) as it is, or None (see :func:`lava_dense_weights`)."""
    w = np.asarray(w, dtype=np.int64)
    if not np.any(w):
        return None
    hi, lo = int(w.max()), int(w.min())
    if lo >= 0 and hi > 255:
        return (f"values up to {hi} exceed 255, the largest weight NetX can scale into Loihi's 8-bit mantissa when "
                f"no weight is negative")
    if hi < 0 and lo < -256:
        return (f"values down to {lo} exceed -256, the smallest weight NetX can scale into Loihi's 8-bit mantissa "
                f"when no weight is positive")
    run = lava_dense_weights(w)
    if run is None:
        return (f"values {lo}..{hi} (no weight positive) cannot be run as they are: NetX and Lava's fixed-point "
                f"synapse disagree on their sign mode and shift")
    changed = int(np.count_nonzero(run != w))
    if changed:
        return (f"values {lo}..{hi}: NetX and Lava's fixed-point synapse would run {changed} of them as other "
                f"values (a matrix without positive weights loses its extreme one to Lava's 8-bit clip)")
    return None


def _bias(group, where, n_out: int, channels: int | None = None, notes=None) -> np.ndarray | None:
    if "bias" not in group:
        return None
    b = _ints(group, "bias", where, notes=notes).reshape(-1)
    if b.size == 1:
        b = np.full(channels or n_out, b[0], dtype=np.int64)
    if b.size not in (n_out, channels or n_out):
        raise ModelFileError(f"{where('bias')}: {b.size} values for {channels or n_out} neurons/channels")
    if np.all(b == 0):
        return None
    return b


def _conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def read_network(path: str | Path, input_shape: tuple[int, ...] | None = None,
                 declared_shape: tuple[int, ...] | None = None) -> NetSpec:
    """Parse and check a NetX file. ``input_shape`` ((n,) or (C, H, W)) is needed only when the file does
    not say it (no ``input`` layer, and a first conv layer with a stride > 1). ``declared_shape`` (a deployment
    card's or sidecar's) is used only where the file neither says nor implies the shape."""
    path = Path(path)
    with open_h5(path, "model file") as f:
        try:
            spec = _read(f, path, input_shape, declared_shape)
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError) as e:
            raise ModelFileError(f"{path}: corrupt NetX file ({type(e).__name__}: {e})") from None
    return NetSpec(path=str(path), sha256=sha256_file(path), layers=spec[0], input_shape=spec[1])


def _read(f: h5py.File, path: Path, given_shape, declared_shape=None):
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        from ..info import wrong_kind

        raise ModelFileError(wrong_kind(f, path, "netx")
                             or f"{path}: not a NetX network file (no 'layer' group)")
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    if len(names) > 100_000:
        raise ModelFileError(f"{path}: {len(names)} datasets; not a NetX network")
    for name in names:
        if not isinstance(name, str):
            raise ModelFileError(f"{path}: object name {name!r} is not text")
        check_dataset(f[name], f"{path}: {name}")
    group = f["layer"]
    keys = list(group.keys())
    if not keys or len(keys) > MAX_LAYERS or any(not k.isdigit() for k in keys) or \
            sorted(int(k) for k in keys) != list(range(len(keys))):
        raise ModelFileError(f"{path}: 'layer' group must hold layers 0..N-1, found {sorted(keys)[:10]}")
    raw = []
    for i in range(len(keys)):
        where = _Where(path, i)
        lg = group[str(i)]
        if not isinstance(lg, h5py.Group) or "type" not in lg:
            raise ModelFileError(f"{where('type')}: missing")
        kind = _text(read_dataset(lg["type"], where("type"), max_elements=4))
        if kind not in LAYER_TYPES:
            raise ModelFileError(f"{where('type')}: layer type '{kind}' cannot be modelled "
                                 f"(supported: {', '.join(LAYER_TYPES)})")
        unknown = sorted(set(lg.keys()) - KEYS[kind])
        if unknown:
            what = "delays on conv layers (NetX ignores them)" if kind == "conv" and unknown[0] == "delay" else \
                f"key '{unknown[0]}'"
            raise ModelFileError(f"{where(unknown[0])}: unsupported {what} in a {kind} layer "
                                 f"(a {kind} layer has {', '.join(sorted(KEYS[kind]))})")
        raw.append((kind, lg, where))

    # the input shape: an input layer's, else the caller's, else inferred from the first layer
    first_kind, first, fw = raw[0]
    if first_kind == "input":
        shape = _shape(first, fw)
        if given_shape is not None and int(np.prod(given_shape)) != int(np.prod(shape)):
            raise ModelFileError(f"{fw('shape')}: the file's input shape {shape} disagrees with the given "
                                 f"input shape {tuple(given_shape)}")
        if given_shape is not None and len(given_shape) == 3 and len(shape) == 1:
            shape = tuple(given_shape)
    elif given_shape is not None:
        shape = tuple(int(v) for v in given_shape)
    else:
        shape = _infer_input_shape(first_kind, first, fw, declared_shape)

    layers = []
    cur = shape
    for kind, lg, where in raw:
        layer = _layer(kind, lg, where, cur, is_first=not layers)
        layers.append(layer)
        cur = layer.out_shape
    if not any(layer.computes for layer in layers):
        raise ModelFileError(f"{path}: no layer with neurons (nothing to run)")
    if isinstance(layers[-1], FlattenLayer):
        raise ModelFileError(f"{path}: layer/{len(layers) - 1}: a network cannot end with a flatten layer")
    for layer in layers[:-1]:
        if isinstance(layer, AverageLayer):
            raise ModelFileError(f"{path}: layer/{layer.index}: an average layer is a read-out; only the last "
                                 f"layer may be one")
    for layer in layers[1:]:
        if isinstance(layer, InputLayer):
            raise ModelFileError(f"{path}: layer/{layer.index}: an input layer must be the first layer")
    return tuple(layers), tuple(int(v) for v in shape)


def _weight_dataset(lg, where) -> h5py.Dataset:
    """The ``weight`` dataset of a dense or conv layer group, or a ``ModelFileError`` saying what is there instead."""
    if "weight" not in lg:
        raise ModelFileError(f"{where('weight')}: missing")
    w = lg["weight"]
    if isinstance(w, h5py.Group):
        raise ModelFileError(f"{where('weight')}: complex weights (weight/real, weight/imag) cannot be modelled")
    if not isinstance(w, h5py.Dataset):
        raise ModelFileError(f"{where('weight')}: not an array")
    return w


def _infer_input_shape(kind, lg, where, declared=None) -> tuple[int, ...]:
    if kind == "dense":
        w = _weight_dataset(lg, where)
        if w.ndim == 2:
            return (int(w.shape[1]),)
        if "inFeatures" in lg:
            return (int(_ints(lg, "inFeatures", where, 1).reshape(-1)[0]),)
    if kind == "conv":
        w = _weight_dataset(lg, where)
        out = _shape(lg, where)
        stride = _pair(lg, "stride", where, (1, 1))
        pad = _pair(lg, "padding", where, (0, 0))
        dil = _pair(lg, "dilation", where, (1, 1))
        groups = int(_ints(lg, "groups", where, 1).reshape(-1)[0]) if "groups" in lg else 1
        if w.ndim >= 4 and len(out) == 3 and stride == (1, 1):
            kh, kw = int(w.shape[2]), int(w.shape[3])
            return (int(w.shape[1]) * groups, out[1] - 2 * pad[0] + dil[0] * (kh - 1),
                    out[2] - 2 * pad[1] + dil[1] * (kw - 1))
    if declared is not None:
        return tuple(int(v) for v in declared)
    raise ModelFileError(f"{where()}: the file does not say the network's input shape (no input layer); "
                         f"give it with --input-shape C,H,W (or 'input_shape' in the deployment card)")


def _layer(kind, lg, where, in_shape, is_first):
    if kind == "input":
        shape = _shape(lg, where)
        weight = int(_ints(lg, "weight", where, 1).reshape(-1)[0]) if "weight" in lg else 64
        bias = int(_ints(lg, "bias", where, 1).reshape(-1)[0]) if "bias" in lg else 0
        if "neuron" not in lg:
            raise ModelFileError(f"{where('neuron')}: an input layer without neurons is not supported")
        return InputLayer(index=where.index, in_shape=tuple(in_shape), out_shape=tuple(in_shape),
                          weight=weight, bias=bias, neuron_spec=_neuron(lg, where))
    if kind == "flatten":
        return FlattenLayer(index=where.index, in_shape=tuple(in_shape), out_shape=(int(np.prod(in_shape)),))
    if kind == "average":
        shape = _shape(lg, where)
        n_in = int(np.prod(in_shape))
        if len(shape) != 1 or n_in % shape[0]:
            raise ModelFileError(f"{where('shape')}: {shape} groups do not divide the {n_in} inputs")
        return AverageLayer(index=where.index, in_shape=tuple(in_shape), out_shape=(shape[0],))
    _weight_dataset(lg, where)
    neuron = _neuron(lg, where)
    notes = []
    if kind == "dense":
        w = _ints(lg, "weight", where, notes=notes)
        out = _shape(lg, where)
        n_in = int(np.prod(in_shape))
        n_out = int(np.prod(out))
        if w.ndim == 1:
            if w.size != n_out * n_in:
                raise ModelFileError(f"{where('weight')}: {w.size} weights for {n_out} x {n_in} synapses")
            w = w.reshape(n_out, n_in)
        if w.ndim != 2 or w.shape != (n_out, n_in):
            raise ModelFileError(f"{where('weight')}: shape {w.shape}, but the layer has {n_out} neurons and "
                                 f"{n_in} inputs (from the previous layer or the input shape)")
        for key, n in (("inFeatures", n_in), ("outFeatures", n_out)):
            if key in lg:
                v = _ints(lg, key, where, 1).reshape(-1)
                if v.size != 1 or int(v[0]) != n:
                    raise ModelFileError(f"{where(key)}: {v.tolist()} disagrees with the weight shape {w.shape}")
        w, clipped = netx_dense_weights(w)
        if clipped:
            notes.append(f"{clipped} weights outside Loihi's 8-bit mantissa range, clipped by NetX to [-256, 254]")
        delay = None
        if "delay" in lg:
            d = _ints(lg, "delay", where).reshape(-1)
            if d.size == 1:
                d = np.full(n_out, d[0], dtype=np.int64)
            if d.size != n_out:
                raise ModelFileError(f"{where('delay')}: {d.size} delays for {n_out} neurons (the twin models one "
                                     f"delay per output neuron)")
            if d.min() < 0:
                raise ModelFileError(f"{where('delay')}: negative delay {int(d.min())}")
            if d.max() > MAX_DELAY:
                notes.append(f"{int((d > MAX_DELAY).sum())} delays above {MAX_DELAY} clamped by NetX")
            d = np.minimum(d, MAX_DELAY)  # NetX clamps
            delay = d if d.any() else None
        return DenseLayer(index=where.index, in_shape=tuple(in_shape), out_shape=(n_out,), weight=w,
                          bias=_bias(lg, where, n_out, notes=notes), delay=delay, neuron_spec=neuron,
                          notes=tuple(notes))
    # conv and pool take (C, H, W) maps
    if len(in_shape) != 3:
        raise ModelFileError(f"{where()}: a {kind} layer needs a (C, H, W) input, but its input is {in_shape} "
                             f"(give --input-shape C,H,W if the file's input is an image)")
    out = _shape(lg, where)
    if len(out) != 3:
        raise ModelFileError(f"{where('shape')}: a {kind} layer has a (C, H, W) shape, got {out}")
    w = _ints(lg, "weight", where, notes=notes)
    if w.ndim == 5 and w.shape[-1] == 1:
        w = w[..., 0]
    if kind == "pool":
        w = w.reshape(w.shape[-2:]) if w.ndim >= 2 and int(np.prod(w.shape[:-2])) == 1 else w
        if w.ndim != 2:
            raise ModelFileError(f"{where('weight')}: a pool weight is one (kh, kw) kernel, got shape {w.shape}")
        k = (int(w.shape[0]), int(w.shape[1]))
        stride = _pair(lg, "stride", where, k)
    else:
        if w.ndim != 4:
            raise ModelFileError(f"{where('weight')}: expected (out, in/groups, kh, kw), got shape {w.shape}")
        k = (int(w.shape[2]), int(w.shape[3]))
        stride = _pair(lg, "stride", where, (1, 1))
    pad = _pair(lg, "padding", where, (0, 0))
    dil = _pair(lg, "dilation", where, (1, 1))
    if min(stride) < 1 or min(dil) < 1 or min(pad) < 0:
        raise ModelFileError(f"{where()}: stride {stride}, padding {pad}, dilation {dil} out of range")
    c, h, wd = in_shape
    exp = (_conv_out(h, k[0], stride[0], pad[0], dil[0]), _conv_out(wd, k[1], stride[1], pad[1], dil[1]))
    if kind == "pool":
        if h % k[0] or wd % k[1]:
            raise ModelFileError(f"{where('kernelSize')}: pooling {k} over a {h}x{wd} map: sizes must be "
                                 f"multiples of the kernel (lava-dl pads the rest on one side, Loihi cannot)")
        if out != (c, *exp):
            raise ModelFileError(f"{where('shape')}: {out}, but pooling {in_shape} gives {(c, *exp)}")
        return PoolLayer(index=where.index, in_shape=tuple(in_shape), out_shape=out, weight=w, stride=stride,
                         padding=pad, dilation=dil, neuron_spec=neuron, notes=tuple(notes))
    groups = int(_ints(lg, "groups", where, 1).reshape(-1)[0]) if "groups" in lg else 1
    if groups < 1 or c % groups or w.shape[0] % groups or w.shape[1] * groups != c:
        raise ModelFileError(f"{where('weight')}: shape {w.shape} with groups {groups} does not take {c} "
                             f"input channels")
    if out != (w.shape[0], *exp):
        raise ModelFileError(f"{where('shape')}: {out}, but the convolution of {in_shape} gives "
                             f"{(w.shape[0], *exp)}")
    return ConvLayer(index=where.index, in_shape=tuple(in_shape), out_shape=out, weight=w, stride=stride,
                     padding=pad, dilation=dil, groups=groups, bias=_bias(lg, where, out[0], out[0], notes=notes),
                     neuron_spec=neuron, notes=tuple(notes))
