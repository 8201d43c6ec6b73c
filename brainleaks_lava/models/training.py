"""Training loop shared by the targets and the evaluation classifiers.

A model is trained through one callable ``logits_fn(model, batch_images, generator) -> logits`` so the
same loop serves the SNN (which rate-encodes each batch with the seeded generator), the ANN and the
evaluators. Every random draw (initialisation, shuffling, encoding) comes from generators seeded from
``TrainConfig.seed``. After every epoch a line gives loss, training and validation accuracy; with a checkpoint
path the loop writes its state after every epoch and an interrupted training resumes after its last finished
epoch (``models.checkpoint``).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import BrainleaksError, InputError
from ..progress import format_duration, progress_bar, status
from ..safety import check_threads
from .checkpoint import (CheckpointChanged, checkpoint_epoch, read_checkpoint, restore, save_checkpoint,
                         training_fingerprint)

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
        check_threads(self.threads, "threads")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_device(device: str = "auto") -> torch.device:
    """The training's device (``TrainConfig.device``; "auto": CUDA when present): ``device.resolve_device``."""
    from .device import resolve_device as resolve

    return resolve(device)


def apply_threads(threads: int) -> None:
    """Set the torch CPU thread count (0: keep torch's default) and flush denormal floats to zero
    (surrogate-gradient tails otherwise slow CPU math many times over). ``threads`` above
    ``safety.max_threads()`` (4 per CPU) is refused (``InputError``) before torch creates any thread."""
    check_threads(threads, "threads")
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
          desc: str = "train", checkpoint: str | Path | None = None, identity: dict | None = None,
          resume: bool = True) -> dict:
    """Train with Adam on cross-entropy of ``logits_fn``; returns a history dict.

    ``logits_fn(model, x_cpu_float, generator, device) -> logits on device``. After every epoch one line
    (:func:`~brainleaks_lava.progress.status`) gives its loss, training accuracy and, with ``val`` (images,
    labels), the validation accuracy.

    ``checkpoint``: a path (see :func:`~brainleaks_lava.models.checkpoint.checkpoint_path`) where the state is
    written atomically after every epoch; with ``resume``, a checkpoint there whose fingerprint matches this
    training (settings, data, initial weights and ``identity``: the caller's description of model and
    encoding) is continued after its last epoch, giving bit for bit the weights of an uninterrupted training.
    Any other checkpoint is reported and replaced. The caller removes it once the trained model is written.
    """
    if len(images) != len(labels) or len(labels) == 0:
        raise InputError(f"images and labels must be non-empty and of equal length, got {len(images)} and {len(labels)}")
    apply_threads(config.threads)
    device = resolve_device(config.device)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    fingerprint = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        fingerprint = training_fingerprint(config.to_dict(), identity, model, images, labels, val)
    model.to(device)
    if config.weight_decay > 0:
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    n = len(labels)
    history = {"loss": [], "train_acc": [], "val_acc": []}
    start = 0
    if checkpoint is not None:
        resumed = _resume(checkpoint, fingerprint, config, resume, desc, model, opt, gen)
        if resumed is not None:
            start, history = resumed
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    try:
        for epoch in range(start, config.epochs):
            t0 = time.monotonic()
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
            msg = (f"{desc} epoch {epoch + 1}/{config.epochs}: loss {tot_loss / seen:.4f}, "
                   f"train acc {100 * tot_correct / seen:.2f}%")
            if val is not None:
                acc = accuracy(model, logits_fn, val[0], val[1], seed=config.seed + 1, device=device)
                history["val_acc"].append(acc)
                msg += f", val acc {100 * acc:.2f}% ({len(val[1])} images)"
            if checkpoint is not None:
                save_checkpoint(checkpoint, fingerprint, epoch + 1, config.epochs, history, model, opt, gen)
            msg += f" [{format_duration(time.monotonic() - t0)}]"
            log.debug(msg)
            status(msg)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: say what is kept before the CLI's one line
        if checkpoint is not None:
            saved = checkpoint_epoch(checkpoint, fingerprint)
            done = "epoch 1 is" if saved == 1 else f"epochs 1-{saved} are"
            kept = (f"{done} kept in {checkpoint}; the same command resumes after epoch {saved}"
                    if saved else "no epoch had finished")
            status(f"{desc}: stopped in epoch {saved + 1}/{config.epochs}; {kept}")
        raise
    return history


def _resume(path: Path, fingerprint: str, config: TrainConfig, resume: bool, desc: str, model, opt, gen):
    """(epochs done, history) of a usable checkpoint at ``path``, restored into model, optimizer and generator;
    None (with a message saying why) when there is none to use."""
    if not path.exists():
        return None
    if not resume:
        log.warning("%s: not resuming from the checkpoint %s (asked to start afresh); it will be replaced", desc, path)
        return None
    try:
        ckpt = read_checkpoint(path)
    except CheckpointChanged:  # edited since it was written: refused, the file kept for whoever looks at it
        raise
    except BrainleaksError as e:
        log.warning("%s: ignoring the unreadable checkpoint %s (%s); starting at epoch 1, it will be replaced",
                    desc, path, " ".join(str(e).split()))
        return None
    if ckpt.fingerprint != fingerprint:
        log.warning("%s: ignoring the checkpoint %s: it was written by a training with other settings, data or "
                    "model; starting at epoch 1, it will be replaced", desc, path)
        return None
    if ckpt.epoch > config.epochs:
        log.warning("%s: ignoring the checkpoint %s: it is at epoch %d, beyond the %d epochs asked for; starting at "
                    "epoch 1, it will be replaced", desc, path, ckpt.epoch, config.epochs)
        return None
    try:
        restore(ckpt, path, model, opt, gen)
    except BrainleaksError as e:
        log.warning("%s: ignoring the checkpoint %s (%s); starting at epoch 1, it will be replaced",
                    desc, path, " ".join(str(e).split()))
        return None
    status(f"{desc}: resuming from epoch {ckpt.epoch}/{config.epochs} (checkpoint {path})")
    history = {k: list(ckpt.history.get(k, [])) for k in ("loss", "train_acc", "val_acc")}
    return ckpt.epoch, history
