"""Membership inference inside ``brainleaks sweep`` ([mia]): rows carry the AUCs, shadow models are trained once
per target and reused, query-time defenses change what the attacker observes, config errors name the key."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from brainleaks_lava.errors import ConfigError
from brainleaks_lava.privacy.membership import POSTERIOR_FLOOR, auc, logits_of_posterior, membership_scores
from brainleaks_lava.sweep import run_sweep
from brainleaks_lava.sweep.config import load_study
from brainleaks_lava.sweep.results import COLUMNS, write_results

from sweep_util import CI_STUDY, REPO, tiny_head

torch.set_num_threads(1)
EVAL = REPO / "netx_models" / "mnist_eval_ann.h5"

# one trained target (784-32-10, T=4, 3 epochs on the vendored subset: 73 % validation accuracy) deployed twice:
# as is, and with every class probability rounded to 0 or 1; 2 shadow models; a 1-iteration BL-v2 on one class; no
# Lava replay
TINY = tiny_head("tiny_mia", EVAL) + '''[grid]
steps = [4]
defense = ["none", "onehot"]
[defenses.onehot]
round_posterior = 1.0
[attacks]
names = ["bl2"]
classes = [0]
[attacks.params.bl2]
iterations = 1
[evaluation]
draws = 1
[replay]
enabled = false
[mia]
shadows = 2
eval_samples = EVAL_SAMPLES
'''
NONE, ONEHOT = "T4-w1-th4-h32-membrane-none-s0", "T4-w1-th4-h32-membrane-onehot-s0"


def _study(tmp_path, eval_samples=40):
    p = tmp_path / "study.toml"
    p.write_text(TINY.replace("EVAL_SAMPLES", str(eval_samples)))
    return p


def _rows(out):
    return {r["cell"]: r for r in json.loads((out / "results.json").read_text())["rows"]}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep_mia")
    out = d / "out"
    summary = run_sweep(_study(d), out)
    return d, out, summary


def test_rows_carry_mia_and_tables_show_it(swept):
    _, out, summary = swept
    assert set(summary["ran"]) == {NONE, ONEHOT} and summary["missing"] == []
    rows = _rows(out)
    for r in rows.values():
        assert r["mia_attack"] == "lira_online"
        for k in ("mia_auc", "mia_loss_auc", "mia_tpr_1pct"):
            assert 0.0 <= r[k] <= 1.0, (k, r[k])
    table = list(csv.DictReader((out / "results.csv").open()))
    assert {"mia_auc", "mia_loss_auc", "mia_tpr_1pct"} <= set(table[0]) and all(t["mia_auc"] for t in table)
    report = (out / "report.md").read_text()
    assert "| MIA AUC | TPR@1% | loss AUC |" in report and "mia_auc.png" in report
    assert f"{rows[NONE]['mia_auc']:.3f}" in report
    assert (out / "mia_auc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec = json.loads((out / "cells" / NONE / "result.json").read_text())
    assert rec["mia"]["shadows"]["used"] == 2 and rec["mia"]["eval_members"] == 40
    assert "mia_scores.csv" in rec["outputs"]


def test_shadows_trained_once_per_target_and_reused(swept, tmp_path):
    _, first, _ = swept
    out = tmp_path / "copy"
    shutil.copytree(first, out)  # file times kept
    keys = [k for k in (out / "targets").iterdir() if k.is_dir()]
    assert len(keys) == 1  # rounding acts after training: both cells deploy one target, one set of shadows
    sh = keys[0] / "shadows"
    assert sorted(p.name for p in sh.glob("*.net")) == ["0.net", "1.net"]
    assert not list(sh.glob("*.logits.npy"))  # the cells query them through their defenses
    stamps = {p.name: p.stat().st_mtime_ns for p in sh.iterdir()}
    # another evaluation size: every cell runs again, the shadow models do not
    again = run_sweep(_study(tmp_path, eval_samples=30), out)
    assert set(again["ran"]) == {NONE, ONEHOT}
    assert {p.name: p.stat().st_mtime_ns for p in sh.iterdir()} == stamps
    rows = _rows(out)
    rec = json.loads((out / "cells" / NONE / "result.json").read_text())
    assert rec["mia"]["eval_members"] == 30 and 0.0 <= rows[NONE]["mia_auc"] <= 1.0


def _scores(out, cell):
    lines = list(csv.DictReader((out / "cells" / cell / "mia_scores.csv").open()))
    member = np.array([int(r["member"]) for r in lines], bool)
    return np.array([float(r["loss_twin"]) for r in lines]), member


def test_rounded_posteriors_are_what_the_attacker_sees(swept):
    """round_posterior = 1: every observed class probability is 0 or 1, so the loss score takes at most three
    values (one class at 1 and it is the label, one class at 1 and it is not, none at 1); the AUC is then a count."""
    _, out, _ = swept
    loss, member = _scores(out, ONEHOT)
    values = np.unique(loss)
    assert 2 <= len(values) <= 3  # (the target is confident on some examples, not on all)
    floor_only = np.log(1.0 / 10)  # nothing at 1: ten floored values, renormalised
    hit = -np.log(1.0 + 9 * POSTERIOR_FLOOR)
    miss = np.log(POSTERIOR_FLOOR / (1.0 + 9 * POSTERIOR_FLOOR))
    for v in values:
        assert min(abs(v - hit), abs(v - miss), abs(v - floor_only)) < 1e-8 * max(1.0, abs(v)), v  # csv: 10 digits
    # Mann-Whitney by hand: pairs (member, non-member) where the member's value is higher, ties half
    m, n = loss[member], loss[~member]
    wins = sum(float(np.sum(a > n)) + 0.5 * float(np.sum(a == n)) for a in m)
    by_hand = wins / (len(m) * len(n))
    rows = _rows(out)
    assert rows[ONEHOT]["mia_loss_auc"] == pytest.approx(by_hand, abs=1e-12)
    # undefended, the same evaluation set gets exact logits: many distinct scores
    exact, member_none = _scores(out, NONE)
    assert np.array_equal(member, member_none) and len(np.unique(exact)) > 10


def test_logits_of_posterior_floor():
    p = np.array([[1.0, 0.0, 0.0], [0.4, 0.4, 0.0]])
    z = logits_of_posterior(p)
    assert z[0, 0] == 0.0 and z[0, 1] == pytest.approx(np.log(POSTERIOR_FLOOR)) and np.isfinite(z).all()
    soft = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert soft[1, 0] == pytest.approx(0.4 / (0.8 + POSTERIOR_FLOOR))  # renormalised
    # the floor keeps the order of p_y: the loss attack's AUC is that of p_y itself
    py = np.array([1.0, 0.0, 0.5, 0.0])
    member = np.array([True, True, False, False])
    assert auc(np.log(np.maximum(py, POSTERIOR_FLOOR)), member) == auc(py, member)
    # one-hot posteriors with the 1 on different classes: bit-identical scores (a tie, not rounding noise)
    eye = logits_of_posterior(np.eye(10))
    scores = membership_scores(eye, np.arange(10))["scores"]
    assert len(np.unique(scores["loss"])) == 1 and len(np.unique(scores["confidence"])) == 1


@pytest.mark.parametrize("text, key", [
    ("[mia]\nshadow = 2\n", "mia.shadow"),
    ("[mia]\nshadows = 5000\n", "mia.shadows"),
    ("[mia]\nshadows = -1\n", "mia.shadows"),
    ("[mia]\nshadows = 2.5\n", "mia.shadows"),
    ("[mia]\neval_samples = 0\n", "mia.eval_samples"),
])
def test_mia_config_errors_name_the_key(tmp_path, text, key):
    p = tmp_path / "s.toml"
    p.write_text(TINY.split("[mia]")[0] + text)
    with pytest.raises(ConfigError) as e:
        load_study(p)
    assert key in str(e.value) and str(p) in str(e.value)


def test_mia_config_defaults_and_absent(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(TINY.split("[mia]")[0] + "[mia]\n")
    assert load_study(p).mia == {"shadows": 8, "eval_samples": 2000}
    assert load_study(CI_STUDY).mia is None


def test_tables_without_mia_unchanged_and_with_constructed_mia(tmp_path):
    study = load_study(CI_STUDY)

    def row(cell, steps, defense, auc_, loss_auc):
        r = {c: None for c in COLUMNS}
        r.update(cell=cell, seed=0, steps=steps, weight_step=1, weight_bits=8.0, threshold=1.0, hidden=8,
                 readout="membrane", defense=defense, attack="bl2", method="bl2", target_accuracy=0.9,
                 attack_accuracy=0.5, top3=1.0, avg_confidence=0.5, daa=1.0, lava_agreement=1.0, replay_exact=True,
                 zero_weights=0.0, note="", attack_seconds=1.0, cell_seconds=2.0)
        if auc_ is not None:
            r.update(mia_attack="lira_online", mia_auc=auc_, mia_tpr_1pct=0.02, mia_loss_auc=loss_auc)
        return {"rows": [r]}

    plain = write_results(study, tmp_path, [row("a", 8, "none", None, None)], missing=[]).read_text()
    assert "MIA AUC" not in plain and not (tmp_path / "mia_auc.png").exists()
    recs = [row("a", 8, "none", 0.61, 0.57), row("b", 16, "none", 0.66, 0.6), row("c", 8, "round", 0.55, 0.5)]
    report = write_results(study, tmp_path, recs, missing=[]).read_text()
    line = next(ln for ln in report.splitlines() if ln.startswith("| b "))
    assert line.endswith("| 0.660 | 0.020 | 0.600 |")
    assert (tmp_path / "mia_auc.png").stat().st_size > 1000


def test_shipped_mia_study_parses():
    s = load_study(REPO / "experiments" / "sweep_mia.toml")
    assert s.mia == {"shadows": 8, "eval_samples": 250} and s.data_root is None
    assert len(s.cells()) == 9 and {c["steps"] for c in s.cells()} == {8, 16, 25}
    assert s.defenses["round"] == {"round_posterior": 0.1} and s.defenses["flip"] == {"input_flip": 0.05}
