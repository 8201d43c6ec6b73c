"""Resume trusts nothing stale: a stage whose input changed on disk (same path, same config) runs again; a run
directory's ``state.json`` that is not a state is refused; temporary files of killed writers are removed."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import bad_cases
from brainleaks_lava.errors import ConfigError, OutputError
from brainleaks_lava.fileio import atomic_path, sweep_stale_temps
from brainleaks_lava.report.runner import fingerprint, run_experiment

CONFIG = bad_cases.GOOD_CONFIG + "\n[evaluation]\ndraws = 1\n\n[replay]\nenabled = false\n"


def _last(out: Path) -> dict:
    return json.loads((out / "last_run.json").read_text())


@pytest.fixture()
def ws(tmp_path):
    ws = bad_cases.Workspace(tmp_path / "ws")
    ws.config("exp.toml", CONFIG)
    return ws


def test_resume_reruns_a_stage_whose_input_changed_on_disk(ws):
    cfg, out = ws.root / "exp.toml", ws.root / "run"
    run_experiment(cfg, out)
    assert set(_last(out)["ran"]) == {"attack/bl2", "evaluate/bl2", "report"}
    run_experiment(cfg, out)
    assert _last(out)["ran"] == []  # nothing changed: everything skipped

    # the target's sidecar (read by the attack with the .net) changes; same path, same config
    side = ws.root / "good.json"
    meta = json.loads(side.read_text())
    meta["note"] = "edited after the first run"
    side.write_text(json.dumps(meta))
    run_experiment(cfg, out)
    assert "attack/bl2" in _last(out)["ran"]

    # the evaluator file is replaced by another one under the same name
    (ws.root / "eval.h5").unlink()
    bad_cases.make_evaluator(ws.root / "eval.h5", classes=10)
    import h5py
    with h5py.File(ws.root / "eval.h5", "a") as f:
        d = f["state_dict"][sorted(f["state_dict"])[0]]
        d[...] = d[()] * 0.5
    run_experiment(cfg, out)
    assert "evaluate/bl2" in _last(out)["ran"] and "attack/bl2" not in _last(out)["ran"]


def test_fingerprint_reads_dataset_files_and_sidecars(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.bin").write_bytes(b"12345")
    (data / ".brainleaks_cache").mkdir()
    fp = fingerprint({"x": 1}, [data])
    (data / ".brainleaks_cache" / "frames.npy").write_bytes(b"cache")  # a cache is not data
    assert fingerprint({"x": 1}, [data]) == fp
    (data / "sub" / "a.bin").write_bytes(b"12346")  # same size, same name, other content
    assert fingerprint({"x": 1}, [data]) != fp
    net = tmp_path / "m.net"
    net.write_bytes(b"net")
    net.with_suffix(".json").write_text("{}")
    fp = fingerprint({}, [net])
    net.with_suffix(".json").write_text('{"a": 1}')
    assert fingerprint({}, [net]) != fp


@pytest.mark.parametrize("content", ["null", "[]", '{"train/x": 3}', "not json"])
def test_state_file_that_is_not_a_state_is_refused(ws, content):
    out = ws.root / "run"
    out.mkdir()
    (out / "state.json").write_text(content)
    with pytest.raises(OutputError, match="state.json"):
        run_experiment(ws.root / "exp.toml", out)
    assert (out / "state.json").read_text() == content
    run_experiment(ws.root / "exp.toml", out, force=True)  # --force starts afresh
    assert isinstance(json.loads((out / "state.json").read_text()), dict)


def test_config_model_inside_the_run_outputs_is_refused(ws):
    out = ws.root / "run"
    (out / "attacks").mkdir(parents=True)
    (out / "attacks" / "bl2.h5").write_bytes((ws.root / ws.evaluator).read_bytes())
    cfg = ws.config("inside.toml", CONFIG.replace('model = "eval.h5"', 'model = "run/attacks/bl2.h5"'))
    with pytest.raises(ConfigError, match="evaluators.ann.model"):
        run_experiment(ws.root / cfg, out)


def test_stale_temporary_files_of_killed_writers_are_removed(tmp_path):
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a pid that no longer runs
    stale = tmp_path / f".r.json.{dead}.abcd1234.tmp"
    stale.write_text("half")
    mine = tmp_path / f".r.json.{os.getpid()}.live0000.tmp"  # a writer that still runs: kept
    mine.write_text("in progress")
    other = tmp_path / f".other.json.{dead}.abcd1234.tmp"
    other.write_text("half")
    with atomic_path(tmp_path / "r.json") as tmp:
        tmp.write_text("{}")
    assert not stale.exists() and mine.exists() and other.exists()
    assert sweep_stale_temps(tmp_path) == [other]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "r.json"])
