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
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..attacks.base import AttackResult, minmax_rows
from ..attacks.recon_file import recon_draws
from ..data.encoding import rate_encode
from ..errors import InputError
from .metrics import AttackMetrics, attack_metrics, per_class_table, summarize_draws

METHOD_LABELS = {"bl1": "BL-v1", "bl2": "BL-v2", "miface": "MI-FACE", "blenc": "BL-enc"}


@dataclass
class Evaluation:
    summary: dict  # summarize_draws output: metric -> {"mean", "std"}, n_draws
    per_draw: list[AttackMetrics]
    per_class: list[dict]  # from the posteriors averaged over draws
    posteriors: np.ndarray  # (draws, R, C)
    targets: np.ndarray
    label: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"label": self.label, "summary": self.summary,
                "per_draw": [m.__dict__ for m in self.per_draw], "per_class": self.per_class}


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


def evaluate_result(result: AttackResult, evaluator, draws: int = 20, seed: int = 0) -> Evaluation:
    """The four metrics of ``result`` under ``evaluator`` (mean ± std over ``draws`` for BL-v2)."""
    if result.targets.max() >= evaluator.num_classes:
        raise InputError(f"reconstructions target class {int(result.targets.max())} but the evaluator has "
                         f"{evaluator.num_classes} classes")
    gen = torch.Generator().manual_seed(int(seed))
    d = recon_draws(result, draws, seed)
    posts = []
    for k in range(len(d)):
        x = evaluator_input(d[k], evaluator, result.input_kind, gen, result.drive_range)
        posts.append(evaluator.posterior(x).numpy().astype(np.float64))
    posts = np.stack(posts)
    posts /= posts.sum(-1, keepdims=True)  # float64 renormalisation against float32 rounding
    per_draw = [attack_metrics(p, result.targets, evaluator.num_classes) for p in posts]
    mean_post = posts.mean(0)
    label = f"{METHOD_LABELS.get(result.attack, result.attack)} ({result.mode})"
    return Evaluation(summary=summarize_draws(per_draw), per_draw=per_draw,
                      per_class=per_class_table(mean_post, result.targets), posteriors=posts,
                      targets=result.targets, label=label)


def format_per_class(ev: Evaluation, classes: tuple[str, ...] | None = None) -> str:
    name = (lambda c: classes[c]) if classes else str
    lines = ["| target | evaluator top-3 (probability) | confidence of target |",
             "|---|---|---|"]
    for row in ev.per_class:
        top = ", ".join(f"{name(c)} ({p:.3f})" for c, p in zip(row["top_classes"], row["top_probs"]))
        lines.append(f"| {name(row['target_class'])} | {top} | {row['target_confidence']:.4f} |")
    return "\n".join(lines) + "\n"
