"""Coarse read-out: what an attacker who queries the deployed network observes.

``ObservedPosterior`` is an ``observe`` hook of ``attacks.base.TargetAdapter``: the adapter's ``posterior(x)``
becomes ``observe(model, x)``. It applies, in this order:

1. ``input_flip`` p: the deployed input encoder flips each input spike with probability p (seeded generator;
   :mod:`.noise`), so every query sees fresh noise;
2. ``clip_counts`` c (spike-count read-outs only): each output neuron's spike count is capped at c before the
   softmax, ``softmax(scale * min(count, c))``; classes at the cap tie;
3. ``round_posterior`` q: every class probability is rounded to the nearest multiple of q (the values no
   longer sum to exactly 1; that is what such an interface returns).

Rounding and clipping are flat almost everywhere, so an attacker differentiating what it observes gets zero
gradient from the flat parts (gradient masking): ``straight_through=True`` models an attacker who knows the
defense and passes the gradient of the exact posterior through the rounding (BPDA). Neither protects a file an
attacker holds: with the file the exact posterior is at hand. The network, its file and the Lava replay are
unchanged.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .noise import check_flip, flip_spikes


class ObservedPosterior:
    def __init__(self, clip_counts: int | None = None, round_posterior: float | None = None,
                 input_flip: float = 0.0, straight_through: bool = False, seed: int = 0):
        if clip_counts is not None and (isinstance(clip_counts, bool) or not isinstance(clip_counts, int)
                                        or clip_counts <= 0):
            raise InputError(f"clip_counts must be a positive integer, got {clip_counts!r}")
        if round_posterior is not None and (isinstance(round_posterior, bool)
                                            or not isinstance(round_posterior, (int, float))
                                            or not 0.0 < round_posterior <= 1.0):
            raise InputError(f"round_posterior must be in (0, 1], got {round_posterior!r}")
        self.clip_counts = clip_counts
        self.round_posterior = None if round_posterior is None else float(round_posterior)
        self.input_flip = check_flip(input_flip)
        self.straight_through = bool(straight_through)
        self.generator = torch.Generator().manual_seed(int(seed))

    def describe(self) -> dict:
        """The settings that are on (an empty dict for no defense)."""
        d = {"round_posterior": self.round_posterior, "clip_counts": self.clip_counts,
             "input_flip": self.input_flip or None, "straight_through": self.straight_through or None}
        return {k: v for k, v in d.items() if v is not None}

    @property
    def active(self) -> bool:
        return self.clip_counts is not None or self.round_posterior is not None or self.input_flip > 0

    def logits(self, model, x: torch.Tensor) -> torch.Tensor:
        if self.input_flip > 0:
            x = flip_spikes(x, self.input_flip, self.generator)
        if self.clip_counts is None:
            return model.logits(x)
        dep = model.deployment
        if dep.readout != "spikes":
            raise InputError(f"clip_counts caps output spike counts; this deployment reads out {dep.readout!r}")
        out, _ = model.run(x)
        counts = torch.as_tensor(out, dtype=torch.float32)[..., model.settle:].sum(-1)
        clipped = torch.clamp(counts, max=float(self.clip_counts))
        if self.straight_through:
            clipped = counts + (clipped - counts).detach()
        return float(dep.posterior_scale) * clipped

    def __call__(self, model, x: torch.Tensor) -> torch.Tensor:
        post = torch.softmax(self.logits(model, x), dim=1)
        if self.round_posterior is not None:
            rounded = round_to_grid(post, self.round_posterior)
            post = post + (rounded - post).detach() if self.straight_through else rounded
        return post


READOUT_KEYS = ("round_posterior", "clip_counts", "input_flip", "straight_through")


def observed_posterior(defense, seed: int = 0) -> ObservedPosterior | None:
    """The ``observe`` hook of a query-time defense: None, an ``ObservedPosterior`` (returned as it is) or a dict
    of ``READOUT_KEYS`` (an unknown key is refused, naming it). None when no setting is on."""
    if defense is None or isinstance(defense, ObservedPosterior):
        return defense if defense is None or defense.active else None
    if not isinstance(defense, dict):
        raise InputError(f"defense must be a dict of {', '.join(READOUT_KEYS)} or a defenses.ObservedPosterior, "
                         f"got {type(defense).__name__}")
    unknown = sorted(set(defense) - set(READOUT_KEYS))
    if unknown:
        raise InputError(f"unknown defense setting {unknown[0]!r} (known: {', '.join(READOUT_KEYS)})")
    obs = ObservedPosterior(**defense, seed=seed)
    return obs if obs.active else None


def round_to_grid(p: torch.Tensor, q: float) -> torch.Tensor:
    """``p`` rounded to the nearest multiple of ``q`` (halves up), in [0, 1]."""
    return torch.clamp(torch.floor(p / q + 0.5) * q, 0.0, 1.0)
