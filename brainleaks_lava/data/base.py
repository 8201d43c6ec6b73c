"""The in-memory form every static (image) dataset reader returns, plus small shared helpers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: the split names every static reader accepts
SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class StaticDataset:
    """A labelled set of grey-level images.

    - ``images``: float32, shape (N, H, W), values in [0, 1].
    - ``labels``: int64, shape (N,); ``classes[label]`` is the class name.
    - ``classes``: class names, indexed by label.
    - ``source``: one human-readable line saying where the data came from (directory, split rule).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        if self.images.ndim != 3:
            raise InputError(f"StaticDataset.images must have shape (N, H, W), got {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise InputError(
                f"StaticDataset.labels must have shape ({self.images.shape[0]},), got {self.labels.shape}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise ``InputError``."""
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


def check_downsample(downsample, height: int, width: int) -> int:
    """Validate an integer block-average factor that divides both image dimensions."""
    if isinstance(downsample, bool) or not isinstance(downsample, (int, np.integer)):
        raise InputError(f"downsample must be a positive integer, got {downsample!r}")
    downsample = int(downsample)
    if downsample < 1:
        raise InputError(f"downsample must be a positive integer, got {downsample}")
    if height % downsample or width % downsample:
        valid = [f for f in range(1, min(height, width) + 1) if height % f == 0 and width % f == 0]
        raise InputError(
            f"downsample={downsample} does not divide the {width}x{height} images; "
            f"use one of {valid}"
        )
    return downsample


def block_average(images: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor`` x ``factor`` blocks of (N, H, W) images (float32 out).

    ``factor`` must divide H and W (see :func:`check_downsample`).
    """
    if factor == 1:
        return images.astype(np.float32, copy=False)
    n, h, w = images.shape
    blocks = images.reshape(n, h // factor, factor, w // factor, factor).astype(np.float64)
    return blocks.mean(axis=(2, 4)).astype(np.float32)


def grey_level_stats(images) -> dict:
    """The grey-level statistics of a set of images (N, ...) in [0, 1]: the mean over images of each
    image's mean (``mean``) and of each image's standard deviation (``std``), as plain floats."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if flat.size == 0:
        raise InputError("grey-level statistics of an empty image set")
    return {"mean": float(flat.mean(1).mean()), "std": float(flat.std(1).mean())}
