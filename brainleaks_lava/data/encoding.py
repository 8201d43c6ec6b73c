"""Rate (Bernoulli) coding of static images into spike trains, in lava-dl's NCT layout.

Each pixel intensity p in [0, 1] becomes a spike train of ``steps`` time steps in which every step
independently carries a spike with probability p. Randomness comes only from the explicit
``torch.Generator`` handed in (a fresh generator seeded with 0 when none is given), never from
torch's or numpy's global RNG, so encodings are reproducible and do not disturb other code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

DEFAULT_SEED = 0


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if steps <= 0:
        raise InputError(f"steps must be a positive integer, got {steps}")
    return int(steps)


def as_real_tensor(x, name: str) -> torch.Tensor:
    """``x`` (array or tensor) as a detached real tensor (bool becomes float32); ``InputError`` naming
    ``name`` for non-numeric or complex input. Shared by every entry point that takes arrays."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"{name} must be a numeric array or tensor: {e}") from None
    if t.dtype == torch.bool:
        t = t.to(torch.float32)
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (
            torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise InputError(f"{name} must be a real numeric array, got dtype {t.dtype}")
    return t


def _as_intensities(images) -> torch.Tensor:
    """``images`` as a float32 tensor of shape (N, features), checked to be finite and in [0, 1]."""
    x = as_real_tensor(images, "images")
    if x.ndim < 1:
        raise InputError("images must have shape (N, ...), got a scalar")
    if not x.is_floating_point():
        x = x.to(torch.float64)  # range-check in the input's own precision, convert afterwards
    if x.numel():
        if not bool(torch.isfinite(x).all()):
            raise InputError("images contain NaN or infinite values; intensities must be finite, in [0, 1]")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"images must hold intensities in [0, 1], got values in [{lo:g}, {hi:g}] "
                "(divide 8-bit pixels by 255 first)"
            )
    features = math.prod(x.shape[1:])
    return x.to(torch.float32).reshape(x.shape[0], features)


def rate_encode(images, steps: int = 25, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli rate coding: (N, ...) intensities in [0, 1] -> float32 spikes (N, features, steps).

    ``features`` is the product of the non-batch dimensions (images are flattened). Each spike is
    1 with probability equal to its pixel's intensity, drawn independently per time step using
    only ``generator`` (``torch.Generator().manual_seed(0)`` when None). The spikes are on the
    generator's device.

    Raises ``InputError`` for NaN/inf or out-of-range intensities and for non-positive ``steps``.
    """
    steps = _check_steps(steps)
    if generator is None:
        generator = torch.Generator().manual_seed(DEFAULT_SEED)
    elif not isinstance(generator, torch.Generator):
        raise InputError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    p = _as_intensities(images).to(generator.device)
    u = torch.rand((p.shape[0], p.shape[1], steps), generator=generator, device=generator.device,
                   dtype=torch.float32)
    # u is uniform on [0, 1): P(u < p) = p exactly, and p = 0 / p = 1 give no / all spikes.
    return (u < p.unsqueeze(-1)).to(torch.float32)


def if_encode(images, steps: int = 25) -> torch.Tensor:
    """Deterministic integrate-and-fire rate coding: (N, ...) intensities in [0, 1] -> float32 spikes
    (N, features, steps). Each input integrates its intensity every step (``v += x``) and spikes when
    ``v >= 1`` (then ``v -= 1``), starting from ``v = 0``: an intensity x gives ``floor(t * x)`` spikes by
    step t, evenly spaced, with no randomness. Raises ``InputError`` like :func:`rate_encode`."""
    steps = _check_steps(steps)
    x = _as_intensities(images)
    return if_spikes(x.unsqueeze(-1).expand(*x.shape, steps))


def if_spikes(drive: torch.Tensor) -> torch.Tensor:
    """Integrate-and-fire spikes of a per-step drive (..., T) in [0, 1] (no checks, no gradient)."""
    v = torch.zeros(drive.shape[:-1], dtype=torch.float32, device=drive.device)
    out = torch.empty(drive.shape, dtype=torch.float32, device=drive.device)
    for t in range(drive.shape[-1]):
        v = v + drive[..., t].detach().to(torch.float32)
        s = (v >= 1.0).to(torch.float32)
        v = v - s
        out[..., t] = s
    return out


def rate_decode(spikes) -> torch.Tensor:
    """Firing rate of binary spikes (N, features, T): float32 (N, features), the mean over time."""
    s = spikes.detach() if isinstance(spikes, torch.Tensor) else torch.as_tensor(np.asarray(spikes))
    if s.ndim != 3:
        raise InputError(f"spikes must have shape (N, features, T), got {tuple(s.shape)}")
    if s.shape[-1] == 0:
        raise InputError("spikes have no time steps (T = 0)")
    s = s.to(torch.float32)
    if s.numel() and not bool(((s == 0) | (s == 1)).all()):
        raise InputError("spikes must be binary (0 or 1); got other values")
    return s.mean(dim=-1)


IMAGE_ENCODERS = ("rate", "if")


def input_encoding(dataset, steps: int | None = None, kind: str = "rate") -> dict:
    """How a dataset's samples reach a spiking network: ``{"kind": "rate", "steps": T}`` (Bernoulli
    rate coding of images, T = ``steps``), ``{"kind": "if", "steps": T}`` (deterministic integrate-and-fire
    coding, ``kind="if"``) or ``{"kind": "frames", "steps": T, ...}`` for event data, whose binary frames
    (N, C, H, W, T) are the spike trains themselves (``steps`` must then be None or equal to the frames' T)."""
    frames = getattr(dataset, "frames", None)
    if frames is None:
        if kind not in IMAGE_ENCODERS:
            raise InputError(f"image encoder must be one of {', '.join(IMAGE_ENCODERS)}, got {kind!r}")
        return {"kind": kind, "steps": _check_steps(25 if steps is None else steps)}
    c, h, w, t = (int(v) for v in frames.shape[1:])
    if steps is not None and steps != t:
        raise InputError(f"steps={steps} does not match the event frames' {t} time bins; set the framing's time bins instead")
    return {"kind": "frames", "steps": t, "channels": c, "height": h, "width": w,
            "framing": getattr(dataset, "framing", {})}


def dataset_inputs(dataset) -> np.ndarray:
    """The array a trainer indexes: images (N, H, W) in [0, 1] or event frames (N, C, H, W, T)."""
    frames = getattr(dataset, "frames", None)
    return dataset.images if frames is None else frames


def to_spikes(x, encoding: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    """A batch of dataset inputs -> spike trains (N, features, T) according to ``encoding``."""
    if encoding.get("kind") == "frames":
        t = torch.as_tensor(x, dtype=torch.float32)
        return t.reshape(t.shape[0], -1, t.shape[-1])
    if encoding.get("kind") == "rate":
        return rate_encode(torch.as_tensor(x).reshape(len(x), -1), steps=encoding["steps"], generator=generator)
    if encoding.get("kind") == "if":
        return if_encode(torch.as_tensor(x).reshape(len(x), -1), steps=encoding["steps"])
    raise InputError(f"unknown input encoding {encoding!r}")


@dataclass(frozen=True)
class RateEncoder:
    """A configured :func:`rate_encode`: ``RateEncoder(steps=25)(images, generator)``."""

    steps: int = 25

    def __post_init__(self) -> None:
        _check_steps(self.steps)

    def __call__(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        return rate_encode(images, steps=self.steps, generator=generator)
