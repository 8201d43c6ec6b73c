"""Evaluation classifiers of the BrainLeaks paper (section 4.1) and their uniform scoring interface.

An attack is scored by a classifier that is *not* the attacked model but was trained on the same
private data: a small CNN with two convolution layers (12 then 24 filters of 5x5, each followed by
2x2 max-pooling) and a linear read-out to the classes.

- :class:`CNNEvaluator` (kind ``"ann"``): ``conv(1->12, 5x5) -> maxpool 2 -> ReLU -> conv(12->24, 5x5)
  -> maxpool 2 -> ReLU -> flatten -> linear(-> classes)``. It takes images in [0, 1] of shape (N, H, W),
  (N, 1, H, W) or (N, H*W) and returns class logits.
- :class:`SpikingCNNEvaluator` (kind ``"snn"``): the same topology with leaky integrate-and-fire neurons,
  ``conv -> maxpool 2 -> LIF -> conv -> maxpool 2 -> LIF -> flatten -> linear -> LIF`` (the published
  evaluator's order). It takes spike trains in lava-dl's NCT layout, (N, features, T) with ``features = H*W``
  (row-major; ``C*H*W`` in (C, H, W) order for ``in_channels`` = C > 1), runs the convolutions over all
  N*T frames at once and the LIF recursion over time, and returns ``posterior_scale`` times the
  time-averaged membrane potential of the output neurons as logits (the published evaluator predicts the
  argmax of the summed output potential). It is plain PyTorch with a small local LIF loop and a
  fast-sigmoid surrogate gradient: the evaluator is never deployed on Loihi, so it needs neither lava-dl's
  blocks nor 8-bit weights. (Format 1 built it from lava-dl CUBA blocks with spike-count logits; on the
  AT&T faces that model stayed at loss ln 40: a few Adam steps on its 12,000-input dense layer silenced
  all 40 outputs, and equal zero counts give no gradient to recover from. It also took ~25 s per batch.)

Two more kinds make a panel of evaluators of different families (the paper's CNN calls noise a digit):

- :class:`ResidualCNNEvaluator` (kind ``"resnet"``): a small residual CNN (3x3 stem of 32 channels; one basic
  residual block per stage of 32, 64, 128 channels at strides 1, 2, 2, batch norm and ReLU; global average
  pooling; linear read-out), trained with data augmentation (``evaluation.augment``: random shifts, rotations
  and scalings).
- :class:`RejectCNNEvaluator` (kind ``"reject"``): the paper's CNN with C + 1 outputs, the last named
  ``"reject"``, trained with augmentation on the C real classes plus generated junk labelled "reject"
  (uniform and sparse noise, smooth blobs, pixel-shuffled and constant images, means of two classes). Its
  posteriors have C + 1 columns; ``Evaluator.target_classes`` is C, ``Evaluator.rejects`` is true.

``Evaluator.features(x)`` gives every kind's penultimate-layer activations (N, F): the input of the last linear
layer (``model.fc``), for "snn" the last hidden layer's spike counts averaged over time.

Both convolution stages use the pooled size ``ceil((size - 4) / 2)`` (max-pooling keeps an odd last
row/column), so the flattened size follows from the input shape: 24*4*4 = 384 for 28x28 MNIST,
24*25*20 for the 112x92 AT&T faces; inputs need height and width >= 13.

:class:`Evaluator` wraps a loaded model: ``Evaluator.posterior(x)`` returns the (N, C) class probabilities
(softmax of the logits), without gradients, in batches, after checking ``x``:

- kinds ``"ann"``, ``"resnet"``, ``"reject"``: images (N, H, W) / (N, 1, H, W) / (N, H*W) with values in
  [0, 1], or spike trains (N, H*W, T) with values in [0, 1], which are rate-decoded (averaged over time)
  first; this is how reconstructions of spiking attacks are scored by the image evaluators;
- kind ``"snn"``: binary spike trains (N, H*W, T) (rate-encoded images, reconstructions or event frames).
  Any T is accepted; the logits are time averages, so posteriors hardly depend on T (fewer steps are
  noisier); ``Evaluator.steps`` is the T it was trained with.

Bad inputs raise ``InputError`` naming the argument. :func:`train_evaluator` trains one on split
``"train"`` of a dataset, measures it on split ``"val"`` and writes it with
:func:`~brainleaks_lava.models.files.save_torch_h5` (format ``brainleaks-evaluator/2``, no pickle);
:func:`load_evaluator` reads it back (bad or corrupt files raise ``ModelFileError``). Format 1 files are
read as they were written: the ANN CNN is unchanged, and format 1 spiking evaluators are rebuilt from
lava-dl CUBA blocks (:class:`CubaCNNEvaluator`) and score exactly as before. The new kinds are format 2 files
too (a reader that does not know a kind refuses the file, naming it); their metadata adds ``augment``,
``augmentation``, ``rejects`` and ``junk``.
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
from ..data.base import grey_level_stats
from ..data.encoding import as_real_tensor, dataset_inputs, input_encoding
from ..errors import InputError, ModelFileError
from ..fileio import sha256_file
from ..models.checkpoint import checkpoint_path, remove_checkpoint
from ..models.files import load_state, read_torch_h5, save_torch_h5
from ..models.training import TrainConfig, accuracy, spike_logits_fn, train
from .augment import JunkSource, augment as random_warp, augmentation_recipe, junk_recipe

log = logging.getLogger(__name__)

EVALUATOR_FORMAT = "brainleaks-evaluator/2"
#: format 1 files of kind "ann" are still read (the CNN did not change); spiking ones are refused
LEGACY_FORMAT = "brainleaks-evaluator/1"
READABLE_FORMATS = (EVALUATOR_FORMAT, LEGACY_FORMAT)
KINDS = ("ann", "snn", "resnet", "reject")
#: kinds that score images (spike trains are rate-decoded first); "snn" scores spike trains
IMAGE_KINDS = ("ann", "resnet", "reject")
#: kinds trained with data augmentation unless told otherwise
AUGMENTED_KINDS = ("resnet", "reject")
#: the name of the last output of a reject evaluator
REJECT_CLASS = "reject"

CONV_CHANNELS = (12, 24)
KERNEL_SIZE = 5
POOL_SIZE = 2
MIN_SIZE = 13  # smallest height/width the two conv(5) + pool(2) stages accept

#: LIF neurons of the spiking evaluator (the published evaluator's): 70 % of the membrane potential kept per
#: step, threshold 1, reset by subtracting the threshold.
DEFAULT_BETA = 0.7
DEFAULT_THRESHOLD = 1.0
#: surrogate gradient 1 / (1 + slope |v - threshold|)^2 (fast sigmoid)
DEFAULT_SURROGATE_SLOPE = 5.0
#: logits = posterior_scale x time-averaged output membrane potential
DEFAULT_POSTERIOR_SCALE = 1.0
#: initial weights = PyTorch's default initialisation x this: with x1 a rate-coded face drives the second
#: layer at 0.4 % and the output not at all; x2 gives 21 % / 28 % / 15 % (layer 1 / 2 / output) to learn from.
DEFAULT_INIT_GAIN = 2.0
#: ``architecture["model"]`` of the spiking evaluator since format 2 (format 1 used lava-dl CUBA blocks)
SNN_MODEL = "conv-lif/1"
#: ``architecture["model"]`` of the residual evaluator, and its default channels per stage
RESNET_MODEL = "resnet-basic/1"
RESNET_CHANNELS = (32, 64, 128)


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

class _ImageEvaluator(torch.nn.Module):
    """What the image evaluators share: the input layout checks, and ``logits = fc(features(x))`` (one forward
    path for both). Subclasses set ``kind``, build ``fc`` and implement ``features`` and ``config``."""

    kind = ""

    def _init_shape(self, input_shape, classes: int, in_channels: int) -> None:
        self.input_shape = _check_input_shape(input_shape, in_channels)
        self.num_classes = _check_classes(classes)
        self.in_channels = int(in_channels)

    @property
    def num_inputs(self) -> int:
        return self.in_channels * self.input_shape[0] * self.input_shape[1]

    @property
    def feature_size(self) -> int:
        """Length of :meth:`features` (the input size of the last linear layer ``fc``)."""
        return int(self.fc.in_features)

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

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class CNNEvaluator(_ImageEvaluator):
    """The paper's evaluation CNN for images in [0, 1]; ``forward`` returns class logits (N, classes),
    ``features`` the flattened second pooled feature map (N, 24*h*w) that the linear read-out ``fc`` sees."""

    kind = "ann"

    def __init__(self, input_shape: tuple[int, int] = (28, 28), classes: int = 10, in_channels: int = 1):
        super().__init__()
        self._init_shape(input_shape, classes, in_channels)
        c1, c2 = CONV_CHANNELS
        self.conv1 = torch.nn.Conv2d(self.in_channels, c1, KERNEL_SIZE)
        self.conv2 = torch.nn.Conv2d(c1, c2, KERNEL_SIZE)
        # ceil_mode: odd feature maps keep their last row/column, like the spiking pool's zero padding
        self.pool = torch.nn.MaxPool2d(POOL_SIZE, ceil_mode=True)
        self.fc = torch.nn.Linear(flat_features(self.input_shape), self.num_classes)

    def config(self) -> dict:
        return {"kind": self.kind, "input_shape": list(self.input_shape), "classes": self.num_classes,
                "in_channels": self.in_channels}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_image_batch(x)
        x = torch.relu(self.pool(self.conv1(x)))
        x = torch.relu(self.pool(self.conv2(x)))
        return x.flatten(1)


class RejectCNNEvaluator(CNNEvaluator):
    """The evaluation CNN with one more output, the last, for "none of the classes" (kind ``"reject"``):
    ``classes`` counts the outputs, so ``classes - 1`` real classes. Trained on the real classes plus generated
    junk labelled with the last class (:func:`~brainleaks_lava.evaluation.augment.junk_images`)."""

    kind = "reject"

    def __init__(self, input_shape: tuple[int, int] = (28, 28), classes: int = 11, in_channels: int = 1):
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool) and classes < 3:
            raise InputError(f"classes (outputs, the reject output included) must be >= 3, got {classes!r}")
        super().__init__(input_shape, classes, in_channels)


class _BasicBlock(torch.nn.Module):
    """``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``; the shortcut is a strided 1x1 convolution with
    batch norm when the stride or the channel count changes, else the identity."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c_out)
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c_out)
        self.shortcut = torch.nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = torch.nn.Sequential(torch.nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                                torch.nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResidualCNNEvaluator(_ImageEvaluator):
    """A small residual CNN (kind ``"resnet"``): a 3x3 stem convolution (``channels[0]``) with batch norm and
    ReLU, one basic residual block per stage (``channels``, strides 1, 2, 2, ...), global average pooling and a
    linear read-out ``fc``. ``features`` is the pooled (N, channels[-1]) vector. A family other than the
    paper's CNN, so that a panel of evaluators does not share one architecture's blind spots."""

    kind = "resnet"

    def __init__(self, input_shape: tuple[int, int] = (28, 28), classes: int = 10, in_channels: int = 1,
                 channels: tuple[int, ...] = RESNET_CHANNELS):
        super().__init__()
        self._init_shape(input_shape, classes, in_channels)
        try:
            channels = tuple(channels)
        except TypeError:
            channels = ()
        if not channels or len(channels) > 6 or not all(
                isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 1 <= c <= 1024 for c in channels):
            raise InputError(f"channels must be 1 to 6 integers in 1..1024, got {channels!r}")
        self.channels = tuple(int(c) for c in channels)
        c0 = self.channels[0]
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(self.in_channels, c0, 3, padding=1, bias=False),
                                        torch.nn.BatchNorm2d(c0), torch.nn.ReLU())
        blocks, c_in = [], c0
        for i, c in enumerate(self.channels):
            blocks.append(_BasicBlock(c_in, c, 1 if i == 0 else 2))
            c_in = c
        self.stages = torch.nn.Sequential(*blocks)
        self.fc = torch.nn.Linear(c_in, self.num_classes)

    def config(self) -> dict:
        return {"kind": self.kind, "model": RESNET_MODEL, "input_shape": list(self.input_shape),
                "classes": self.num_classes, "in_channels": self.in_channels, "channels": list(self.channels)}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(self.to_image_batch(x)))
        return x.mean(dim=(2, 3))


class _Spike(torch.autograd.Function):
    """Heaviside step of ``v - threshold`` forward; fast-sigmoid surrogate ``1 / (1 + slope |v - thr|)^2``
    backward (the published evaluator's surrogate)."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1.0 + ctx.slope * x.abs()) ** 2, None


def lif(current: torch.Tensor, beta: float, threshold: float, slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaky integrate-and-fire over the last axis (time) of ``current`` (..., T).

    ``v[t] = beta * v[t-1] + current[t]``; a spike where ``v[t] >= threshold``, after which ``threshold`` is
    subtracted from ``v[t]``. Returns (spikes, v after the reset), both (..., T). A small local loop: the
    evaluator is never deployed, so it needs neither lava-dl's blocks nor fixed-point dynamics.
    """
    v = torch.zeros_like(current[..., 0])
    spikes, volts = [], []
    for t in range(current.shape[-1]):
        v = beta * v + current[..., t]
        s = _Spike.apply(v - threshold, slope)
        v = v - threshold * s
        spikes.append(s)
        volts.append(v)
    return torch.stack(spikes, -1), torch.stack(volts, -1)


class SpikingCNNEvaluator(torch.nn.Module):
    """The evaluation CNN with LIF neurons, binary spikes (N, features, T) in.

    Each time step's frame goes through ``conv(5x5) -> maxpool 2 -> LIF -> conv(5x5) -> maxpool 2 -> LIF ->
    flatten -> linear -> LIF`` (the published evaluator's order: the max-pool acts on the synaptic currents).
    ``forward`` returns the output spikes (N, classes, T); ``logits`` returns ``posterior_scale`` times the
    time-averaged membrane potential of the output neurons (N, classes), the published evaluator's read-out
    (the argmax of the summed output potential), averaged rather than summed so that the posterior does not
    depend on T.
    """

    kind = "snn"

    def __init__(self, input_shape: tuple[int, int] = (28, 28), classes: int = 10, in_channels: int = 1,
                 beta: float = DEFAULT_BETA, threshold: float = DEFAULT_THRESHOLD,
                 surrogate_slope: float = DEFAULT_SURROGATE_SLOPE,
                 posterior_scale: float = DEFAULT_POSTERIOR_SCALE, init_gain: float = DEFAULT_INIT_GAIN):
        super().__init__()
        self.input_shape = _check_input_shape(input_shape, in_channels)
        self.num_classes = _check_classes(classes)
        self.in_channels = int(in_channels)
        for name, v, top in (("beta", beta, 1.0), ("threshold", threshold, None),
                             ("surrogate_slope", surrogate_slope, None), ("posterior_scale", posterior_scale, None)):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (0.0 <= v <= top if top is not None else v > 0)
            if not ok:
                rule = f"in [0, {top:g}]" if top is not None else "a positive number"
                raise InputError(f"{name} must be {rule}, got {v!r}")
        self.beta = float(beta)
        self.threshold = float(threshold)
        self.surrogate_slope = float(surrogate_slope)
        self.posterior_scale = float(posterior_scale)
        c1, c2 = CONV_CHANNELS
        self.conv1 = torch.nn.Conv2d(self.in_channels, c1, KERNEL_SIZE)
        self.conv2 = torch.nn.Conv2d(c1, c2, KERNEL_SIZE)
        self.pool = torch.nn.MaxPool2d(POOL_SIZE, ceil_mode=True)
        self.fc = torch.nn.Linear(flat_features(self.input_shape), self.num_classes)
        if not (isinstance(init_gain, (int, float)) and math.isfinite(init_gain) and init_gain > 0):
            raise InputError(f"init_gain must be a positive number, got {init_gain!r}")
        with torch.no_grad():  # PyTorch's default initialisation, scaled (it only sets the starting point)
            for layer in (self.conv1, self.conv2, self.fc):
                layer.weight.mul_(float(init_gain))

    @property
    def num_inputs(self) -> int:
        return self.in_channels * self.input_shape[0] * self.input_shape[1]

    def config(self) -> dict:
        return {"kind": self.kind, "model": SNN_MODEL, "input_shape": list(self.input_shape),
                "classes": self.num_classes, "in_channels": self.in_channels, "beta": self.beta,
                "threshold": self.threshold, "surrogate_slope": self.surrogate_slope,
                "posterior_scale": self.posterior_scale}

    def check_input(self, x: torch.Tensor, name: str = "spikes") -> None:
        if x.ndim != 3 or x.shape[1] != self.num_inputs or x.shape[2] < 1:
            raise InputError(f"{name} must have shape (N, {self.num_inputs}, T) with T >= 1, got {tuple(x.shape)}")

    def _lif(self, current: torch.Tensor, n: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """LIF of a stack of per-frame currents (N*T, ...) -> spikes and potentials (N*T, ...)."""
        c = current.reshape(n, steps, *current.shape[1:]).movedim(1, -1)
        s, v = lif(c, self.beta, self.threshold, self.surrogate_slope)
        return s.movedim(-1, 1).reshape(current.shape), v.movedim(-1, 1).reshape(current.shape)

    @property
    def feature_size(self) -> int:
        """Length of :meth:`features` (the input size of the last linear layer ``fc``)."""
        return int(self.fc.in_features)

    def _hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes of both hidden layers for every frame, (N*T, ...) each, the second flattened: what ``fc`` sees."""
        self.check_input(x)
        n, steps = x.shape[0], x.shape[-1]
        h, w = self.input_shape
        frames = x.reshape(n, self.in_channels, h, w, steps).movedim(-1, 1).reshape(n * steps, self.in_channels, h, w)
        s1, _ = self._lif(self.pool(self.conv1(frames)), n, steps)
        s2, _ = self._lif(self.pool(self.conv2(s1)), n, steps)
        return s1, s2.flatten(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The second hidden layer's spike counts averaged over time (N, features): the time average of what
        the linear read-out ``fc`` receives, so ``fc(features)`` is the output neurons' mean input current."""
        s2 = self._hidden(x)[1]
        return s2.reshape(x.shape[0], x.shape[2], -1).mean(dim=1)

    def run(self, x: torch.Tensor, record: bool = False):
        """Output spikes and membrane potentials, both (N, classes, T); with ``record`` also the spike
        rate of each hidden layer (a dict, for diagnostics)."""
        s1, s2 = self._hidden(x)
        n, steps = x.shape[0], x.shape[-1]
        s3, v3 = self._lif(self.fc(s2), n, steps)
        spikes = s3.reshape(n, steps, -1).movedim(1, -1)
        volts = v3.reshape(n, steps, -1).movedim(1, -1)
        if record:
            rates = {"layer1": float(s1.mean()), "layer2": float(s2.mean()), "output": float(spikes.mean())}
            return spikes, volts, rates
        return spikes, volts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior_scale * self.run(x)[1].mean(dim=-1)


class CubaCNNEvaluator(torch.nn.Module):
    """Format-1 spiking evaluators (read only): the evaluation CNN built from lava-dl CUBA blocks
    (``Conv -> Pool -> Conv -> Pool -> Flatten -> Dense``, full-precision weights, no axonal delay), logits
    ``posterior_scale * output spike counts``. Spiking max-pooling is a sum-pool of weight ``pool_weight``
    (> threshold): an OR over the 2x2 window. Kept so that evaluators trained before format 2 (among them the
    shipped ``netx_models/mnist_eval_snn.h5``) score exactly as they did; new ones are
    :class:`SpikingCNNEvaluator`.
    """

    kind = "snn"

    def __init__(self, input_shape: tuple[int, int], classes: int, in_channels: int = 1, neuron: dict | None = None,
                 posterior_scale: float = 0.25, pool_weight: float = 1.1, init_scale: float = 2.0):
        super().__init__()
        from ..models.snn import NeuronConfig, _import_slayer

        self.input_shape = _check_input_shape(input_shape, in_channels)
        self.num_classes = _check_classes(classes)
        self.in_channels = int(in_channels)
        for name, v in (("posterior_scale", posterior_scale), ("pool_weight", pool_weight), ("init_scale", init_scale)):
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
                raise InputError(f"{name} must be a positive number, got {v!r}")
        defaults = {"threshold": 1.0, "current_decay": 1.0, "voltage_decay": 0.3, "tau_grad": 0.03, "scale_grad": 3.0}
        self.neuron = NeuronConfig(**{**defaults, **(neuron or {})})
        self.posterior_scale, self.pool_weight = float(posterior_scale), float(pool_weight)
        self.init_scale = float(init_scale)
        cuba = _import_slayer().block.cuba
        c1, c2 = CONV_CHANNELS
        common = {"pre_hook_fx": None, "delay_shift": False}
        p = self.neuron.slayer_params  # a fresh dict per block: lava-dl's Pool edits the one it is given
        self.blocks = torch.nn.ModuleList([
            cuba.Conv(p(), self.in_channels, c1, KERNEL_SIZE, weight_scale=self.init_scale, **common),
            cuba.Pool(p(), POOL_SIZE, weight_scale=self.pool_weight, **common),
            cuba.Conv(p(), c1, c2, KERNEL_SIZE, weight_scale=self.init_scale, **common),
            cuba.Pool(p(), POOL_SIZE, weight_scale=self.pool_weight, **common),
            cuba.Flatten(),
            cuba.Dense(p(), flat_features(self.input_shape), self.num_classes, weight_scale=self.init_scale, **common),
        ])

    @property
    def num_inputs(self) -> int:
        return self.in_channels * self.input_shape[0] * self.input_shape[1]

    def config(self) -> dict:
        return {"kind": self.kind, "input_shape": list(self.input_shape), "classes": self.num_classes,
                "in_channels": self.in_channels, "neuron": dataclasses.asdict(self.neuron),
                "posterior_scale": self.posterior_scale, "pool_weight": self.pool_weight,
                "init_scale": self.init_scale}

    @property
    def feature_size(self) -> int:
        """Length of :meth:`features` (the input size of the last, dense block)."""
        return flat_features(self.input_shape)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes (N, features, T) into the last (dense) block."""
        h, w = self.input_shape
        x = x.reshape(x.shape[0], self.in_channels, h, w, x.shape[-1])
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Spike counts into the dense block averaged over time (N, features)."""
        return self._hidden(x).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[-1](self._hidden(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior_scale * self(x).sum(dim=-1)


def build_model(config: dict) -> torch.nn.Module:
    """Rebuild an evaluator model from its ``config()`` (as stored in a file's metadata)."""
    if not isinstance(config, dict):
        raise InputError(f"architecture must be a dict, got {type(config).__name__}")
    kind = config.get("kind")
    args = {"input_shape": tuple(config["input_shape"]), "classes": config["classes"],
            "in_channels": config.get("in_channels", 1)}
    if kind == "ann":
        return CNNEvaluator(**args)
    if kind == "reject":
        return RejectCNNEvaluator(**args)
    if kind == "resnet":
        if config.get("model") != RESNET_MODEL:
            raise InputError(f"residual evaluator model {config.get('model')!r} is not this version's {RESNET_MODEL!r}")
        return ResidualCNNEvaluator(**args, channels=config["channels"])
    if kind == "snn" and "model" not in config:  # format 1: lava-dl CUBA blocks
        return CubaCNNEvaluator(**args, neuron=config.get("neuron", {}),
                                **{k: config[k] for k in ("posterior_scale", "pool_weight", "init_scale") if k in config})
    if kind == "snn":
        if config.get("model") != SNN_MODEL:
            raise InputError(f"spiking evaluator model {config.get('model')!r} is not this version's {SNN_MODEL!r}")
        return SpikingCNNEvaluator(**args, beta=config["beta"], threshold=config["threshold"],
                                   surrogate_slope=config["surrogate_slope"],
                                   posterior_scale=config["posterior_scale"])
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

    ``classes`` are the class names (index = label), one per output; ``steps`` is the number of time steps of
    the rate coding it was trained with (kind ``"snn"``; 0 for the image kinds). A reject evaluator
    (:attr:`rejects`) has one output more than it has real classes, the last named ``"reject"``:
    :attr:`num_classes` counts outputs (posterior columns), :attr:`target_classes` the real classes.
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
        flag = self.metadata.get("rejects", self.kind == "reject")
        if not isinstance(flag, bool):
            raise InputError(f"metadata 'rejects' must be true or false, got {flag!r}")
        if flag != (self.kind == "reject"):
            raise InputError(f"metadata 'rejects' is {str(flag).lower()} for an evaluator of kind {self.kind!r} "
                             "(only kind 'reject' has a reject output)")
        if flag and (len(self.classes) < 3 or self.classes[-1] != REJECT_CLASS):
            raise InputError(f"a reject evaluator needs at least 2 classes followed by {REJECT_CLASS!r}, got "
                             f"{list(self.classes)!r}")

    @property
    def num_classes(self) -> int:
        """Number of outputs (posterior columns), the reject output included."""
        return len(self.classes)

    @property
    def rejects(self) -> bool:
        """True when the last output means "none of the classes" (kind ``"reject"``)."""
        return self.kind == "reject"

    @property
    def target_classes(self) -> int:
        """Number of real classes (a reconstruction's target is below it): ``num_classes`` less the reject
        output."""
        return self.num_classes - 1 if self.rejects else self.num_classes

    @property
    def feature_size(self) -> int:
        """Length F of :meth:`features`."""
        return int(self.model.feature_size)

    @property
    def num_features(self) -> int:
        return int(self.model.num_inputs)

    @property
    def image_stats(self) -> tuple[float, float] | None:
        """(mean, std) grey level of the training images (mean over images of each image's mean and standard
        deviation), recorded by :func:`train_evaluator`; None for event data and for files written before."""
        stats = self.metadata.get("image_stats")
        return None if stats is None else (float(stats["mean"]), float(stats["std"]))

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
    def _batched(self, fn, x, batch_size: int, width: int) -> torch.Tensor:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        t = self._prepare(x, "x")
        self.model.eval()
        device = self.device
        out = [fn(t[i:i + batch_size].to(device)).float().cpu() for i in range(0, t.shape[0], batch_size)]
        return torch.cat(out) if out else torch.zeros(0, width)

    def logits(self, x, batch_size: int = 256) -> torch.Tensor:
        """Logits (N, C) on the CPU; see :meth:`posterior` for the accepted ``x``."""
        return self._batched(self.model.logits, x, batch_size, self.num_classes)

    def features(self, x, batch_size: int = 256) -> torch.Tensor:
        """Penultimate-layer activations (N, F), float32 on the CPU, computed without gradients in batches;
        ``x`` as for :meth:`posterior`. Image kinds: the input of the last linear layer (``model.fc``), so
        ``model.fc(features)`` are the logits. Kind ``"snn"``: the last hidden layer's spike counts averaged over
        time (the output layer's input rate; its logits are a membrane read-out, not linear in them)."""
        return self._batched(self.model.features, x, batch_size, self.feature_size)

    def posterior(self, x, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (N, C): softmax of the logits, computed without gradients in batches.

        Image kinds (``"ann"``, ``"resnet"``, ``"reject"``): ``x`` is images (N, H, W), (N, 1, H, W) or (N, H*W)
        in [0, 1], or spike trains (N, H*W, T) in [0, 1] that are averaged over time. Kind ``"snn"``: binary
        spike trains (N, H*W, T).
        """
        return torch.softmax(self.logits(x, batch_size=batch_size), dim=1)

    def predict(self, x, batch_size: int = 256) -> torch.Tensor:
        """Predicted labels (N,)."""
        return self.logits(x, batch_size=batch_size).argmax(dim=1)

    @property
    def device(self) -> torch.device:
        """Where the model computes (inputs are moved there batch by batch; results come back to the CPU)."""
        from ..models.device import module_device

        return module_device(self.model)

    def to(self, device) -> "Evaluator":
        """Move the model to ``device`` (a name, see ``models.device``, or a ``torch.device``); returns self."""
        from ..models.device import resolve_device

        self.model.to(resolve_device(device))
        return self


# ----------------------------------------------------------------------------------------------
# training, saving, loading
# ----------------------------------------------------------------------------------------------

def ann_logits_fn(model, images, generator, device):
    return model.logits(images.to(device))


#: pixel value of the placeholder rows a reject evaluator's training set carries for its junk (real images are
#: in [0, 1]); the training logits function replaces each by a freshly generated junk image
JUNK_PLACEHOLDER = -1.0


def training_logits_fn(base_fn, augment_images: bool = False, junk: JunkSource | None = None):
    """The logits function :func:`~brainleaks_lava.models.training.train` trains with: ``base_fn`` after, in
    training mode only (``model.training``; validation runs in eval mode and sees the data as it is), the
    replacement of junk placeholder rows by :class:`~.augment.JunkSource` images and a random
    :func:`~.augment.augment` warp of every image, all drawn from the batch's generator. Inputs are images
    (B, H, W)."""
    if not augment_images and junk is None:
        return base_fn

    def fn(model, images, generator, device):
        if model.training:
            if junk is not None:
                slots = torch.nonzero((images.reshape(len(images), -1) == JUNK_PLACEHOLDER).all(1)).flatten()
                if len(slots):
                    images = images.clone()
                    images[slots] = junk(len(slots), generator).to(images.dtype)
            if augment_images:
                images = random_warp(images.unsqueeze(1), generator).squeeze(1)
        return base_fn(model, images, generator, device)
    return fn


def _with_junk_slots(images: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The training set plus ceil(N / C) placeholder rows labelled ``n_classes`` (the reject output): shuffled
    in with the real images, they make about one junk image per C real images in a batch."""
    n_junk = -(-len(labels) // n_classes)
    slots = np.full((n_junk, *images.shape[1:]), JUNK_PLACEHOLDER, dtype=images.dtype)
    return (np.concatenate([images, slots]),
            np.concatenate([np.asarray(labels), np.full(n_junk, n_classes, dtype=np.asarray(labels).dtype)]))


def train_evaluator(kind: str, dataset: str, data_root, out, config: TrainConfig, steps: int | None = 25,
                    downsample: int | None = None, posterior_scale: float = DEFAULT_POSTERIOR_SCALE,
                    surrogate_slope: float = DEFAULT_SURROGATE_SLOPE, validate_each_epoch: bool = True,
                    limit: int | None = None, resume: bool = True, augment: bool | None = None,
                    resnet_channels: tuple[int, ...] = RESNET_CHANNELS, classes=None) -> dict:
    """Train an evaluator of ``kind`` (one of :data:`KINDS`) on split "train" of ``dataset``, save it to ``out``.

    ``augment``: train on randomly warped images (:func:`~brainleaks_lava.evaluation.augment.augment`; images
    only); None: on for "resnet" and "reject", off for "ann" and "snn". A "reject" evaluator has one output more,
    named "reject", trained on generated junk (:data:`~brainleaks_lava.evaluation.augment.JUNK_RECIPES`, about
    one junk image per C real images of a batch). ``resnet_channels``: the channels per stage of a "resnet".
    The validation accuracy on split "val" is measured on the trained model (for "snn" with a rate coding of
    ``steps`` steps seeded by ``config.seed + 1``; a reject answer counts as wrong) and stored in the metadata,
    which is returned. Weight initialisation, shuffling, encoding, augmentation and junk are seeded from
    ``config.seed``; global RNG state is untouched. Every epoch is checkpointed to ``<out>.ckpt.h5``: an
    interrupted training resumes after its last finished epoch (``resume=False``: afresh); the checkpoint is
    removed once ``out`` is written. ``classes``: train on these class indices of the dataset only, relabelled
    0..k-1 (``data.load_dataset``).
    """
    if kind not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if augment is None:
        augment = kind in AUGMENTED_KINDS
    if not isinstance(augment, bool):
        raise InputError(f"augment must be true, false or None, got {augment!r}")
    out = Path(out)
    events = is_event_dataset(dataset)
    if events and kind != "snn":
        raise InputError(f"{dataset} is event data: use a spiking ('snn') evaluator")
    if events and augment:
        raise InputError(f"{dataset} is event data: augmentation applies to images only (give --no-augment)")
    load = dict(downsample=downsample, time_bins=steps if events else None, limit=limit, classes=classes)
    tr = load_dataset(dataset, data_root, split="train", **load)
    va = load_dataset(dataset, data_root, split="val", **load)
    inputs_tr, inputs_va = dataset_inputs(tr), dataset_inputs(va)
    if events:
        in_channels, *hw, _ = (int(v) for v in inputs_tr.shape[1:])
    else:
        in_channels, hw = 1, [int(v) for v in inputs_tr.shape[1:]]
    input_shape = tuple(hw)
    n_cls = len(tr.classes)
    classes = list(tr.classes)
    if kind == "reject":
        if REJECT_CLASS in classes:
            raise InputError(f"{dataset} has a class named {REJECT_CLASS!r}; a reject evaluator needs that name")
        classes.append(REJECT_CLASS)
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # scoped: weight init
        if kind == "ann":
            model = CNNEvaluator(input_shape, n_cls)
        elif kind == "reject":
            model = RejectCNNEvaluator(input_shape, n_cls + 1)
        elif kind == "resnet":
            model = ResidualCNNEvaluator(input_shape, n_cls, channels=resnet_channels)
        else:
            model = SpikingCNNEvaluator(input_shape, n_cls, in_channels=in_channels, posterior_scale=posterior_scale,
                                        surrogate_slope=surrogate_slope)
    encoding = input_encoding(tr, None if events else steps) if kind == "snn" else {"kind": "image", "range": [0, 1]}
    steps = encoding.get("steps", 0)
    fn = ann_logits_fn if kind != "snn" else spike_logits_fn(encoding)
    labels_tr = tr.labels
    junk = None
    if kind == "reject":
        junk = JunkSource(inputs_tr, tr.labels)
        inputs_tr, labels_tr = _with_junk_slots(inputs_tr, tr.labels, n_cls)
    train_fn = training_logits_fn(fn, augment, junk)
    log.info("training %s evaluator on %d %s images %s (%d classes%s%s)", kind, len(tr), dataset,
             "x".join(map(str, input_shape)), n_cls, ", augmented" if augment else "",
             f", {len(labels_tr) - len(tr.labels)} junk slots per epoch" if junk is not None else "")
    t0 = time.time()
    identity = {"kind": kind, "architecture": model.config(), "encoding": encoding, "downsample": downsample,
                "limit": limit}
    if augment:  # only when on: checkpoints of trainings without it keep their fingerprint
        identity["augmentation"] = augmentation_recipe()
    if junk is not None:
        identity["junk"] = junk_recipe()
    history = train(model, train_fn, inputs_tr, labels_tr, config,
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
        "classes": classes,
        "input_shape": list(input_shape),
        "steps": steps,
        "encoding": encoding,
        "downsample": downsample,
        "architecture": model.config(),
        "training": {**config.to_dict(), "history": history, "seconds": seconds,
                     "train_images": int(len(tr.labels)), "junk_per_epoch": int(len(labels_tr) - len(tr.labels))},
        "augment": augment,
        "augmentation": augmentation_recipe() if augment else None,
        "rejects": kind == "reject",
        "junk": junk_recipe() if junk is not None else None,
        "validation_accuracy": acc,
        "validation_images": int(len(va.labels)),
        # grey level of the images it learnt from: what `contrast = "standardise"` scales reconstructions to
        "image_stats": None if events else grey_level_stats(tr.images),
        "validation_encoding_seed": config.seed + 1 if kind == "snn" else None,
        "seed": config.seed,
        "brainleaks_version": __version__,
    }
    save_torch_h5(model, out, EVALUATOR_FORMAT, meta)
    remove_checkpoint(out)
    log.info("%s evaluator: validation accuracy %.4f on %d images (%.0f s training); saved to %s",
             kind, acc, len(va.labels), seconds, out)
    return meta


def check_image_stats(stats) -> None:
    """Metadata ``image_stats``: None or {"mean": m, "std": s} with 0 <= m <= 1 and 0 < s <= 1 (ValueError)."""
    if stats is None:
        return
    if not isinstance(stats, dict) or set(stats) != {"mean", "std"}:
        raise ValueError(f"image_stats must be {{'mean': m, 'std': s}}, got {stats!r}")
    from .score import contrast_pair

    pair = (stats["mean"], stats["std"])
    if not all(isinstance(v, (int, float)) for v in pair):
        raise ValueError(f"image_stats must hold numbers, got {stats!r}")
    try:
        contrast_pair(pair)
    except InputError as e:
        raise ValueError(f"image_stats: {e}") from None


def load_evaluator(path, device=None) -> Evaluator:
    """Load an evaluator written by :func:`train_evaluator`; unusable files raise ``ModelFileError``. ``device``:
    where it computes ("cpu", "auto", "cuda", "cuda:N"; None: the CPU; see ``models.device``); its inputs are
    drawn on the CPU and its posteriors returned there, whatever the device."""
    from ..models.device import resolve_device

    dev = resolve_device(device)  # a bad name or a missing GPU fails before the file is read
    path = Path(path)
    meta, arrays, fmt = read_torch_h5(path, "brainleaks-evaluator")
    if fmt not in READABLE_FORMATS:
        raise ModelFileError(f"{path}: evaluator format {fmt!r} is not one this version reads "
                             f"({', '.join(READABLE_FORMATS)})")
    try:
        arch = meta["architecture"]
        if fmt == LEGACY_FORMAT and isinstance(arch, dict) and "model" in arch:
            raise ValueError(f"format {LEGACY_FORMAT} has no architecture 'model' key")
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
        check_image_stats(meta.get("image_stats"))
        if not isinstance(meta.get("augment", False), bool):
            raise ValueError(f"augment must be true or false, got {meta.get('augment')!r}")
        # the reject flag and the class names agree with the kind (InputError otherwise)
        ev = Evaluator(model=model, kind=kind, input_shape=model.input_shape, steps=steps, classes=tuple(classes),
                       metadata=meta, path=path)
    except (KeyError, TypeError, ValueError) as e:  # InputError is a ValueError
        raise ModelFileError(f"{path}: invalid evaluator metadata ({type(e).__name__}: {e})") from None
    load_state(model, arrays, path)
    model.eval()
    ev.sha256 = sha256_file(path)
    return ev.to(dev)
