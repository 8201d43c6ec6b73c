"""``brainleaks sweep`` on the 4-cell CI study, locally: tables, figures, Lava replay, and resuming cell by cell
after a cell limit, a kill and a damaged result."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from brainleaks_lava.sweep import run_sweep

from sweep_util import CI_STUDY, REPO, rows

pytestmark = pytest.mark.slow

ALL = {"T8-w1-th4-h32-membrane-none-s0", "T8-w4-th4-h32-membrane-none-s0", "T16-w1-th4-h32-membrane-none-s0",
       "T16-w4-th4-h32-membrane-none-s0"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A sweep stopped after 1 cell by ``max_cells``, then finished by a second call."""
    out = tmp_path_factory.mktemp("sweep") / "ci"
    first = run_sweep(CI_STUDY, out, max_cells=1)
    first_rows = rows(out)
    second = run_sweep(CI_STUDY, out)
    return out, first, first_rows, second


def test_cell_limit_then_only_missing_cells(limited):
    out, first, first_rows, second = limited
    assert len(first["ran"]) == 1 and len(first["missing"]) == 3 and len({r["cell"] for r in first_rows}) == 1
    assert set(second["ran"]) == ALL - set(first["ran"]) and second["skipped"] == first["ran"]
    assert second["missing"] == []
    third = run_sweep(CI_STUDY, out)
    assert third["ran"] == [] and set(third["skipped"]) == ALL


def test_tables_figures_and_lava(limited):
    out = limited[0]
    table = list(csv.DictReader((out / "results.csv").open()))
    assert {r["cell"] for r in table} == ALL and len(table) == 4
    for r in rows(out):
        assert r["lava_agreement"] == 1.0 and r["replay_exact"] is True
        assert 0.5 < r["target_accuracy"] <= 1.0 and 0.0 <= r["attack_accuracy"] <= 1.0
    w4 = [r for r in rows(out) if r["weight_step"] == 4]
    w1 = [r for r in rows(out) if r["weight_step"] == 1]
    assert min(r["zero_weights"] for r in w4) > max(r["zero_weights"] for r in w1)
    report = (out / "report.md").read_text()
    assert report.count("-membrane-none-s0 |") == 4 and "**NOT EXACT " not in report
    for knob in ("steps", "weight_step"):
        png = out / f"leakage_{knob}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "leakage_threshold.png").exists()  # not varied


def test_damaged_cell_is_rerun_and_kept_aside(limited, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(limited[0], out)
    victim = "T16-w4-th4-h32-membrane-none-s0"
    recon = out / "cells" / victim / "attacks" / "bl2.h5"
    recon.write_bytes(recon.read_bytes()[:-10] + b"0123456789")
    again = run_sweep(CI_STUDY, out)
    assert again["ran"] == [victim]
    kept = list((out / "superseded").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith(victim)
    assert rows(out) == rows(limited[0])  # same seeds, same results


def test_killed_sweep_finishes_only_missing_cells(limited, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "brainleaks_lava.cli", "sweep", str(CI_STUDY), "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    try:
        for line in proc.stderr:
            if line.startswith("cell 1/4 "):
                break
        else:
            pytest.fail("the sweep ended before its first cell")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {d.name for d in (out / "cells").iterdir() if (d / "result.json").is_file()}
    assert 1 <= len(before) < 4
    again = run_sweep(CI_STUDY, out)
    assert set(again["ran"]) == ALL - before and set(again["skipped"]) == before
    assert not [d for d in (out / "cells").iterdir() if ".partial-" in d.name]
    assert rows(out) == rows(limited[0])
    assert json.loads((out / "last_sweep.json").read_text())["missing"] == []
