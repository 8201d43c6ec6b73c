"""Input-encoder noise: each input spike of a rate-coded train is flipped (0 <-> 1) with probability ``p``.

The flip is ``x + m * (1 - 2x)`` with a Bernoulli(p) mask ``m`` drawn from an explicit generator, so the
gradient with respect to ``x`` passes (with its sign reversed where a spike was flipped) and the same seed
gives the same flips.
"""
from __future__ import annotations

import torch

from ..errors import InputError


def check_flip(p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 0.5:
        raise InputError(f"input_flip must be a probability in [0, 0.5), got {p!r}")
    return float(p)


def flip_spikes(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` (spikes in {0, 1}) with every element flipped independently with probability ``p``."""
    p = check_flip(p)
    if p == 0.0:
        return x
    mask = (torch.rand(x.shape, generator=generator) < p).to(dtype=x.dtype, device=x.device)
    return x + mask * (1.0 - 2.0 * x)


def noisy_logits_fn(encoding: dict, p: float):
    """A training ``logits_fn`` (``models.training``): the dataset encoding, then spike flips with
    probability ``p`` drawn from the training loop's generator."""
    from ..data.encoding import to_spikes

    p = check_flip(p)

    def fn(model, inputs, generator, device):
        x = to_spikes(inputs, encoding, generator)
        return model.logits(flip_spikes(x, p, generator).to(device))
    return fn
