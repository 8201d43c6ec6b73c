"""Score reconstructions with an evaluation classifier: the paper's four metrics, over Bernoulli draws.

- Spiking reconstructions (BL-v1, BL-v2) go to a spiking evaluator as spike trains; to an ANN evaluator
  they go rate-decoded (time average).
- MI-FACE images are min-max scaled per image before an ANN evaluator scores them (as the published
  code does); a spiking evaluator gets them rate-encoded with a seeded generator.
- Graded drives (attacks on graded-input networks) are seen as images: their time average, normalised by
  the drive's range (not min-max), then as MI-FACE images.
- BL-v2 results carry Bernoulli probabilities: ``draws`` independent spike-train draws are scored and
  the metrics reported as mean and population std over draws (the paper's ± columns). Deterministic
  reconstructions are scored once.

``contrast`` (default none: all of the above) scores what a reconstruction shows rather than how bright it is.
Each reconstruction becomes one image: the time average of its spike trains (BL-v2: of its Bernoulli
probabilities, the expected image of its draws), MI-FACE's image, a graded drive's range-normalised average.
That image is standardised to a grey-level mean and standard deviation (per image: subtract its mean, divide by
its std, scale and shift, clip to [0, 1]; a constant image becomes uniform at the mean), which for
``"standardise"`` are those of the evaluator's own training images (recorded in its file). An ANN evaluator
scores the image; a spiking one ``draws`` seeded rate codings of it. Standardisation is affine invariant, so the
min-max scaling applied to MI-FACE images changes nothing under it. Static images only: event data keeps
its time structure and cannot be scored this way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..attacks.base import AttackResult, minmax_rows
from ..attacks.recon_file import check_draws, recon_draws
from ..data.encoding import rate_encode
from ..errors import InputError
from .metrics import METRIC_NAMES, AttackMetrics, attack_metrics, per_class_table, summarize_draws

METHOD_LABELS = {"bl1": "BL-v1", "bl2": "BL-v2", "miface": "MI-FACE", "blenc": "BL-enc", "nes": "NES (query-only)",
                 "label": "label-only (query-only)", "gen": "gen (generative prior)"}


@dataclass
class Evaluation:
    summary: dict  # summarize_draws output: metric -> {"mean", "std"}, n_draws
    per_draw: list[AttackMetrics]
    per_class: list[dict]  # from the posteriors averaged over draws
    posteriors: np.ndarray  # (draws, R, C)
    targets: np.ndarray
    label: str = ""
    extra: dict = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None  # the evaluator's class names, for to_frame (set by the API)

    def to_dict(self) -> dict:
        return {"label": self.label, "summary": self.summary, **self.extra,
                "per_draw": [m.__dict__ for m in self.per_draw], "per_class": self.per_class}

    def to_frame(self, summary: bool = False):
        """A pandas DataFrame. Default: one row per reconstruction, from the evaluator's posteriors averaged
        over draws: its target ``class`` (and ``name``), the evaluator's ``confidence`` in it, its ``rank`` among
        the classes, ``correct`` (rank 1), the ``predicted`` class and its probability, and the top-3 classes with
        their probabilities. ``summary=True``: one row per metric (the paper's four, as fractions) with its
        ``mean`` and ``std`` over draws and ``draws``. Needs pandas."""
        from ..attacks.base import data_frame

        if summary:
            rows = [{"metric": m, "mean": float(self.summary[m]["mean"]), "std": float(self.summary[m]["std"]),
                     "draws": int(self.summary.get("n_draws", len(self.per_draw)))} for m in METRIC_NAMES]
            return data_frame(rows).set_index("metric")
        names = self.class_names
        rows = []
        for r in self.per_class:
            c = int(r["target_class"])
            row = {"class": c}
            if names:
                row["name"] = names[c] if c < len(names) else str(c)
            row.update(confidence=float(r["target_confidence"]), rank=int(r["target_rank"]),
                       correct=bool(r["correct"]), predicted=int(r["top_classes"][0]),
                       predicted_prob=float(r["top_probs"][0]), top_classes=list(r["top_classes"]),
                       top_probs=[float(v) for v in r["top_probs"]])
            rows.append(row)
        return data_frame(rows)


def evaluator_input(samples: np.ndarray, evaluator, input_kind: str, generator: torch.Generator,
                    drive_range: tuple[float, float] | None = None) -> torch.Tensor:
    if input_kind in ("image", "drive"):
        if input_kind == "image":
            images = minmax_rows(samples)
        else:  # graded drives (R, features, T): the time average, normalised by the drive's range
            lo, hi = drive_range
            images = np.clip((samples.mean(-1) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
        if evaluator.kind == "snn":
            steps = evaluator.steps or 25
            return rate_encode(images, steps=steps, generator=generator)
        return torch.as_tensor(images)
    return torch.as_tensor(samples, dtype=torch.float32)


CONTRAST_NAMES = ("none", "standardise")


def resolve_contrast(contrast, evaluator) -> tuple[float, float] | None:
    """``contrast`` -> the (mean, std) reconstructions are standardised to, or None (scored as they are).

    Accepted: None or ``"none"``; ``"standardise"`` (or ``"standardize"``): the grey level of the evaluator's
    training images; a pair ``(mean, std)`` with 0 <= mean <= 1 and 0 < std <= 1.
    """
    if contrast is None or contrast == "none":
        return None
    if contrast in ("standardise", "standardize"):
        stats = evaluator.image_stats
        if stats is None:
            where = f"{evaluator.path}: " if evaluator.path else ""
            raise InputError(f"{where}the evaluator records no grey-level statistics of its training images "
                             "(trained before they were recorded, or on event data); retrain it, or give the "
                             "mean and std to standardise to explicitly")
        return stats
    return contrast_pair(contrast)


def contrast_pair(value) -> tuple[float, float]:
    """``value`` as a (mean, std) grey level with 0 <= mean <= 1 and 0 < std <= 1, else InputError."""
    msg = f"contrast must be one of {', '.join(CONTRAST_NAMES)} or a (mean, std) pair, got {value!r}"
    if isinstance(value, (str, bytes)):
        raise InputError(msg)
    try:
        m, sd = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(msg) from None
    if any(isinstance(v, bool) for v in value) or not (np.isfinite(m) and np.isfinite(sd) and 0.0 <= m <= 1.0
                                                       and 0.0 < sd <= 1.0):
        raise InputError(f"contrast (mean, std) needs 0 <= mean <= 1 and 0 < std <= 1, got {tuple(value)!r}")
    return m, sd


def standardise_rows(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Each row (one image, flattened) shifted and scaled to grey-level ``mean`` and ``std``, clipped to [0, 1];
    a constant row becomes ``mean`` everywhere."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    mu, sd = flat.mean(1, keepdims=True), flat.std(1, keepdims=True)
    z = np.where(sd > 0, (flat - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return np.clip(z * std + mean, 0.0, 1.0).astype(np.float32)


def contrast_images(result: AttackResult, mean: float, std: float) -> np.ndarray:
    """The images (R, features) an evaluator scores under contrast standardisation to (``mean``, ``std``): one
    per reconstruction (see the module notes on ``contrast``), standardised."""
    v = result.view()
    images = v.mean(-1, dtype=np.float64) if v.ndim == 3 else v.reshape(len(v), -1)
    return standardise_rows(images, mean, std)


def evaluator_draws(result: AttackResult, evaluator, draws: int, seed: int, stats):
    """The inputs ``evaluator`` scores for ``result``, one per draw (a generator): the draws of a BL-v2 result
    (or the one input of the others) as the evaluator takes them, or, under a contrast protocol (``stats`` =
    (mean, std) from :func:`resolve_contrast`), the standardised images, rate-coded for a spiking evaluator. One
    seeded generator serves every draw in order, so the first input is the same for every caller."""
    gen = torch.Generator().manual_seed(int(seed))
    if stats is None:
        for d in recon_draws(result, draws, seed):
            yield evaluator_input(d, evaluator, result.input_kind, gen, result.drive_range)
        return
    if evaluator.metadata.get("encoding", {}).get("kind") == "frames":
        raise InputError("contrast standardisation applies to image data; this evaluator scores event frames")
    shown = contrast_images(result, *stats)
    for _ in range(check_draws(draws) if result.probabilities is not None else 1):
        yield rate_encode(shown, steps=evaluator.steps or 25, generator=gen) if evaluator.kind == "snn" \
            else torch.as_tensor(shown)


def evaluate_result(result: AttackResult, evaluator, draws: int = 20, seed: int = 0, contrast=None) -> Evaluation:
    """The four metrics of ``result`` under ``evaluator`` (mean ± std over ``draws`` for BL-v2); ``contrast``:
    see :func:`resolve_contrast` and the module notes.

    A reject evaluator (``evaluator.rejects``) keeps its C + 1 posterior columns: a reconstruction it sends to
    "reject" is a miss (the target, below ``evaluator.target_classes``, is not its maximum) and lowers the
    confidence like any other class; ``extra["reject_rate"]`` is the share of reconstructions (over draws)
    whose argmax is "reject"."""
    n_targets = getattr(evaluator, "target_classes", evaluator.num_classes)  # a reject output is no target
    if result.targets.max() >= n_targets:
        raise InputError(f"reconstructions target class {int(result.targets.max())} but the evaluator has "
                         f"{n_targets} classes" + (" (and a reject output)" if n_targets != evaluator.num_classes
                                                   else ""))
    stats = resolve_contrast(contrast, evaluator)
    posts = [evaluator.posterior(x).numpy().astype(np.float64)
             for x in evaluator_draws(result, evaluator, draws, seed, stats)]
    posts = np.stack(posts)
    posts /= posts.sum(-1, keepdims=True)  # float64 renormalisation against float32 rounding
    per_draw = [attack_metrics(p, result.targets, evaluator.num_classes) for p in posts]
    mean_post = posts.mean(0)
    label = f"{METHOD_LABELS.get(result.attack, result.attack)} ({result.mode})"
    extra = {"contrast": None if stats is None else {"mean": stats[0], "std": stats[1]}}
    if getattr(evaluator, "rejects", False):  # the posteriors keep the reject column: a reject is a miss
        extra["reject_rate"] = float((posts.argmax(-1) == evaluator.num_classes - 1).mean())
    return Evaluation(summary=summarize_draws(per_draw), per_draw=per_draw,
                      per_class=per_class_table(mean_post, result.targets), posteriors=posts,
                      targets=result.targets, label=label, extra=extra)


def format_per_class(ev: Evaluation, classes: tuple[str, ...] | None = None) -> str:
    name = (lambda c: classes[c]) if classes else str
    lines = ["| target | evaluator top-3 (probability) | confidence of target |",
             "|---|---|---|"]
    for row in ev.per_class:
        top = ", ".join(f"{name(c)} ({p:.3f})" for c, p in zip(row["top_classes"], row["top_probs"]))
        lines.append(f"| {name(row['target_class'])} | {top} | {row['target_confidence']:.4f} |")
    return "\n".join(lines) + "\n"
