"""Training-time image transforms for the evaluators: seeded data augmentation and generated junk.

- :func:`augment`: a random affine warp per image (shift up to ``shift`` pixels along each axis, rotation up
  to ``rotate`` degrees, isotropic scale in ``scale``), resampled bilinearly with ``F.affine_grid`` /
  ``F.grid_sample`` (pixels from outside the image repeat the border, which is background on MNIST). Values
  stay in the input's range (bilinear weights are a convex combination).
- :func:`junk_images`: images that are no member of any class, for training a reject output: uniform noise,
  sparse Bernoulli noise, smooth random blobs (:func:`blob_images`), real images with their pixels shuffled,
  constant images, and the mean of two real images of different classes (:data:`JUNK_RECIPES`).

Every draw comes from the ``torch.Generator`` handed in: the same generator state gives the same output,
global RNG state is untouched.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

#: default augmentation: shift in pixels (each axis), rotation in degrees, scale range
SHIFT_PX = 2.0
ROTATE_DEG = 10.0
SCALE_RANGE = (0.9, 1.1)

#: the junk recipes, in the order :func:`junk_images` numbers them (each drawn with equal probability)
JUNK_RECIPES = ("uniform", "bernoulli", "blobs", "shuffled", "constant", "mix2")
#: sparse Bernoulli noise: each pixel on with a probability drawn uniformly from this range
BERNOULLI_P = (0.02, 0.3)
#: blobs: a Gaussian random field of this many cells per side (drawn), upsampled bicubically, blurred with a
#: Gaussian of ``BLOB_SIGMA`` pixels, min-max normalised, then ``(field - q) / (1 - q)`` clipped to [0, 1]
#: with a level q drawn from ``BLOB_LEVEL``; half of them binarised (> 0)
BLOB_CELLS = (3, 8)
BLOB_SIGMA = 1.0
BLOB_LEVEL = (0.3, 0.8)


def augmentation_recipe(shift: float = SHIFT_PX, rotate: float = ROTATE_DEG,
                        scale: tuple[float, float] = SCALE_RANGE) -> dict:
    """The augmentation settings as recorded in an evaluator's metadata."""
    return {"shift_px": float(shift), "rotate_deg": float(rotate), "scale": [float(scale[0]), float(scale[1])],
            "resampling": "bilinear, border padding"}


def junk_recipe() -> dict:
    """The junk generator's settings as recorded in a reject evaluator's metadata."""
    return {"recipes": list(JUNK_RECIPES), "bernoulli_p": list(BERNOULLI_P), "blob_cells": list(BLOB_CELLS),
            "blob_sigma": BLOB_SIGMA, "blob_level": list(BLOB_LEVEL),
            "mix2": "mean of two training images of different classes",
            "shuffled": "a training image with its pixels permuted"}


def _check_generator(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise InputError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def augment(images: torch.Tensor, generator: torch.Generator, shift: float = SHIFT_PX, rotate: float = ROTATE_DEG,
            scale: tuple[float, float] = SCALE_RANGE) -> torch.Tensor:
    """``images`` (B, C, H, W) warped by one random affine transform each (see the module notes); same shape,
    float32. Draws 4 x B numbers from ``generator``."""
    _check_generator(generator)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[2] < 2 or images.shape[3] < 2:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"images must be a tensor of shape (B, C, H, W) with H, W >= 2, got {shape}")
    if not (0 <= shift and 0 <= rotate <= 180 and 0 < scale[0] <= scale[1]):
        raise InputError(f"augment needs shift >= 0, 0 <= rotate <= 180 and 0 < scale low <= high; got shift "
                         f"{shift!r}, rotate {rotate!r}, scale {scale!r}")
    x = images.to(torch.float32)
    b, _, h, w = x.shape
    if b == 0:
        return x.clone()
    tx = _uniform(b, -shift, shift, generator)
    ty = _uniform(b, -shift, shift, generator)
    angle = _uniform(b, -rotate, rotate, generator) * (math.pi / 180.0)
    s = _uniform(b, scale[0], scale[1], generator)
    # theta maps output to input coordinates. In pixel units (centred) the input point of an output point p is
    # R(-angle) (p - t) / s; affine_grid works in coordinates normalised to [-1, 1] per axis (x by w / 2, y by
    # h / 2), which rescales the off-diagonal terms for non-square images.
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = sin * (h / w)
    theta[:, 1, 0] = -sin * (w / h)
    theta[:, 1, 1] = cos
    # the shift t (pixels) moves the content: input = A (p - t), so the constant term is -A t, normalised
    txn, tyn = 2.0 * tx / w, 2.0 * ty / h
    theta[:, 0, 2] = -(theta[:, 0, 0] * txn + theta[:, 0, 1] * tyn)
    theta[:, 1, 2] = -(theta[:, 1, 0] * txn + theta[:, 1, 1] * tyn)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with reflect padding."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def blob_images(n: int, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """``n`` smooth random blob images (n, H, W) in [0, 1] (see ``BLOB_*``): shapes with strokes' scale and
    none of a class's structure, the hardest of the junk for a lenient classifier."""
    _check_generator(generator)
    h, w = (int(v) for v in shape)
    out = torch.empty(n, h, w)
    cells = torch.randint(BLOB_CELLS[0], BLOB_CELLS[1] + 1, (n,), generator=generator)
    level = _uniform(n, *BLOB_LEVEL, generator)
    binary = torch.rand(n, generator=generator) < 0.5
    for i in range(n):
        k = int(cells[i])
        field = torch.randn(1, 1, k, k, generator=generator)
        field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False)
        field = _gaussian_blur(field, BLOB_SIGMA)[0, 0]
        lo, hi = field.min(), field.max()
        field = (field - lo) / (hi - lo) if hi > lo else torch.zeros_like(field)
        q = float(level[i])
        img = ((field - q) / (1.0 - q)).clamp(0.0, 1.0)
        out[i] = (img > 0).float() if bool(binary[i]) else img
    return out


class JunkSource:
    """Generated junk for a reject output, drawing real images from ``images`` (N, H, W) in [0, 1] with their
    ``labels`` (N,) for the recipes that need them (shuffled pixels, mean of two classes)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 3 or len(images) != len(labels) or len(images) == 0:
            raise InputError(f"junk needs real images (N, H, W) and N labels, got {images.shape} and {labels.shape}")
        self.images = images
        self.shape = (int(images.shape[1]), int(images.shape[2]))
        self.by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.labels = labels

    def _real(self, generator: torch.Generator) -> torch.Tensor:
        i = int(torch.randint(0, len(self.images), (1,), generator=generator))
        return torch.as_tensor(self.images[i], dtype=torch.float32)

    def _mix2(self, generator: torch.Generator) -> torch.Tensor:
        if len(self.by_class) < 2:
            return self._real(generator)
        a = int(torch.randint(0, len(self.by_class), (1,), generator=generator))
        b = int(torch.randint(0, len(self.by_class) - 1, (1,), generator=generator))
        b += b >= a  # another class than a
        pick = [cls[int(torch.randint(0, len(cls), (1,), generator=generator))] for cls in (self.by_class[a],
                                                                                            self.by_class[b])]
        return torch.as_tensor(self.images[pick].mean(0), dtype=torch.float32)

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` junk images (n, H, W) in [0, 1], each from a recipe of :data:`JUNK_RECIPES` drawn uniformly."""
        return junk_images(n, self, generator)


def junk_images(n: int, source: JunkSource, generator: torch.Generator) -> torch.Tensor:
    """``n`` junk images (n, H, W) in [0, 1] of ``source``'s shape, each from a recipe of :data:`JUNK_RECIPES`
    drawn uniformly from ``generator`` (real images for "shuffled" and "mix2" come from ``source``)."""
    _check_generator(generator)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n must be an integer >= 0, got {n!r}")
    h, w = source.shape
    recipe = torch.randint(0, len(JUNK_RECIPES), (int(n),), generator=generator)
    out = torch.empty(int(n), h, w)
    for i in range(int(n)):
        name = JUNK_RECIPES[int(recipe[i])]
        if name == "uniform":
            out[i] = torch.rand(h, w, generator=generator)
        elif name == "bernoulli":
            p = float(_uniform(1, *BERNOULLI_P, generator))
            out[i] = (torch.rand(h, w, generator=generator) < p).float()
        elif name == "blobs":
            out[i] = blob_images(1, (h, w), generator)[0]
        elif name == "shuffled":
            img = source._real(generator).reshape(-1)
            out[i] = img[torch.randperm(h * w, generator=generator)].reshape(h, w)
        elif name == "constant":
            out[i] = float(torch.rand(1, generator=generator))
        else:
            out[i] = source._mix2(generator)
    return out
