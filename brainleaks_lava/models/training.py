"""Training loop shared by the targets and the evaluation classifiers.

A model is trained through one callable ``logits_fn(model, batch_images, generator) -> logits`` so the
same loop serves the SNN (which rate-encodes each batch with the seeded generator), the ANN and the
evaluators. Every random draw (initialisation, shuffling, encoding) comes from generators seeded from
``TrainConfig.seed``.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from ..progress import progress_bar

from ..errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave torch's default
    device: str = "auto"  # "auto" = cuda when present, else cpu
    grad_clip: float = 1.0
    weight_decay: float = 0.0  # decoupled (AdamW) weight decay; 0 = plain Adam

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise InputError(f"lr must be positive, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0.0 <= self.weight_decay < float("inf")):
            raise InputError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not isinstance(self.threads, int) or self.threads < 0:
            raise InputError(f"threads must be an integer >= 0, got {self.threads!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(device)


def apply_threads(threads: int) -> None:
    """Set the torch CPU thread count (0: keep torch's default) and flush denormal floats to zero
    (surrogate-gradient tails otherwise slow CPU math many times over)."""
    torch.set_flush_denormal(True)
    if threads > 0:
        torch.set_num_threads(threads)


LogitsFn = Callable[[torch.nn.Module, torch.Tensor, torch.Generator], torch.Tensor]


def spike_logits_fn(encoding: dict):
    """Logits of a spiking model for a batch of dataset inputs: encode them as ``encoding`` says
    (rate coding with the loop's seeded generator, or event frames as they are) and run the model."""
    from ..data.encoding import to_spikes

    def fn(model, inputs, generator, device):
        return model.logits(to_spikes(inputs, encoding, generator).to(device))
    return fn


@torch.no_grad()
def accuracy(model: torch.nn.Module, logits_fn: LogitsFn, images: np.ndarray, labels: np.ndarray,
             seed: int = 1, batch_size: int = 200, device: torch.device | None = None,
             desc: str | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``images`` (encoding draws seeded by ``seed``)."""
    device = device or next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    model.eval()
    correct = 0
    for i in progress_bar(range(0, len(labels), batch_size), desc=desc or "", disable=desc is None):
        x = torch.as_tensor(images[i:i + batch_size], dtype=torch.float32)
        logits = logits_fn(model, x, gen, device)
        correct += int((logits.argmax(1).cpu() == torch.as_tensor(labels[i:i + batch_size])).sum())
    return correct / max(len(labels), 1)


def train(model: torch.nn.Module, logits_fn, images: np.ndarray, labels: np.ndarray,
          config: TrainConfig, val: tuple[np.ndarray, np.ndarray] | None = None,
          desc: str = "train") -> dict:
    """Train with Adam on cross-entropy of ``logits_fn``; returns a history dict.

    ``logits_fn(model, x_cpu_float, generator, device) -> logits on device``.
    """
    if len(images) != len(labels) or len(labels) == 0:
        raise InputError(f"images and labels must be non-empty and of equal length, got {len(images)} and {len(labels)}")
    apply_threads(config.threads)
    device = resolve_device(config.device)
    model.to(device)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    if config.weight_decay > 0:
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = len(labels)
    history = {"loss": [], "train_acc": [], "val_acc": []}
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        bar = progress_bar(range(0, n, config.batch_size), desc=f"{desc} epoch {epoch + 1}/{config.epochs}")
        for i in bar:
            idx = order[i:i + config.batch_size]
            x = torch.as_tensor(images[idx.numpy()], dtype=torch.float32)
            y = labels_t[idx].to(device)
            logits = logits_fn(model, x, gen, device)
            loss = torch.nn.functional.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged (loss {loss.item()}) at epoch {epoch + 1}")
            opt.zero_grad()
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            tot_loss += float(loss) * len(idx)
            tot_correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}")
        history["loss"].append(tot_loss / seen)
        history["train_acc"].append(tot_correct / seen)
        msg = f"{desc} epoch {epoch + 1}: loss {tot_loss / seen:.4f} train acc {tot_correct / seen:.4f}"
        if val is not None:
            acc = accuracy(model, logits_fn, val[0], val[1], seed=config.seed + 1, device=device)
            history["val_acc"].append(acc)
            msg += f" val acc {acc:.4f}"
        log.info(msg)
    return history
