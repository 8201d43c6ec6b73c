"""Datasets: readers of the on-disk formats and the rate coding that turns images into spikes.

- :func:`load_static` loads a split of a static image dataset (``"mnist"`` or ``"att-faces"``)
  as a :class:`StaticDataset`; see :mod:`.mnist` and :mod:`.faces` for the formats and the
  split rules.
- :func:`rate_encode` / :func:`rate_decode` / :class:`RateEncoder` convert images to Bernoulli
  spike trains in lava-dl's (N, features, T) layout and back to rates.

- :func:`load_events` loads a framed split of an event-camera dataset (``"nmnist"`` or
  ``"dvs-gesture"``) as an :class:`EventDataset`; :func:`nmnist_framing` /
  :func:`dvs_gesture_framing` are the paper's framings and :func:`synthetic_events` makes small
  learnable event data (see :mod:`.events` and :mod:`.framing`).

The encoding helpers need torch; they and the event loaders are imported on first use so that
checking a dataset (``brainleaks dataset``) stays fast.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import StaticDataset
from .faces import FACES_SOURCE_HINT, load_att_faces
from .mnist import load_mnist, vendored_mnist_root

STATIC_DATASETS = ("mnist", "att-faces")

# name -> submodule, imported on first use
_LAZY = {
    **dict.fromkeys(("rate_encode", "rate_decode", "RateEncoder"), "encoding"),
    **dict.fromkeys(("load_events", "EventDataset", "synthetic_events", "EVENT_DATASETS"), "events"),
    **dict.fromkeys(("Framing", "nmnist_framing", "dvs_gesture_framing"), "framing"),
}


def load_static(name: str, root: str | Path | None, split: str = "train", downsample: int = 1) -> StaticDataset:
    """Load split ``split`` ("train", "val" or "all") of the static dataset ``name``.

    ``name`` is ``"mnist"`` (``root=None`` selects the vendored 1,250-image subset) or
    ``"att-faces"`` (``root`` required). ``downsample`` block-averages images by an integer factor.
    Raises ``DatasetError`` for a missing, incomplete or malformed directory and ``InputError``
    for bad arguments.
    """
    if name == "mnist":
        return load_mnist(root, split=split, downsample=downsample)
    if name == "att-faces":
        if root is None:
            raise InputError("att-faces needs a data root: the directory with s1..s40/1..10.pgm "
                             f"(get {FACES_SOURCE_HINT})")
        return load_att_faces(root, split=split, downsample=downsample)
    raise InputError(f"unknown static dataset {name!r}; choose one of {', '.join(STATIC_DATASETS)}")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "load_static",
    "StaticDataset",
    "rate_encode",
    "rate_decode",
    "RateEncoder",
    "vendored_mnist_root",
    "load_mnist",
    "load_att_faces",
    "load_events",
    "EventDataset",
    "synthetic_events",
    "EVENT_DATASETS",
    "Framing",
    "nmnist_framing",
    "dvs_gesture_framing",
]
