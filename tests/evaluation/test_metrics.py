"""Attack metrics on hand-built posterior matrices whose answers are worked out by hand.

Probabilities are chosen as binary fractions (0.5, 0.25, 0.125, ...) so sums and means are exact and
most results can be compared with ``==``.
"""
import math

import numpy as np
import pytest

from brainleaks_lava.errors import InputError
from brainleaks_lava.evaluation.metrics import (
    AttackMetrics,
    attack_metrics,
    format_paper_table,
    per_class_table,
    summarize_draws,
    topk_accuracy,
)


# ------------------------------------------------------------------------------------------------
# the four metrics


def test_perfect_reconstructions_score_one_everywhere():
    p = np.eye(4)
    m = attack_metrics(p, np.arange(4))
    assert m == AttackMetrics(accuracy=1.0, top3_accuracy=1.0, avg_confidence=1.0, daa=1.0)
    # several reconstructions per class, still perfect; num_classes given and consistent
    p2 = np.eye(3)[[0, 0, 1, 2, 2]]
    assert attack_metrics(p2, [0, 0, 1, 2, 2], num_classes=3) == AttackMetrics(1.0, 1.0, 1.0, 1.0)


def test_metrics_are_frozen():
    m = AttackMetrics(1.0, 1.0, 1.0, 1.0)
    with pytest.raises(AttributeError):
        m.accuracy = 0.5


def test_daa_high_while_attack_accuracy_low():
    # Every reconstruction is classified as class 3 (0.625), yet for each class c the
    # reconstruction with the highest p[:, c] is the one made for c: DAA 1.0, accuracy 0.
    p = np.array(
        [
            [0.25, 0.0625, 0.0625, 0.625],
            [0.0625, 0.25, 0.0625, 0.625],
            [0.0625, 0.0625, 0.25, 0.625],
        ]
    )
    m = attack_metrics(p, [0, 1, 2])
    assert m.accuracy == 0.0
    assert m.daa == 1.0  # class 3 was attacked by nobody and is not counted
    assert m.top3_accuracy == 1.0  # each target ranks 2nd
    assert m.avg_confidence == 0.25


def test_daa_high_accuracy_low_with_every_class_attacked():
    # Three of four reconstructions are wrong (class 3 wins), one is right; DAA still 1.0.
    p = np.array(
        [
            [0.25, 0.0625, 0.0625, 0.625],
            [0.0625, 0.25, 0.0625, 0.625],
            [0.0625, 0.0625, 0.25, 0.625],
            [0.0, 0.0, 0.125, 0.875],
        ]
    )
    m = attack_metrics(p, [0, 1, 2, 3])
    assert m == AttackMetrics(accuracy=0.25, top3_accuracy=1.0, avg_confidence=0.40625, daa=1.0)


def test_accuracy_high_while_daa_lower():
    # Every row is classified correctly, but reconstruction 0 (made for class 0) has a higher
    # class-1 posterior (0.4375) than reconstruction 1 (0.375), so class 1 fails DAA.
    p = np.array(
        [
            [0.5, 0.4375, 0.0625],
            [0.3125, 0.375, 0.3125],
            [0.0, 0.0, 1.0],
        ]
    )
    m = attack_metrics(p, [0, 1, 2])
    assert m.accuracy == 1.0
    assert m.top3_accuracy == 1.0
    assert m.daa == 2 / 3
    assert m.avg_confidence == pytest.approx((0.5 + 0.375 + 1.0) / 3, abs=1e-15)


def test_average_confidence_by_hand_includes_misclassified_rows():
    p = np.array(
        [
            [0.75, 0.25, 0.0],  # target 0: 0.75 (correct)
            [0.5, 0.125, 0.375],  # target 1: 0.125 (wrong)
            [0.0, 0.5, 0.5],  # target 2: 0.5 (tie, wrong)
            [0.0, 0.0, 1.0],  # target 0: 0.0 (wrong)
        ]
    )
    m = attack_metrics(p, [0, 1, 2, 0])
    # (0.75 + 0.125 + 0.5 + 0.0) / 4 = 1.375 / 4
    assert m.avg_confidence == 0.34375
    assert m.accuracy == 0.25


def test_tie_in_a_row_is_not_a_correct_classification():
    # np.argmax would return class 0 for the first row; we require a unique maximum.
    p = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    t = np.array([0, 2])
    m = attack_metrics(p, t)
    assert m.accuracy == 0.0
    # rank = 1 + (one other class >= target) = 2 for both rows
    assert topk_accuracy(p, t, k=1) == 0.0
    assert topk_accuracy(p, t, k=2) == 1.0
    assert m.top3_accuracy == 1.0
    assert m.avg_confidence == 0.5


def test_tie_in_a_column_between_different_targets_fails_daa():
    # Column 0 peaks at 0.5 in rows 0 (made for 0) and 1 (made for 1): class 0 does not count.
    # Column 1 peaks uniquely at row 1: class 1 counts.
    p = np.array([[0.5, 0.25, 0.25], [0.5, 0.5, 0.0]])
    m = attack_metrics(p, [0, 1])
    assert m.daa == 0.5


def test_tie_in_a_column_between_rows_of_the_same_target_counts():
    # Column 0 peaks at 0.75 in rows 0 and 1, both made for class 0: class 0 counts.
    p = np.array([[0.75, 0.25], [0.75, 0.25], [0.25, 0.75]])
    m = attack_metrics(p, [0, 0, 1])
    assert m.daa == 1.0
    assert m.accuracy == 1.0


def test_top3_rank_three_hits_and_rank_four_misses():
    row = [0.3, 0.25, 0.2, 0.15, 0.1]
    p = np.array([row, row])
    assert topk_accuracy(p, [2, 2]) == 1.0  # rank 3
    assert topk_accuracy(p, [3, 3]) == 0.0  # rank 4
    assert topk_accuracy(p, [2, 3]) == 0.5
    assert attack_metrics(p, [2, 3]).top3_accuracy == 0.5
    assert topk_accuracy(p, [3, 3], k=4) == 1.0
    assert topk_accuracy(p, [4, 4], k=10) == 1.0  # k beyond the class count


def test_top3_tie_at_the_boundary_counts_against_the_attack():
    # target 2 (0.2) ties with class 3 (0.2): rank = 1 + #{0, 1, 3} = 4 -> miss
    p = np.array([[0.3, 0.25, 0.2, 0.2, 0.05]])
    assert topk_accuracy(p, [2]) == 0.0
    assert topk_accuracy(p, [3]) == 0.0
    assert topk_accuracy(p, [1]) == 1.0


def test_float32_posteriors_are_accepted():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]], dtype=np.float32)
    m = attack_metrics(p, np.array([0, 1], dtype=np.int32))
    assert m.accuracy == 0.5
    assert m.avg_confidence == pytest.approx((0.7 + 0.2) / 2, abs=1e-7)


# ------------------------------------------------------------------------------------------------
# per-row table


def test_per_class_table_rows():
    p = np.array(
        [
            [0.125, 0.5, 0.25, 0.125],
            [0.25, 0.25, 0.5, 0.0],
        ]
    )
    table = per_class_table(p, [3, 1], k=3)
    assert table == [
        {
            "row": 0,
            "target_class": 3,
            "top_classes": [1, 2, 0],  # 0 and 3 tie at 0.125: lower index first
            "top_probs": [0.5, 0.25, 0.125],
            "target_confidence": 0.125,
            "target_rank": 4,  # classes 1, 2 and 0 are >= 0.125
            "correct": False,
        },
        {
            "row": 1,
            "target_class": 1,
            "top_classes": [2, 0, 1],
            "top_probs": [0.5, 0.25, 0.25],
            "target_confidence": 0.25,
            "target_rank": 3,
            "correct": False,
        },
    ]
    short = per_class_table(np.eye(2), [0, 1], k=5)
    assert short[0]["top_classes"] == [0, 1]
    assert short[0]["top_probs"] == [1.0, 0.0]
    assert short[1]["correct"] is True


# ------------------------------------------------------------------------------------------------
# draws


def test_summarize_draws_mean_and_population_std():
    draws = [
        AttackMetrics(accuracy=0.5, top3_accuracy=1.0, avg_confidence=0.25, daa=1.0),
        AttackMetrics(accuracy=1.0, top3_accuracy=1.0, avg_confidence=0.75, daa=0.5),
    ]
    s = summarize_draws(draws)
    assert s["accuracy"] == {"mean": 0.75, "std": 0.25}  # ddof=1 would give 0.3536
    assert s["top3_accuracy"] == {"mean": 1.0, "std": 0.0}
    assert s["avg_confidence"] == {"mean": 0.5, "std": 0.25}
    assert s["daa"] == {"mean": 0.75, "std": 0.25}
    assert s["n_draws"] == 2


def test_summarize_three_draws_std_by_hand():
    draws = [AttackMetrics(a, 1.0, a, 1.0) for a in (0.25, 0.5, 1.0)]
    s = summarize_draws(draws)
    mean = (0.25 + 0.5 + 1.0) / 3
    std = math.sqrt(((0.25 - mean) ** 2 + (0.5 - mean) ** 2 + (1.0 - mean) ** 2) / 3)
    assert s["accuracy"]["mean"] == pytest.approx(mean, abs=1e-15)
    assert s["accuracy"]["std"] == pytest.approx(std, abs=1e-15)
    assert s["accuracy"]["std"] == pytest.approx(0.3118047822311618, abs=1e-15)


def test_summarize_single_draw_has_zero_std():
    s = summarize_draws([AttackMetrics(0.5, 0.75, 0.25, 1.0)])
    assert s["top3_accuracy"] == {"mean": 0.75, "std": 0.0}


# ------------------------------------------------------------------------------------------------
# table


def test_format_paper_table_exact_string():
    bl1 = AttackMetrics(accuracy=0.375, top3_accuracy=0.625, avg_confidence=0.3409, daa=0.9)
    bl2 = {
        "accuracy": {"mean": 0.7127, "std": 0.0225},
        "top3_accuracy": {"mean": 0.8928, "std": 0.0187},
        "avg_confidence": {"mean": 0.4204, "std": 0.0},
        "daa": {"mean": 1.0, "std": 0.0},
        "n_draws": 5,
    }
    text = format_paper_table({"BL-v1": bl1, "BL-v2": bl2})
    assert text == (
        "| Metric          | BL-v1 | BL-v2        |\n"
        "| --------------- | ----- | ------------ |\n"
        "| Attack Acc.     | 37.50 | 71.27 ± 2.25 |\n"
        "| Top-3 Att. Acc. | 62.50 | 89.28 ± 1.87 |\n"
        "| Avg. Conf.      | 34.09 | 42.04        |\n"
        "| DAA             | 90.00 | 100.00       |\n"
    )


def test_format_paper_table_accepts_summarize_and_plain_dicts():
    draws = [AttackMetrics(0.5, 1.0, 0.25, 1.0), AttackMetrics(1.0, 1.0, 0.75, 1.0)]
    text = format_paper_table(
        {
            "SNN BL-v2": summarize_draws(draws),
            "ANN MI-Face": {"accuracy": 0.5, "top3_accuracy": 0.9, "avg_confidence": 0.4538, "daa": 0.8},
        }
    )
    lines = text.splitlines()
    assert lines[0].split("|")[1:-1] == [" Metric          ", " SNN BL-v2     ", " ANN MI-Face "]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    assert cells == [
        ["Attack Acc.", "75.00 ± 25.00", "50.00"],
        ["Top-3 Att. Acc.", "100.00", "90.00"],
        ["Avg. Conf.", "50.00 ± 25.00", "45.38"],
        ["DAA", "100.00", "80.00"],
    ]


@pytest.mark.parametrize(
    "columns, match",
    [
        ({}, "columns"),
        ({"A": {"accuracy": 0.5, "top3_accuracy": 0.5, "avg_confidence": 0.5}}, "daa"),
        ({"A": {"accuracy": 1.5, "top3_accuracy": 0.5, "avg_confidence": 0.5, "daa": 0.5}}, "accuracy"),
        (
            {"A": {"accuracy": {"mean": 0.5, "std": -0.1}, "top3_accuracy": 0.5, "avg_confidence": 0.5, "daa": 0.5}},
            "std",
        ),
        ({"A": {"accuracy": "x", "top3_accuracy": 0.5, "avg_confidence": 0.5, "daa": 0.5}}, "accuracy"),
        ({"A": [0.5, 0.5, 0.5, 0.5]}, "columns"),
    ],
)
def test_format_paper_table_rejects_bad_columns(columns, match):
    with pytest.raises(InputError, match=match):
        format_paper_table(columns)


# ------------------------------------------------------------------------------------------------
# validation

GOOD = np.array([[0.75, 0.25], [0.25, 0.75]])


@pytest.mark.parametrize(
    "posteriors, targets, match",
    [
        (np.array([0.5, 0.5]), [0], "posteriors must be 2-D"),
        (np.ones((1, 2, 2)) / 2, [0], "posteriors must be 2-D"),
        (np.zeros((0, 3)), [], "posteriors must have at least one row"),
        (np.array([[np.nan, 1.0]]), [0], "posteriors must be finite"),
        (np.array([[np.inf, 0.0]]), [0], "posteriors must be finite"),
        (np.array([[1.5, -0.5]]), [0], r"posteriors must lie in \[0, 1\]"),
        (np.array([[0.5, 0.4]]), [0], "posteriors rows must sum to 1"),
        (np.array([["a", "b"]]), [0], "posteriors must be a real numeric array"),
        (GOOD, [0, 1, 1], "target_classes has 3 entries but posteriors has 2 rows"),
        (GOOD, [[0, 1]], "target_classes must be 1-D"),
        (GOOD, [0, 2], r"target_classes must lie in \[0, 2\); target_classes\[1\] = 2"),
        (GOOD, [-1, 0], r"target_classes must lie in \[0, 2\)"),
        (GOOD, [0.5, 1.0], "target_classes must hold integer"),
        (GOOD, ["a", "b"], "target_classes must hold integer"),
    ],
)
def test_validation_errors_name_the_argument(posteriors, targets, match):
    with pytest.raises(InputError, match=match):
        attack_metrics(posteriors, targets)
    with pytest.raises(InputError, match=match):
        topk_accuracy(posteriors, targets)
    with pytest.raises(InputError, match=match):
        per_class_table(posteriors, targets)


def test_row_sum_tolerance_is_1e_minus_4():
    ok = np.array([[0.5, 0.49995]])  # off by 5e-5
    assert attack_metrics(ok, [0]).accuracy == 1.0
    bad = np.array([[0.5, 0.4998]])  # off by 2e-4
    with pytest.raises(InputError, match="posteriors rows must sum to 1"):
        attack_metrics(bad, [0])


def test_integral_float_targets_are_accepted():
    assert attack_metrics(GOOD, np.array([0.0, 1.0])).accuracy == 1.0


def test_num_classes_must_match_posterior_columns():
    with pytest.raises(InputError, match="num_classes is 3 but posteriors has 2 columns"):
        attack_metrics(GOOD, [0, 1], num_classes=3)
    with pytest.raises(InputError, match="num_classes must be an integer"):
        attack_metrics(GOOD, [0, 1], num_classes=2.0)
    with pytest.raises(InputError, match="num_classes must be >= 1"):
        attack_metrics(GOOD, [0, 1], num_classes=0)


def test_k_must_be_a_positive_integer():
    with pytest.raises(InputError, match="k must be >= 1"):
        topk_accuracy(GOOD, [0, 1], k=0)
    with pytest.raises(InputError, match="k must be an integer"):
        per_class_table(GOOD, [0, 1], k=True)


def test_summarize_draws_validation():
    with pytest.raises(InputError, match="draws must contain at least one"):
        summarize_draws([])
    with pytest.raises(InputError, match=r"draws\[1\] must be an AttackMetrics"):
        summarize_draws([AttackMetrics(1.0, 1.0, 1.0, 1.0), {"accuracy": 1.0}])
    with pytest.raises(InputError, match="draws must be a sequence"):
        summarize_draws(3)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        attack_metrics(np.array([[0.5, 0.4]]), [0])
