"""Membership inference: per-example scores from a target's (and shadow models') logits, and their metrics.

Scores (higher = "more likely a member"), all from the logits of the deployed posterior (``softmax(logits)`` is
the posterior the file's read-out gives, see ``netx.target.readout_logits``):

- ``loss``: minus the cross-entropy of the true label, ``log p_y`` (the loss attack);
- ``confidence``: ``p_y`` (the confidence attack; a monotone function of the loss, so it ranks the same examples
  the same way except where ``p_y`` rounds to 1 in float64);
- ``lira_online``: LiRA (Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022).
  Each model's confidence in the true label is logit-scaled, ``phi = log(p_y / (1 - p_y))`` (computed from the
  log-posterior, so it stays finite where ``p_y`` rounds to 1), and is modelled per example as Gaussian over the
  shadow models that trained on the example (IN) and over those that did not (OUT). The score is the
  log-likelihood ratio ``log N(phi_target; mu_in, s_in^2) - log N(phi_target; mu_out, s_out^2)``;
- ``lira_offline``: the OUT Gaussian alone, one-sided: ``Pr[Z <= phi_target]`` with ``Z ~ N(mu_out, s_out^2)``,
  scored as the standard score ``(phi_target - mu_out) / s_out`` (the same order, without the probability's
  rounding to 1 in the tail that a low false-positive rate looks at).

Variance: with few shadow models a per-example variance is a poor estimate; the paper then uses one variance
for all examples ("fixed variance", recommended below 64 shadow models). ``variance="global"`` pools the
within-example deviations of every example (each example's own mean removed; degrees of freedom: values minus
examples), ``"per-example"`` uses each example's own standard deviation where it has two or more values and the
pooled one elsewhere; ``"auto"`` is global below ``GLOBAL_VARIANCE_BELOW`` shadow models. An example no IN (or
no OUT) shadow model saw gets the mean over all examples' IN (OUT) values; how many did is reported.

Observed posteriors: an interface that returns rounded (or otherwise coarsened) probabilities instead of
logits is attacked through :func:`logits_of_posterior`, ``log(max(p, POSTERIOR_FLOOR))``: a probability rounded
to 0 would have an infinite loss, so it is lifted to the floor, and the scores' ``log_softmax`` renormalises the
floored values (a rounded posterior need not sum to 1). Sums over classes are added in sorted order, so two
examples whose posteriors are equal up to the order of the classes get bit-identical scores: the ties of a coarse
read-out stay ties (counted half by the AUC) instead of being broken by rounding noise. Every probability at or below the floor gets the same
score, so the floor only decides how far below the smallest non-zero value those examples rank, not their order.

Metrics of a score on examples labelled member / non-member (members are the positives; "member" is predicted
when the score is at least a threshold): the ROC over every distinct threshold, its AUC computed from ranks
(Mann-Whitney; tied scores count half), the largest TPR whose FPR does not exceed 1 % and 0.1 % (with the number
of false positives that FPR allows on this many non-members), and the balanced accuracy at the best threshold.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError

ATTACKS = ("loss", "confidence", "lira_online", "lira_offline")
SHADOW_ATTACKS = ("lira_online", "lira_offline")
FPR_LEVELS = (0.01, 0.001)
GLOBAL_VARIANCE_BELOW = 64  # shadow models: "auto" uses one variance for all examples below this many
MIN_STD = 1e-6  # floor of every standard deviation (a model that gives one example the same phi every time)
VARIANCES = ("auto", "global", "per-example")
POSTERIOR_FLOOR = 1e-6  # the smallest probability an observed posterior is taken to give (log of it: about -13.8)


# ---------------------------------------------------------------------------------------------- scores

def _logits(logits, name: str = "logits") -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2 or z.shape[0] == 0:
        raise InputError(f"{name} must have shape (examples, classes >= 2), got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise InputError(f"{name} hold NaN or infinite values")
    return z


def _labels(labels, n: int, classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise InputError(f"labels must be {n} integer class indices, got shape {y.shape} and dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= classes):
        raise InputError(f"labels must be class indices in 0..{classes - 1}")
    return y.astype(np.int64)


def logits_of_posterior(posterior, floor: float = POSTERIOR_FLOOR) -> np.ndarray:
    """Logits (float64, (N, C)) whose softmax is ``posterior`` renormalised after every value below ``floor`` is
    lifted to it (module docstring): ``log(max(p, floor))``. ``posterior`` must hold finite values in [0, 1]."""
    p = np.asarray(posterior, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or p.shape[0] == 0:
        raise InputError(f"posteriors must have shape (examples, classes >= 2), got {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise InputError("posteriors must hold probabilities in [0, 1]")
    if not 0 < floor < 1:
        raise InputError(f"the posterior floor must be in (0, 1), got {floor!r}")
    return np.log(np.maximum(p, floor))


def _sorted_sum(values: np.ndarray) -> np.ndarray:
    """Row sums of ``values`` (N, C) added in ascending order: rows equal up to a permutation sum to the same
    float (a rounded posterior's score must not depend on which class holds its largest value)."""
    return np.sort(values, axis=1).sum(axis=1)


def log_posterior(logits) -> np.ndarray:
    """``log softmax(logits)`` in float64 (N, C) (sums over classes in sorted order: :func:`_sorted_sum`)."""
    z = _logits(logits)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(_sorted_sum(np.exp(z)))[:, None]


def true_class_scores(logits, labels) -> dict[str, np.ndarray]:
    """``loss`` (``log p_y``), ``confidence`` (``p_y``) and ``phi`` (``log p_y - log(1 - p_y)``) per example."""
    lp = log_posterior(logits)
    y = _labels(labels, lp.shape[0], lp.shape[1])
    rows = np.arange(len(y))
    log_py = lp[rows, y]
    others = lp.copy()
    others[rows, y] = -np.inf
    top = others.max(axis=1)
    log_rest = top + np.log(_sorted_sum(np.exp(others - top[:, None])))  # log(1 - p_y), from the other classes
    return {"loss": log_py, "confidence": np.exp(log_py), "phi": log_py - log_rest}


def logit_confidence(logits, labels) -> np.ndarray:
    """LiRA's statistic ``phi = log(p_y / (1 - p_y))`` per example."""
    return true_class_scores(logits, labels)["phi"]


def _pooled_std(values: np.ndarray, mask: np.ndarray, means: np.ndarray) -> float | None:
    """One standard deviation for every example: the within-example deviations of ``values`` (M, N) where
    ``mask`` (each example's own mean ``means`` removed), over (values - examples with a value); the plain
    standard deviation of all the values when no example has two; None without any value."""
    count = mask.sum(0)
    if count.sum() == 0:
        return None
    dof = int(count.sum() - (count > 0).sum())
    if dof > 0:
        dev = np.where(mask, values - means[None, :], 0.0)
        return max(math.sqrt(float((dev ** 2).sum()) / dof), MIN_STD)
    return max(float(values[mask].std()), MIN_STD)


def _gaussians(values: np.ndarray, mask: np.ndarray, variance: str):
    """Per-example mean and standard deviation of ``values`` (M, N) over the rows where ``mask``, and the
    number of examples that had no value (given the mean over all values) - or None when nothing is masked."""
    count = mask.sum(0)
    if count.sum() == 0:
        return None
    total = np.where(mask, values, 0.0).sum(0)
    overall = float(values[mask].mean())
    means = np.where(count > 0, total / np.maximum(count, 1), overall)
    pooled = _pooled_std(values, mask, means)
    std = np.full(values.shape[1], pooled)
    if variance == "per-example":
        dev2 = np.where(mask, (values - means[None, :]) ** 2, 0.0).sum(0)
        own = np.sqrt(dev2 / np.maximum(count, 1))
        std = np.where(count >= 2, np.maximum(own, MIN_STD), pooled)
    return means, std, int((count == 0).sum())


def _normal_logpdf(x, mu, sd):
    return -np.log(sd) - 0.5 * ((x - mu) / sd) ** 2 - 0.5 * math.log(2 * math.pi)


def lira_scores(target_phi, shadow_phi, shadow_in, variance: str = "auto") -> dict:
    """LiRA scores of examples (module docstring) from the target's ``phi`` (N,) and the shadow models' ``phi``
    (M, N) with their IN masks (M, N; True where the shadow model trained on the example).

    Returns ``{"lira_online": (N,) or None, "lira_offline": (N,) or None, "variance": the variance used,
    "no_in": examples without an IN shadow model, "no_out": ... without an OUT one}``; a score is None when
    no shadow model is of that kind for any example."""
    x = np.asarray(target_phi, dtype=np.float64)
    phi = np.asarray(shadow_phi, dtype=np.float64)
    mask = np.asarray(shadow_in)
    if x.ndim != 1:
        raise InputError(f"target phi must be a vector (examples,), got shape {x.shape}")
    if phi.ndim != 2 or phi.shape[1] != len(x) or mask.shape != phi.shape:
        raise InputError(f"shadow phi and IN masks must both have shape (shadows, {len(x)}), got {phi.shape} and "
                         f"{mask.shape}")
    if mask.dtype != bool:
        raise InputError(f"shadow IN masks must be boolean, got dtype {mask.dtype}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(phi))):
        raise InputError("phi values hold NaN or infinite values")
    if variance not in VARIANCES:
        raise InputError(f"variance must be one of {', '.join(VARIANCES)}, got {variance!r}")
    if variance == "auto":
        variance = "global" if phi.shape[0] < GLOBAL_VARIANCE_BELOW else "per-example"
    g_in = _gaussians(phi, mask, variance)
    g_out = _gaussians(phi, ~mask, variance)
    online = offline = None
    if g_out is not None:
        mu_out, sd_out, _ = g_out
        offline = (x - mu_out) / sd_out
        if g_in is not None:
            mu_in, sd_in, _ = g_in
            online = _normal_logpdf(x, mu_in, sd_in) - _normal_logpdf(x, mu_out, sd_out)
    return {"lira_online": online, "lira_offline": offline, "variance": variance,
            "no_in": len(x) if g_in is None else g_in[2], "no_out": len(x) if g_out is None else g_out[2]}


def membership_scores(target_logits, labels, shadow_logits=None, shadow_in=None, variance: str = "auto") -> dict:
    """Every attack's score per example (module docstring) from the target's logits (N, C) and, for LiRA, the
    shadow models' logits on the same inputs (M, N, C) with their IN masks (M, N).

    Returns ``{"scores": {attack: (N,) float64}, "phi": (N,), "lira": {variance, no_in, no_out} or None}``; the
    LiRA scores are present when shadow models are given (``lira_online`` needs IN and OUT ones)."""
    base = true_class_scores(target_logits, labels)
    scores = {"loss": base["loss"], "confidence": base["confidence"]}
    info = None
    if shadow_logits is not None:
        sl = np.asarray(shadow_logits, dtype=np.float64)
        n = len(base["phi"])
        if sl.ndim != 3 or sl.shape[1] != n:
            raise InputError(f"shadow logits must have shape (shadows, {n}, classes), got {sl.shape}")
        if shadow_in is None:
            raise InputError("shadow logits need the shadow models' IN masks")
        phi = np.stack([logit_confidence(s, labels) for s in sl]) if len(sl) else np.zeros((0, n))
        lira = lira_scores(base["phi"], phi, np.asarray(shadow_in), variance)
        for k in SHADOW_ATTACKS:
            if lira[k] is not None:
                scores[k] = lira[k]
        info = {k: lira[k] for k in ("variance", "no_in", "no_out")}
    return {"scores": scores, "phi": base["phi"], "lira": info}


# ---------------------------------------------------------------------------------------------- metrics

def _checked(scores, member) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(member)
    if s.ndim != 1 or m.shape != s.shape:
        raise InputError(f"scores and member labels must be vectors of one length, got {s.shape} and {m.shape}")
    if m.dtype != bool:
        if m.dtype.kind not in "iu" or not np.all((m == 0) | (m == 1)):
            raise InputError("member labels must be booleans or 0/1")
        m = m.astype(bool)
    if not np.all(np.isfinite(s)):
        raise InputError("scores hold NaN or infinite values")
    if m.all() or not m.any():
        raise InputError(f"metrics need members and non-members, got {int(m.sum())} members of {len(m)}")
    return s, m


def roc_curve(scores, member) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, thresholds) of "member if score >= threshold" at every distinct score, from the highest
    threshold down, after the point (0, 0) of threshold +inf; the last point is (1, 1)."""
    s, m = _checked(scores, member)
    order = np.argsort(-s, kind="stable")
    s_sorted, m_sorted = s[order], m[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]  # last position of each distinct score
    tp = np.cumsum(m_sorted)[last]
    fp = np.cumsum(~m_sorted)[last]
    fpr = np.r_[0.0, fp / (~m).sum()]
    tpr = np.r_[0.0, tp / m.sum()]
    return fpr, tpr, np.r_[np.inf, s_sorted[last]]


def auc(scores, member) -> float:
    """Area under the ROC from ranks: the probability that a random member scores above a random non-member,
    ties counting half (Mann-Whitney U / (members x non-members))."""
    s, m = _checked(scores, member)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of each distinct value's first occurrence
    ranks = (first + (counts + 1) / 2.0)[inverse]  # average 1-based rank of tied values
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    u = float(ranks[m].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def tpr_at_fpr(scores, member, max_fpr: float) -> dict:
    """The largest TPR over thresholds whose FPR is at most ``max_fpr``: ``{"tpr", "fpr", "threshold",
    "allowed_false_positives"}`` (the false positives that FPR allows on these non-members; with none allowed the
    threshold sits above every non-member)."""
    if not (isinstance(max_fpr, (int, float)) and 0 <= max_fpr <= 1):
        raise InputError(f"max_fpr must be in [0, 1], got {max_fpr!r}")
    fpr, tpr, thr = roc_curve(scores, member)
    n_neg = int((~np.asarray(member, dtype=bool)).sum())
    ok = np.nonzero(fpr <= max_fpr + 1e-12)[0]
    best = ok[np.argmax(tpr[ok])]
    return {"tpr": float(tpr[best]), "fpr": float(fpr[best]), "threshold": float(thr[best]),
            "allowed_false_positives": int(math.floor(max_fpr * n_neg + 1e-9))}


def best_balanced_accuracy(scores, member) -> dict:
    """The highest ``(TPR + 1 - FPR) / 2`` over thresholds: ``{"balanced_accuracy", "threshold"}``."""
    fpr, tpr, thr = roc_curve(scores, member)
    acc = (tpr + 1.0 - fpr) / 2.0
    i = int(np.argmax(acc))
    return {"balanced_accuracy": float(acc[i]), "threshold": float(thr[i])}


def attack_metrics(scores, member, fpr_levels=FPR_LEVELS) -> dict:
    """AUC, TPR at each FPR level, best balanced accuracy and the counts of one attack's scores."""
    s, m = _checked(scores, member)
    bal = best_balanced_accuracy(s, m)
    return {"auc": auc(s, m), "tpr_at_fpr": {f"{a:g}": tpr_at_fpr(s, m, a) for a in fpr_levels},
            "balanced_accuracy": bal["balanced_accuracy"], "threshold": bal["threshold"],
            "members": int(m.sum()), "non_members": int((~m).sum())}
