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
from ..fileio import atomic_path, open_h5, sha256_file, write_json_atomic
from .ann import ANNSpec, SigmoidMLP
from .snn import NeuronConfig, SNNSpec, SpikingMLP

log = logging.getLogger(__name__)

SNN_FORMAT = "brainleaks-snn/1"
WEIGHT_SCALE = 64  # SLAYER's w_scale: the file holds weight * 64 (even integers for the 8-bit quantizer)
DECAY_SCALE = 4096  # SLAYER's p_scale: decays are stored * 4096


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
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
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
        value = np.asarray(group[key][()])
    except Exception as e:  # h5py raises many kinds on corrupt data
        raise ModelFileError(f"{where}/{key}: unreadable ({e})") from None
    if value.size != 1:
        raise ModelFileError(f"{where}/{key}: expected one value (layers with per-neuron values are not supported), got shape {value.shape}")
    return value.reshape(-1)[0]


def read_net_layers(path: str | Path) -> list[dict]:
    """Parse and check the dense CUBA layers of a NetX file: weights (integers) and device params."""
    path = Path(path)
    layers = []
    with open_h5(path, "model file") as f:
        try:
            if "layer" not in f or not isinstance(f["layer"], h5py.Group):
                raise ModelFileError(f"{path}: not a NetX network file (no 'layer' group)")
            group = f["layer"]
            keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
            if not keys or any(not k.isdigit() for k in keys) or [int(k) for k in keys] != list(range(len(keys))):
                raise ModelFileError(f"{path}: 'layer' group must hold layers 0..N-1, found {sorted(group.keys())}")
            for k in keys:
                where = f"{path}: layer/{k}"
                lg = group[k]
                if not isinstance(lg, h5py.Group) or "type" not in lg:
                    raise ModelFileError(f"{where}: missing 'type'")
                ltype = lg["type"][()]
                ltype = (ltype[0] if np.ndim(ltype) else ltype)
                ltype = ltype.decode("ascii", "replace") if isinstance(ltype, bytes) else str(ltype)
                if ltype != "dense":
                    raise ModelFileError(f"{where}: layer type '{ltype}' is not supported (only 'dense' CUBA layers)")
                if "weight" not in lg or "neuron" not in lg:
                    raise ModelFileError(f"{where}: a dense layer needs 'weight' and 'neuron'")
                w = np.asarray(lg["weight"][()])
                if w.ndim != 2 or 0 in w.shape:
                    raise ModelFileError(f"{where}/weight: expected a 2-D (out, in) array, got shape {w.shape}")
                if not np.all(np.isfinite(w)) or np.any(w != np.round(w)):
                    raise ModelFileError(f"{where}/weight: weights must be finite integers (NetX fixed point)")
                neuron = lg["neuron"]
                ntype = _read_scalar(neuron, "type", f"{where}/neuron")
                ntype = ntype.decode("ascii", "replace") if isinstance(ntype, bytes) else str(ntype)
                if ntype != "CUBA":
                    raise ModelFileError(f"{where}/neuron: neuron type '{ntype}' is not supported (only CUBA)")
                params = {key: float(_read_scalar(neuron, key, f"{where}/neuron"))
                          for key in ("iDecay", "vDecay", "vThMant")}
                if not (0 <= params["iDecay"] <= DECAY_SCALE and 0 <= params["vDecay"] <= DECAY_SCALE and params["vThMant"] > 0):
                    raise ModelFileError(f"{where}/neuron: device parameters out of range {params}")
                if "shape" in lg:
                    shape = np.asarray(lg["shape"][()]).reshape(-1)
                    if int(np.prod(shape)) != w.shape[0]:
                        raise ModelFileError(f"{where}: shape {shape.tolist()} does not match weight rows {w.shape[0]}")
                layers.append({"weight": w.astype(np.int64), **params})
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
            raise ModelFileError(f"{path}: corrupt NetX file ({type(e).__name__}: {e})") from None
    for i in range(1, len(layers)):
        if layers[i]["weight"].shape[1] != layers[i - 1]["weight"].shape[0]:
            raise ModelFileError(
                f"{path}: layer/{i} takes {layers[i]['weight'].shape[1]} inputs but layer/{i - 1} has "
                f"{layers[i - 1]['weight'].shape[0]} neurons")
    first = layers[0]
    for i, layer in enumerate(layers[1:], start=1):
        if any(layer[k] != first[k] for k in ("iDecay", "vDecay", "vThMant")):
            raise ModelFileError(f"{path}: layer/{i} has other neuron parameters than layer/0 (not supported)")
    return layers


def read_sidecar(net_path: str | Path) -> dict:
    p = sidecar_path(net_path)
    if not p.is_file():
        return {}
    try:
        meta = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{p}: sidecar is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{p}: sidecar must hold a JSON object")
    return meta


def load_snn(path: str | Path) -> SNNTarget:
    """Rebuild the lava-dl twin of a NetX file (weights and device parameters from the file)."""
    path = Path(path)
    layers = read_net_layers(path)
    meta = read_sidecar(path)
    sha = sha256_file(path)
    spec_d = meta.get("spec") or {}
    if not meta:
        log.warning("%s has no sidecar %s: assuming T=25 and default surrogate settings", path, sidecar_path(path).name)
    elif meta.get("net_sha256") not in (None, sha):
        log.warning("%s: sha256 differs from the one recorded in its sidecar (file changed since export)", path)
    first = layers[0]
    try:
        nspec = dict(spec_d.get("neuron") or {})
        nspec.update({
            "threshold": first["vThMant"] / WEIGHT_SCALE,
            "current_decay": first["iDecay"] / DECAY_SCALE,
            "voltage_decay": first["vDecay"] / DECAY_SCALE,
        })
        spec = SNNSpec(
            sizes=tuple([int(layers[0]["weight"].shape[1])] + [int(l["weight"].shape[0]) for l in layers]),
            steps=int(spec_d.get("steps", 25)),
            neuron=NeuronConfig(**nspec),
            posterior_scale=float(spec_d.get("posterior_scale", 1.0)),
            readout=str(spec_d.get("readout", "spikes")),
        )
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{sidecar_path(path)}: invalid spec ({e})") from None
    model = SpikingMLP(spec)
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
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
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
            fmt = f.attrs.get("brainleaks_format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if not isinstance(fmt, str) or not fmt.startswith(fmt_prefix):
                raise ModelFileError(f"{path}: not a brainleaks {fmt_prefix} model file (format attribute {fmt!r})")
            raw = f.attrs.get("metadata", "{}")
            raw = raw.decode() if isinstance(raw, bytes) else raw
            try:
                meta = json.loads(raw)
            except (TypeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
                raise ModelFileError(f"{path}: attribute 'metadata' is not valid JSON ({type(e).__name__}: {e})") from None
            if not isinstance(meta, dict):
                raise ModelFileError(f"{path}: metadata attribute must be a JSON object")
            if "state_dict" not in f:
                raise ModelFileError(f"{path}: missing 'state_dict' group")
            arrays = {}
            f["state_dict"].visititems(
                lambda name, obj: arrays.__setitem__(name, np.asarray(obj[()])) if isinstance(obj, h5py.Dataset) else None)
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, json.JSONDecodeError) as e:
            raise ModelFileError(f"{path}: corrupt model file ({type(e).__name__}: {e})") from None
    return meta, arrays, fmt


def load_state(model: torch.nn.Module, arrays: dict[str, np.ndarray], path: Path) -> None:
    expected = model.state_dict()
    if set(expected) != set(arrays):
        raise ModelFileError(f"{path}: tensors {sorted(arrays)} do not match the model's {sorted(expected)}")
    state = {}
    for k, v in expected.items():
        a = arrays[k]
        if tuple(a.shape) != tuple(v.shape):
            raise ModelFileError(f"{path}: tensor '{k}' has shape {a.shape}, expected {tuple(v.shape)}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ModelFileError(f"{path}: tensor '{k}' holds NaN or inf")
        state[k] = torch.as_tensor(a).to(v.dtype)
    model.load_state_dict(state)


ANN_FORMAT = "brainleaks-ann/1"


def save_ann(model: SigmoidMLP, path: str | Path, metadata: dict | None = None) -> Path:
    meta = dict(metadata or {})
    meta.update({"format": ANN_FORMAT, "arch": "ann", "spec": model.spec.to_dict()})
    return save_torch_h5(model, path, ANN_FORMAT, meta)


def load_ann(path: str | Path) -> ANNTarget:
    path = Path(path)
    meta, arrays, _ = read_torch_h5(path, "brainleaks-ann")
    try:
        spec = ANNSpec.from_dict(meta["spec"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: invalid ANN spec in metadata ({e})") from None
    model = SigmoidMLP(spec)
    load_state(model, arrays, path)
    model.eval()
    return ANNTarget(model=model, path=path, sha256=sha256_file(path), metadata=meta)


def load_target(path: str | Path) -> SNNTarget | ANNTarget:
    """Load an SNN (.net NetX file) or ANN (brainleaks HDF5) target, deciding by the file's content."""
    path = Path(path)
    with open_h5(path, "model file") as f:
        is_net = "layer" in f
        fmt = f.attrs.get("brainleaks_format")
    if is_net:
        return load_snn(path)
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if isinstance(fmt, str) and fmt.startswith("brainleaks-ann"):
        return load_ann(path)
    raise ModelFileError(f"{path}: neither a NetX SNN file (no 'layer' group) nor a brainleaks ANN file")
