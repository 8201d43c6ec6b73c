"""The public data a generative prior is trained on: disjoint from the records a target trains on.

``--public-split`` names one source; each returns the images (N, 1, H, W) in [0, 1] and a ``provenance`` record
saying exactly what was read (dataset, split or subjects, directory, image count, a hash of the images) and what was
not:

- ``mnist-val`` (for ``--dataset mnist``): split ``"val"`` of MNIST, the images the toolkit's MNIST targets never
  train on (they train on split ``"train"``; see ``data.mnist`` for the split rule). The loader is asked for split
  ``"val"`` only: split ``"train"`` is never read.
- ``digits`` (for ``--dataset mnist``): scikit-learn's bundled optical digits (1,797 8x8 images, 0..16, shipped with
  scikit-learn: no download), a different collection (UCI), upsampled to MNIST's look: 20x20 (bicubic)
  in a 28x28 frame, its centre of mass moved to the centre, the grey levels mapped with a linear ramp (0.3 -> 0,
  0.8 -> 1) that gives MNIST's stroke statistics (mean 0.147 vs 0.142, pixels > 0.9: 9.5 % vs 9.9 %, measured on
  the 2,000 real MNIST val images). A cross-distribution prior: no MNIST image at all.
- ``faces-identities:A-B`` (for ``--dataset att-faces``): every image (both splits) of the AT&T subjects sA..sB
  only; no other subject's folder is opened. A target trained on the other subjects (``brainleaks train --classes``,
  e.g. ``faces-identities:21-40`` with ``--classes 0-19``) shares no identity with the prior.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from .. import data as _data
from ..errors import InputError

PUBLIC_SPLITS = ("mnist-val", "digits", "faces-identities:A-B")
# the target dataset each public source serves
SERVES = {"mnist-val": "mnist", "digits": "mnist", "faces-identities": "att-faces"}
DIGITS_RAMP = (0.3, 0.8)  # grey level -> 0 and -> 1 of the upsampled digits (see the module docstring)
DIGITS_BOX = 20  # MNIST's digits are normalised to a 20x20 box in the 28x28 frame
MNIST_SIDE = 28


@dataclass(frozen=True)
class PublicData:
    """Images (N, C, H, W) float32 in [0, 1] and the record of what was read (JSON-able)."""

    images: np.ndarray
    provenance: dict


def parse_public_split(text: str) -> tuple[str, tuple[int, int] | None]:
    """``("mnist-val", None)``, ``("digits", None)`` or ``("faces-identities", (A, B))``; ``InputError`` otherwise."""
    if not isinstance(text, str):
        raise InputError(f"public split must be text, got {text!r}")
    if text in ("mnist-val", "digits"):
        return text, None
    m = re.fullmatch(r"faces-identities:(\d{1,5})-(\d{1,5})", text)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if not 1 <= a <= b:
            raise InputError(f"public split {text!r}: subjects A-B need 1 <= A <= B (the folders sA..sB)")
        from ..safety import MAX_CLASSES

        if b > MAX_CLASSES:
            raise InputError(f"public split {text!r}: subject numbers go up to {MAX_CLASSES}")
        return "faces-identities", (a, b)
    shown = text if len(text) <= 60 else text[:60] + "..."
    raise InputError(f"unknown public split {shown!r}; choose one of {', '.join(PUBLIC_SPLITS)} "
                     f"(e.g. faces-identities:21-40)")


def check_public_split(dataset: str, text: str) -> tuple[str, tuple[int, int] | None]:
    """:func:`parse_public_split`, and the source must serve ``dataset``; ``InputError`` otherwise."""
    kind, rng = parse_public_split(text)
    if SERVES[kind] != dataset:
        fits = ", ".join(s for s in PUBLIC_SPLITS if SERVES[s.split(":")[0]] == dataset)
        raise InputError(f"public split {text!r} is data for {SERVES[kind]}, not {dataset}"
                         + (f"; for {dataset} use {fits}" if fits else f"; {dataset} has no public split"))
    return kind, rng


def _digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()


def _record(kind_text: str, dataset: str, ds, root, extra: dict, options: dict) -> PublicData:
    images = ds.images[:, None].astype(np.float32)
    return PublicData(images, {
        "public_split": kind_text, "dataset": dataset, **extra, "source": ds.source,
        "data_root": None if root is None else str(root), "images": int(len(images)),
        "image_shape": list(images.shape[1:]), "images_sha256": _digest(images),
        **{k: v for k, v in options.items() if v is not None}})


def _mnist_val(root, options: dict) -> PublicData:
    # split "train" (the targets' records) is never asked for
    ds = _data.load_dataset("mnist", root, split="val", **options)
    return _record("mnist-val", "mnist", ds, root, {"split": "val"}, {
        **options, "disjoint_from": "split 'train' of MNIST (the records the toolkit's MNIST targets train on): "
                                    "never read"})


def digits_images() -> np.ndarray:
    """scikit-learn's 8x8 optical digits at MNIST's size and look, (1797, 28, 28) float32 in [0, 1] (see the module
    docstring); ``InputError`` when scikit-learn is not installed."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("the 'digits' public split needs scikit-learn (pip install 'brainleaks-lava[priors]' or "
                         "pip install 'scikit-learn>=1.2')") from None
    import torch
    import torch.nn.functional as F

    raw = np.asarray(load_digits().images, dtype=np.float32) / 16.0
    x = F.interpolate(torch.from_numpy(raw)[:, None], size=(DIGITS_BOX, DIGITS_BOX), mode="bicubic",
                      align_corners=False)[:, 0].clamp(0, 1).numpy()
    lo, hi = DIGITS_RAMP
    x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    margin = (MNIST_SIDE - DIGITS_BOX) // 2
    out = np.zeros((len(x), MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    out[:, margin:margin + DIGITS_BOX, margin:margin + DIGITS_BOX] = x
    centre = (MNIST_SIDE - 1) / 2
    grid = np.arange(MNIST_SIDE, dtype=np.float64)
    for i, img in enumerate(out):  # the centre of mass to the frame's centre, as MNIST's preprocessing does
        mass = float(img.sum())
        if mass <= 0:
            continue
        cy = float((img.sum(1) * grid).sum()) / mass
        cx = float((img.sum(0) * grid).sum()) / mass
        dy = int(np.clip(round(centre - cy), -margin, margin))
        dx = int(np.clip(round(centre - cx), -margin, margin))
        out[i] = np.roll(img, (dy, dx), axis=(0, 1))  # within the empty margin: nothing wraps around
    return out


def _digits(downsample, limit, classes) -> PublicData:
    import dataclasses

    from ..data.base import StaticDataset, block_average, check_downsample

    images = digits_images()  # InputError when scikit-learn is missing
    import sklearn
    from sklearn.datasets import load_digits

    labels = np.asarray(load_digits().target, dtype=np.int64)
    ds = StaticDataset(images=images, labels=labels, classes=tuple(str(d) for d in range(10)), source=(
        f"scikit-learn {sklearn.__version__} load_digits() (UCI optical recognition of handwritten digits, 8x8), "
        f"upsampled to {DIGITS_BOX}x{DIGITS_BOX} in a {MNIST_SIDE}x{MNIST_SIDE} frame, centre of mass centred, grey "
        f"ramp {DIGITS_RAMP[0]}-{DIGITS_RAMP[1]}"))
    if downsample is not None:
        factor = check_downsample(downsample, MNIST_SIDE, MNIST_SIDE)
        ds = dataclasses.replace(ds, images=block_average(ds.images, factor),
                                 source=f"{ds.source}, block-averaged by {factor}")
    if classes is not None:
        ds = _data.select_classes(ds, classes)
    if limit is not None:
        ds = _data.limit_static(ds, limit)
    return _record("digits", "mnist", ds, None, {}, {
        "downsample": downsample, "limit": limit, "classes": None if classes is None else list(classes),
        "disjoint_from": "every MNIST image (another collection): no MNIST file is read"})


def _faces(root, a: int, b: int, options: dict) -> PublicData:
    if root is None:
        raise InputError("faces-identities needs --data-root: the AT&T faces directory (s1..s40)")
    if options.get("classes") is not None:
        raise InputError(f"faces-identities:{a}-{b} names the subjects itself; give no --classes with it")
    options = {k: v for k, v in options.items() if k != "classes"}
    classes = list(range(a - 1, b))  # label k - 1 is subject folder s<k>
    ds = _data.load_dataset("att-faces", root, split="all", classes=classes, **options)
    return _record(f"faces-identities:{a}-{b}", "att-faces", ds, root, {
        "split": "all", "subjects": [f"s{k}" for k in range(a, b + 1)]}, {
        **options, "disjoint_from": (f"every AT&T subject outside s{a}..s{b}: their folders are never opened (a "
                                     f"target trained on other subjects, e.g. --classes {_complement_hint(a, b)}, "
                                     f"shares no identity with this prior)")})


def _complement_hint(a: int, b: int) -> str:
    if a > 1:
        return "0-" + str(a - 2)
    return f"{b}-39"


def load_public(public_split: str, dataset: str, data_root=None, *, downsample: int | None = None,
                limit: int | None = None, classes=None) -> PublicData:
    """The images of the public source ``public_split`` for a target on ``dataset`` (see the module docstring), read
    from ``data_root`` (MNIST: the vendored subset when None; faces: required). ``downsample`` (block average, as the
    target's ``--downsample``), ``limit`` (a seeded sample, ``data.limit_static``) and ``classes`` (digit classes of
    ``mnist-val`` / ``digits``, relabelled; not with ``faces-identities``, which names its subjects) as in
    ``data.load_dataset``."""
    kind, rng = check_public_split(dataset, public_split)
    if classes is not None:
        classes = list(_data.check_class_list(classes))
    options = {"downsample": downsample, "limit": limit, "classes": classes}
    if kind == "mnist-val":
        return _mnist_val(data_root, options)
    if kind == "digits":
        return _digits(downsample, limit, classes)
    return _faces(data_root, *rng, options)


__all__ = ["PUBLIC_SPLITS", "PublicData", "parse_public_split", "check_public_split", "load_public", "digits_images"]
