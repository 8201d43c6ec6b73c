"""Attack performance metrics of the BrainLeaks paper (section 4.1), in pure numpy.

An evaluation classifier (distinct from the attacked model) scores every reconstruction; its class
probabilities are the input here:

- ``posteriors``: array (R, C); row ``r`` is the evaluator's probability vector for reconstruction ``r``
  over ``C`` classes (finite, every value in [0, 1], each row summing to 1 within ``1e-4``);
- ``target_classes``: array (R,) of integers in ``[0, C)``; the class reconstruction ``r`` was made for.

Several reconstructions may be made for the same class (e.g. repeated attacks), and some classes may
have none.

The four metrics, each a fraction in [0, 1] (the paper prints them in percent):

- **Attack accuracy**: share of reconstructions the evaluator classifies as their target class.
- **Top-k attack accuracy** (paper: k = 3): share of reconstructions whose target class ranks <= k.
- **Average confidence**: mean over all reconstructions of ``posteriors[r, target_classes[r]]``;
  misclassified reconstructions are included.
- **Distinctive attack accuracy (DAA)**: for each class ``c`` with at least one reconstruction made
  for it, pick the reconstruction (among *all* rows) with the highest posterior for ``c``; DAA is the
  share of those classes whose pick was made for ``c``. Classes nobody attacked are not counted.

Ties (exact floating-point equality, no tolerance) are always resolved *against* the attack:

- accuracy: a row is correct only if its target class is the **unique** maximum of the row; a row
  whose maximum is shared by the target and another class is wrong (``np.argmax`` would silently
  pick the lowest index instead);
- top-k: ``rank = 1 + number of OTHER classes whose probability is >= the target's``, and a row is a
  hit when ``rank <= k``; so with k = 1 this is exactly the accuracy above;
- DAA: if several rows share the maximum of column ``c``, class ``c`` counts only if **all** of those
  rows were made for ``c``.

Without ties these agree with the authors' published notebooks (see ``reference-code.md``: with one
reconstruction per class, "avg conf" is the mean of the diagonal and DAA the share of columns whose
argmax over rows is the diagonal entry).

``summarize_draws`` aggregates metrics over independent Bernoulli draws of the same attack
(mean and *population* standard deviation, ``ddof=0``), and ``format_paper_table`` prints them in
the layout of the paper's Table 3.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError

__all__ = [
    "AttackMetrics",
    "ROW_SUM_TOLERANCE",
    "METRIC_NAMES",
    "PAPER_ROW_LABELS",
    "attack_metrics",
    "topk_accuracy",
    "per_class_table",
    "summarize_draws",
    "format_paper_table",
]

#: Largest allowed ``|sum(row) - 1|`` of a posterior row.
ROW_SUM_TOLERANCE = 1e-4

#: Field names of :class:`AttackMetrics`, in the paper's row order.
METRIC_NAMES = ("accuracy", "top3_accuracy", "avg_confidence", "daa")

#: Row labels of the paper's Table 3, keyed by metric name.
PAPER_ROW_LABELS = {
    "accuracy": "Attack Acc.",
    "top3_accuracy": "Top-3 Att. Acc.",
    "avg_confidence": "Avg. Conf.",
    "daa": "DAA",
}


@dataclass(frozen=True)
class AttackMetrics:
    """The paper's four attack metrics for one set of reconstructions, as fractions in [0, 1]."""

    accuracy: float
    top3_accuracy: float
    avg_confidence: float
    daa: float


# ----------------------------------------------------------------------------------------------
# validation


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return value


def _validate_posteriors(posteriors) -> np.ndarray:
    try:
        p = np.asarray(posteriors)
    except Exception as e:  # ragged nested lists and the like
        raise InputError(f"posteriors cannot be read as an array: {e}") from None
    if p.dtype.kind not in "biuf":
        raise InputError(f"posteriors must be a real numeric array, got dtype {p.dtype}")
    if p.ndim != 2:
        raise InputError(f"posteriors must be 2-D (reconstructions, classes), got shape {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise InputError(f"posteriors must have at least one row and one column, got shape {p.shape}")
    p = p.astype(np.float64, copy=False)
    bad = ~np.isfinite(p)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(f"posteriors must be finite; posteriors[{r}, {c}] = {p[r, c]}")
    out = (p < 0.0) | (p > 1.0)
    if out.any():
        r, c = np.argwhere(out)[0]
        raise InputError(f"posteriors must lie in [0, 1]; posteriors[{r}, {c}] = {p[r, c]!r}")
    dev = np.abs(p.sum(axis=1) - 1.0)
    if (dev > ROW_SUM_TOLERANCE).any():
        r = int(np.argmax(dev))
        raise InputError(
            f"posteriors rows must sum to 1 within {ROW_SUM_TOLERANCE:g}; "
            f"row {r} sums to {p[r].sum()!r}"
        )
    return p


def _validate_targets(target_classes, n_rows: int, n_classes: int) -> np.ndarray:
    try:
        t = np.asarray(target_classes)
    except Exception as e:
        raise InputError(f"target_classes cannot be read as an array: {e}") from None
    if t.ndim != 1:
        raise InputError(f"target_classes must be 1-D (reconstructions,), got shape {t.shape}")
    if t.shape[0] != n_rows:
        raise InputError(
            f"target_classes has {t.shape[0]} entries but posteriors has {n_rows} rows; "
            "they must match"
        )
    if t.dtype.kind in "iu":
        t = t.astype(np.int64)
    elif t.dtype.kind == "f":
        if not np.isfinite(t).all() or (t != np.round(t)).any():
            raise InputError("target_classes must hold integer class indices, got non-integer values")
        t = t.astype(np.int64)
    else:
        raise InputError(f"target_classes must hold integer class indices, got dtype {t.dtype}")
    out = (t < 0) | (t >= n_classes)
    if out.any():
        r = int(np.argmax(out))
        raise InputError(
            f"target_classes must lie in [0, {n_classes}); target_classes[{r}] = {int(t[r])}"
        )
    return t


def _validate(posteriors, target_classes, num_classes) -> tuple[np.ndarray, np.ndarray]:
    p = _validate_posteriors(posteriors)
    if num_classes is not None:
        num_classes = _check_int(num_classes, "num_classes", 1)
        if num_classes != p.shape[1]:
            raise InputError(
                f"num_classes is {num_classes} but posteriors has {p.shape[1]} columns; they must match"
            )
    t = _validate_targets(target_classes, p.shape[0], p.shape[1])
    return p, t


# ----------------------------------------------------------------------------------------------
# metrics on validated arrays


def _target_probs(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return p[np.arange(p.shape[0]), t]


def _ranks(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """1 + number of other classes with probability >= the target's (ties count against)."""
    tp = _target_probs(p, t)
    # ``>=`` also counts the target itself, which supplies the "1 +".
    return (p >= tp[:, None]).sum(axis=1)


def _daa(p: np.ndarray, t: np.ndarray) -> float:
    classes = np.unique(t)
    hits = 0
    for c in classes:
        col = p[:, c]
        chosen = col == col.max()
        if np.all(t[chosen] == c):
            hits += 1
    return hits / len(classes)


# ----------------------------------------------------------------------------------------------
# public API


def attack_metrics(
    posteriors: np.ndarray, target_classes: np.ndarray, num_classes: int | None = None
) -> AttackMetrics:
    """The paper's four metrics (accuracy, top-3 accuracy, average confidence, DAA) as fractions.

    ``posteriors`` (R, C): evaluator probabilities; ``target_classes`` (R,): the class each
    reconstruction was made for; ``num_classes`` (optional) must equal C when given. Tie rules are in
    the module docstring: ties always count against the attack. Raises ``InputError`` on bad input.
    """
    p, t = _validate(posteriors, target_classes, num_classes)
    ranks = _ranks(p, t)
    return AttackMetrics(
        accuracy=float(np.mean(ranks <= 1)),
        top3_accuracy=float(np.mean(ranks <= 3)),
        avg_confidence=float(np.mean(_target_probs(p, t))),
        daa=float(_daa(p, t)),
    )


def topk_accuracy(
    posteriors: np.ndarray, target_classes: np.ndarray, k: int = 3, num_classes: int | None = None
) -> float:
    """Share of rows whose target class has ``rank <= k``.

    ``rank = 1 + number of OTHER classes with probability >= the target's`` (exact ties count
    against the attack), so ``k=1`` is the attack accuracy with its unique-maximum rule. ``k`` larger
    than the number of classes is allowed (every row is then a hit).
    """
    k = _check_int(k, "k", 1)
    p, t = _validate(posteriors, target_classes, num_classes)
    return float(np.mean(_ranks(p, t) <= k))


def per_class_table(
    posteriors: np.ndarray, target_classes: np.ndarray, k: int = 3
) -> list[dict]:
    """One dict per reconstruction (in row order) describing how the evaluator sees it.

    Keys: ``row`` (index r), ``target_class`` (int), ``top_classes`` (the evaluator's ``min(k, C)``
    most probable classes, by descending probability; equal probabilities listed by ascending class
    index), ``top_probs`` (their probabilities, floats), ``target_confidence`` (posterior of the
    target class), ``target_rank`` (rank with the tie rule of :func:`topk_accuracy`) and ``correct``
    (``target_rank == 1``).
    """
    k = _check_int(k, "k", 1)
    p, t = _validate(posteriors, target_classes, None)
    kk = min(k, p.shape[1])
    order = np.argsort(-p, axis=1, kind="stable")[:, :kk]
    ranks = _ranks(p, t)
    tp = _target_probs(p, t)
    table = []
    for r in range(p.shape[0]):
        table.append(
            {
                "row": r,
                "target_class": int(t[r]),
                "top_classes": [int(c) for c in order[r]],
                "top_probs": [float(p[r, c]) for c in order[r]],
                "target_confidence": float(tp[r]),
                "target_rank": int(ranks[r]),
                "correct": bool(ranks[r] == 1),
            }
        )
    return table


def summarize_draws(draws: Sequence[AttackMetrics]) -> dict:
    """Mean and population standard deviation (``ddof=0``) of each metric over independent draws.

    Returns ``{"accuracy": {"mean": m, "std": s}, "top3_accuracy": {...}, "avg_confidence": {...},
    "daa": {...}, "n_draws": n}``, all values fractions. One draw gives std 0. The result can be
    passed directly as a column of :func:`format_paper_table`.
    """
    try:
        draws = list(draws)
    except TypeError:
        raise InputError(f"draws must be a sequence of AttackMetrics, got {type(draws).__name__}") from None
    if not draws:
        raise InputError("draws must contain at least one AttackMetrics")
    for i, d in enumerate(draws):
        if not isinstance(d, AttackMetrics):
            raise InputError(f"draws[{i}] must be an AttackMetrics, got {type(d).__name__}")
    out: dict = {}
    for name in METRIC_NAMES:
        values = np.array([getattr(d, name) for d in draws], dtype=np.float64)
        out[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=0))}
    out["n_draws"] = len(draws)
    return out


def _cell(column: str, metric: str, value) -> str:
    where = f"columns[{column!r}][{metric!r}]"
    if isinstance(value, Mapping):
        if "mean" not in value:
            raise InputError(f"{where} must have a 'mean' entry")
        mean, std = value["mean"], value.get("std")
    else:
        mean, std = value, None
    try:
        mean = float(mean)
        std = None if std is None else float(std)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a number or a {{'mean', 'std'}} mapping, got {value!r}") from None
    if not math.isfinite(mean) or not 0.0 <= mean <= 1.0:
        raise InputError(f"{where} mean must be a fraction in [0, 1], got {mean!r}")
    if std is not None and (not math.isfinite(std) or std < 0.0):
        raise InputError(f"{where} std must be finite and >= 0, got {std!r}")
    text = f"{100.0 * mean:.2f}"
    if std:
        text += f" ± {100.0 * std:.2f}"
    return text


def format_paper_table(columns: dict[str, dict]) -> str:
    """A markdown (and plain-text readable) table in the layout of the paper's Table 3.

    ``columns`` maps a method name (column header, in the given order) to a dict keyed by the metric
    names ``accuracy``, ``top3_accuracy``, ``avg_confidence``, ``daa`` (other keys, e.g.
    ``n_draws``, are ignored). Each value is a fraction, or a ``{"mean": m, "std": s}`` mapping as
    returned by :func:`summarize_draws`; an :class:`AttackMetrics` may be given instead of a dict.
    Cells are percentages with 2 decimals, followed by ``" ± <std>"`` when a std is present and
    non-zero (e.g. ``71.27 ± 2.25``). Columns are padded to a common width; the result ends with a
    newline.
    """
    if not isinstance(columns, Mapping) or not columns:
        raise InputError("columns must be a non-empty mapping of method name -> metrics dict")
    header = ["Metric"]
    body = [[PAPER_ROW_LABELS[m]] for m in METRIC_NAMES]
    for name, metrics in columns.items():
        if isinstance(metrics, AttackMetrics):
            metrics = {m: getattr(metrics, m) for m in METRIC_NAMES}
        if not isinstance(metrics, Mapping):
            raise InputError(f"columns[{name!r}] must be a dict of metrics, got {type(metrics).__name__}")
        header.append(str(name).replace("|", "\\|"))
        for i, m in enumerate(METRIC_NAMES):
            if m not in metrics:
                raise InputError(f"columns[{name!r}] lacks the metric {m!r}")
            body[i].append(_cell(str(name), m, metrics[m]))
    rows = [header] + body
    widths = [max(len(r[j]) for r in rows) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    lines = [line(header), "| " + " | ".join("-" * w for w in widths) + " |"]
    lines += [line(r) for r in body]
    return "\n".join(lines) + "\n"
