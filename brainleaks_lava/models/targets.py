"""Train a target (SNN or ANN) on a static dataset and write its model file."""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .. import __version__
from ..data import is_event_dataset, load_dataset
from ..data.encoding import dataset_inputs, input_encoding
from ..errors import InputError
from .ann import ANNSpec, SigmoidMLP
from .checkpoint import checkpoint_path, remove_checkpoint
from .conv_snn import ConvSNN
from .files import export_snn, load_snn, save_ann
from .snn import VOLTAGE_READOUTS, NeuronConfig, SNNSpec, SpikingMLP
from .training import TrainConfig, accuracy, spike_logits_fn, train

log = logging.getLogger(__name__)


def snn_logits_fn(steps: int):
    """Logits of a spiking model for a batch of images, rate-encoded with the loop's generator."""
    return spike_logits_fn({"kind": "rate", "steps": steps})


def flat_logits_fn(model, images, generator, device):
    return model.logits(images.reshape(images.shape[0], -1).to(device))


ARCHS = ("snn", "snn-conv", "ann")  # snn: dense CUBA MLP; snn-conv: conv-pool-conv-pool-dense CUBA (ConvSNN)


@dataclass(frozen=True)
class TargetRequest:
    dataset: str = "mnist"
    arch: str = "snn"
    data_root: str | None = None
    hidden: int = 3000
    steps: int | None = None  # rate-coding steps T (default 25); event data: the frames' time bins
    downsample: int | None = None  # spatial factor (default 1; DVS Gesture 4)
    limit: int | None = None  # event data: at most this many samples per split (round-robin over classes)
    posterior_scale: float | None = None  # None: 1 / threshold (softmax temperature independent of the threshold)
    readout: str = "membrane"
    neuron: NeuronConfig = NeuronConfig()
    encoding: str = "rate"  # image encoder of SNN targets: Bernoulli 'rate' or deterministic 'if'
    # defenses (brainleaks_lava.defenses): spike flips of the rate-coded input in training (and validation),
    # and differentially private training (a defenses.dp.DPConfig; no epoch checkpoints then)
    input_flip: float = 0.0
    dp: object = None

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise InputError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if not isinstance(self.hidden, int) or self.hidden <= 0:
            raise InputError(f"hidden must be a positive integer, got {self.hidden!r}")
        if self.posterior_scale is not None and not (isinstance(self.posterior_scale, (int, float))
                                                     and 0 < self.posterior_scale < float("inf")):
            raise InputError(f"posterior_scale must be a positive number, got {self.posterior_scale!r}")
        if self.encoding not in ("rate", "if"):
            raise InputError(f"encoding must be 'rate' or 'if', got {self.encoding!r}")
        if self.input_flip or self.dp is not None:
            from ..defenses.dp import DPConfig
            from ..defenses.noise import check_flip

            check_flip(self.input_flip)
            if self.dp is not None and not isinstance(self.dp, DPConfig):
                raise InputError(f"dp must be a DPConfig, got {type(self.dp).__name__}")
            if self.arch != "snn":
                raise InputError("input_flip and dp apply to 'snn' targets")
        if self.arch == "ann" and is_event_dataset(self.dataset):
            raise InputError(f"{self.dataset} is event data: train an 'snn' target on it (the ANN takes images)")


    @property
    def resolved_posterior_scale(self) -> float:
        if self.posterior_scale is not None:
            return float(self.posterior_scale)
        return 1.0 / float(self.neuron.threshold)


def train_target(req: TargetRequest, train_cfg: TrainConfig, out: str | Path, resume: bool = True,
                 classes=None) -> dict:
    """Train the requested target, write it to ``out`` (atomically) and return its metadata.

    Every epoch is validated on split "val" and checkpointed beside ``out`` (``<out>.ckpt.h5``); an interrupted
    training resumes after its last finished epoch (``resume=False``: starts afresh), and the checkpoint is
    removed once ``out`` is written. The training itself is :func:`train_on_arrays` on the two splits. ``classes``:
    train on these class indices of the dataset only, relabelled 0..k-1 (``data.load_dataset``; the sidecar's
    ``classes`` and ``data_source`` say which)."""
    events = is_event_dataset(req.dataset)
    load = dict(downsample=req.downsample, time_bins=req.steps if events else None, limit=req.limit, classes=classes)
    tr = load_dataset(req.dataset, req.data_root, split="train", **load)
    va = load_dataset(req.dataset, req.data_root, split="val", **load)
    return train_on_arrays(req, train_cfg, out, dataset_inputs(tr), tr.labels, dataset_inputs(va), va.labels,
                           classes=tr.classes, data_source=va.source, framing=getattr(tr, "framing", None),
                           resume=resume)


def train_on_arrays(req: TargetRequest, train_cfg: TrainConfig, out: str | Path, inputs_tr: np.ndarray,
                    labels_tr: np.ndarray, inputs_va: np.ndarray, labels_va: np.ndarray, *, classes,
                    data_source: str, framing: dict | None = None, resume: bool = True,
                    validate_epochs: bool = True, extra_meta: dict | None = None, desc: str | None = None) -> dict:
    """Train the target ``req`` describes with ``train_cfg`` on the given arrays, write it to ``out`` and return
    its metadata: the one code path of :func:`train_target` and of the shadow models of a membership inference
    (``privacy.shadows``), which train the recipe of a target on other data.

    ``inputs_tr`` / ``inputs_va``: images (N, H, W) in [0, 1], or event frames (N, C, H, W, T) when ``req.dataset``
    is event data (``framing``: the frames' framing, recorded in the encoding); ``labels_*``: class indices into
    ``classes``. ``data_source``: one line saying where the data came from (the sidecar's ``data_source``).
    ``validate_epochs``: validate on (``inputs_va``, ``labels_va``) after every epoch as well as at the end (False:
    only at the end; the validation draws its own generator, so the weights are the same either way).
    ``extra_meta``: more sidecar fields; ``desc``: the progress lines' name (default ``train <arch>``). Checkpoints
    and resuming as :func:`train_target`."""
    out = Path(out)
    events = is_event_dataset(req.dataset)
    if len(inputs_tr) == 0 or len(inputs_va) == 0:
        raise InputError(f"training needs at least one training and one validation sample, got {len(inputs_tr)} "
                         f"and {len(inputs_va)}")
    sample_shape = tuple(int(v) for v in inputs_tr.shape[1:])
    if tuple(int(v) for v in inputs_va.shape[1:]) != sample_shape:
        raise InputError(f"training samples have shape {sample_shape} but validation samples "
                         f"{tuple(inputs_va.shape[1:])}")
    input_shape = sample_shape[:-1] if events else sample_shape  # (C, H, W) of frames, (H, W) of images
    n_in = int(np.prod(input_shape))
    n_cls = len(classes)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    t0 = time.time()
    if req.arch in ("snn", "snn-conv"):
        source = SimpleNamespace(frames=inputs_tr if events else None, framing=framing or {})
        encoding = input_encoding(source, None if events else req.steps, kind=req.encoding)
        conv = req.arch == "snn-conv"
        maps = tuple(input_shape) if len(input_shape) == 3 else (1, *input_shape)
        spec = SNNSpec(sizes=(n_in, n_cls) if conv else (n_in, req.hidden, n_cls), steps=encoding["steps"],
                       neuron=req.neuron, posterior_scale=req.resolved_posterior_scale, readout=req.readout)
        with torch.random.fork_rng(devices=[]):
            torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # scoped: weight init
            model = ConvSNN(spec, maps) if conv else SpikingMLP(spec)
        fn = spike_logits_fn(encoding)
        if req.input_flip:
            from ..defenses.noise import noisy_logits_fn

            fn = noisy_logits_fn(encoding, req.input_flip)
    else:
        encoding = {"kind": "image", "range": [0, 1]}
        spec = ANNSpec(sizes=(n_in, req.hidden, n_cls))
        with torch.random.fork_rng(devices=[]):
            torch.random.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            model = SigmoidMLP(spec)
        fn = flat_logits_fn
    # the defense fields count only when set, so checkpoints of trainings without them keep their identity
    identity = {"target": {k: v for k, v in dataclasses.asdict(req).items()
                           if k != "data_root" and not (k in ("input_flip", "dp") and not v)},
                "encoding": encoding}
    val = (inputs_va, labels_va) if validate_epochs else None
    if req.dp is not None:
        from ..defenses.dp import train_dp

        history = train_dp(model, fn, inputs_tr, labels_tr, train_cfg, req.dp, val=val,
                           desc=f"{desc or 'train ' + req.arch} (DP)")
    else:
        history = train(model, fn, inputs_tr, labels_tr, train_cfg, val=val,
                        desc=desc or f"train {req.arch}", checkpoint=checkpoint_path(out), identity=identity,
                        resume=resume)
    model = model.cpu().eval()
    meta = {
        "dataset": req.dataset,
        "data_source": data_source,
        "classes": list(classes),
        "input_shape": list(input_shape),
        "encoding": encoding,
        "downsample": req.downsample,
        "training": {**train_cfg.to_dict(), "history": history, "seconds": round(time.time() - t0, 1),
                     "train_images": int(len(labels_tr))},
        "seed": train_cfg.seed,
        "brainleaks_version": __version__,
        **(extra_meta or {}),
    }
    if req.input_flip:
        meta["input_flip"] = req.input_flip
    if req.dp is not None:
        meta["dp"] = {**req.dp.to_dict(), "epsilon": history["epsilon"][-1]}
    if req.arch != "ann":
        # the exported file is the truth: its re-imported twin is checked against the model (or validated on)
        export_snn(model, out, meta)
        twin = load_snn(out).model
        if isinstance(model, SpikingMLP):
            # the twin of the file and the trained model (on the fast CUBA kernel) must compute the same
            # spikes and voltages; checked on a slice, then the whole validation set runs on the fast kernel
            check_file_reproduces(model, twin, inputs_va[:VALIDATION_CHECK], encoding, train_cfg.seed + 1, out)
            acc = accuracy(model, fn, inputs_va, labels_va, seed=train_cfg.seed + 1, desc="validate")
        else:
            acc = accuracy(twin, fn, inputs_va, labels_va, seed=train_cfg.seed + 1, desc="validate")
        meta["validation_accuracy"] = acc
        meta["validation_images"] = int(len(labels_va))
        _update_sidecar(out, meta)
    else:
        acc = accuracy(model, fn, inputs_va, labels_va, seed=train_cfg.seed + 1)
        meta["validation_accuracy"] = acc
        meta["validation_images"] = int(len(labels_va))
        save_ann(model, out, meta)
    remove_checkpoint(out)
    log.info("%s target: validation accuracy %.4f on %d images", req.arch, acc, len(labels_va))
    return meta


VALIDATION_CHECK = 20  # validation samples on which the exported file's twin must equal the trained model


@torch.no_grad()
def check_file_reproduces(model: SpikingMLP, twin, inputs, encoding: dict, seed: int, path: Path) -> None:
    """Raise ``ModelFileError`` unless the twin rebuilt from the exported file gives the trained model's
    output spikes (and the voltages a voltage read-out reads), bit for bit, on ``inputs`` (encoded with a
    generator seeded ``seed``)."""
    from ..data.encoding import to_spikes
    from ..errors import ModelFileError

    if len(inputs) == 0:
        return
    x = to_spikes(torch.as_tensor(inputs, dtype=torch.float32), encoding, torch.Generator().manual_seed(seed))
    model.eval()
    s_model, v_model = model.run(x)
    s_twin, v_twin = twin.run(x)
    same_v = model.spec.readout not in VOLTAGE_READOUTS or torch.equal(v_model, v_twin)
    if not (torch.equal(s_model, s_twin) and same_v):
        raise ModelFileError(f"{path}: the exported file does not reproduce the trained model on "
                             f"{len(inputs)} validation samples (spikes or voltages differ)")


def _update_sidecar(net_path: Path, extra: dict) -> None:
    from ..fileio import write_json_atomic
    from .files import read_sidecar, sidecar_path
    meta = read_sidecar(net_path)
    meta.update(extra)
    write_json_atomic(sidecar_path(net_path), meta)
