"""experiments/query_budget.py end to end on the shipped target with tiny budgets: one reconstruction file per
attack and budget, every judge's scores, the Lava check of reconstructions and oracle answers, the table and the
figure; a second run reuses the files."""
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _script():
    spec = importlib.util.spec_from_file_location("query_budget", REPO / "experiments" / "query_budget.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_query_budget_study(tmp_path, capsys):
    qb = _script()
    nm = REPO / "netx_models"
    argv = ["--model", str(nm / "mnist_snn.net"), "--judge", f"resnet={nm / 'mnist_eval_resnet.h5'}",
            "--judge", f"ANN={nm / 'mnist_eval_ann.h5'}", "--nes", "200", "--label", "300", "--white", "bl1",
            "--draws", "1", "--replay-draws", "1", "--out", str(tmp_path)]
    assert qb.main(argv) == 0
    study = json.loads((tmp_path / "scores.json").read_text())
    assert study["judges"] == ["resnet", "ANN"]
    rows = {(r["attack"], r["queries"]): r for r in study["rows"]}
    assert set(rows) == {("bl1", None), ("nes", 200), ("label", 300)}
    assert rows[("nes", 200)]["used"] == 200 and rows[("label", 300)]["used"] <= 300
    for r in rows.values():
        assert set(r["judges"]) == {"resnet", "ANN"}
        assert all(0 <= v["accuracy"] <= 100 for v in r["judges"].values())
        n = r["lava"].split("/")
        assert n[0] == n[1]  # every reconstruction identical on Lava
    q = rows[("nes", 200)]["lava_queries"].split("/")
    assert q[0] == q[1] and int(q[0]) >= 100
    table = (tmp_path / "table.md").read_text()
    assert table.splitlines()[0].startswith("| attack | queries (used) | resnet | ANN |")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stamp = (tmp_path / "nes_200.h5").stat().st_mtime_ns
    assert qb.main(argv) == 0 and (tmp_path / "nes_200.h5").stat().st_mtime_ns == stamp  # reused, not rerun
    with pytest.raises(SystemExit, match="NAME=PATH"):
        qb.main(["--model", "m", "--judge", "nopath", "--out", str(tmp_path / "x")])
