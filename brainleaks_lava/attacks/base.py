"""The attack interface: target adapters, the result object and the shared optimisation helpers.

A target adapter is the only hook into a model: ``posterior(x)`` gives the class posterior of a batch,
with gradients, defined exactly as in the target's training (for SNNs: softmax of the scaled output
spike counts), so the Lava replay can recompute it from the simulator's output spikes.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import InputError

log = logging.getLogger(__name__)

SPIKES = "surrogate gradients w.r.t. input spikes"
IMAGE = "input gradients of an ANN"


class TargetAdapter:
    """Posterior of each class for a batch of inputs, differentiable w.r.t. the inputs.

    The model is frozen (eval mode, no parameter gradients): attacks only need input gradients.

    ``observe`` (default None: the model's own posterior) is the hook for what an attacker observes of a
    deployment that coarsens its read-out: a callable ``observe(model, x) -> posterior`` that replaces
    ``model.posterior(x)`` for every query the attack makes (e.g. ``defenses.ObservedPosterior``: spike-count
    clipping, posterior rounding, input-encoder noise).
    """

    provides: str = ""

    def __init__(self, model, observe=None):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.input_shape = self._input_shape(model)
        self.num_classes = model.num_classes
        self.observe = observe

    @staticmethod
    def _input_shape(model) -> tuple[int, ...]:  # pragma: no cover - interface
        raise NotImplementedError

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        if self.observe is not None:
            return self.observe(self.model, x)
        return self.model.posterior(x)

    @property
    def device(self) -> torch.device:
        """Where the model computes: the attack creates its inputs there (random draws stay on the CPU)."""
        from ..models.device import module_device

        return module_device(self.model)


class SNNAdapter(TargetAdapter):
    """An SNN twin: inputs are spike trains (N, features, T), or for a network deployed with a graded
    input drive, drive values (N, features, T) within ``drive_range``."""

    provides = SPIKES

    def __init__(self, model, observe=None):
        super().__init__(model, observe)
        graded = getattr(model, "graded", False)
        self.drive_range = tuple(float(v) for v in model.deployment.input_range) if graded else None

    @staticmethod
    def _input_shape(model):
        return (model.num_inputs, model.spec.steps)

    def drive(self, u: torch.Tensor) -> torch.Tensor:
        """Normalised drive ``u`` in [0, 1] -> drive values in ``drive_range``."""
        lo, hi = self.drive_range
        return lo + (hi - lo) * u

    def rest(self) -> float:
        """The normalised drive of 'no input' (drive 0, or the range end nearest to it): where graded attacks
        start, as the spike attacks start from no spikes."""
        lo, hi = self.drive_range
        return min(max(-lo / (hi - lo), 0.0), 1.0)

    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Input of the attack (spikes, or drive values) -> [0, 1]."""
        if self.drive_range is None:
            return x
        lo, hi = self.drive_range
        return (x - lo) / (hi - lo)


class ANNAdapter(TargetAdapter):
    """An ANN: inputs are flattened images (N, features) in [0, 1]."""

    provides = IMAGE

    @staticmethod
    def _input_shape(model):
        return (model.num_inputs,)


def adapter_for(target, observe=None) -> TargetAdapter:
    """Adapter for a loaded target (``SNNTarget``/``ANNTarget``) or a bare model; ``observe``: see
    ``TargetAdapter``."""
    model = getattr(target, "model", target)
    if getattr(model, "is_spiking", False) or hasattr(model, "blocks"):
        return SNNAdapter(model, observe)
    return ANNAdapter(model, observe)


@dataclass
class AttackResult:
    """What an attack returns (one row per inverted class)."""

    attack: str
    mode: str
    params: dict
    seed: int
    targets: np.ndarray  # (R,) target class of each reconstruction
    samples: np.ndarray  # (R, features, T) binary spikes, or (R, features) images
    confidence: np.ndarray  # (R,) target posterior of ``samples``
    iterations: np.ndarray  # (R,) iterations used
    loss_history: np.ndarray  # (I, R) loss per iteration (NaN after a row stopped)
    probabilities: np.ndarray | None = None  # (R, features, T) Bernoulli parameters (BL-v2)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    drive_range: tuple[float, float] | None = None  # set when ``samples`` are graded input drives
    # What the attacked model says about its inputs and classes, when known (``brainleaks_lava.attack`` sets them;
    # a reconstruction file keeps only the model's path and sha256, in ``extra`` once read back): the layout of one
    # sample without time ((H, W) or (C, H, W)) for ``images()`` and ``plot()``, the class names for their labels.
    input_shape: tuple[int, ...] | None = None
    class_names: tuple[str, ...] | None = None
    model_path: str = ""
    model_sha256: str = ""
    # Query-only attacks: a seeded sample of the queries the oracle answered, for replay on Lava: ``inputs``
    # (k, features, T) as the twin saw them, ``outputs`` (what the oracle answered), ``index`` (query numbers).
    query_sample: dict | None = None

    @property
    def input_kind(self) -> str:
        if self.drive_range is not None:
            return "drive"
        return "spikes" if self.samples.ndim == 3 else "image"

    def view(self) -> np.ndarray:
        """What a figure shows, in [0, 1]: images min-max scaled per image (as evaluators score MI-FACE
        images), Bernoulli probabilities of BL-v2 (the expected rate of its draws), drives normalised by
        their range, other spike trains as they are (a figure takes their time average)."""
        if self.input_kind == "image":
            return minmax_rows(self.samples)
        if self.input_kind == "drive":
            lo, hi = self.drive_range
            return np.clip((self.samples.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
        return self.probabilities if self.probabilities is not None else self.samples

    # ---------------------------------------------------------------- notebook helpers

    def layout(self, input_shape=None) -> tuple[int, ...]:
        """The (H, W) or (C, H, W) layout of one sample: ``input_shape`` if given, else the attacked model's (the
        ``input_shape`` field, or the sidecar of the model a reconstruction file names), else a square image of the
        features. ``InputError`` when none fits the number of features."""
        from ..report.plot import recon_shape

        features = int(self.samples.shape[1])
        shape = input_shape if input_shape is not None else self.input_shape
        if shape is not None and input_shape is None and len(tuple(shape)) < 2:
            shape = None  # a flat input: the sidecar's or the square layout below
        if shape is not None:
            try:
                shape = tuple(int(v) for v in shape)
            except (TypeError, ValueError):
                raise InputError(f"input_shape must be (H, W) or (C, H, W), got {input_shape!r}") from None
            if len(shape) not in (2, 3) or min(shape) <= 0 or int(np.prod(shape)) != features:
                raise InputError(f"input_shape must be (H, W) or (C, H, W) of {features} values (the features of "
                                 f"these reconstructions), got {shape}")
            return shape
        try:
            return recon_shape(self, None)
        except InputError:
            raise InputError(f"cannot tell the image layout of {features} features: give input_shape=(H, W) or "
                             f"(C, H, W)") from None

    def images(self, input_shape=None) -> np.ndarray:
        """The reconstructions as images in [0, 1], one per row of ``targets``: (N, H, W) (event frames (C, H, W):
        the channels' mean, as figures show them).

        Spike trains are rate-decoded (time average; BL-v2: of its Bernoulli probabilities, the expected image of
        its draws), graded drives normalised by their range, MI-FACE images min-max scaled (:meth:`view`).
        ``input_shape``: see :meth:`layout`."""
        from ..report.figures import decode_for_view

        return decode_for_view(self.view(), self.layout(input_shape))

    def plot(self, path=None, *, evaluation=None, input_shape=None, title: str | None = None, columns: int = 10):
        """A grid of the reconstructions (one panel per class, more than ``columns`` wrap into further rows), each
        titled with its target class and a confidence: the attacked model's (``confidence``), or the evaluator's
        mean over draws when ``evaluation`` (from ``brainleaks_lava.evaluate``) is given.

        Returns the matplotlib ``Figure`` (built without pyplot, so it changes no backend and no open figure; a
        notebook shows it as a cell's value); ``path`` also writes it as PNG (atomically)."""
        from ..evaluation.score import METHOD_LABELS
        from ..fileio import atomic_path
        from ..report.figures import recon_figure
        from ..report.plot import MAX_PLOT_PANELS
        from ..safety import check_count

        columns = check_count(columns, "columns", MAX_PLOT_PANELS, 1)
        if len(self.targets) > MAX_PLOT_PANELS:
            raise InputError(f"a figure shows at most {MAX_PLOT_PANELS} reconstructions; this result holds "
                             f"{len(self.targets)}")
        targets = np.asarray(self.targets)
        if evaluation is not None:
            rows = getattr(evaluation, "per_class", None)
            if rows is None or [r["target_class"] for r in rows] != targets.tolist():
                raise InputError("evaluation must be the evaluation of this result (its classes differ)")
            conf, label = [r["target_confidence"] for r in rows], "eval"
        else:
            conf, label = self.confidence, "model"
        if title is None:
            title = f"{METHOD_LABELS.get(self.attack, self.attack)} ({self.mode})"
        fig = recon_figure(self.view(), targets, self.layout(input_shape), title,
                           class_names=self.class_names, confidences=conf, columns=columns, conf_label=label,
                           target_label="class")
        if path is not None:
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=110)
        return fig

    def save(self, path):
        """Write the result as a reconstruction file (HDF5, ``attacks.recon_file``; what ``brainleaks attack``
        writes, readable by ``brainleaks evaluate / replay / plot``); returns its path."""
        from .recon_file import save_recon

        return save_recon(self, path, model_path=self.model_path or str(self.extra.get("model_path", "")),
                          model_sha256=self.model_sha256 or str(self.extra.get("model_sha256", "")))

    def to_frame(self):
        """A pandas DataFrame, one row per reconstruction: its ``class`` (and ``name`` when the class names are
        known), the attacked model's ``confidence`` in it, the ``iterations`` it took, its last ``loss``, and
        ``attack``, ``mode``, ``seed``; BL-v2 adds its population's mean confidence, BL-enc the confidence at its
        start. Needs pandas."""
        r = len(self.targets)
        hist = np.asarray(self.loss_history, dtype=np.float64).reshape(-1, r)
        last = [float(col[np.isfinite(col)][-1]) if np.isfinite(col).any() else float("nan") for col in hist.T]
        rows = []
        for i, c in enumerate(np.asarray(self.targets).tolist()):
            row = {"class": int(c)}
            if self.class_names:
                row["name"] = self.class_names[c] if c < len(self.class_names) else str(c)
            row.update(confidence=float(self.confidence[i]), iterations=int(self.iterations[i]), loss=last[i])
            for key in ("population_confidence", "start_confidence"):
                values = self.extra.get(key)
                if isinstance(values, list) and len(values) == r:
                    row[key] = float(values[i])
            row.update(attack=self.attack, mode=self.mode, seed=int(self.seed))
            rows.append(row)
        return data_frame(rows)


def data_frame(rows: list[dict], columns=None):
    """``pandas.DataFrame(rows)``; pandas is imported here (not with the package), and its absence is an
    ``InputError`` saying how to install it."""
    try:
        import pandas as pd
    except ImportError:
        raise InputError("to_frame() needs pandas: pip install pandas") from None
    return pd.DataFrame(rows, columns=columns)


def minmax_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to [0, 1] by its own minimum and maximum (constant rows become 0)."""
    flat = x.reshape(len(x), -1).astype(np.float32)
    lo = flat.min(1, keepdims=True)
    span = flat.max(1, keepdims=True) - lo
    return np.where(span > 0, (flat - lo) / np.where(span > 0, span, 1), 0.0).reshape(x.shape)


@dataclass(frozen=True)
class AttackParams:
    """Base of the per-attack parameter dataclasses: validated on construction."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def _positive_int(self, name: str) -> None:
        """A positive integer, at most ``safety.MAX_COUNTS[name]`` where the count has a bound there (iterations,
        population, ...)."""
        from ..safety import MAX_COUNTS, check_count

        v = getattr(self, name)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
        if name in MAX_COUNTS:
            top, why = MAX_COUNTS[name]
            check_count(v, name, top, 1, why)

    def _in_range(self, name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
        v = getattr(self, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
        if ok:
            ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if not ok:
            lb = "(" if lo_open else "["
            rb = ")" if hi_open else "]"
            raise InputError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {v!r}")

    def _mode(self) -> None:
        if getattr(self, "mode", None) not in ("paper", "reference"):
            raise InputError(f"mode must be 'paper' or 'reference', got {getattr(self, 'mode', None)!r}")


class Attack:
    """Base class: subclasses set ``name``, ``requires`` and implement ``_invert``."""

    name: ClassVar[str] = ""
    requires: ClassVar[str] = ""
    params_class: ClassVar[type] = AttackParams

    def __init__(self, adapter: TargetAdapter, params: AttackParams | None = None, **kwargs):
        if params is None:
            params = self.params_class(**kwargs)
        elif kwargs:
            raise InputError("pass either params or keyword parameters, not both")
        if not isinstance(params, self.params_class):
            raise InputError(f"params must be a {self.params_class.__name__}")
        if adapter.provides != self.requires:
            raise InputError(f"{self.name} needs a target that offers {self.requires}, "
                             f"but this target offers {adapter.provides}")
        self.adapter = adapter
        self.params = params

    def invert(self, classes=None, seed: int = 0, progress: bool = True) -> AttackResult:
        """Invert ``classes`` (default: all classes) and return an ``AttackResult``."""
        n = self.adapter.num_classes
        if classes is None:
            classes = list(range(n))
        classes = np.asarray(classes)
        if classes.ndim != 1 or classes.size == 0 or classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= n:
            raise InputError(f"classes must be a non-empty list of class indices in [0, {n}), got {classes.tolist()}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        self._check_memory(len(classes))
        import time
        # The surrogate's exponential tails produce denormal floats, which make CPU math up to ~20x
        # slower (measured: 100 BL-v2 iterations 32 s vs > 9 min); flushing them to zero changes no spike.
        torch.set_flush_denormal(True)
        t0 = time.time()
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        result = self._invert(torch.as_tensor(classes, dtype=torch.long), gen, progress)
        result.seconds = time.time() - t0
        result.seed = int(seed)
        return result

    def _check_memory(self, n_classes: int) -> None:
        """Refuse (``InputError``) an attack whose batch cannot fit: every class (times the population, for BL-v2)
        runs through the twin at once, each layer's current, voltage, spikes and their gradients (~6 float32 per
        neuron and step). Counts are bounded one by one (``safety.MAX_COUNTS``); this bounds their product."""
        from ..safety import check_memory

        shape = self.adapter.input_shape
        steps = shape[-1] if len(shape) > 1 else 1
        sizes = getattr(getattr(self.adapter.model, "spec", None), "sizes", None) or (int(np.prod(shape[:-1] or shape)),)
        rows = n_classes * int(getattr(self.params, "population", 1) or 1)
        check_memory(4.0 * 6 * rows * float(sum(int(v) for v in sizes)) * steps,
                     f"{self.name} on {n_classes} classes ({rows} inputs of {tuple(shape)} at once)")

    def _invert(self, classes: torch.Tensor, gen: torch.Generator, progress: bool) -> AttackResult:  # pragma: no cover
        raise NotImplementedError


def target_posterior_and_grad(adapter: TargetAdapter, x: torch.Tensor, classes: torch.Tensor,
                              extra_loss=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batched forward/backward: returns (target posterior (B,), loss (B,), dloss/dx (B, ...)).

    The loss is ``1 - M_y(x)`` (+ ``extra_loss(x)`` per row). Rows are independent, so the gradient of
    the summed loss gives every row its own gradient in one pass.
    """
    x = x.detach().clone().requires_grad_(True)
    post = adapter.posterior(x)
    p_y = post.gather(1, classes.view(-1, 1).to(post.device)).squeeze(1)
    loss = 1.0 - p_y
    if extra_loss is not None:
        loss = loss + extra_loss(x)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return p_y.detach(), loss.detach(), grad.detach()


def params_json(params: AttackParams) -> str:
    return json.dumps(params.to_dict(), sort_keys=True)


def history_row(rows: int, idx: torch.Tensor, values: torch.Tensor) -> np.ndarray:
    """One iteration's losses for all ``rows``: ``values`` at the active ``idx``, NaN elsewhere."""
    row = np.full(rows, np.nan, dtype=np.float32)
    row[idx.numpy()] = values.detach().cpu().numpy()
    return row


def stack_history(history: list[np.ndarray], rows: int) -> np.ndarray:
    if not history:
        return np.zeros((0, rows), dtype=np.float32)
    return np.stack(history).astype(np.float32)


def as_any(x: Any) -> Any:  # small helper for JSON-able numpy scalars
    return x.item() if hasattr(x, "item") else x
