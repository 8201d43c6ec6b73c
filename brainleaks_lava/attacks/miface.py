"""MI-FACE (Fredrikson et al. 2015), the ANN baseline: gradient descent on 1 - M_y(x) in image space.

x starts at 0 (``start``: another uniform grey); each step ``x <- clip(x - lr * grad, 0, 1)``; the best x seen (lowest cost) is kept.
A reconstruction stops after ``patience`` iterations without improvement, when its cost reaches
``cost_threshold``, or after ``iterations`` (published: lr 0.1, patience 100, 0.01, 5,000; ``iterations`` was
called ``max_iterations`` before, and that name is still accepted with a ``FutureWarning``).
All classes run in one batch.

Saturated classes (paper mode): where the target posterior p is below ``rescue_below`` (default 1e-3), the
gradient of ``1 - p`` = ``-p * grad log p`` is too small for float32 to move x: on the shipped MNIST ANN
at x = 0, class 8 has p = 1.1e-9 and |grad| = 3e-8, so no step changes the cost, the patience rule stops
it after 100 iterations and the black start image is returned at confidence 0.000. There the step
follows ``-grad log p`` instead: the same direction, at a magnitude that moves x. The cost, the best-x
rule and the stopping rules are unchanged, and a class that never improves on its start is reported
(``extra["stuck_at_start"]`` and a warning). ``mode="reference"`` keeps the published rule
(``rescue_below = 0``). Where the rule hands over (p = ``rescue_below``), the step shrinks by the factor p:
with the default 1e-3 and a grey start on the AT&T faces ANN, 22 of 40 classes crept along at target
confidence 0.001-0.03 for 1,500 iterations; ``rescue_below = 0.5`` brought all 40 to 0.96-0.99.

Progress is measured on log p in paper mode: in float32, ``1 - p`` is exactly 1.0 for every p below
6e-8 (half the float32 spacing below 1), so a class whose posterior climbs from 1e-20 to 1e-9 shows no
"improvement" of its cost, the patience rule stops it after 100 iterations and the start image (target
confidence 0.000) is returned although the step was working (a confidently trained ANN gives most classes
such posteriors at a black start image). ``log p`` orders images exactly as ``1 - p`` does, without the
rounding; the recorded cost history is still ``1 - p``. ``mode="reference"`` compares the float32 cost as
the published code does.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import InitVar, dataclass
from typing import ClassVar

import numpy as np
import torch
from ..errors import InputError
from ..progress import progress_bar

from .base import IMAGE, Attack, AttackParams, AttackResult, history_row, stack_history

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MIFaceParams(AttackParams):
    mode: str = "paper"
    lr: float = 0.1
    iterations: int = 5000  # at most this many (the patience and cost rules stop a class earlier)
    patience: int = 100
    cost_threshold: float = 0.01
    rescue_below: float = 1e-3  # step along -grad log p where the target posterior is below this (0: never)
    start: float = 0.0  # intensity of the uniform start image (published: 0, black)
    max_iterations: InitVar[int | None] = None  # the old name of ``iterations``
    renamed: ClassVar[dict] = {"max_iterations": "iterations"}  # old name -> name (run configs map them too)

    def __post_init__(self, max_iterations=None):
        if max_iterations is not None:
            if self.iterations != MIFaceParams.iterations:
                raise InputError("give MI-FACE's 'iterations' only ('max_iterations' is its old name)")
            warnings.warn("MI-FACE's 'max_iterations' is now called 'iterations' (as the CLI's --iterations and "
                          "BL-v1/BL-v2's); the old name will go", FutureWarning, stacklevel=3)
            object.__setattr__(self, "iterations", max_iterations)
        self._mode()
        self._in_range("rescue_below", 0.0, 1.0)
        self._in_range("lr", 0.0, float("inf"), lo_open=True, hi_open=True)
        self._positive_int("iterations")
        self._positive_int("patience")
        self._in_range("cost_threshold", 0.0, 1.0)
        self._in_range("start", 0.0, 1.0)

    @classmethod
    def reference(cls, **overrides) -> "MIFaceParams":
        # the published code uses the paper's rules, without the rescue of saturated classes
        return cls(**{"mode": "reference", "rescue_below": 0.0, **overrides})


class MIFace(Attack):
    name = "miface"
    requires = IMAGE
    params_class = MIFaceParams

    def _invert(self, classes, gen, progress):
        p = self.params
        dev = self.adapter.device
        r = len(classes)
        x = torch.full((r, *self.adapter.input_shape), float(p.start), device=dev)
        best_x = x.clone()
        best = torch.full((r,), float("inf"))  # best cost 1 - p
        best_key = torch.full((r,), float("inf"))  # what "improved" compares: -log p (paper) or 1 - p (reference)
        on_log = p.mode == "paper"
        since = torch.zeros(r, dtype=torch.long)
        active = torch.ones(r, dtype=torch.bool)
        iters = np.zeros(r, dtype=np.int64)
        history = []
        bar = progress_bar(range(p.iterations), desc="MI-FACE", disable=not progress)
        for _ in bar:
            idx = active.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            logp, loss, grad = self._cost_and_step(x[idx], classes[idx].to(dev))
            loss = loss.cpu()
            key = -logp.cpu() if on_log else loss
            if not history:
                start_key = key.clone()
            history.append(history_row(r, idx, loss))
            improved = key < best_key[idx]
            best_x[idx[improved]] = x[idx[improved]]
            best[idx[improved]] = loss[improved]
            best_key[idx[improved]] = key[improved]
            since[idx] = torch.where(improved, torch.zeros_like(since[idx]), since[idx] + 1)
            stop = (best[idx] <= p.cost_threshold) | (since[idx] >= p.patience)
            active[idx[stop]] = False
            go = idx[~stop]
            x[go] = (x[go] - p.lr * grad[~stop.to(grad.device)]).clamp_(0.0, 1.0)
            iters[go.numpy()] += 1
            if len(history) % 50 == 1:
                bar.set_postfix(conf=f"{float(1 - best.mean()):.3f}")
        # a class whose best cost is its start cost never found a better image than the start
        stuck = [int(c) for c, b, s0 in zip(classes.tolist(), best_key.tolist(), start_key.tolist()) if b >= s0]
        if stuck:
            log.warning("MI-FACE: classes %s never improved on the start image (target posterior stayed at its "
                        "start value); they are returned as the start image", stuck)
        with torch.no_grad():
            final = self.adapter.posterior(best_x).gather(1, classes.view(-1, 1).to(dev)).squeeze(1)
        return AttackResult(
            attack=self.name, mode=p.mode, params=p.to_dict(), seed=0, targets=classes.numpy(),
            samples=best_x.cpu().numpy().astype(np.float32), confidence=final.cpu().numpy(),
            iterations=iters, loss_history=stack_history(history, r), extra={"stuck_at_start": stuck})

    def _cost_and_step(self, x: torch.Tensor, classes: torch.Tensor):
        """log of the target posterior, cost ``1 - p`` and the step direction (the cost's gradient, or
        ``-grad log p`` for rows whose posterior is below ``rescue_below``)."""
        x = x.detach().clone().requires_grad_(True)
        logp = torch.log_softmax(self.adapter.model.logits(x), dim=1).gather(1, classes.view(-1, 1)).squeeze(1)
        p = logp.exp()
        cost = 1.0 - p
        rescue = p.detach() < self.params.rescue_below
        (grad,) = torch.autograd.grad(cost.sum(), x, retain_graph=bool(rescue.any()))
        if rescue.any():
            (glog,) = torch.autograd.grad((-logp).sum(), x)
            grad = torch.where(rescue.view(-1, *([1] * (x.ndim - 1))), glog, grad)
        return logp.detach(), cost.detach(), grad.detach()
