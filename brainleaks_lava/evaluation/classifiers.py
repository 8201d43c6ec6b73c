"""Evaluation classifiers of the BrainLeaks paper (section 4.1) and their uniform scoring interface.

An attack is scored by a classifier that is *not* the attacked model but was trained on the same
private data: a small CNN with two convolution layers (12 then 24 filters of 5x5, each followed by
2x2 max-pooling) and a linear read-out to the classes.

- :class:`CNNEvaluator` (kind ``"ann"``): ``conv(1->12, 5x5) -> maxpool 2 -> ReLU -> conv(12->24, 5x5)
  -> maxpool 2 -> ReLU -> flatten -> linear(-> classes)``. It takes images in [0, 1] of shape (N, H, W),
  (N, 1, H, W) or (N, H*W) and returns class logits.
- :class:`SpikingCNNEvaluator` (kind ``"snn"``): the same topology built from lava-dl SLAYER CUBA blocks
  (``Conv -> Pool -> Conv -> Pool -> Flatten -> Dense``). It takes spike trains in lava-dl's NCT layout,
  (N, features, T) with ``features = H*W`` (row-major; ``C*H*W`` in (C, H, W) order for ``in_channels``
  = C > 1), reshapes them to (N, C, H, W, T) and returns ``posterior_scale * output spike counts`` as
  logits, the posterior convention of our spiking targets (:mod:`brainleaks_lava.models.snn`). Spiking
  max-pooling is a sum-pool whose weight (``pool_weight`` = 1.1 > threshold) lets a single input spike in
  the 2x2 window fire the pooling neuron: an OR over the window, i.e. max-pooling of binary spikes. Unlike
  the targets, the evaluator is never deployed on Loihi, so its weights are not 8-bit quantized and its
  blocks have no one-step axonal delay (all T steps reach the output).

Both convolution stages use the pooled size ``ceil((size - 4) / 2)`` (odd sizes are zero-padded, as lava-dl's
``Pool`` does), so the flattened size follows from the input shape: 24*4*4 = 384 for 28x28 MNIST,
24*25*20 for the 112x92 AT&T faces; inputs need height and width >= 13.

:class:`Evaluator` wraps a loaded model: ``Evaluator.posterior(x)`` returns the (N, C) class probabilities
(softmax of the logits), without gradients, in batches, after checking ``x``:

- kind ``"ann"``: images (N, H, W) / (N, 1, H, W) / (N, H*W) with values in [0, 1], or spike trains
  (N, H*W, T) with values in [0, 1], which are rate-decoded (averaged over time) first; this is how
  reconstructions of spiking attacks are scored by the ANN evaluator;
- kind ``"snn"``: binary spike trains (N, H*W, T) (rate-encoded images, reconstructions or event frames).
  Any T is accepted; the logits are spike counts, so posteriors are calibrated for the training T
  (``Evaluator.steps``).

Bad inputs raise ``InputError`` naming the argument. :func:`train_evaluator` trains one on split
``"train"`` of a static dataset, measures it on split ``"val"`` and writes it with
:func:`~brainleaks_lava.models.files.save_torch_h5` (format ``brainleaks-evaluator/1``, no pickle);
:func:`load_evaluator` reads it back (bad or corrupt files raise ``ModelFileError``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..data import is_event_dataset, load_dataset
from ..data.encoding import as_real_tensor, dataset_inputs, input_encoding
from ..errors import InputError, ModelFileError
from ..fileio import sha256_file
from ..models.checkpoint import checkpoint_path, remove_checkpoint
from ..models.files import load_state, read_torch_h5, save_torch_h5
from ..models.snn import NeuronConfig, _import_slayer
from ..models.training import TrainConfig, accuracy, spike_logits_fn, train

log = logging.getLogger(__name__)

EVALUATOR_FORMAT = "brainleaks-evaluator/1"
KINDS = ("ann", "snn")

CONV_CHANNELS = (12, 24)
KERNEL_SIZE = 5
POOL_SIZE = 2
MIN_SIZE = 13  # smallest height/width the two conv(5) + pool(2) stages accept

#: CUBA neurons of the spiking evaluator: no current memory, 70 % voltage kept per step (the paper's LIF
#: leak), threshold 1, and the surrogate gradient of our targets.
DEFAULT_SNN_NEURON = NeuronConfig(threshold=1.0, current_decay=1.0, voltage_decay=0.3, tau_grad=0.03,
                                  scale_grad=3.0)
#: logits = 0.25 x output spike counts: with T = 25 a count difference of 10 is a logit difference of 2.5.
#: On MNIST it trains markedly better than 1.0 (one epoch on 2,000 images: 94 % vs 83 % validation accuracy),
#: as full-scale counts saturate the softmax early.
DEFAULT_POSTERIOR_SCALE = 0.25
DEFAULT_POOL_WEIGHT = 1.1
#: scale of the initial conv/dense weights: with PyTorch's default initialisation (scale 1) almost no spike
#: reaches the output of a rate-coded MNIST digit; x2 gives a few output spikes per step window to learn from.
DEFAULT_INIT_SCALE = 2.0


# ----------------------------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------------------------

def _check_input_shape(input_shape, in_channels: int = 1) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise InputError(f"input_shape must be (height, width), got {input_shape!r}") from None
    if h < MIN_SIZE or w < MIN_SIZE:
        raise InputError(f"input_shape must be at least {MIN_SIZE}x{MIN_SIZE} for two conv(5x5) + pool(2x2) "
                         f"stages, got {h}x{w}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, (int, np.integer)) or in_channels < 1:
        raise InputError(f"in_channels must be a positive integer, got {in_channels!r}")
    return h, w


def _check_classes(classes) -> int:
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise InputError(f"classes must be an integer >= 2, got {classes!r}")
    return int(classes)


def feature_map_size(input_shape: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the last pooled feature map for an input of ``input_shape``."""
    h, w = input_shape
    for _ in CONV_CHANNELS:
        h = math.ceil((h - KERNEL_SIZE + 1) / POOL_SIZE)
        w = math.ceil((w - KERNEL_SIZE + 1) / POOL_SIZE)
    return h, w


def flat_features(input_shape: tuple[int, int]) -> int:
    h, w = feature_map_size(input_shape)
    return CONV_CHANNELS[-1] * h * w


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------

class CNNEvaluator(torch.nn.Module):
    """The paper's evaluation CNN for images in [0, 1]; ``forward`` returns class logits (N, classes)."""

    kind = "ann"

    def __init__(self, input_shape: tuple[int, int] = (28, 28), classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.input_shape = _check_input_shape(input_shape, in_channels)
        self.num_classes = _check_classes(classes)
        self.in_channels = int(in_channels)
        c1, c2 = CONV_CHANNELS
        self.conv1 = torch.nn.Conv2d(self.in_channels, c1, KERNEL_SIZE)
        self.conv2 = torch.nn.Conv2d(c1, c2, KERNEL_SIZE)
        # ceil_mode: odd feature maps keep their last row/column, like the spiking pool's zero padding
        self.pool = torch.nn.MaxPool2d(POOL_SIZE, ceil_mode=True)
        self.fc = torch.nn.Linear(flat_features(self.input_shape), self.num_classes)

    @property
    def num_inputs(self) -> int:
        return self.in_channels * self.input_shape[0] * self.input_shape[1]

    def config(self) -> dict:
        return {"kind": self.kind, "input_shape": list(self.input_shape), "classes": self.num_classes,
                "in_channels": self.in_channels}

    def to_image_batch(self, x: torch.Tensor, name: str = "images") -> torch.Tensor:
        """``x`` as (N, C, H, W): accepts (N, H, W) (one channel), (N, C, H, W) and (N, C*H*W)."""
        h, w = self.input_shape
        c = self.in_channels
        if x.ndim == 2 and x.shape[1] == self.num_inputs:
            return x.reshape(x.shape[0], c, h, w)
        if x.ndim == 3 and c == 1 and tuple(x.shape[1:]) == (h, w):
            return x.unsqueeze(1)
        if x.ndim == 4 and tuple(x.shape[1:]) == (c, h, w):
            return x
        one = f"(N, {h}, {w}), " if c == 1 else ""
        raise InputError(f"{name} must have shape {one}(N, {c}, {h}, {w}) or (N, {self.num_inputs}), "
                         f"got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_image_batch(x)
        x = torch.relu(self.pool(self.conv1(x)))
        x = torch.relu(self.pool(self.conv2(x)))
        return self.fc(x.flatten(1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class SpikingCNNEvaluator(torch.nn.Module):
    """The evaluation CNN with CUBA LIF neurons (lava-dl SLAYER blocks), spikes (N, features, T) in.

    ``forward`` returns the output spikes (N, classes, T); ``logits`` returns
    ``posterior_scale * spike counts`` (N, classes).
    """

    kind = "snn"

    def __init__(self, input_shape: tuple[int, int] = (28, 28), classes: int = 10, in_channels: int = 1,
                 neuron: NeuronConfig = DEFAULT_SNN_NEURON, posterior_scale: float = DEFAULT_POSTERIOR_SCALE,
                 pool_weight: float = DEFAULT_POOL_WEIGHT, init_scale: float = DEFAULT_INIT_SCALE):
        super().__init__()
        self.input_shape = _check_input_shape(input_shape, in_channels)
        self.num_classes = _check_classes(classes)
        self.in_channels = int(in_channels)
        if not isinstance(neuron, NeuronConfig):
            raise InputError(f"neuron must be a NeuronConfig, got {type(neuron).__name__}")
        if not (isinstance(posterior_scale, (int, float)) and math.isfinite(posterior_scale) and posterior_scale > 0):
            raise InputError(f"posterior_scale must be a positive number, got {posterior_scale!r}")
        if not (isinstance(pool_weight, (int, float)) and math.isfinite(pool_weight) and pool_weight > 0):
            raise InputError(f"pool_weight must be a positive number, got {pool_weight!r}")
        if not (isinstance(init_scale, (int, float)) and math.isfinite(init_scale) and init_scale > 0):
            raise InputError(f"init_scale must be a positive number, got {init_scale!r}")
        self.init_scale = float(init_scale)
        self.neuron = neuron
        self.posterior_scale = float(posterior_scale)
        self.pool_weight = float(pool_weight)
        slayer = _import_slayer()
        cuba = slayer.block.cuba
        c1, c2 = CONV_CHANNELS
        # every block gets its own copy of the neuron parameters (lava-dl's Pool edits the dict it is given);
        # pre_hook_fx=None: full-precision weights (no 8-bit quantizer); delay_shift=False: no axonal delay.
        common = {"pre_hook_fx": None, "delay_shift": False}
        p = neuron.slayer_params
        self.blocks = torch.nn.ModuleList([
            cuba.Conv(p(), self.in_channels, c1, KERNEL_SIZE, weight_scale=self.init_scale, **common),
            cuba.Pool(p(), POOL_SIZE, weight_scale=self.pool_weight, **common),
            cuba.Conv(p(), c1, c2, KERNEL_SIZE, weight_scale=self.init_scale, **common),
            cuba.Pool(p(), POOL_SIZE, weight_scale=self.pool_weight, **common),
            cuba.Flatten(),
            cuba.Dense(p(), flat_features(self.input_shape), self.num_classes, weight_scale=self.init_scale,
                       **common),
        ])

    @property
    def num_inputs(self) -> int:
        return self.in_channels * self.input_shape[0] * self.input_shape[1]

    def config(self) -> dict:
        return {"kind": self.kind, "input_shape": list(self.input_shape), "classes": self.num_classes,
                "in_channels": self.in_channels, "neuron": dataclasses.asdict(self.neuron),
                "posterior_scale": self.posterior_scale, "pool_weight": self.pool_weight,
                "init_scale": self.init_scale}

    def check_input(self, x: torch.Tensor, name: str = "spikes") -> None:
        if x.ndim != 3 or x.shape[1] != self.num_inputs or x.shape[2] < 1:
            raise InputError(f"{name} must have shape (N, {self.num_inputs}, T) with T >= 1, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, w = self.input_shape
        x = x.reshape(x.shape[0], self.in_channels, h, w, x.shape[-1])
        for block in self.blocks:
            x = block(x)
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior_scale * self(x).sum(dim=-1)


def build_model(config: dict) -> CNNEvaluator | SpikingCNNEvaluator:
    """Rebuild an evaluator model from its ``config()`` (as stored in a file's metadata)."""
    if not isinstance(config, dict):
        raise InputError(f"architecture must be a dict, got {type(config).__name__}")
    kind = config.get("kind")
    args = {"input_shape": tuple(config["input_shape"]), "classes": config["classes"],
            "in_channels": config.get("in_channels", 1)}
    if kind == "ann":
        return CNNEvaluator(**args)
    if kind == "snn":
        neuron = NeuronConfig(**config.get("neuron", {}))
        return SpikingCNNEvaluator(**args, neuron=neuron,
                                   posterior_scale=config.get("posterior_scale", DEFAULT_POSTERIOR_SCALE),
                                   pool_weight=config.get("pool_weight", DEFAULT_POOL_WEIGHT),
                                   init_scale=config.get("init_scale", DEFAULT_INIT_SCALE))
    raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


# ----------------------------------------------------------------------------------------------
# scoring interface
# ----------------------------------------------------------------------------------------------

def _as_float_tensor(x, name: str) -> torch.Tensor:
    t = as_real_tensor(x, name)
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise InputError(f"{name} contains NaN or infinite values")
    return t.to(torch.float32)


@dataclass
class Evaluator:
    """A trained evaluation classifier and what it was trained for.

    ``classes`` are the class names (index = label); ``steps`` is the number of time steps of the
    rate coding it was trained with (kind ``"snn"``; 0 for ``"ann"``).
    """

    model: torch.nn.Module
    kind: str
    input_shape: tuple[int, int]
    steps: int
    classes: tuple[str, ...]
    metadata: dict = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        self.input_shape = tuple(int(s) for s in self.input_shape)
        self.classes = tuple(str(c) for c in self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_features(self) -> int:
        return int(self.model.num_inputs)

    def _prepare(self, x, name: str) -> torch.Tensor:
        t = _as_float_tensor(x, name)
        f = self.num_features
        if self.kind == "snn":
            if t.ndim != 3 or t.shape[1] != f or t.shape[2] < 1:
                raise InputError(f"{name} must be spike trains of shape (N, {f}, T) with T >= 1, got {tuple(t.shape)}")
            if t.numel() and not bool(((t == 0) | (t == 1)).all()):
                raise InputError(f"{name} must hold binary spikes (0 or 1); got other values")
            return t
        if t.numel():
            lo, hi = float(t.min()), float(t.max())
            if lo < 0.0 or hi > 1.0:
                raise InputError(f"{name} must hold intensities in [0, 1], got values in [{lo:g}, {hi:g}]")
        h, w = self.input_shape
        if t.ndim == 3 and t.shape[1] == f and tuple(t.shape[1:]) != (h, w):
            if t.shape[2] < 1:
                raise InputError(f"{name}: spike trains have no time steps (T = 0)")
            t = t.mean(dim=-1)  # rate decoding of a spike train (N, features, T)
        self.model.to_image_batch(t, name)  # shape check only
        return t

    @torch.no_grad()
    def logits(self, x, batch_size: int = 256) -> torch.Tensor:
        """Logits (N, C) on the CPU; see :meth:`posterior` for the accepted ``x``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        t = self._prepare(x, "x")
        self.model.eval()
        device = next(self.model.parameters()).device
        out = [self.model.logits(t[i:i + batch_size].to(device)).float().cpu()
               for i in range(0, t.shape[0], batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.num_classes)

    def posterior(self, x, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (N, C): softmax of the logits, computed without gradients in batches.

        kind ``"ann"``: ``x`` is images (N, H, W), (N, 1, H, W) or (N, H*W) in [0, 1], or spike trains
        (N, H*W, T) in [0, 1] that are averaged over time. kind ``"snn"``: binary spike trains (N, H*W, T).
        """
        return torch.softmax(self.logits(x, batch_size=batch_size), dim=1)

    def predict(self, x, batch_size: int = 256) -> torch.Tensor:
        """Predicted labels (N,)."""
        return self.logits(x, batch_size=batch_size).argmax(dim=1)


# ----------------------------------------------------------------------------------------------
# training, saving, loading
# ----------------------------------------------------------------------------------------------

def ann_logits_fn(model, images, generator, device):
    return model.logits(images.to(device))


def train_evaluator(kind: str, dataset: str, data_root, out, config: TrainConfig, steps: int | None = 25,
                    downsample: int | None = None, neuron: NeuronConfig | None = None,
                    posterior_scale: float = DEFAULT_POSTERIOR_SCALE, validate_each_epoch: bool = True,
                    limit: int | None = None, resume: bool = True) -> dict:
    """Train an evaluator of ``kind`` ("ann" or "snn") on split "train" of ``dataset``, save it to ``out``.

    The validation accuracy on split "val" is measured on the trained model (for "snn" with a rate coding of
    ``steps`` steps seeded by ``config.seed + 1``) and stored in the metadata, which is returned. Weight
    initialisation, shuffling and encoding are seeded from ``config.seed``; global RNG state is untouched.
    Every epoch is checkpointed to ``<out>.ckpt.h5``: an interrupted training resumes after its last finished
    epoch (``resume=False``: afresh); the checkpoint is removed once ``out`` is written.
    """
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    out = Path(out)
    events = is_event_dataset(dataset)
    if events and kind == "ann":
        raise InputError(f"{dataset} is event data: use a spiking ('snn') evaluator")
    load = dict(downsample=downsample, time_bins=steps if events else None, limit=limit)
    tr = load_dataset(dataset, data_root, split="train", **load)
    va = load_dataset(dataset, data_root, split="val", **load)
    inputs_tr, inputs_va = dataset_inputs(tr), dataset_inputs(va)
    if events:
        in_channels, *hw, _ = (int(v) for v in inputs_tr.shape[1:])
    else:
        in_channels, hw = 1, [int(v) for v in inputs_tr.shape[1:]]
    input_shape = tuple(hw)
    n_cls = len(tr.classes)
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # scoped: weight init
        if kind == "ann":
            model = CNNEvaluator(input_shape, n_cls)
        else:
            model = SpikingCNNEvaluator(input_shape, n_cls, in_channels=in_channels, neuron=neuron or DEFAULT_SNN_NEURON,
                                        posterior_scale=posterior_scale)
    encoding = input_encoding(tr, None if events else steps) if kind == "snn" else {"kind": "image", "range": [0, 1]}
    steps = encoding.get("steps", 0)
    fn = ann_logits_fn if kind == "ann" else spike_logits_fn(encoding)
    log.info("training %s evaluator on %d %s images %s (%d classes)", kind, len(tr), dataset,
             "x".join(map(str, input_shape)), n_cls)
    t0 = time.time()
    identity = {"kind": kind, "architecture": model.config(), "encoding": encoding, "downsample": downsample,
                "limit": limit}
    history = train(model, fn, inputs_tr, tr.labels, config,
                    val=(inputs_va, va.labels) if validate_each_epoch else None, desc=f"evaluator {kind}",
                    checkpoint=checkpoint_path(out), identity=identity, resume=resume)
    seconds = round(time.time() - t0, 1)
    model = model.cpu().eval()
    acc = accuracy(model, fn, inputs_va, va.labels, seed=config.seed + 1)
    meta = {
        "format": EVALUATOR_FORMAT,
        "kind": kind,
        "dataset": dataset,
        "data_source": va.source,
        "classes": list(tr.classes),
        "input_shape": list(input_shape),
        "steps": steps,
        "encoding": encoding,
        "downsample": downsample,
        "architecture": model.config(),
        "training": {**config.to_dict(), "history": history, "seconds": seconds,
                     "train_images": int(len(tr.labels))},
        "validation_accuracy": acc,
        "validation_images": int(len(va.labels)),
        "validation_encoding_seed": config.seed + 1 if kind == "snn" else None,
        "seed": config.seed,
        "brainleaks_version": __version__,
    }
    save_torch_h5(model, out, EVALUATOR_FORMAT, meta)
    remove_checkpoint(out)
    log.info("%s evaluator: validation accuracy %.4f on %d images (%.0f s training); saved to %s",
             kind, acc, len(va.labels), seconds, out)
    return meta


def load_evaluator(path) -> Evaluator:
    """Load an evaluator written by :func:`train_evaluator`; unusable files raise ``ModelFileError``."""
    path = Path(path)
    meta, arrays, _ = read_torch_h5(path, "brainleaks-evaluator")
    try:
        arch = meta["architecture"]
        model = build_model(arch)
        kind = arch["kind"]
        if meta.get("kind", kind) != kind:
            raise ValueError(f"kind {meta.get('kind')!r} differs from the architecture's {kind!r}")
        classes = meta.get("classes") or [str(i) for i in range(model.num_classes)]
        if not isinstance(classes, list) or len(classes) != model.num_classes:
            raise ValueError(f"{len(classes)} class names for {model.num_classes} outputs")
        steps = int(meta.get("steps", 25 if kind == "snn" else 0))
        if kind == "snn" and steps <= 0:
            raise ValueError(f"steps must be positive, got {steps}")
    except (KeyError, TypeError, ValueError) as e:  # InputError is a ValueError
        raise ModelFileError(f"{path}: invalid evaluator metadata ({type(e).__name__}: {e})") from None
    load_state(model, arrays, path)
    model.eval()
    return Evaluator(model=model, kind=kind, input_shape=model.input_shape, steps=steps, classes=tuple(classes),
                     metadata=meta, path=path, sha256=sha256_file(path))
