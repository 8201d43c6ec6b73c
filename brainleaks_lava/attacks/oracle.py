"""The deployed network as a black box: a query oracle for chip-only attackers (issue 30).

``QueryOracle(target, exposes=..., defense=None, budget=N, seed=0)`` answers batches of inputs in the
deployment's input domain (images in [0, 1] for the ``rate``, ``if`` and ``graded`` encoders; binary spike
trains (N, features, T) for ``events``) with ONLY what the deployment declares:

- ``counts``: the output neurons' spike counts (int64, steps before the twin's settling delay not read), after
  the defense's count clipping; needs a deployment whose read-out is spike counts;
- ``posterior``: the deployed posterior after the defense (posterior rounding, count clipping: the existing
  ``defenses.ObservedPosterior``), float64;
- ``label``: the top-1 class of the deployed read-out (int64).

Each query is encoded by the deployment's encoder (the oracle's own seeded generator for Bernoulli rate coding;
the defense's input flips drawn from it too) and answered by the twin (bit-exact with Lava) under
``torch.no_grad()`` in batches. ``defense`` (a ``defenses.ObservedPosterior``; default: the ``observe`` hook of an
attack adapter handed in as ``target``) is what the deployment applies to every query. The twin is held in a closure, not as an attribute: no attribute, method or
``vars()`` of the oracle returns the model, its parameters or gradients. (Python cannot hide an object from
introspection of closure cells or the garbage collector; the boundary is the oracle's interface.)

Queries are counted one per sample; a batch that would take the count past ``budget`` is refused with
``QueryBudgetExceeded`` before anything runs. A seeded reservoir sample of the answered queries (the spike
trains or drives the twin saw, after encoding and input flips, and the answers) is kept for replay on Lava
(``sample_for_replay``).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import InputError
from ..safety import check_count

log = logging.getLogger(__name__)

EXPOSURES = ("counts", "posterior", "label")
MAX_QUERIES = 100_000_000  # queries one oracle answers (the largest budget is 10^5)
MAX_BATCH = 65_536
MAX_KEEP = 100_000  # queries kept for replay


class QueryBudgetExceeded(InputError):
    """A batch of queries would take the oracle past its budget (nothing of that batch was answered)."""


def _deployed_model(target):
    model = getattr(target, "model", target)
    if not (hasattr(model, "deployment") and hasattr(model, "twin")):
        raise InputError("a query oracle needs a deployed NetX network (a .net file loaded with its deployment)")
    return model


def _defense_parts(defense):
    """(read-out part without input flips, flip probability) of an ``ObservedPosterior`` defense."""
    from ..defenses.readout import ObservedPosterior

    if defense is None:
        return None, 0.0
    if not isinstance(defense, ObservedPosterior):
        raise InputError(f"defense must be a defenses.ObservedPosterior or None, got {type(defense).__name__}")
    readout = ObservedPosterior(clip_counts=defense.clip_counts, round_posterior=defense.round_posterior)
    return readout, float(defense.input_flip)


def expose_answer(logits: torch.Tensor, exposes: str, posterior_scale: float, round_posterior: float | None = None,
                  clip_counts: int | None = None) -> np.ndarray:
    """What the deployment answers, from the deployed read-out's logits (N, C) as the twin or Lava computed them
    (``netx.target.readout_logits``): spike counts capped at ``clip_counts`` (int64), the softmax posterior rounded
    to ``round_posterior`` (float64; ``defenses.ObservedPosterior`` applied to the same logits), or the top-1
    label (int64). One function for the oracle and for checking its answers on Lava, so both agree by
    construction of the arithmetic, not by a second copy of it."""
    from ..defenses.readout import round_to_grid

    if exposes not in EXPOSURES:
        raise InputError(f"exposes must be one of {', '.join(EXPOSURES)}, got {exposes!r}")
    if clip_counts is not None:
        counts = torch.round(logits / posterior_scale)
        logits = posterior_scale * torch.clamp(counts, max=float(clip_counts))
    if exposes == "label":
        return logits.argmax(1).cpu().numpy().astype(np.int64)
    if exposes == "counts":
        return torch.round(logits / posterior_scale).cpu().numpy().astype(np.int64)
    post = torch.softmax(logits, dim=1)
    if round_posterior is not None:
        post = round_to_grid(post, round_posterior)
    return post.cpu().numpy().astype(np.float64)


class QueryOracle:
    """The deployed network as a black box (see the module docstring)."""

    def __init__(self, target, exposes: str = "counts", defense=None, budget: int = 10_000, seed: int = 0,
                 batch_size: int = 256, keep: int = 200):
        from ..data.encoding import _as_intensities, if_spikes
        from ..defenses.noise import flip_spikes

        if exposes not in EXPOSURES:
            raise InputError(f"exposes must be one of {', '.join(EXPOSURES)}, got {exposes!r}")
        model = _deployed_model(target)
        dep = model.deployment
        if exposes == "counts" and dep.readout != "spikes":
            raise InputError(f"exposes 'counts' returns output spike counts, but this deployment reads out "
                             f"{dep.readout!r}: use exposes 'posterior' or 'label'")
        self._budget = check_count(budget, "budget", MAX_QUERIES, 1, " (queries)")
        seed = check_count(seed, "seed", 2**63 - 1, 0)
        batch_size = check_count(batch_size, "batch_size", MAX_BATCH, 1)
        self._keep = check_count(keep, "keep", MAX_KEEP, 0, " (queries kept for replay)")
        if defense is None:  # an attack adapter's observe hook is the deployment's defense
            defense = getattr(target, "observe", None)
        readout, flip = _defense_parts(defense)
        if flip > 0 and dep.encoding == "graded":
            raise InputError("the defense's input flips apply to spike inputs; this deployment drives a graded input")
        self._exposes = exposes
        self._encoding = dep.encoding
        self._features = int(model.num_inputs)
        self._steps = int(dep.steps)
        self._classes = int(model.num_classes)
        self._input_range = tuple(float(v) for v in dep.input_range) if dep.encoding == "graded" else None
        self._posterior_scale = float(dep.posterior_scale)
        self._rounding = None if readout is None else readout.round_posterior
        self._clip = None if readout is None else readout.clip_counts
        self._flip = flip
        self._used = 0
        self._seen = 0
        self._kept_in: list = []
        self._kept_out: list = []
        self._kept_idx: list = []
        self._rng = np.random.default_rng([int(seed), 1])
        if self._clip is not None and dep.readout != "spikes":
            raise InputError(f"the defense's clip_counts caps output spike counts; this deployment reads out "
                             f"{dep.readout!r}")
        from ..models.device import module_device

        device = module_device(model)
        enc_gen = torch.Generator().manual_seed(int(seed))
        steps, features, encoding, input_range = self._steps, self._features, self._encoding, self._input_range
        scale, rounding, clip = self._posterior_scale, self._rounding, self._clip

        def encode(x) -> torch.Tensor:
            """A batch in the deployment's input domain -> what the twin's input layer receives (N, F, T)."""
            from ..data.encoding import as_real_tensor, rate_encode

            if encoding == "events":
                t = as_real_tensor(x, "spikes").to(torch.float32)
                if t.ndim < 3 or t.shape[-1] != steps or int(np.prod(t.shape[1:-1])) != features:
                    raise InputError(f"spikes must have shape (batch, {features}, {steps}), got {tuple(t.shape)}")
                if t.numel() and not bool(((t == 0) | (t == 1)).all()):
                    raise InputError("spikes must be binary (0 or 1)")
                return t.reshape(len(t), features, steps)
            img = _as_intensities(x)
            if img.shape[1] != features:
                raise InputError(f"images must hold {features} values per sample, got {img.shape[1]}")
            if encoding == "rate":
                return rate_encode(img, steps=steps, generator=enc_gen)
            drive = img.unsqueeze(-1).expand(*img.shape, steps)
            if encoding == "if":
                return if_spikes(drive)
            lo, hi = input_range
            return lo + (hi - lo) * drive

        def answer(x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
            """Encoded inputs (N, F, T) -> (the inputs the twin saw, the exposed answer)."""
            if flip > 0:
                x = flip_spikes(x, flip, enc_gen)
            outs = []
            with torch.no_grad():
                for i in range(0, len(x), batch_size):
                    logits = model.logits(x[i:i + batch_size].to(device))
                    outs.append(expose_answer(logits, exposes, scale, rounding, clip))
            return x, np.concatenate(outs)

        self._encode = encode
        self._answer = answer

    # ------------------------------------------------------------------ what the deployment declares
    @property
    def exposes(self) -> str:
        return self._exposes

    @property
    def encoding(self) -> str:
        """The deployment's input encoder: 'rate', 'if', 'graded' (queries are images in [0, 1]) or 'events'
        (queries are spike trains)."""
        return self._encoding

    @property
    def takes_spikes(self) -> bool:
        return self._encoding == "events"

    @property
    def num_inputs(self) -> int:
        return self._features

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def num_classes(self) -> int:
        return self._classes

    @property
    def posterior_scale(self) -> float:
        """The softmax scale of the deployed posterior over spike counts (part of the deployment card)."""
        return self._posterior_scale

    @property
    def rounding(self) -> float | None:
        return self._rounding

    @property
    def budget(self) -> int:
        return self._budget

    @property
    def queries_used(self) -> int:
        return self._used

    @property
    def remaining(self) -> int:
        return self._budget - self._used

    @property
    def kept(self) -> int:
        """Answered queries held for replay (at most ``keep``)."""
        return len(self._kept_in)

    def describe(self) -> dict:
        return {"exposes": self._exposes, "encoding": self._encoding, "budget": self._budget,
                "queries": self._used, "round_posterior": self._rounding, "clip_counts": self._clip,
                "input_flip": self._flip}

    # ------------------------------------------------------------------ queries
    def query(self, x) -> np.ndarray:
        """Answer a batch (one query per sample): counts (N, C) int64, posterior (N, C) float64 or labels (N,)
        int64. ``QueryBudgetExceeded`` (nothing run, nothing counted) when the batch would pass the budget."""
        n = len(x)
        if n == 0:
            raise InputError("a query batch must hold at least one input")
        if self._used + n > self._budget:
            raise QueryBudgetExceeded(f"query budget exceeded: {n} more queries after {self._used} would pass the "
                                      f"budget of {self._budget}")
        encoded = self._encode(x)
        seen, out = self._answer(encoded)
        self._used += n
        self._remember(seen, out)
        return out

    def _remember(self, seen: torch.Tensor, out: np.ndarray) -> None:
        """Reservoir sampling (seeded): every answered query is kept with equal probability."""
        if self._keep == 0:
            return
        n = len(out)
        idx = np.arange(self._seen, self._seen + n)
        self._seen += n
        slots = self._rng.integers(0, idx + 1)
        kind = np.float32 if self._encoding == "graded" else np.uint8
        for i in range(n):
            pos = len(self._kept_in) if len(self._kept_in) < self._keep else int(slots[i])
            if pos >= self._keep:
                continue
            item_in, item_out = seen[i].cpu().numpy().astype(kind), np.array(out[i])
            if pos == len(self._kept_in):
                self._kept_in.append(item_in)
                self._kept_out.append(item_out)
                self._kept_idx.append(int(idx[i]))
            else:
                self._kept_in[pos], self._kept_out[pos], self._kept_idx[pos] = item_in, item_out, int(idx[i])

    def sample_for_replay(self, k: int) -> dict:
        """``k`` of the kept queries (a seeded choice, in query order): ``inputs`` (k, features, T) as the twin
        saw them (uint8 spikes, or float32 graded drives), ``outputs`` (what the oracle answered), ``index`` (the
        query's number), ``exposes``, ``round_posterior``, ``clip_counts``."""
        k = check_count(k, "k", max(len(self._kept_in), 1), 1, " (queries kept for replay)")
        if k > len(self._kept_in):
            raise InputError(f"k must be at most {len(self._kept_in)} (the queries kept), got {k}")
        pick = np.sort(np.random.default_rng([self._seen, 2]).choice(len(self._kept_in), size=k, replace=False))
        order = pick[np.argsort([self._kept_idx[i] for i in pick], kind="stable")]
        return {"inputs": np.stack([self._kept_in[i] for i in order]),
                "outputs": np.stack([self._kept_out[i] for i in order]),
                "index": np.asarray([self._kept_idx[i] for i in order], dtype=np.int64),
                "exposes": self._exposes, "round_posterior": self._rounding, "clip_counts": self._clip}


__all__ = ["QueryOracle", "QueryBudgetExceeded", "EXPOSURES"]
