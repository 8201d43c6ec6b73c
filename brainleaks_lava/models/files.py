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
from ..fileio import atomic_h5, open_h5, read_attr, read_dataset, sha256_file, write_json_atomic
from ..netx.sidecar import (MAX_SIDECAR_BYTES, SNN_FORMAT, read_deployed_network, read_sidecar,  # noqa: F401
                             sidecar_path)  # (torch-free: info reads .net files with them; re-exported here)
from ..safety import check_model_metadata
from .ann import ANNSpec, SigmoidMLP
from .snn import SNNSpec, SpikingMLP

log = logging.getLogger(__name__)

MAX_FIXED_POINT = 2**31  # |weight| and thresholds must fit Loihi's fixed-point registers (and int64 safely)


class _OnDevice:
    """``device`` and ``to(device)`` of a target: where its ``model`` computes, and moving it there."""

    @property
    def device(self):
        """Where the model (an SNN's twin) computes (``to`` moves it)."""
        from .device import module_device

        return module_device(self.model)

    def to(self, device):
        """Move the model to ``device`` (a name, see ``models.device``, or a ``torch.device``); returns self."""
        from .device import resolve_device

        self.model.to(resolve_device(device))
        return self


@dataclass
class SNNTarget(_OnDevice):
    """An SNN target loaded from its .net file: the lava-dl twin plus its sidecar metadata."""

    model: "DeployedSNN"  # noqa: F821 - netx.target
    path: Path
    sha256: str
    metadata: dict = field(default_factory=dict)

    @property
    def spec(self) -> SNNSpec:
        return self.model.spec

    @property
    def net(self):
        return self.model.net

    @property
    def deployment(self):
        return self.model.deployment

    arch = "snn"


@dataclass
class ANNTarget(_OnDevice):
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
    if any(getattr(b, "neuron", None) is not None and b.neuron.shape is None for b in model.blocks):
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


def load_snn(path: str | Path, options: dict | None = None, card: str | Path | None = None,
             device=None) -> SNNTarget:
    """Rebuild the lava-dl twin of any NetX file (``netx.read_network``) with its deployment
    (``netx.deployment.resolve``: ``options``, a deployment card, the sidecar, defaults), on ``device``
    (``models.device.resolve_device``; None: the CPU)."""
    from ..netx.sidecar import read_deployment
    from ..netx.target import DeployedSNN
    from .device import resolve_device

    dev = resolve_device(device)  # a bad name fails before the file is read
    path = Path(path)
    net, dep, meta = read_deployment(path, options, card)
    model = DeployedSNN(net, dep)
    model.eval()
    return SNNTarget(model=model.to(dev), path=path, sha256=net.sha256, metadata=meta)


# ----------------------------------------------------------------------------------------------
# Torch models (ANN targets, evaluators): HDF5 of the state dict + JSON metadata
# ----------------------------------------------------------------------------------------------

def write_torch_state(f, model: torch.nn.Module, fmt: str, metadata: dict) -> None:
    """Write the format tag, the JSON metadata and the model's state dict (group ``state_dict``) into the
    open HDF5 file ``f``."""
    f.attrs["brainleaks_format"] = fmt
    f.attrs["metadata"] = json.dumps(metadata, sort_keys=True)
    g = f.create_group("state_dict")
    for name, tensor in model.state_dict().items():
        g.create_dataset(name, data=tensor.detach().cpu().numpy())


def save_torch_h5(model: torch.nn.Module, path: str | Path, fmt: str, metadata: dict) -> Path:
    path = Path(path)
    with atomic_h5(path) as f:
        write_torch_state(f, model, fmt, metadata)
    return path


def read_torch_h5(path: str | Path, fmt_prefix: str) -> tuple[dict, dict[str, np.ndarray], str]:
    """Return (metadata, arrays, format) of a file written by ``save_torch_h5``."""
    path = Path(path)
    with open_h5(path, "model file") as f:
        try:
            fmt = read_attr(f, "brainleaks_format")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if not isinstance(fmt, str) or not fmt.startswith(fmt_prefix):
                from ..info import format_kind, wrong_kind

                raise ModelFileError(wrong_kind(f, path, format_kind(fmt_prefix) or fmt_prefix)
                                     or f"{path}: not a brainleaks {fmt_prefix} model file (format attribute {fmt!r})")
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


def load_ann(path: str | Path, device=None) -> ANNTarget:
    """A brainleaks ANN file as a target, on ``device`` (``models.device.resolve_device``; None: the CPU)."""
    from .device import resolve_device

    dev = resolve_device(device)
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
    return ANNTarget(model=model.to(dev), path=path, sha256=sha256_file(path), metadata=meta)


def load_target(path: str | Path, options: dict | None = None, card=None, device=None) -> SNNTarget | ANNTarget:
    """Load an SNN (.net NetX file) or ANN (brainleaks HDF5) target, deciding by the file's content
    (``options`` / ``card``: the deployment of a NetX file, see ``load_snn``), with its model on ``device``
    ("cpu", "auto", "cuda", "cuda:N" or a ``torch.device``; None: the CPU; see ``models.device``)."""
    from .device import resolve_device

    resolve_device(device)  # a bad name or a missing GPU fails before the file is read
    path = Path(path)
    with open_h5(path, "model file") as f:  # lookups in a corrupt file become ModelFileError
        is_net = "layer" in f
        fmt = read_attr(f, "brainleaks_format")
        if not is_net:
            from ..info import wrong_kind

            other = wrong_kind(f, path, "a target model (a NetX .net SNN or a brainleaks ANN .h5)")
    if is_net:
        return load_snn(path, options=options, card=card, device=device)
    fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
    if isinstance(fmt, str) and fmt.startswith("brainleaks-ann"):
        return load_ann(path, device=device)
    if other:  # an evaluator, a reconstruction, a checkpoint
        raise ModelFileError(other)
    raise ModelFileError(f"{path}: neither a NetX SNN file (no 'layer' group) nor a brainleaks ANN file")
