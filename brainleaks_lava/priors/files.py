"""Prior files: a trained generative prior as HDF5 (format ``brainleaks-prior/1``), no pickle.

Layout: the root attributes ``brainleaks_format`` (``brainleaks-prior/1``), ``architecture`` (JSON: the
:func:`~brainleaks_lava.priors.vae.check_architecture` dict the network is rebuilt from), ``provenance`` (JSON: which
public data trained it, and what it never read) and ``training`` (JSON: settings, loss history, seconds), and one
dataset per tensor of the VAE's state dict (encoder and decoder) in the group ``state_dict``.

The reader trusts nothing: every attribute is read with the toolkit's bounded readers (``fileio.read_attr``), the
architecture is checked field by field (types and bounds) and the expected tensor shapes are computed on the
``meta`` device (nothing allocated) before any tensor is read; the tensors must then be exactly those, of numbers,
finite. Every problem is a ``ModelFileError`` naming the file and the field.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import ModelFileError
from ..fileio import atomic_h5, open_h5, read_attr, read_dataset, sha256_file
from . import Prior

PRIOR_FORMAT = "brainleaks-prior/1"
MAX_JSON_CHARS = 1 << 20  # an attribute's JSON text; a prior writes a few kB (the loss history of its epochs)


def save_prior(prior: Prior, path: str | Path) -> Path:
    """Write ``prior`` (one trained by :func:`~brainleaks_lava.priors.vae.train_prior`, or loaded: it needs its
    ``architecture`` and ``encoder``) to ``path`` atomically; returns the path."""
    from ..errors import InputError
    from .vae import check_architecture

    if prior.encoder is None or not prior.architecture:
        raise InputError("only a prior with its architecture and encoder (a trained or loaded VAE) can be saved")
    arch = check_architecture(prior.architecture)
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["brainleaks_format"] = PRIOR_FORMAT
        f.attrs["architecture"] = json.dumps(arch, sort_keys=True)
        f.attrs["provenance"] = json.dumps(prior.provenance, sort_keys=True)
        f.attrs["training"] = json.dumps(prior.training, sort_keys=True)
        g = f.create_group("state_dict")
        for part, module in (("encoder", prior.encoder), ("decoder", prior.decoder)):
            for name, tensor in module.state_dict().items():
                g.create_dataset(f"{part}.{name}", data=tensor.detach().cpu().numpy())
    return path


def _json_attr(f, path: Path, key: str, required: bool = True) -> dict:
    raw = read_attr(f, key)
    if raw is None:
        if required:
            raise ModelFileError(f"{path}: prior file without its '{key}' attribute")
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        raise ModelFileError(f"{path}: attribute '{key}' must be JSON text, got {type(raw).__name__}")
    if len(raw) > MAX_JSON_CHARS:
        raise ModelFileError(f"{path}: attribute '{key}' holds {len(raw):,} characters, more than the "
                             f"{MAX_JSON_CHARS:,} of any prior file")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ModelFileError(f"{path}: attribute '{key}' is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: attribute '{key}' must be a JSON object, got {type(value).__name__}")
    return value


def read_prior_header(f, path: Path) -> tuple[dict, dict, dict]:
    """(architecture, provenance, training) of the open prior file ``f``, checked; ``ModelFileError`` for another
    kind of file, a wrong format or a bad field. Reads attributes only (no tensor, no torch module)."""
    from .vae import check_architecture

    fmt = read_attr(f, "brainleaks_format")
    fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
    if fmt != PRIOR_FORMAT:
        from ..info import wrong_kind

        other = wrong_kind(f, path, "prior")
        if other:
            raise ModelFileError(other)
        if isinstance(fmt, str) and fmt.startswith("brainleaks-prior/"):
            raise ModelFileError(f"{path}: prior file format {fmt!r}; this version reads {PRIOR_FORMAT!r}")
        raise ModelFileError(f"{path}: not a brainleaks prior file (format attribute {fmt!r}, expected "
                             f"{PRIOR_FORMAT!r})")
    arch = check_architecture(_json_attr(f, path, "architecture"), ModelFileError, f"{path}: attribute 'architecture'")
    provenance = _json_attr(f, path, "provenance")
    training = _json_attr(f, path, "training", required=False)
    return arch, provenance, training


def load_prior(path: str | Path, device=None) -> Prior:
    """The prior in ``path`` (written by :func:`save_prior`), on ``device`` (None: the CPU), its ``path`` and
    ``sha256`` (of the file's bytes) recorded. ``ModelFileError`` naming the file and field for anything wrong."""
    from ..models.files import check_state, load_state
    from .vae import build_vae

    path = Path(path)
    with open_h5(path, "prior file") as f:
        arch, provenance, training = read_prior_header(f, path)
        with torch.device("meta"):  # the shapes the file must hold, nothing allocated
            expected = build_vae(arch).state_dict()
        if "state_dict" not in f or not isinstance(f["state_dict"], h5py.Group):
            raise ModelFileError(f"{path}: prior file without its 'state_dict' group")
        g = f["state_dict"]
        names = list(g.keys())
        if any(not isinstance(n, str) for n in names):
            raise ModelFileError(f"{path}: state_dict holds a tensor name that is not text")
        missing, extra = sorted(set(expected) - set(names)), sorted(set(names) - set(expected))
        if missing or extra:
            raise ModelFileError(f"{path}: state_dict does not match the architecture: "
                                 + "; ".join(([f"missing tensor(s) {', '.join(missing[:5])}"] if missing else [])
                                             + ([f"unexpected tensor(s) {', '.join(extra[:5])}"] if extra else [])))
        arrays = {}
        for name, t in expected.items():
            obj = g[name]
            if isinstance(obj, h5py.Dataset) and tuple(obj.shape) != tuple(t.shape):  # before reading any data
                raise ModelFileError(f"{path}: tensor 'state_dict/{name}' has shape {tuple(obj.shape)}, the "
                                     f"architecture needs {tuple(t.shape)}")
            arrays[name] = read_dataset(obj, f"{path}: state_dict/{name}", max_elements=max(int(t.numel()), 1))
    check_state(expected, arrays, path)
    vae = build_vae(arch)
    load_state(vae, {k: np.asarray(v) for k, v in arrays.items()}, path)
    prior = Prior(vae.decoder, arch["latent_dim"], tuple(arch["image_shape"]), provenance, path=str(path),
                  sha256=sha256_file(path, "prior file", ModelFileError), encoder=vae.encoder, architecture=arch,
                  training=training)
    if device is not None:
        from ..models.device import resolve_device

        prior.to(resolve_device(device))
    return prior


__all__ = ["PRIOR_FORMAT", "save_prior", "load_prior", "read_prior_header"]
