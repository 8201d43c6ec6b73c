"""Training checkpoints: an interrupted training resumes after its last finished epoch.

At the end of every epoch :func:`~brainleaks_lava.models.training.train` writes ``<output>.ckpt.h5``
atomically (HDF5, nothing pickled): the model's state dict, the optimizer's per-parameter state, the state of
the training generator (shuffling and encoding draws), the epoch and the history so far, and the
*fingerprint* of everything that decides the trained weights: the training settings (all but the thread count,
the device and the number of epochs, which do not change what an epoch computes), the content of the training
and validation data, the model's initial weights and the caller's description of model and encoding.

A later training with the same fingerprint continues after that epoch and ends with the weights an
uninterrupted training would have (bit for bit); a checkpoint with another fingerprint, or one that cannot be
read, is reported and ignored (then replaced). The caller removes the checkpoint once the trained model's file
is written (:func:`remove_checkpoint`).

Every checkpoint carries a checksum of its state (attribute ``state_sha256``: sha256 over the metadata and every
dataset of the file, in sorted order, each with its name, dtype and shape; :func:`state_digest`). A checkpoint
whose content no longer matches it was changed after it was written (a weight edited, a bit flipped):
:func:`read_checkpoint` raises :class:`CheckpointChanged` and the training refuses to resume from it (one line,
the file kept as it is: remove it, or train with ``--no-resume``). A checkpoint without a checksum (written
before checksums existed) cannot be verified: it is treated like an unreadable one, reported and not resumed
from (the training starts at epoch 1 and replaces it).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from .. import __version__
from ..errors import BrainleaksError, ModelFileError
from ..fileio import atomic_h5, open_h5, read_attr, read_dataset
from .files import write_torch_state

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "brainleaks-checkpoint/1"
CHECKSUM_ATTR = "state_sha256"  # sha256 of the state (state_digest), written with it
#: TrainConfig fields that do not change what an epoch computes: a training interrupted with 2 threads may
#: resume with 1 or with more epochs asked for.
NOT_FINGERPRINTED = ("threads", "device", "epochs")


class CheckpointChanged(ModelFileError):
    """A checkpoint's content does not match the checksum written with it."""


def checkpoint_path(out: str | Path) -> Path:
    """Where the training of the model file ``out`` keeps its checkpoint: ``out`` + ``.ckpt.h5``."""
    out = Path(out)
    return out.with_name(out.name + ".ckpt.h5")


def _update_arrays(h, arrays) -> None:
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8).data if a.size else b"")


def training_fingerprint(config: dict, identity: dict | None, model: torch.nn.Module, images, labels,
                         val=None) -> str:
    """sha256 of what decides a training's result (see the module docstring); ``model`` before training."""
    h = hashlib.sha256()
    settings = {k: v for k, v in config.items() if k not in NOT_FINGERPRINTED}
    h.update(json.dumps({"train": settings, "identity": identity or {}, "version": __version__,
                         "format": CHECKPOINT_FORMAT}, sort_keys=True, default=str).encode())
    state = model.state_dict()
    for name in sorted(state):
        h.update(name.encode())
        _update_arrays(h, [state[name].detach().cpu().numpy()])
    _update_arrays(h, [np.asarray(images), np.asarray(labels)])
    if val is not None:
        _update_arrays(h, [np.asarray(val[0]), np.asarray(val[1])])
    return h.hexdigest()


@dataclass
class Checkpoint:
    """What a checkpoint file holds."""

    fingerprint: str
    epoch: int  # epochs finished
    epochs: int  # epochs the training that wrote it was asked for
    history: dict
    model: dict[str, np.ndarray]
    optimizer: dict[int, dict[str, np.ndarray]]
    generator: np.ndarray


def save_checkpoint(path: str | Path, fingerprint: str, epoch: int, epochs: int, history: dict,
                    model: torch.nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> Path:
    """Write the state after ``epoch`` finished epochs to ``path`` (atomically)."""
    path = Path(path)
    meta = {"fingerprint": fingerprint, "epoch": int(epoch), "epochs": int(epochs), "history": history,
            "brainleaks_version": __version__}
    with atomic_h5(path) as f:
        write_torch_state(f, model, CHECKPOINT_FORMAT, meta)
        o = f.create_group("optimizer")
        for idx, state in optimizer.state_dict()["state"].items():
            p = o.create_group(str(idx))
            for key, value in state.items():
                p.create_dataset(key, data=torch.as_tensor(value).detach().cpu().numpy())
        f.create_dataset("generator", data=generator.get_state().numpy())
        f.attrs[CHECKSUM_ATTR] = state_digest(f, path)  # of what the file holds, read back as a reader will
    return path


def _raw(text) -> bytes:
    return text if isinstance(text, bytes) else str(text).encode("utf-8", "surrogatepass")


def state_digest(f: h5py.File, path: str | Path) -> str:
    """sha256 of a checkpoint's state: its format and metadata attributes, then every object in sorted order of
    name: a group by its name, a dataset by its name, dtype, shape and content (read with
    ``fileio.read_dataset``'s bounds)."""
    h = hashlib.sha256()
    for key in ("brainleaks_format", "metadata"):
        h.update(key.encode() + b"\0" + _raw(read_attr(f, key, "")) + b"\0")
    objects: list = []
    f.visititems(lambda name, obj: objects.append((_raw(name), name, isinstance(obj, h5py.Dataset))))
    for raw, name, is_dataset in sorted(objects):
        h.update(raw + (b"\0dataset\0" if is_dataset else b"\0group\0"))
        if is_dataset:
            shown = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
            _update_arrays(h, [read_dataset(f[name], f"{path}: {shown}")])
    return h.hexdigest()


def _verify(f: h5py.File, path: Path) -> None:
    """The checkpoint's content matches its checksum (``CheckpointChanged`` if not; ``ModelFileError`` when it has
    none)."""
    stored = read_attr(f, CHECKSUM_ATTR)
    stored = stored.decode("ascii", "replace") if isinstance(stored, bytes) else stored
    if stored is None:
        raise ModelFileError(f"checkpoint {path} has no checksum of its state (written by an older version): it "
                             f"cannot be verified")
    if not isinstance(stored, str) or stored != state_digest(f, path):
        raise CheckpointChanged(f"checkpoint {path} does not match its checksum: changed since it was written; "
                                f"remove it or use --no-resume")


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else raises ``ModelFileError`` (a checkpoint
    changed since it was written: ``CheckpointChanged``)."""
    path = Path(path)
    with open_h5(path, "checkpoint") as f:
        fmt = read_attr(f, "brainleaks_format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != CHECKPOINT_FORMAT:
            raise ModelFileError(f"{path}: not a brainleaks training checkpoint (format {fmt!r})")
        _verify(f, path)
        raw = read_attr(f, "metadata", "{}")
        try:
            meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            fingerprint, epoch, epochs, history = meta["fingerprint"], meta["epoch"], meta["epochs"], meta["history"]
        except (TypeError, ValueError, KeyError, RecursionError) as e:
            raise ModelFileError(f"{path}: invalid checkpoint metadata ({type(e).__name__}: {e})") from None
        if not (isinstance(fingerprint, str) and isinstance(epoch, int) and isinstance(epochs, int) and epoch >= 1
                and isinstance(history, dict)):
            raise ModelFileError(f"{path}: invalid checkpoint metadata")
        for name in ("state_dict", "optimizer"):
            if not isinstance(f.get(name), h5py.Group):
                raise ModelFileError(f"{path}: missing '{name}' group")
        model = _arrays(f["state_dict"], path)
        optimizer = {}
        for idx, group in f["optimizer"].items():
            if not idx.isdigit() or not isinstance(group, h5py.Group):
                raise ModelFileError(f"{path}: optimizer/{idx} is not a parameter's state")
            optimizer[int(idx)] = {k: read_dataset(v, f"{path}: optimizer/{idx}/{k}") for k, v in group.items()}
        generator = read_dataset(f["generator"], f"{path}: generator") if "generator" in f else None
        if generator is None or generator.dtype != np.uint8 or generator.ndim != 1:
            raise ModelFileError(f"{path}: missing or invalid generator state")
    return Checkpoint(fingerprint, epoch, epochs, history, model, optimizer, generator)


def checkpoint_epoch(path: str | Path, fingerprint: str) -> int:
    """The number of finished epochs the checkpoint at ``path`` holds of the training ``fingerprint`` (read from
    its metadata only); 0 when there is none, it cannot be read or it is another training's."""
    try:
        with open_h5(Path(path), "checkpoint") as f:
            raw = read_attr(f, "metadata", "{}")
            meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            epoch = meta.get("epoch") if meta.get("fingerprint") == fingerprint else 0
    except (BrainleaksError, ValueError, TypeError, AttributeError, RecursionError):
        return 0
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > 0 else 0


def _arrays(group: h5py.Group, path: Path) -> dict[str, np.ndarray]:
    names = []
    group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return {n: read_dataset(group[n], f"{path}: state_dict/{n}") for n in names}


def restore(ckpt: Checkpoint, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            generator: torch.Generator) -> None:
    """Put the checkpoint's state into a freshly built ``model``, ``optimizer`` and ``generator``
    (``ModelFileError`` when it does not fit them; nothing is changed then)."""
    from .files import check_state, load_state

    check_state(model.state_dict(), ckpt.model, path)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state = {}
    for idx, entries in ckpt.optimizer.items():
        if idx >= len(params):
            raise ModelFileError(f"{path}: optimizer state of parameter {idx}; the model has {len(params)}")
        state[idx] = {}
        for key, a in entries.items():
            if a.dtype.kind not in "biuf" or (a.ndim and tuple(a.shape) != tuple(params[idx].shape)):
                raise ModelFileError(f"{path}: optimizer state '{key}' of parameter {idx} has shape {a.shape}, "
                                     f"the parameter {tuple(params[idx].shape)}")
            state[idx][key] = torch.as_tensor(a)
    gen_state = torch.as_tensor(ckpt.generator)
    try:
        torch.Generator().set_state(gen_state)  # checked on a scratch generator before anything is changed
    except RuntimeError as e:
        raise ModelFileError(f"{path}: invalid generator state ({e})") from None
    load_state(model, ckpt.model, path)
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    generator.set_state(gen_state)


def remove_checkpoint(out: str | Path) -> None:
    """Remove the checkpoint of the model file ``out`` (after that file was written)."""
    p = checkpoint_path(out)
    try:
        p.unlink()
        log.debug("removed the checkpoint %s", p)
    except FileNotFoundError:
        pass
