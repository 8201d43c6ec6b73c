"""Result tables and figures on constructed rows: the Pareto front, the NOT EXACT mark."""
from __future__ import annotations

import json

import numpy as np

from brainleaks_lava.sweep.config import load_study
from brainleaks_lava.sweep.results import COLUMNS, pareto_front, write_results

from sweep_util import CI_STUDY


def test_pareto_front_constructed():
    t = np.array([0.9, 0.8, 0.95, 0.85, 0.95])
    a = np.array([0.5, 0.2, 0.9, 0.6, 0.95])
    # (0.8, 0.2) and (0.9, 0.5) and (0.95, 0.9) are undominated; (0.85, 0.6) is dominated by (0.9, 0.5);
    # (0.95, 0.95) by (0.95, 0.9)
    assert pareto_front(t, a).tolist() == [1, 0, 2]


def _row(cell, steps, acc, leak, agreement):
    r = {c: None for c in COLUMNS}
    r.update(cell=cell, seed=0, steps=steps, weight_step=1, weight_bits=8.0, threshold=1.0, hidden=8,
             readout="membrane", defense="none", attack="bl2", method="bl2", target_accuracy=acc,
             attack_accuracy=leak, top3=1.0, avg_confidence=0.5, daa=1.0, lava_agreement=agreement,
             replay_exact=agreement == 1.0, zero_weights=0.0, note="", attack_seconds=1.0, cell_seconds=2.0)
    return {"rows": [r]}


def test_not_exact_marked_and_files(tmp_path):
    study = load_study(CI_STUDY)
    recs = [_row("a", 8, 0.9, 0.5, 1.0), _row("b", 16, 0.8, 0.2, 0.95)]
    report = write_results(study, tmp_path, recs, missing=["c"]).read_text()
    lines = [ln for ln in report.splitlines() if ln.startswith("| a ") or ln.startswith("| b ")]
    assert "**NOT EXACT 95.0**" in lines[1] and "NOT EXACT" not in lines[0]
    assert "1 missing: c" in report.replace("2 cells done, ", "")
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["cell"] for r in data["rows"]] == ["a", "b"] and data["missing_cells"] == ["c"]
    assert (tmp_path / "results.csv").read_text().splitlines()[0].split(",") == list(COLUMNS)
    assert (tmp_path / "leakage_steps.png").stat().st_size > 1000
