"""MI-FACE (Fredrikson et al. 2015), the ANN baseline: gradient descent on 1 - M_y(x) in image space.

x starts at 0; each step ``x <- clip(x - lr * grad, 0, 1)``; the best x seen (lowest cost) is kept.
A reconstruction stops after ``patience`` iterations without improvement, when its cost reaches
``cost_threshold``, or after ``max_iterations`` (published: lr 0.1, patience 100, 0.01, 5,000).
All classes run in one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .base import IMAGE, Attack, AttackParams, AttackResult, history_row, stack_history, target_posterior_and_grad


@dataclass(frozen=True)
class MIFaceParams(AttackParams):
    mode: str = "paper"
    lr: float = 0.1
    max_iterations: int = 5000
    patience: int = 100
    cost_threshold: float = 0.01

    def __post_init__(self):
        self._mode()
        self._in_range("lr", 0.0, float("inf"), lo_open=True, hi_open=True)
        self._positive_int("max_iterations")
        self._positive_int("patience")
        self._in_range("cost_threshold", 0.0, 1.0)

    @classmethod
    def reference(cls, **overrides) -> "MIFaceParams":
        return cls(**{"mode": "reference", **overrides})  # the published code uses the paper's rules


class MIFace(Attack):
    name = "miface"
    requires = IMAGE
    params_class = MIFaceParams

    def _invert(self, classes, gen, progress):
        p = self.params
        dev = self.adapter.device
        r = len(classes)
        x = torch.zeros((r, *self.adapter.input_shape), device=dev)
        best_x = x.clone()
        best = torch.full((r,), float("inf"))
        since = torch.zeros(r, dtype=torch.long)
        active = torch.ones(r, dtype=torch.bool)
        iters = np.zeros(r, dtype=np.int64)
        history = []
        bar = tqdm(range(p.max_iterations), desc="MI-FACE", disable=not progress, leave=False)
        for _ in bar:
            idx = active.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            conf, loss, grad = target_posterior_and_grad(self.adapter, x[idx], classes[idx])
            loss = loss.cpu()
            history.append(history_row(r, idx, loss))
            improved = loss < best[idx]
            best_x[idx[improved]] = x[idx[improved]]
            best[idx[improved]] = loss[improved]
            since[idx] = torch.where(improved, torch.zeros_like(since[idx]), since[idx] + 1)
            stop = (best[idx] <= p.cost_threshold) | (since[idx] >= p.patience)
            active[idx[stop]] = False
            go = idx[~stop]
            x[go] = (x[go] - p.lr * grad[~stop.to(grad.device)]).clamp_(0.0, 1.0)
            iters[go.numpy()] += 1
            if len(history) % 50 == 1:
                bar.set_postfix(conf=f"{float(1 - best.mean()):.3f}")
        with torch.no_grad():
            final = self.adapter.posterior(best_x).gather(1, classes.view(-1, 1).to(dev)).squeeze(1)
        return AttackResult(
            attack=self.name, mode=p.mode, params=p.to_dict(), seed=0, targets=classes.numpy(),
            samples=best_x.cpu().numpy().astype(np.float32), confidence=final.cpu().numpy(),
            iterations=iters, loss_history=stack_history(history, r))
