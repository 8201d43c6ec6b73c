"""Train a target (SNN or ANN) on a static dataset and write its model file."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..data import load_static
from ..data.encoding import rate_encode
from ..errors import InputError
from .ann import ANNSpec, SigmoidMLP
from .files import export_snn, load_snn, save_ann
from .snn import NeuronConfig, SNNSpec, SpikingMLP
from .training import TrainConfig, accuracy, train

log = logging.getLogger(__name__)


def snn_logits_fn(steps: int):
    """Logits of an SNN for a batch of images: rate-encode with the generator, run, count spikes."""
    def fn(model, images, generator, device):
        spikes = rate_encode(images.reshape(images.shape[0], -1), steps=steps, generator=generator)
        return model.logits(spikes.to(device))
    return fn


def flat_logits_fn(model, images, generator, device):
    return model.logits(images.reshape(images.shape[0], -1).to(device))


@dataclass(frozen=True)
class TargetRequest:
    dataset: str = "mnist"
    arch: str = "snn"
    data_root: str | None = None
    hidden: int = 3000
    steps: int = 25
    downsample: int = 1
    posterior_scale: float = 1.0
    readout: str = "voltage"
    neuron: NeuronConfig = NeuronConfig()

    def __post_init__(self):
        if self.arch not in ("snn", "ann"):
            raise InputError(f"arch must be 'snn' or 'ann', got {self.arch!r}")
        if not isinstance(self.hidden, int) or self.hidden <= 0:
            raise InputError(f"hidden must be a positive integer, got {self.hidden!r}")


def train_target(req: TargetRequest, train_cfg: TrainConfig, out: str | Path) -> dict:
    """Train the requested target, write it to ``out`` (atomically) and return its metadata."""
    out = Path(out)
    tr = load_static(req.dataset, req.data_root, split="train", downsample=req.downsample)
    va = load_static(req.dataset, req.data_root, split="val", downsample=req.downsample)
    n_in = int(np.prod(tr.images.shape[1:]))
    n_cls = len(tr.classes)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    t0 = time.time()
    if req.arch == "snn":
        spec = SNNSpec(sizes=(n_in, req.hidden, n_cls), steps=req.steps, neuron=req.neuron,
                       posterior_scale=req.posterior_scale, readout=req.readout)
        with torch.random.fork_rng(devices=[]):
            torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # scoped: weight init
            model = SpikingMLP(spec)
        fn = snn_logits_fn(req.steps)
    else:
        spec = ANNSpec(sizes=(n_in, req.hidden, n_cls))
        with torch.random.fork_rng(devices=[]):
            torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            model = SigmoidMLP(spec)
        fn = flat_logits_fn
    history = train(model, fn, tr.images, tr.labels, train_cfg, val=None, desc=f"train {req.arch}")
    model = model.cpu().eval()
    meta = {
        "dataset": req.dataset,
        "data_source": va.source,
        "classes": list(tr.classes),
        "input_shape": list(tr.images.shape[1:]),
        "encoding": {"kind": "rate", "steps": req.steps} if req.arch == "snn" else {"kind": "image", "range": [0, 1]},
        "downsample": req.downsample,
        "training": {**train_cfg.to_dict(), "history": history, "seconds": round(time.time() - t0, 1),
                     "train_images": int(len(tr.labels))},
        "seed": train_cfg.seed,
        "brainleaks_version": __version__,
    }
    if req.arch == "snn":
        # the exported file is the truth: measure validation accuracy on the re-imported twin
        export_snn(model, out, meta)
        twin = load_snn(out).model
        acc = accuracy(twin, fn, va.images, va.labels, seed=train_cfg.seed + 1, desc="validate")
        meta["validation_accuracy"] = acc
        meta["validation_images"] = int(len(va.labels))
        _update_sidecar(out, meta)
    else:
        acc = accuracy(model, fn, va.images, va.labels, seed=train_cfg.seed + 1)
        meta["validation_accuracy"] = acc
        meta["validation_images"] = int(len(va.labels))
        save_ann(model, out, meta)
    log.info("%s target: validation accuracy %.4f on %d images", req.arch, acc, len(va.labels))
    return meta


def _update_sidecar(net_path: Path, extra: dict) -> None:
    from ..fileio import write_json_atomic
    from .files import read_sidecar, sidecar_path
    meta = read_sidecar(net_path)
    meta.update(extra)
    write_json_atomic(sidecar_path(net_path), meta)
