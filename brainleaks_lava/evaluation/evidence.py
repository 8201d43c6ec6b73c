"""Evidence about a leak that does not rest on the judge that picked the reconstructions (issue 28).

A reconstruction a judge recognises shows that the attack recovered what the *class* looks like to that judge; it
says nothing yet about the target's *training images* (members). This module holds the tests that separate the
two, all on feature vectors (a judge's penultimate activations; plain numpy and scipy):

- :func:`knn_specificity`: are reconstructions nearer to members than to non-members (images the target never
  saw) in a way a fresh real digit is not? A calibrated nearest-neighbour test, per class and pooled.
- :func:`frechet_distance` and :func:`real_baseline`: the Fréchet distance between Gaussians fitted to two
  feature sets, and the same distance between two disjoint sets of real images of the same size, the scale on
  which the first is read.
- :func:`precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019): how much of one set lies
  on the other's k-nearest-neighbour manifold.
- :func:`fidelity`: the last two against class-matched random real sets of the reconstructions' size.
- :func:`leak_kind`: the verdict of a panel of judges for one class.

The nearest-neighbour test (:func:`knn_specificity`), for each class c of the reconstructions:

1. the class's non-members are split at random (seeded per class) into a reference half N_ref and a probe half
   N_probe; the member reference M is every member of class c (so a copy of any member is at distance 0). The
   distance to the nearest of k points shrinks with k, so when M is larger than N_ref the ratios below are
   smaller than 1 for every image; the probes are measured against the same two sets, which calibrates that;
2. for each reconstruction x: d_M = min Euclidean distance to M, d_N = min to N_ref, ratio r = d_M / d_N
   (r = 0 when d_M = 0 < d_N, r = 1 when both are 0, r = inf when d_N = 0 < d_M);
3. the same ratio for every probe, a real image of class c the target never saw: the ratio's distribution
   under "as close to the members as an unseen real image is". A feature space that itself favours members (a
   judge trained on them) shifts the probes' ratios as much as the reconstructions', so the test stays
   calibrated;
4. one-sided test that the reconstructions' ratios are smaller than the probes': with one reconstruction the
   empirical p = (1 + #probes with ratio <= r) / (1 + #probes); with several a Mann-Whitney U test (alternative
   "less"). Pooled over classes: a Mann-Whitney test of every reconstruction's log-ratio against every probe's
   (ranks of log-ratios are those of the ratios, so the ratios are ranked directly; the pooled test mixes the
   classes in the proportions of each side, which differ when classes have different numbers of probes).

``closeness`` = median d_M of the reconstructions / median d_M of the probes says how near to a training image a
reconstruction is compared with an unseen real image of its class (about 1: as near as a real digit; much more
than 1: far from every real image, whatever the ratio says).

The member calibration (``calibrate_members``, on by default). The probes calibrate against a feature space that
favours members, but not against members and non-members that differ as populations: then anything that looks like
the member population, without being any training record, is nearer to the members than a non-member is. MNIST's
split does differ: split "train" is test images 0..7999, "val" 8000..9999, and the first 5,000 of the test set come
from other writers than the rest. Measured with a judge trained on images 2000..4999 only, real images of the
member population that were neither references nor seen by the judge (one per class, like the audit's winners) got
a pooled p < 0.05 in 7 of 10 trials, and 7 of their 100 class tests came out record-level. So the same
reconstructions are also compared with the members themselves: ratio = distance to the nearest of *all* members of
the class / to the nearest of N_ref, against each member's ratio to the nearest *other* member (leave one out; the
one fewer reference member differs negligibly for a class of tens of members) and to N_ref. A fresh image of the
member population is exchangeable with a member there, so this test holds its level under such a difference. When a
judge was trained on the members, they lie tighter in its space and the test is conservative. The same ratios for
copies of members are 0, so this test finds every copy. A class shows a *record-level* leak when its p and the pooled p
are below ``alpha`` in the test against the probes and, with the calibration, also in the test against the members
(``p_members``, ``pooled_p_members``). Both tests measure against every member of the class, so an exact copy of
any member has ratio 0 in both (an earlier version drew half the members as the reference of the first test and
called a copy record-level only about half the time).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError
from ..safety import MAX_INPUTS

#: rows of one feature set handed to these functions
MAX_SAMPLES = 200_000
#: the fewest members and non-members of a class the nearest-neighbour test accepts
MIN_PER_CLASS = 4
#: Fréchet distance: feature dimensions up to which the covariance square root may be computed with scipy's
#: sqrtm (see :func:`frechet_distance`)
SQRTM_MAX_FEATURES = 1024
_CHUNK = 1024  # rows of a distance block


# ---------------------------------------------------------------------------------------------- input checks

def _feats(x, name: str, min_rows: int = 1) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a numeric array (N, features)") from None
    if a.ndim != 2:
        raise InputError(f"{name} must have shape (N, features), got {a.shape}")
    if not min_rows <= a.shape[0] <= MAX_SAMPLES:
        raise InputError(f"{name} must have {min_rows}..{MAX_SAMPLES} rows, got {a.shape[0]}")
    if not 1 <= a.shape[1] <= MAX_INPUTS:
        raise InputError(f"{name} must have 1..{MAX_INPUTS} features, got {a.shape[1]}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return a


def _labels(y, n: int, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.shape != (n,):
        raise InputError(f"{name} must have shape ({n},), got {a.shape}")
    if a.size and (a.dtype.kind not in "iub" or a.dtype.kind == "b"):
        if a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all():
            a = a.astype(np.int64)
        else:
            raise InputError(f"{name} must hold integer class labels, got dtype {a.dtype}")
    return a.astype(np.int64)


def _same_width(*named) -> None:
    widths = {name: a.shape[1] for name, a in named}
    if len(set(widths.values())) > 1:
        raise InputError("feature sets differ in width: " + ", ".join(f"{k} {v}" for k, v in widths.items()))


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


# ---------------------------------------------------------------------------------------------- distances

def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)); float64, clipped at 0 against rounding."""
    from scipy.spatial.distance import cdist

    return cdist(a, b)


def _min_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``a``, the distance to its nearest row of ``b`` (computed in blocks)."""
    return np.concatenate([_distances(a[s:s + _CHUNK], b).min(1) for s in range(0, len(a), _CHUNK)])


def knn_distance(recon_feats, recon_classes, member_feats, member_labels) -> np.ndarray:
    """The paper's KNN distance: for each reconstruction, the Euclidean distance (in a judge's feature space) to the
    nearest training image (member) of its own class. ``InputError`` when a class has no member or the feature
    widths differ."""
    rec = _feats(recon_feats, "recon_feats")
    mem = _feats(member_feats, "member_feats")
    _same_width(("recon_feats", rec), ("member_feats", mem))
    cls = _labels(recon_classes, len(rec), "recon_classes")
    lab = _labels(member_labels, len(mem), "member_labels")
    out = np.empty(len(rec), dtype=np.float64)
    for c in np.unique(cls):
        ref = mem[lab == c]
        if not len(ref):
            raise InputError(f"class {int(c)} has no member to measure the KNN distance to")
        out[cls == c] = _min_distance(rec[cls == c], ref)
    return out


def _ratios(d_m: np.ndarray, d_n: np.ndarray) -> np.ndarray:
    """d_M / d_N with the zero guards of the module notes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d_n > 0, d_m / np.where(d_n > 0, d_n, 1.0), np.inf)
    r[(d_m == 0) & (d_n > 0)] = 0.0
    r[(d_m == 0) & (d_n == 0)] = 1.0
    return r


def _num(v) -> float | None:
    """A float for JSON: None for NaN and infinities."""
    return float(v) if v is not None and np.isfinite(v) else None


# ---------------------------------------------------------------------------------------------- KNN test

@dataclass
class ClassSpecificity:
    cls: int
    n: int  # reconstructions of the class
    n_ref: int  # |N_ref| (the member reference is every member of the class)
    n_probes: int
    median_d_member: float
    median_d_nonmember: float
    median_ratio: float
    probe_median_ratio: float
    probe_median_d_member: float
    closeness: float  # median d_M / probes' median d_M
    p: float
    # the member calibration (None without it): ratios with every member of the class as reference, tested against
    # those of the members themselves (each to the other members)
    n_member_probes: int | None = None
    median_ratio_all_members: float | None = None
    member_probe_median_ratio: float | None = None
    p_members: float | None = None
    record_level: bool = False
    ratios: list = field(default_factory=list)  # each reconstruction's ratio, in input order

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("median_d_member", "median_d_nonmember", "median_ratio", "probe_median_ratio",
                  "probe_median_d_member", "closeness", "p", "median_ratio_all_members", "member_probe_median_ratio",
                  "p_members"):
            d[k] = _num(d[k])
        d["ratios"] = [_num(r) for r in self.ratios]
        return d


@dataclass
class Specificity:
    """Result of :func:`knn_specificity`: one row per class (sorted by class) and the pooled test."""

    rows: list[ClassSpecificity]
    pooled_p: float
    alpha: float
    seed: int
    n_recons: int
    n_probes: int
    pooled_p_members: float | None = None  # the member calibration's pooled test (None without it)

    def row(self, cls: int) -> ClassSpecificity | None:
        return next((r for r in self.rows if r.cls == int(cls)), None)

    @property
    def record_level_classes(self) -> list[int]:
        return [r.cls for r in self.rows if r.record_level]

    def to_dict(self) -> dict:
        return {"rows": [r.to_dict() for r in self.rows], "pooled_p": _num(self.pooled_p), "alpha": self.alpha,
                "seed": self.seed, "n_recons": self.n_recons, "n_probes": self.n_probes,
                "pooled_p_members": _num(self.pooled_p_members), "record_level_classes": self.record_level_classes,
                "design": "per class: non-members split into reference and probe halves, as many members as the "
                          "reference half; ratio = distance to the nearest member / to the nearest reference "
                          "non-member; reconstructions' ratios tested against the probes' (one-sided)"
                          + ("; member calibration: ratios to all members of the class tested against each "
                             "member's own ratio to the other members (one-sided); record-level needs both"
                             if self.pooled_p_members is not None else "")}


def knn_specificity(recon_feats, recon_classes, member_feats, member_labels, nonmember_feats, nonmember_labels,
                    seed: int = 0, alpha: float = 0.05, calibrate_members: bool = True) -> Specificity:
    """The calibrated nearest-neighbour test of the module notes: are the reconstructions nearer to the
    target's training images (members) than a real image it never saw is?

    ``recon_feats`` (R, F) with ``recon_classes`` (R,); ``member_feats`` (M, F) with ``member_labels`` (M,);
    ``nonmember_feats`` (N, F) with ``nonmember_labels`` (N,). Every class of the reconstructions needs at least
    ``MIN_PER_CLASS`` members and non-members (``InputError`` otherwise). ``seed`` fixes the split of each class
    (a generator per class: a class's split does not depend on which other classes are tested).

    ``calibrate_members`` (default on) adds the member calibration of the module notes, and a class is then
    record-level only when both tests say so.
    """
    rf = _feats(recon_feats, "recon_feats")
    mf = _feats(member_feats, "member_feats")
    nf = _feats(nonmember_feats, "nonmember_feats")
    _same_width(("recon_feats", rf), ("member_feats", mf), ("nonmember_feats", nf))
    rc = _labels(recon_classes, len(rf), "recon_classes")
    ml = _labels(member_labels, len(mf), "member_labels")
    nl = _labels(nonmember_labels, len(nf), "nonmember_labels")
    alpha, seed = _check_alpha(alpha), _seed(seed)
    rows, all_r, all_p, all_rm, all_mp = [], [], [], [], []
    for c in sorted(set(rc.tolist())):
        m_idx, n_idx = np.flatnonzero(ml == c), np.flatnonzero(nl == c)
        for what, idx in (("members", m_idx), ("non-members", n_idx)):
            if len(idx) < MIN_PER_CLASS:
                raise InputError(f"class {c}: {len(idx)} {what}; the nearest-neighbour test needs at least "
                                 f"{MIN_PER_CLASS} of each class")
        rng = np.random.default_rng([seed, int(c)])
        perm = rng.permutation(n_idx)
        k = len(n_idx) // 2
        n_ref, probes = perm[:k], perm[k:]
        members_c = mf[m_idx]
        x = rf[rc == c]
        d_m, d_n = _min_distance(x, members_c), _min_distance(x, nf[n_ref])
        pd_m, pd_n = _min_distance(nf[probes], members_c), _min_distance(nf[probes], nf[n_ref])
        r, rp = _ratios(d_m, d_n), _ratios(pd_m, pd_n)
        p = _one_sided(r, rp)
        probe_dm = float(np.median(pd_m))
        med_dm = float(np.median(d_m))
        closeness = med_dm / probe_dm if probe_dm > 0 else (1.0 if med_dm == 0 else np.inf)
        row = ClassSpecificity(cls=int(c), n=len(r), n_ref=int(k), n_probes=len(rp), median_d_member=med_dm,
                               median_d_nonmember=float(np.median(d_n)), median_ratio=float(np.median(r)),
                               probe_median_ratio=float(np.median(rp)), probe_median_d_member=probe_dm,
                               closeness=float(closeness), p=p, ratios=[float(v) for v in r])
        if calibrate_members:
            # each member to the nearest *other* member (leave-one-out): the member probes' d_M
            md_m = _min_distance_excluding_self(members_c)
            rm, rmp = r, _ratios(md_m, _min_distance(members_c, nf[n_ref]))
            row.n_member_probes, row.p_members = len(rmp), _one_sided(rm, rmp)
            row.median_ratio_all_members = float(np.median(rm))
            row.member_probe_median_ratio = float(np.median(rmp))
            all_rm.append(rm)
            all_mp.append(rmp)
        rows.append(row)
        all_r.append(r)
        all_p.append(rp)
    if not rows:
        raise InputError("recon_feats is empty: no reconstruction to test")
    pooled = _pooled(all_r, all_p)
    pooled_m = _pooled(all_rm, all_mp) if calibrate_members else None
    for row in rows:
        row.record_level = bool(row.p < alpha and pooled < alpha)
        if calibrate_members:
            row.record_level = bool(row.record_level and row.p_members < alpha and pooled_m < alpha)
    return Specificity(rows=rows, pooled_p=pooled, alpha=alpha, seed=seed, n_recons=int(sum(len(r) for r in all_r)),
                       n_probes=int(sum(len(p) for p in all_p)), pooled_p_members=pooled_m)


def _one_sided(r: np.ndarray, probes: np.ndarray) -> float:
    """p of "the ratios ``r`` are smaller than the probes'": the empirical p of one ratio, else Mann-Whitney."""
    from scipy.stats import mannwhitneyu

    if len(r) == 1:
        return (1.0 + float((probes <= r[0]).sum())) / (1.0 + len(probes))
    return float(mannwhitneyu(r, probes, alternative="less").pvalue)


def _pooled(recon_ratios: list, probe_ratios: list) -> float:
    """Mann-Whitney of every reconstruction's log-ratio against every probe's (one-sided, "less")."""
    from scipy.stats import mannwhitneyu

    with np.errstate(divide="ignore"):
        return float(mannwhitneyu(np.log(np.concatenate(recon_ratios)), np.log(np.concatenate(probe_ratios)),
                                  alternative="less").pvalue)


def _min_distance_excluding_self(a: np.ndarray) -> np.ndarray:
    """For each row of ``a``, the distance to the nearest other row."""
    out = []
    for s in range(0, len(a), _CHUNK):
        d = _distances(a[s:s + _CHUNK], a)
        d[np.arange(len(d)), s + np.arange(len(d))] = np.inf
        out.append(d.min(1))
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------- Fréchet distance

def frechet_distance(a, b, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians fitted to the feature sets ``a`` (n1, F) and ``b`` (n2, F) (each
    at least 2 rows): ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` with the sample means and
    covariances (denominator n - 1).

    When both sets have more rows than features and F <= ``SQRTM_MAX_FEATURES``, the square root is
    ``scipy.linalg.sqrtm`` of S_a S_b, of which the real part is taken (rounding leaves a tiny imaginary part);
    when a covariance is singular nonetheless (a constant feature, such as a unit that never fires) ``eps``
    times the identity is added to both covariances first, and the result is the distance between those
    regularised Gaussians (it differs from the singular limit by about sqrt(eps x variance) per feature in which
    only one set varies). Otherwise (a set with no more rows than features, whose covariance is singular
    anyway, or F too large for an F x F square root) the cross term is computed exactly from the centred rows A
    and B: the non-zero eigenvalues of S_a S_b are the squared singular values of A B^T / sqrt((n1 - 1)(n2 - 1)),
    so tr((S_a S_b)^(1/2)) is the sum of those singular values; no ``eps`` is needed, and an n1 x n2 SVD is
    cheaper than the F x F square root. Rounding can make the result slightly negative; it is clipped at 0.
    """
    from scipy.linalg import sqrtm

    x, y = _feats(a, "a", 2), _feats(b, "b", 2)
    _same_width(("a", x), ("b", y))
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < 1):
        raise InputError(f"eps must be a number in (0, 1), got {eps!r}")
    mu1, mu2 = x.mean(0), y.mean(0)
    xc, yc = x - mu1, y - mu2
    n1, n2, f = len(x), len(y), x.shape[1]
    diff = float(((mu1 - mu2) ** 2).sum())
    if f <= SQRTM_MAX_FEATURES and min(n1, n2) > f:
        s1, s2 = xc.T @ xc / (n1 - 1), yc.T @ yc / (n2 - 1)
        scale = max(float(np.diag(s1).max()), float(np.diag(s2).max()), 1e-300)
        if min(np.linalg.eigvalsh(s1).min(), np.linalg.eigvalsh(s2).min()) <= 1e-10 * scale:  # singular
            s1 = s1 + eps * np.eye(f)
            s2 = s2 + eps * np.eye(f)
        root = sqrtm(s1 @ s2)
        if not np.isfinite(root).all():
            raise InputError("the covariance square root of the Fréchet distance is not finite")
        fd = diff + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * float(np.trace(root).real)
    else:
        sv = np.linalg.svd(xc @ yc.T, compute_uv=False)
        cross = float(sv.sum()) / np.sqrt((n1 - 1) * (n2 - 1))
        fd = diff + float((xc ** 2).sum()) / (n1 - 1) + float((yc ** 2).sum()) / (n2 - 1) - 2.0 * cross
    return max(fd, 0.0)


def _class_matched_pair(real_labels: np.ndarray, classes: np.ndarray, rng, what: str):
    """Two disjoint index sets into the real images, each with the class composition of ``classes``."""
    a, b = [], []
    for c, n_c in zip(*np.unique(classes, return_counts=True)):
        idx = np.flatnonzero(real_labels == c)
        if len(idx) < 2 * n_c:
            raise InputError(f"class {int(c)}: {len(idx)} real images; {what} needs {2 * n_c} (two disjoint sets of "
                             f"{n_c})")
        pick = rng.choice(idx, size=2 * n_c, replace=False)
        a.append(pick[:n_c])
        b.append(pick[n_c:])
    return np.concatenate(a), np.concatenate(b)


def _pair(real: np.ndarray, n: int, rng, real_labels, classes, what: str):
    if classes is not None:
        return _class_matched_pair(real_labels, classes, rng, what)
    if len(real) < 2 * n:
        raise InputError(f"{len(real)} real images; {what} needs {2 * n} (two disjoint sets of {n})")
    pick = rng.choice(len(real), size=2 * n, replace=False)
    return pick[:n], pick[n:]


def _check_repeats(repeats) -> int:
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or not 1 <= repeats <= 1000:
        raise InputError(f"repeats must be an integer in 1..1000, got {repeats!r}")
    return int(repeats)


def _mean_std(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std())}


def real_baseline(real_feats, n: int, seed: int = 0, repeats: int = 5, real_labels=None, classes=None) -> dict:
    """The Fréchet distance between two disjoint random sets of ``n`` real images (rows of ``real_feats``),
    ``repeats`` times: the value a set of ``n`` reconstructions would have if it were as real as real images.

    With ``real_labels`` and ``classes`` (the reconstructions' classes, length ``n``) each set has the
    reconstructions' class composition. Returns {"mean", "std", "n", "repeats"}.
    """
    real = _feats(real_feats, "real_feats", 4)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= len(real) // 2:
        raise InputError(f"n must be an integer in 2..{len(real) // 2} (half the real images), got {n!r}")
    labels, cls = _matched(real, real_labels, classes, n)
    rng, repeats = np.random.default_rng(_seed(seed)), _check_repeats(repeats)
    values = []
    for _ in range(repeats):
        ia, ib = _pair(real, int(n), rng, labels, cls, "the real baseline")
        values.append(frechet_distance(real[ia], real[ib]))
    return {**_mean_std(values), "n": int(n), "repeats": repeats}


def _matched(real: np.ndarray, real_labels, classes, n: int):
    if (real_labels is None) != (classes is None):
        raise InputError("real_labels and classes go together (class-matched sets) or are both omitted")
    if real_labels is None:
        return None, None
    return _labels(real_labels, len(real), "real_labels"), _labels(classes, n, "classes")


# ---------------------------------------------------------------------------------------------- precision / recall

def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row of ``x`` to its k-th nearest other row."""
    out = []
    for s in range(0, len(x), _CHUNK):
        d = _distances(x[s:s + _CHUNK], x)
        out.append(np.partition(d, k, axis=1)[:, k])  # column 0 of the sorted row is the point itself (0)
    return np.concatenate(out)


def _inside(points: np.ndarray, ref: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each row of ``points``: within the radius of some row of ``ref``."""
    return np.concatenate([(_distances(points[s:s + _CHUNK], ref) <= radii[None, :]).any(1)
                           for s in range(0, len(points), _CHUNK)])


def precision_recall(real_feats, fake_feats, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), from the definition.

    The manifold of a set is the union of balls around its points, each with the radius of the distance to that
    point's k-th nearest neighbour in the same set. precision = the fraction of ``fake_feats`` rows inside the
    real manifold; recall = the fraction of ``real_feats`` rows inside the fake manifold. Both sets need more
    than ``k`` rows.
    """
    real, fake = _feats(real_feats, "real_feats"), _feats(fake_feats, "fake_feats")
    _same_width(("real_feats", real), ("fake_feats", fake))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    for name, x in (("real_feats", real), ("fake_feats", fake)):
        if len(x) <= k:
            raise InputError(f"{name} has {len(x)} rows; precision and recall with k = {k} need more than {k}")
    precision = float(_inside(fake, real, _knn_radii(real, int(k))).mean())
    recall = float(_inside(real, fake, _knn_radii(fake, int(k))).mean())
    return precision, recall


# ---------------------------------------------------------------------------------------------- together

def fidelity(fake_feats, fake_classes, real_feats, real_labels, seed: int = 0, repeats: int = 5, k: int = 3) -> dict:
    """How real a set of reconstructions looks in a feature space, on the scale of real images.

    Each repeat draws two disjoint class-matched sets A and B of real images, each of the reconstructions' size
    and class composition, and measures FD(fakes, A), FD(A, B) (the baseline) and precision/recall of the fakes
    against A and of B against A (the real-vs-real baseline of those, which is below 1 for small sets). ``k`` is
    lowered to (size - 1) for small sets; precision/recall are left out (None) for a set of one. Returns means
    and standard deviations over the repeats.
    """
    fake = _feats(fake_feats, "fake_feats", 2)
    real = _feats(real_feats, "real_feats", 4)
    _same_width(("fake_feats", fake), ("real_feats", real))
    fc = _labels(fake_classes, len(fake), "fake_classes")
    rl = _labels(real_labels, len(real), "real_labels")
    rng, repeats = np.random.default_rng(_seed(seed)), _check_repeats(repeats)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    k_used = min(int(k), len(fake) - 1)
    fd, base, prec, rec, bprec, brec = [], [], [], [], [], []
    for _ in range(repeats):
        ia, ib = _class_matched_pair(rl, fc, rng, "the comparison with real images")
        fd.append(frechet_distance(fake, real[ia]))
        base.append(frechet_distance(real[ia], real[ib]))
        if k_used >= 1:
            p, r = precision_recall(real[ia], fake, k_used)
            bp, br = precision_recall(real[ia], real[ib], k_used)
            prec.append(p)
            rec.append(r)
            bprec.append(bp)
            brec.append(br)
    pr = k_used >= 1
    return {"n": len(fake), "repeats": repeats, "k": k_used if pr else None, "fd": _mean_std(fd),
            "fd_real_baseline": _mean_std(base), "precision": _mean_std(prec) if pr else None,
            "recall": _mean_std(rec) if pr else None, "precision_real_baseline": _mean_std(bprec) if pr else None,
            "recall_real_baseline": _mean_std(brec) if pr else None}


# ---------------------------------------------------------------------------------------------- verdict

LEAK_KINDS = ("record-level", "class-level", "fools the target only")


def leak_kind(recognised: list[bool], record_level: list[bool] | None = None) -> str:
    """The kind of leak a panel of judges sees in one class.

    ``recognised``: for each judge, whether its top-1 class of the reconstruction is the target class;
    ``record_level``: for each judge that ran the nearest-neighbour test, whether it found a record-level leak
    (None: no member data). "record-level" when ``record_level`` is given and holds for a majority (more than
    half) of those judges; else "class-level (n of m judges)" when more than half of the m judges recognise the
    class; else "fools the target only (n of m judges recognise the class)".
    """
    rec = [bool(v) for v in recognised]
    if not rec:
        raise InputError("leak_kind needs at least one judge")
    if record_level is not None:
        rl = [bool(v) for v in record_level]
        if not rl:
            raise InputError("record_level is empty: give None when no judge ran the member-level test")
        if 2 * sum(rl) > len(rl):
            return "record-level"
    n, m = sum(rec), len(rec)
    if 2 * n > m:
        return f"class-level ({n} of {m} judges)"
    return f"fools the target only ({n} of {m} judges recognise the class)"


def leak_category(kind: str) -> str:
    """The category of a :func:`leak_kind` answer (one of ``LEAK_KINDS``)."""
    for c in LEAK_KINDS:
        if kind.startswith(c):
            return c
    raise InputError(f"not a leak kind: {kind!r}")
