"""Model files: the NetX HDF5 export of SNN targets (+ JSON sidecar), and an HDF5 layout for ANNs.

The exported ``.net`` file is the single source of truth of an SNN target: ``load_snn`` rebuilds the
lava-dl twin from the integer weights and device parameters in the file, so the twin, the file and the
Lava simulator all run the same fixed-point network. The sidecar (same name, ``.json``) adds what NetX
has no field for: the number of time steps, the encoding, the surrogate-gradient settings, the
posterior scale, training settings and results, and the sha256 of the ``.net`` file.

ANN models (MI-FACE targets, evaluation CNNs) are written as HDF5 with a ``brainleaks_format``
attribute, a JSON ``metadata`` attribute (parsed as data, never evaluated) and one dataset per tensor
of the model's ``state_dict``. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import ModelFileError
from ..fileio import atomic_h5, check_dataset, open_h5, read_attr, read_dataset, sha256_file, write_json_atomic
from ..safety import check_model_metadata, check_sidecar
from .ann import ANNSpec, SigmoidMLP
from .snn import NeuronConfig, SNNSpec, SpikingMLP

log = logging.getLogger(__name__)

SNN_FORMAT = "brainleaks-snn/1"
WEIGHT_SCALE = 64  # SLAYER's w_scale: the file holds weight * 64 (even integers for the 8-bit quantizer)
DECAY_SCALE = 4096  # SLAYER's p_scale: decays are stored * 4096
MAX_FIXED_POINT = 2**31  # |weight| and thresholds must fit Loihi's fixed-point registers (and int64 safely)


def sidecar_path(net_path: str | Path) -> Path:
    return Path(net_path).with_suffix(".json")


@dataclass
class SNNTarget:
    """An SNN target loaded from its .net file: the lava-dl twin plus its sidecar metadata."""

    model: SpikingMLP
    path: Path
    sha256: str
    metadata: dict = field(default_factory=dict)

    @property
    def spec(self) -> SNNSpec:
        return self.model.spec

    arch = "snn"


@dataclass
class ANNTarget:
    model: torch.nn.Module
    path: Path
    sha256: str
    metadata: dict = field(default_factory=dict)

    arch = "ann"


# ----------------------------------------------------------------------------------------------
# SNN: NetX export / import
# ----------------------------------------------------------------------------------------------

def export_snn(model: SpikingMLP, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``model`` as a NetX HDF5 file (``layer/0``, ``layer/1``, ...) and its JSON sidecar.

    Both files are written atomically. Returns the path of the .net file.
    """
    path = Path(path)
    model = model.cpu()
    if any(b.neuron.shape is None for b in model.blocks):
        # neuron shapes are set by the first forward pass; one pass of zeros sets them.
        with torch.no_grad():
            model(torch.zeros(1, model.num_inputs, 2))
    with atomic_h5(path) as f:
        layers = f.create_group("layer")
        for i, block in enumerate(model.blocks):
            block.export_hdf5(layers.create_group(str(i)))
    meta = dict(metadata or {})
    meta.update({
        "format": SNN_FORMAT,
        "arch": "snn",
        "spec": model.spec.to_dict(),
        "net_file": path.name,
        "net_sha256": sha256_file(path),
    })
    write_json_atomic(sidecar_path(path), meta)
    log.info("exported SNN to %s", path)
    return path


def _read_scalar(group: h5py.Group, key: str, where: str):
    if key not in group:
        raise ModelFileError(f"{where}: missing '{key}'")
    try:
        value = read_dataset(group[key], f"{where}/{key}", max_elements=16)
    except ModelFileError:
        raise
    except Exception as e:  # h5py raises many kinds on corrupt data
        raise ModelFileError(f"{where}/{key}: unreadable ({e})") from None
    if value.size != 1:
        raise ModelFileError(f"{where}/{key}: expected one value (layers with per-neuron values are not supported), got shape {value.shape}")
    return value.reshape(-1)[0]


def read_net_layers(path: str | Path) -> list[dict]:
    """Parse and check the dense CUBA layers of a NetX file: weights (integers) and device params.

    The schema is strict (what ``export_snn`` writes): NetX reads every key of a layer, so a key the
    lava-dl twin does not model (a bias, delays, graded spikes, a refractory delay) would make Lava run
    another network than the twin; such files are refused, as are datasets of types the toolkit never
    writes (before anything converts them).
    """
    path = Path(path)
    layers = []
    with open_h5(path, "model file") as f:
        try:
            if "layer" not in f or not isinstance(f["layer"], h5py.Group):
                raise ModelFileError(f"{path}: not a NetX network file (no 'layer' group)")
            _check_all_datasets(f, path)
            group = f["layer"]
            keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if not keys or any(not k.isdigit() for k in keys) or [int(k) for k in keys] != list(range(len(keys))):
                raise ModelFileError(f"{path}: 'layer' group must hold layers 0..N-1, found {sorted(group.keys())}")
            for k in keys:
                where = f"{path}: layer/{k}"
                lg = group[k]
                if not isinstance(lg, h5py.Group) or "type" not in lg:
                    raise ModelFileError(f"{where}: missing 'type'")
                unknown = sorted(set(lg.keys()) - LAYER_KEYS)
                if unknown:
                    raise ModelFileError(f"{where}: unsupported keys {unknown} (a dense CUBA layer has "
                                         f"{', '.join(sorted(LAYER_KEYS))})")
                ltype = read_dataset(lg["type"], f"{where}/type", max_elements=16)
                if ltype.size != 1:
                    raise ModelFileError(f"{where}/type: expected one layer type, got shape {ltype.shape}")
                ltype = ltype.reshape(-1)[0]
                ltype = ltype.decode("ascii", "replace") if isinstance(ltype, bytes) else str(ltype)
                if ltype != "dense":
                    raise ModelFileError(f"{where}: layer type '{ltype}' is not supported (only 'dense' CUBA layers)")
                if "weight" not in lg or "neuron" not in lg:
                    raise ModelFileError(f"{where}: a dense layer needs 'weight' and 'neuron'")
                w = read_dataset(lg["weight"], f"{where}/weight")
                if w.ndim != 2 or 0 in w.shape:
                    raise ModelFileError(f"{where}/weight: expected a 2-D (out, in) array, got shape {w.shape}")
                if w.dtype.kind not in "iuf":
                    raise ModelFileError(f"{where}/weight: expected numbers, got dtype {w.dtype}")
                if (not np.all(np.isfinite(w)) or np.any(w != np.round(w))
                        or np.any(np.abs(w.astype(np.float64)) >= MAX_FIXED_POINT)):
                    raise ModelFileError(f"{where}/weight: weights must be finite integers (NetX fixed point) "
                                         f"of magnitude < 2**31")
                neuron = lg["neuron"]
                if not isinstance(neuron, h5py.Group):
                    raise ModelFileError(f"{where}/neuron: expected a group of device parameters")
                unknown = sorted(set(neuron.keys()) - set(NEURON_KEYS))
                if unknown:
                    raise ModelFileError(f"{where}/neuron: unsupported keys {unknown} (a CUBA neuron has "
                                         f"{', '.join(sorted(NEURON_KEYS))})")
                for key, want in NEURON_KEYS.items():
                    if want is not None and key in neuron:
                        v = _read_scalar(neuron, key, f"{where}/neuron")
                        if isinstance(v, (bytes, str)) or v != want:
                            raise ModelFileError(f"{where}/neuron/{key}: must be {want} (the twin models "
                                                 f"exactly that), got {v!r}")
                ntype = _read_scalar(neuron, "type", f"{where}/neuron")
                ntype = ntype.decode("ascii", "replace") if isinstance(ntype, bytes) else str(ntype)
                if ntype != "CUBA":
                    raise ModelFileError(f"{where}/neuron: neuron type '{ntype}' is not supported (only CUBA)")
                params = {}
                for key in ("iDecay", "vDecay", "vThMant"):
                    v = _read_scalar(neuron, key, f"{where}/neuron")
                    if not isinstance(v, (np.integer, np.floating, int, float)) or isinstance(v, (bool, np.bool_)):
                        raise ModelFileError(f"{where}/neuron/{key}: expected a number, got {v!r}")
                    params[key] = float(v)
                if not (0 <= params["iDecay"] <= DECAY_SCALE and 0 <= params["vDecay"] <= DECAY_SCALE
                        and 0 < params["vThMant"] < MAX_FIXED_POINT):
                    raise ModelFileError(f"{where}/neuron: device parameters out of range {params}")
                if "shape" in lg:
                    shape = read_dataset(lg["shape"], f"{where}/shape", max_elements=8).reshape(-1)
                    if shape.dtype.kind not in "iu" or int(np.prod(shape.astype(np.int64))) != w.shape[0]:
                        raise ModelFileError(f"{where}: shape {shape.tolist()} does not match weight rows {w.shape[0]}")
                features = {key: _read_scalar(lg, key, where) for key in ("inFeatures", "outFeatures") if key in lg}
                layers.append({"weight": w.astype(np.int64), **params, "features": features})
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError) as e:
            raise ModelFileError(f"{path}: corrupt NetX file ({type(e).__name__}: {e})") from None
    for i in range(1, len(layers)):
        if layers[i]["weight"].shape[1] != layers[i - 1]["weight"].shape[0]:
            raise ModelFileError(
                f"{path}: layer/{i} takes {layers[i]['weight'].shape[1]} inputs but layer/{i - 1} has "
                f"{layers[i - 1]['weight'].shape[0]} neurons")
    for i, layer in enumerate(layers):  # NetX sizes its processes from these: they must agree with the weights
        w = layer["weight"]
        for key, v in layer.pop("features").items():
            n = w.shape[1] if key == "inFeatures" else w.shape[0]
            if isinstance(v, (bytes, str, np.bool_, bool)) or v != n:
                raise ModelFileError(f"{path}: layer/{i}/{key} is {v!r}, but the weight shape is {w.shape}")
    first = layers[0]
    for i, layer in enumerate(layers[1:], start=1):
        if any(layer[k] != first[k] for k in ("iDecay", "vDecay", "vThMant")):
            raise ModelFileError(f"{path}: layer/{i} has other neuron parameters than layer/0 (not supported)")
    return layers


LAYER_KEYS = {"type", "weight", "neuron", "shape", "inFeatures", "outFeatures"}
NEURON_KEYS = {"type": None, "iDecay": None, "vDecay": None, "vThMant": None, "refDelay": 1, "gradedSpike": False}


def _check_all_datasets(f: h5py.File, path: Path) -> None:
    """Every dataset in the file has a type and size the toolkit writes (NetX reads them all)."""
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    if len(names) > 100_000:
        raise ModelFileError(f"{path}: {len(names)} datasets; not a NetX network the toolkit writes")
    for name in names:
        if not isinstance(name, str):
            raise ModelFileError(f"{path}: object name {name!r} is not text")
        check_dataset(f[name], f"{path}: {name}")


MAX_STEPS = 1 << 20  # time steps per sample; far beyond any trained target
MAX_SIDECAR_BYTES = 16 << 20


def _is_finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(float(v))


def read_sidecar(net_path: str | Path) -> dict:
    p = sidecar_path(net_path)
    if not p.is_file():
        return {}
    try:
        if p.stat().st_size > MAX_SIDECAR_BYTES:
            raise ModelFileError(f"{p}: sidecar of {p.stat().st_size} bytes; not a sidecar the toolkit writes")
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{p}: sidecar is not valid JSON ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise ModelFileError(f"{p}: cannot read the sidecar ({e})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{p}: sidecar must hold a JSON object")
    return meta


def load_snn(path: str | Path) -> SNNTarget:
    """Rebuild the lava-dl twin of a NetX file (weights and device parameters from the file)."""
    path = Path(path)
    layers = read_net_layers(path)
    meta = read_sidecar(path)
    check_sidecar(meta, sidecar_path(path), SNN_FORMAT)
    sha = sha256_file(path)
    spec_d = meta.get("spec") or {}
    if not meta:
        log.warning("%s has no sidecar %s: assuming T=25 and default surrogate settings", path, sidecar_path(path).name)
    elif meta.get("net_sha256") not in (None, sha):
        log.warning("%s: sha256 differs from the one recorded in its sidecar (file changed since export)", path)
    first = layers[0]
    side = sidecar_path(path)
    try:
        if not isinstance(spec_d, dict):
            raise TypeError(f"'spec' must be a JSON object, got {type(spec_d).__name__}")
        nspec = spec_d.get("neuron") or {}
        if not isinstance(nspec, dict):
            raise TypeError(f"'spec.neuron' must be a JSON object, got {type(nspec).__name__}")
        nspec = dict(nspec)
        for key in ("tau_grad", "scale_grad"):  # the rest comes from the .net file
            if key in nspec and not _is_finite_number(nspec[key]):
                raise TypeError(f"'spec.neuron.{key}' must be a finite number, got {nspec[key]!r}")
        nspec.update({
            "threshold": first["vThMant"] / WEIGHT_SCALE,
            "current_decay": first["iDecay"] / DECAY_SCALE,
            "voltage_decay": first["vDecay"] / DECAY_SCALE,
        })
        steps = spec_d.get("steps", 25)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 < steps <= MAX_STEPS:
            raise ValueError(f"'spec.steps' must be an integer in 1..{MAX_STEPS}, got {steps!r}")
        scale = spec_d.get("posterior_scale", 1.0)
        if not _is_finite_number(scale):
            raise ValueError(f"'spec.posterior_scale' must be a finite number, got {scale!r}")
        readout = spec_d.get("readout", "spikes")
        if not isinstance(readout, str):
            raise ValueError(f"'spec.readout' must be a string, got {readout!r}")
        spec = SNNSpec(
            sizes=tuple([int(layers[0]["weight"].shape[1])] + [int(l["weight"].shape[0]) for l in layers]),
            steps=steps,
            neuron=NeuronConfig(**nspec),
            posterior_scale=float(scale),
            readout=readout,
        )
        model = SpikingMLP(spec)
    except (TypeError, ValueError, ArithmeticError) as e:  # InputError is a ValueError
        raise ModelFileError(f"{side}: invalid spec ({e})") from None
    with torch.no_grad():
        for block, layer in zip(model.blocks, layers):
            w = torch.as_tensor(layer["weight"] / WEIGHT_SCALE, dtype=torch.float32)
            block.synapse.weight.data.copy_(w.reshape(block.synapse.weight.shape))
    model.eval()
    return SNNTarget(model=model, path=path, sha256=sha, metadata=meta)


# ----------------------------------------------------------------------------------------------
# Torch models (ANN targets, evaluators): HDF5 of the state dict + JSON metadata
# ----------------------------------------------------------------------------------------------

def save_torch_h5(model: torch.nn.Module, path: str | Path, fmt: str, metadata: dict) -> Path:
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["brainleaks_format"] = fmt
        f.attrs["metadata"] = json.dumps(metadata, sort_keys=True)
        g = f.create_group("state_dict")
        for name, tensor in model.state_dict().items():
            g.create_dataset(name, data=tensor.detach().cpu().numpy())
    return path


def read_torch_h5(path: str | Path, fmt_prefix: str) -> tuple[dict, dict[str, np.ndarray], str]:
    """Return (metadata, arrays, format) of a file written by ``save_torch_h5``."""
    path = Path(path)
    with open_h5(path, "model file") as f:
        try:
            fmt = read_attr(f, "brainleaks_format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if not isinstance(fmt, str) or not fmt.startswith(fmt_prefix):
                raise ModelFileError(f"{path}: not a brainleaks {fmt_prefix} model file (format attribute {fmt!r})")
            raw = read_attr(f, "metadata", "{}")
            raw = raw.decode() if isinstance(raw, bytes) else raw
            try:
                meta = json.loads(raw)
            except (TypeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
                raise ModelFileError(f"{path}: attribute 'metadata' is not valid JSON ({type(e).__name__}: {e})") from None
            if not isinstance(meta, dict):
                raise ModelFileError(f"{path}: metadata attribute must be a JSON object")
            if "state_dict" not in f or not isinstance(f["state_dict"], h5py.Group):
                raise ModelFileError(f"{path}: missing 'state_dict' group")
            names = []
            f["state_dict"].visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            if any(not isinstance(n, str) for n in names):  # h5py gives bytes for names that are not UTF-8
                raise ModelFileError(f"{path}: state_dict holds a tensor name that is not text: "
                                     f"{[n for n in names if not isinstance(n, str)][0]!r}")
            arrays = {name: read_dataset(f["state_dict"][name], f"{path}: state_dict/{name}") for name in names}
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError) as e:
            raise ModelFileError(f"{path}: corrupt model file ({type(e).__name__}: {e})") from None
    return meta, arrays, fmt


def check_state(expected: dict[str, torch.Tensor], arrays: dict[str, np.ndarray], path: Path) -> None:
    """The file's tensors must be exactly the model's: same names, shapes, numeric and finite."""
    if set(expected) != set(arrays):
        raise ModelFileError(f"{path}: tensors {sorted(arrays)} do not match the model's {sorted(expected)}")
    for k, v in expected.items():
        a = arrays[k]
        if tuple(a.shape) != tuple(v.shape):
            raise ModelFileError(f"{path}: tensor '{k}' has shape {a.shape}, expected {tuple(v.shape)}")
        if a.dtype.kind not in "biuf":
            raise ModelFileError(f"{path}: tensor '{k}' must hold numbers, got dtype {a.dtype}")


def load_state(model: torch.nn.Module, arrays: dict[str, np.ndarray], path: Path) -> None:
    expected = model.state_dict()
    check_state(expected, arrays, path)
    state = {}
    for k, v in expected.items():
        a = arrays[k]
        with np.errstate(over="ignore", invalid="ignore"):
            a = a.astype(torch.empty((), dtype=v.dtype).numpy().dtype)  # e.g. float64 -> float32 may overflow
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path}: tensor '{k}' holds NaN or inf (or values beyond {a.dtype})")
        state[k] = torch.as_tensor(a)
    model.load_state_dict(state)


ANN_FORMAT = "brainleaks-ann/1"


def save_ann(model: SigmoidMLP, path: str | Path, metadata: dict | None = None) -> Path:
    meta = dict(metadata or {})
    meta.update({"format": ANN_FORMAT, "arch": "ann", "spec": model.spec.to_dict()})
    return save_torch_h5(model, path, ANN_FORMAT, meta)


def load_ann(path: str | Path) -> ANNTarget:
    path = Path(path)
    meta, arrays, _ = read_torch_h5(path, "brainleaks-ann")
    check_model_metadata(meta, path)
    try:
        sizes = meta["spec"]["sizes"]
        if not isinstance(sizes, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in sizes):
            raise TypeError(f"'sizes' must be a list of integers, got {sizes!r}")
        if any(s > MAX_FIXED_POINT for s in sizes):
            raise ValueError(f"'sizes' {sizes} beyond any model the toolkit builds")
        spec = ANNSpec(sizes=tuple(sizes))
        with torch.device("meta"):  # tensor shapes only, nothing allocated: checked before building
            expected = SigmoidMLP(spec).state_dict()
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:  # InputError is a ValueError
        raise ModelFileError(f"{path}: invalid ANN spec in metadata ({type(e).__name__}: {e})") from None
    check_state(expected, arrays, path)
    model = SigmoidMLP(spec)
    load_state(model, arrays, path)
    model.eval()
    return ANNTarget(model=model, path=path, sha256=sha256_file(path), metadata=meta)


def load_target(path: str | Path) -> SNNTarget | ANNTarget:
    """Load an SNN (.net NetX file) or ANN (brainleaks HDF5) target, deciding by the file's content."""
    path = Path(path)
    with open_h5(path, "model file") as f:  # lookups in a corrupt file become ModelFileError
        is_net = "layer" in f
        fmt = read_attr(f, "brainleaks_format")
    if is_net:
        return load_snn(path)
    fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
    if isinstance(fmt, str) and fmt.startswith("brainleaks-ann"):
        return load_ann(path)
    raise ModelFileError(f"{path}: neither a NetX SNN file (no 'layer' group) nor a brainleaks ANN file")
