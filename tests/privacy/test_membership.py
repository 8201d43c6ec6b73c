"""Membership-inference scores and metrics on constructed cases (privacy.membership)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from brainleaks_lava.errors import InputError
from brainleaks_lava.privacy.membership import (attack_metrics, auc, best_balanced_accuracy, lira_scores,
                                                membership_scores, roc_curve, tpr_at_fpr, true_class_scores)


def _labels(n_pos, n_neg):
    return np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]


def test_perfect_separation():
    rng = np.random.default_rng(0)
    m = _labels(1000, 2000)
    s = np.r_[rng.uniform(2, 3, 1000), rng.uniform(0, 1, 2000)]
    assert auc(s, m) == 1.0
    for level in (0.01, 0.001):
        r = tpr_at_fpr(s, m, level)
        assert r["tpr"] == 1.0 and r["fpr"] == 0.0
    assert tpr_at_fpr(s, m, 0.001)["allowed_false_positives"] == 2
    assert tpr_at_fpr(s, m, 0.01)["allowed_false_positives"] == 20
    assert best_balanced_accuracy(s, m)["balanced_accuracy"] == 1.0
    assert auc(-s, m) == 0.0  # the reversed score ranks every member last


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(1)
    m = _labels(5000, 5000)
    s = rng.normal(size=10000)
    assert abs(auc(s, m) - 0.5) < 0.02
    r = tpr_at_fpr(s, m, 0.01)
    assert r["fpr"] <= 0.01 and r["tpr"] < 0.03


def test_ties_count_half():
    m = _labels(3, 3)
    assert auc(np.zeros(6), m) == 0.5
    # members 1, 1, 2 against non-members 0, 1, 1: pairs won 1*2*0.5*... counted by hand
    s = np.array([1.0, 1.0, 2.0, 0.0, 1.0, 1.0])
    # member 1 vs (0 win, 1 tie, 1 tie) = 2; twice = 4; member 2 wins all 3 -> 7 of 9
    assert auc(s, m) == pytest.approx(7 / 9)
    fpr, tpr, thr = roc_curve(s, m)
    np.testing.assert_allclose(fpr, [0, 0, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
    assert thr[0] == np.inf and list(thr[1:]) == [2.0, 1.0, 0.0]
    # the rank AUC equals the trapezoid under the ROC
    rng = np.random.default_rng(2)
    s = np.round(rng.normal(size=300), 1)  # many ties
    m = rng.random(300) < 0.4
    fpr, tpr, _ = roc_curve(s, m)
    assert auc(s, m) == pytest.approx(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))


def test_tpr_at_fpr_is_the_largest_allowed():
    m = _labels(4, 10)
    s = np.r_[[10.0, 9.0, 3.0, 1.0], [8.0, 5.0, 4.0, 2.0, 0, 0, 0, 0, 0, 0]]
    assert tpr_at_fpr(s, m, 0.0)["tpr"] == 0.5  # above every non-member: 10, 9
    assert tpr_at_fpr(s, m, 0.1)["tpr"] == 0.5  # one false positive (8) adds no member
    r = tpr_at_fpr(s, m, 0.3)  # three false positives allowed: down to 4 -> still 2 members; 3 needs FPR 0.3
    assert r["tpr"] == 0.75 and r["fpr"] == pytest.approx(0.3)
    with pytest.raises(InputError):
        tpr_at_fpr(s, m, 1.5)


def test_metrics_refuse_bad_input():
    with pytest.raises(InputError, match="members and non-members"):
        auc(np.ones(3), np.ones(3, bool))
    with pytest.raises(InputError, match="NaN"):
        auc(np.array([np.nan, 1.0]), np.array([True, False]))


def test_true_class_scores_stay_finite_when_p_rounds_to_one():
    logits = np.array([[60.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    y = np.array([0, 1, 0])
    s = true_class_scores(logits, y)
    assert s["confidence"][0] == 1.0  # rounds to 1 in float64
    assert s["phi"][0] == pytest.approx(60.0 - math.log(2.0))  # log(p / (1 - p)) from the other classes
    assert s["phi"][1] == pytest.approx(math.log(0.5))  # p = 1/3: log(1/2)
    assert s["loss"][1] == pytest.approx(math.log(1 / 3))
    p = np.exp(2.0) / (2 + np.exp(2.0))
    assert s["loss"][2] == pytest.approx(math.log(1 / (2 + np.exp(2.0))))
    assert s["phi"][2] == pytest.approx(math.log((1 - p) / 2 / (1 - (1 - p) / 2)))


def _lira_case(m=64, n=400, seed=0):
    """Examples of different difficulty (baseline b), IN shadow models +2 above it; the target saw the first half."""
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 5, n)  # per-example difficulty, far larger than the membership effect
    mask = rng.random((m, n)) < 0.5
    phi = b + 2.0 * mask + rng.normal(0, 0.5, (m, n))
    member = np.arange(n) < n // 2
    target = b + 2.0 * member + rng.normal(0, 0.5, n)
    return target, phi, mask, member


def test_lira_beats_the_global_threshold_on_examples_of_different_difficulty():
    target, phi, mask, member = _lira_case()
    raw = auc(target, member)  # a global threshold on phi: the difficulty hides membership
    out = lira_scores(target, phi, mask, variance="global")
    assert out["no_in"] == 0 and out["no_out"] == 0 and out["variance"] == "global"
    assert raw < 0.7
    assert auc(out["lira_online"], member) > 0.97
    assert auc(out["lira_offline"], member) > 0.9
    per = lira_scores(target, phi, mask, variance="per-example")
    assert auc(per["lira_online"], member) > 0.95
    assert lira_scores(target, phi, mask)["variance"] == "per-example"  # auto: 64 shadow models
    assert lira_scores(target, phi[:8], mask[:8])["variance"] == "global"


def test_lira_formula_on_a_hand_case():
    # one example, IN values 3 and 5 (mean 4), OUT values 0 and 2 (mean 1); pooled std over dof 2: sqrt(4/2)
    phi = np.array([[3.0], [5.0], [0.0], [2.0]])
    mask = np.array([[True], [True], [False], [False]])
    out = lira_scores(np.array([4.0]), phi, mask, variance="global")
    sd = math.sqrt(2.0)
    expected = -0.5 * ((4 - 4) / sd) ** 2 + 0.5 * ((4 - 1) / sd) ** 2
    assert out["lira_online"][0] == pytest.approx(expected)
    assert out["lira_offline"][0] == pytest.approx(3 / sd)


def test_lira_fallbacks_and_missing_kinds():
    phi = np.array([[1.0, 2.0], [1.5, 2.5]])
    mask = np.array([[True, False], [True, False]])  # example 1 never IN, example 0 never OUT
    out = lira_scores(np.array([1.0, 2.0]), phi, mask)
    assert out["no_in"] == 1 and out["no_out"] == 1
    assert np.all(np.isfinite(out["lira_online"])) and np.all(np.isfinite(out["lira_offline"]))
    only_out = lira_scores(np.array([1.0, 2.0]), phi, np.zeros((2, 2), bool))
    assert only_out["lira_online"] is None and only_out["lira_offline"] is not None


def test_membership_scores_with_and_without_shadows():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 10))
    y = rng.integers(0, 10, 50)
    plain = membership_scores(logits, y)
    assert set(plain["scores"]) == {"loss", "confidence"} and plain["lira"] is None
    sh = rng.normal(size=(4, 50, 10))
    mask = rng.random((4, 50)) < 0.5
    full = membership_scores(logits, y, sh, mask)
    assert set(full["scores"]) == {"loss", "confidence", "lira_online", "lira_offline"}
    m = attack_metrics(full["scores"]["lira_online"], np.arange(50) < 25)
    assert set(m["tpr_at_fpr"]) == {"0.01", "0.001"} and m["members"] == 25
    with pytest.raises(InputError):
        membership_scores(logits, y, sh[:, :10], mask)


def test_roc_plot_shows_lava_identical_to_twin_as_markers_and_different_lava_dashed(tmp_path, monkeypatch):
    """Lava curves identical to the twin's would hide under them as dashes: they are drawn as open markers and
    labelled identical; Lava scores that differ keep a dashed line of their own."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    from brainleaks_lava.privacy.command import ATTACKS, plot_roc

    drawn = []
    real_plot = Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((kwargs.get("label"), args[2] if len(args) > 2 else None))
        return real_plot(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    rng = np.random.default_rng(0)
    member = np.arange(200) < 100
    twin = {a: rng.normal(size=200) + member for a in ATTACKS}
    lava = {a: v.copy() for a, v in twin.items()}
    lava[ATTACKS[0]] = lava[ATTACKS[0]] + rng.normal(scale=0.5, size=200)
    out = plot_roc(tmp_path / "roc.png", {"twin": twin, "lava": lava}, member, "t")
    assert out.stat().st_size > 0
    styles = {label: style for label, style in drawn if label}
    first = [k for k in styles if k.endswith(", Lava")]
    same = [k for k in styles if "identical to the twin" in k]
    assert len(first) == 1 and styles[first[0]] == "--"
    assert len(same) == len(ATTACKS) - 1 and all(styles[k] == "o" for k in same)
