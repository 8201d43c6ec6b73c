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

import re
from pathlib import Path
from typing import Sequence

import numpy as np

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


def load_static(name: str, root: str | Path | None, split: str = "train", downsample: int = 1,
                classes: Sequence[int] | None = None) -> StaticDataset:
    """Load split ``split`` ("train", "val" or "all") of the static dataset ``name``.

    ``name`` is ``"mnist"`` (``root=None`` selects the vendored 1,250-image subset) or
    ``"att-faces"`` (``root`` required). ``downsample`` block-averages images by an integer factor.
    ``classes``: keep only these classes (see :func:`select_classes`); AT&T faces then reads only those
    subjects' folders. Raises ``DatasetError`` for a missing, incomplete or malformed directory and ``InputError``
    for bad arguments.
    """
    if classes is not None:
        classes = check_class_list(classes)
    if name == "mnist":
        ds = load_mnist(root, split=split, downsample=downsample)
    elif name == "att-faces":
        if root is None:
            raise InputError("att-faces needs a data root: the directory with s1..s40/1..10.pgm "
                             f"(get {FACES_SOURCE_HINT})")
        subjects = None if classes is None else [c + 1 for c in classes]  # label k - 1 is folder s<k>
        ds = load_att_faces(root, split=split, downsample=downsample, subjects=subjects)
    else:
        raise InputError(f"unknown static dataset {name!r}; choose one of {', '.join(STATIC_DATASETS)}")
    return ds if classes is None else select_classes(ds, classes)


def check_class_list(classes) -> tuple[int, ...]:
    """``classes`` as a tuple of distinct class indices >= 0 (at most ``safety.MAX_CLASSES`` of them, each below
    it), else ``InputError``."""
    from ..safety import MAX_CLASSES

    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
        raise InputError(f"classes must be a list of class indices, got {classes!r}")
    if not 1 <= len(classes) <= MAX_CLASSES:
        raise InputError(f"classes must list 1 to {MAX_CLASSES} class indices, got {len(classes)}")
    out = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) < MAX_CLASSES:
            raise InputError(f"classes: {c!r} is not a class index (an integer 0..{MAX_CLASSES - 1})")
        out.append(int(c))
    if len(set(out)) != len(out):
        dup = next(c for c in out if out.count(c) > 1)
        raise InputError(f"classes: class {dup} is listed twice")
    return tuple(out)


def format_class_list(classes) -> str:
    """``0-19`` / ``0,3,5`` / ``0-4,7``: the class indices ``classes`` in the notation ``--classes`` takes."""
    parts, run = [], []
    for c in classes:
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [c]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


MAX_CLASS_LIST_TEXT = 10_000  # characters of a --classes value


def parse_class_list(text: str) -> tuple[int, ...]:
    """Class indices from ``0-19``, ``0,3,5`` or a mix (``0-4,7``): ranges inclusive, in the order given; distinct,
    each below ``safety.MAX_CLASSES``. ``InputError`` naming the bad part."""
    from ..safety import MAX_CLASSES

    if not isinstance(text, str) or not text.strip():
        raise InputError("classes: give class indices such as 0-19 or 0,3,5")
    if len(text) > MAX_CLASS_LIST_TEXT:
        raise InputError(f"classes: more than {MAX_CLASS_LIST_TEXT:,} characters")
    out: list[int] = []
    for part in text.split(","):
        item = part.strip()
        m = re.fullmatch(r"(\d{1,6})(?:\s*-\s*(\d{1,6}))?", item)
        if m is None:
            raise InputError(f"classes: {item!r} is neither a class index nor a range A-B (e.g. 0-19 or 0,3,5)")
        a = int(m.group(1))
        b = a if m.group(2) is None else int(m.group(2))
        if b < a:
            raise InputError(f"classes: the range {item!r} runs backwards")
        if b >= MAX_CLASSES or len(out) + b - a + 1 > MAX_CLASSES:
            raise InputError(f"classes: {item!r} goes beyond {MAX_CLASSES - 1}, the largest class index")
        out.extend(range(a, b + 1))
    return check_class_list(out)


def select_classes(ds, classes: Sequence[int]):
    """The samples of ``ds`` (a :class:`StaticDataset` or an ``EventDataset``) of the classes ``classes`` only,
    relabelled 0..k-1 in the order given, with those classes' names; its ``source`` says which were kept.
    ``InputError`` for an index the dataset does not have."""
    import dataclasses

    classes = check_class_list(classes)
    n = len(ds.classes)
    bad = [c for c in classes if c >= n]
    if bad:
        raise InputError(f"classes: {format_class_list(bad)} not in the dataset, which has {n} classes "
                         f"(indices 0..{n - 1})")
    relabel = np.full(n, -1, dtype=np.int64)
    relabel[list(classes)] = np.arange(len(classes))
    new = relabel[ds.labels]
    keep = np.flatnonzero(new >= 0)
    names = tuple(ds.classes[c] for c in classes)
    shown = names if len(names) <= 6 else (*names[:3], "...", *names[-2:])
    source = (f"{ds.source}; classes {format_class_list(classes)} only ({', '.join(shown)}), relabelled "
              f"0..{len(classes) - 1}")
    arrays = {"frames": ds.frames[keep]} if hasattr(ds, "frames") else {"images": ds.images[keep]}
    return dataclasses.replace(ds, **arrays, labels=new[keep], classes=names, source=source)


EVENT_NAMES = ("nmnist", "dvs-gesture")  # == events.EVENT_DATASETS, without importing it
DATASETS = STATIC_DATASETS + EVENT_NAMES


def is_event_dataset(name: str) -> bool:
    return name in EVENT_NAMES


def load_dataset(name: str, root: str | Path | None, split: str = "train", downsample: int | None = None,
                 time_bins: int | None = None, limit: int | None = None, cache_dir: str | Path | None = None,
                 classes: Sequence[int] | None = None):
    """Load a split of any dataset the toolkit knows: a :class:`StaticDataset` for ``"mnist"`` and
    ``"att-faces"``, an :class:`EventDataset` (framed with the paper's framing) for ``"nmnist"`` and
    ``"dvs-gesture"``.

    ``downsample``: integer spatial factor (default 1; 4 for DVS Gesture, 128 -> 32; N-MNIST takes
    only 1). ``limit``: at most that many samples of the split, round-robin over classes (event data: each
    class's first files; images: :func:`limit_static`, a seeded sample). ``time_bins``, ``cache_dir``: event
    datasets only (number of frames T, frame cache directory). ``classes``: only the samples of these class
    indices, relabelled 0..k-1 in the order given (:func:`select_classes`; images: before ``limit`` is applied, and
    AT&T faces reads only those subjects; event data: after it).
    """
    if classes is not None:
        classes = check_class_list(classes)
    if name in STATIC_DATASETS:
        for key, value in (("time_bins", time_bins), ("cache_dir", cache_dir)):
            if value is not None:
                raise InputError(f"{key} applies to event datasets only, not to {name!r}")
        ds = load_static(name, root, split=split, downsample=1 if downsample is None else downsample, classes=classes)
        return ds if limit is None else limit_static(ds, limit)
    if name not in EVENT_NAMES:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if classes is not None:
        ds = load_dataset(name, root, split=split, downsample=downsample, time_bins=time_bins, limit=limit,
                          cache_dir=cache_dir)
        return select_classes(ds, classes)
    from .events import load_events
    from .framing import dvs_gesture_framing, nmnist_framing

    kwargs = {} if time_bins is None else {"time_bins": time_bins}
    if name == "nmnist":
        if downsample not in (None, 1):
            raise InputError(f"N-MNIST is used at its 34x34 sensor size; downsample must be 1, got {downsample!r}")
        framing = nmnist_framing(**kwargs)
    else:
        framing = dvs_gesture_framing(downsample=4 if downsample is None else downsample, **kwargs)
    return load_events(name, root, split=split, framing=framing, cache_dir=cache_dir, limit=limit)


LIMIT_SEED = 0  # the sample limit_static keeps is always the same for the same split and limit


def limit_static(ds: StaticDataset, limit: int) -> StaticDataset:
    """At most ``limit`` images of ``ds`` for a quick run: each class's images in a seeded random order
    (``LIMIT_SEED``), taken round-robin over the classes (so a small limit still covers every class), kept in
    their order in ``ds``; ``ds`` itself when it holds no more. Its ``source`` says so."""
    import dataclasses

    import numpy as np

    from ..safety import MAX_COUNTS, check_count

    limit = check_count(limit, "limit", MAX_COUNTS["limit"][0], 1, MAX_COUNTS["limit"][1])
    n = len(ds.labels)
    if limit >= n:
        return ds
    order = np.random.default_rng(LIMIT_SEED).permutation(n)
    rank = np.empty(n, dtype=np.int64)  # the place of each image among its class's, in the seeded order
    for c in np.unique(ds.labels):
        members = order[ds.labels[order] == c]
        rank[members] = np.arange(len(members))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    keep = np.sort(np.argsort(rank * n + position, kind="stable")[:limit])
    return dataclasses.replace(ds, images=ds.images[keep], labels=ds.labels[keep],
                               source=f"{ds.source}; a seeded sample of {limit} of its {n} images (limit)")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "load_dataset",
    "limit_static",
    "select_classes",
    "parse_class_list",
    "format_class_list",
    "is_event_dataset",
    "DATASETS",
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
