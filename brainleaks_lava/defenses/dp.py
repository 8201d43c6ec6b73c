"""Differentially private training of SNN targets: DP-SGD (per-sample gradient clipping + Gaussian noise).

Why not Opacus' ``PrivacyEngine``: lava-dl's ``slayer.block.cuba.Dense`` is no layer type Opacus has a
per-sample gradient rule for, so Opacus falls back to its functorch sampler, which cannot run lava-dl's neuron
dynamics (custom ``torch.autograd.Function`` classes without ``setup_context``). Measured with Opacus 1.5.2,
torch 2.3.1, lava-dl 0.6.0 (``make_private`` then one step on a 20-8-3 ``SpikingMLP``)::

    RuntimeError: In order to use an autograd.Function with functorch transforms (vmap, grad, jvp, jacrev,
    ...), it must override the setup_context staticmethod.

``torch.func.vmap`` over the model fails the same way. So per-sample gradients are computed here with
microbatches of one sample (exact for any model, B backward passes per batch): each sample's gradient over all
trainable parameters is clipped to L2 norm ``max_grad_norm`` (C), the clipped gradients are summed, Gaussian
noise N(0, (noise_multiplier * C)^2) from the training's seeded generator is added to every coordinate, and the
sum divided by the batch size is the gradient the optimizer (Adam, as in ``models.training``) steps with.

Privacy accounting uses Opacus' RDP accountant (``opacus.accountants.RDPAccountant``), one step per batch
with sampling rate batch_size / N. The batches here are a seeded shuffle cut into fixed-size pieces, not
Poisson sampling, so the reported epsilon is the usual approximation made by DP-SGD implementations that
shuffle (state it with the number).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..progress import format_duration, progress_bar, status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DPConfig:
    noise_multiplier: float = 1.0  # sigma: noise std in units of max_grad_norm
    max_grad_norm: float = 1.0  # C: per-sample gradient L2 clip
    delta: float = 1e-5  # delta of the (epsilon, delta) reported

    def __post_init__(self):
        for name in ("noise_multiplier", "max_grad_norm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise InputError(f"dp {name} must be a number >= 0, got {v!r}")
        if not self.max_grad_norm > 0:
            raise InputError(f"dp max_grad_norm must be positive, got {self.max_grad_norm!r}")
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not 0 < self.delta < 1:
            raise InputError(f"dp delta must be in (0, 1), got {self.delta!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def epsilon_of(dp: DPConfig, sample_rate: float, steps: int) -> float | None:
    """(epsilon at ``dp.delta``) of ``steps`` DP-SGD steps by Opacus' RDP accountant; None without Opacus
    or without noise (no privacy)."""
    if dp.noise_multiplier <= 0:
        return None
    try:
        from opacus.accountants import RDPAccountant
    except ImportError:  # pragma: no cover - opacus is optional
        log.warning("opacus is not installed: no epsilon is reported (pip install opacus)")
        return None
    acc = RDPAccountant()
    acc.history = [(float(dp.noise_multiplier), float(sample_rate), int(steps))]
    return float(acc.get_epsilon(delta=float(dp.delta)))


def clip_and_sum(per_sample: list[list[torch.Tensor]], max_norm: float) -> tuple[list[torch.Tensor], np.ndarray]:
    """Sum of the per-sample gradients (each a list over parameters), each scaled to L2 norm <= ``max_norm``
    over all its parameters; also returns the norms before clipping."""
    norms = []
    total = [torch.zeros_like(g) for g in per_sample[0]]
    for grads in per_sample:
        norm = torch.sqrt(sum(float((g.double() ** 2).sum()) for g in grads) * torch.ones(()))
        norms.append(float(norm))
        scale = min(1.0, max_norm / (float(norm) + 1e-12))
        for t, g in zip(total, grads):
            t.add_(g, alpha=scale)
    return total, np.asarray(norms)


def train_dp(model: torch.nn.Module, logits_fn, images: np.ndarray, labels: np.ndarray, config, dp: DPConfig,
             val=None, desc: str = "train (DP)") -> dict:
    """Train ``model`` with DP-SGD (see the module docstring); ``config`` is a ``models.training.TrainConfig``
    (epochs, batch size, lr, seed, threads). Returns the history with the epsilon after every epoch."""
    from ..models.training import accuracy, apply_threads

    if len(images) != len(labels) or len(labels) == 0:
        raise InputError("images and labels must be non-empty and of equal length")
    apply_threads(config.threads)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay) if config.weight_decay > 0
           else torch.optim.Adam(params, lr=config.lr))
    n = len(labels)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    history = {"loss": [], "train_acc": [], "val_acc": [], "epsilon": [], "clipped_fraction": []}
    steps = 0
    for epoch in range(config.epochs):
        t0 = time.monotonic()
        model.train()
        order = torch.randperm(n, generator=gen)
        tot_loss, correct, seen, clipped = 0.0, 0, 0, 0
        for i in progress_bar(range(0, n, config.batch_size), desc=f"{desc} epoch {epoch + 1}/{config.epochs}"):
            idx = order[i:i + config.batch_size]
            per_sample = []
            for j in idx.tolist():
                x = torch.as_tensor(images[j:j + 1], dtype=torch.float32)
                logits = logits_fn(model, x, gen, torch.device("cpu"))
                loss = torch.nn.functional.cross_entropy(logits, labels_t[j:j + 1])
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training diverged (loss {loss.item()}) at epoch {epoch + 1}")
                per_sample.append([g.detach() for g in torch.autograd.grad(loss, params)])
                tot_loss += float(loss)
                correct += int(logits.argmax(1).item() == labels[j])
            total, norms = clip_and_sum(per_sample, dp.max_grad_norm)
            clipped += int((norms > dp.max_grad_norm).sum())
            for p, g in zip(params, total):
                noise = torch.normal(0.0, dp.noise_multiplier * dp.max_grad_norm, g.shape, generator=gen)
                p.grad = ((g + noise) / len(idx)).to(p.dtype)
            opt.step()
            opt.zero_grad()
            seen += len(idx)
            steps += 1
        eps = epsilon_of(dp, config.batch_size / n, steps)
        history["loss"].append(tot_loss / seen)
        history["train_acc"].append(correct / seen)
        history["epsilon"].append(eps)
        history["clipped_fraction"].append(clipped / seen)
        msg = (f"{desc} epoch {epoch + 1}/{config.epochs}: loss {tot_loss / seen:.4f}, train acc "
               f"{100 * correct / seen:.2f}%, epsilon {'inf' if eps is None else f'{eps:.2f}'} (delta {dp.delta:g})")
        if val is not None:
            acc = accuracy(model, logits_fn, val[0], val[1], seed=config.seed + 1)
            history["val_acc"].append(acc)
            msg += f", val acc {100 * acc:.2f}%"
        status(msg + f" [{format_duration(time.monotonic() - t0)}]")
    return history
