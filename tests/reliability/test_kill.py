"""Killing a command that runs Lava leaves nothing behind: ``kill -9`` or ``kill -TERM`` of the CLI process
alone (not its group) and, within 10 s, no process of its tree is alive (Lava's workers die with their
parent, whatever ends it; see ``interrupts.tie_children_to_parent``). SIGTERM also stops Lava cleanly and
exits with 143 and one line, the previous output intact and no temporary file left."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import bad_cases
from proctree import Command, stat_fields

CONFIG = bad_cases.GOOD_CONFIG + "\n[replay]\ndraws = 400\n\n[evaluation]\ndraws = 1\n"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = bad_cases.Workspace(tmp_path_factory.mktemp("kill"))
    ws.net, ws.recon, ws.evaluator  # noqa: B018 - build them
    return ws


def _replay(ws, out: Path) -> Command:
    return Command(["replay", "--model", ws.net, "--recon", ws.recon, "--draws", "500", "--json", str(out)], ws.root)


def _check_gone(cmd: Command, workers: list[int]) -> None:
    left = cmd.alive_after(10)
    if left:
        cmd.kill_all()
    assert left == [], f"processes outlived the CLI by 10 s: {left}"
    assert not [p for p in workers if stat_fields(p) and stat_fields(p)[0] != "Z"]


@pytest.mark.slow
def test_sigkill_of_replay_leaves_no_lava_process(ws, tmp_path):
    cmd = _replay(ws, tmp_path / "r.json")
    workers = cmd.wait_for_lava()
    time.sleep(1.0)
    os.kill(cmd.proc.pid, signal.SIGKILL)  # the CLI process only
    assert cmd.proc.wait(timeout=30) == -signal.SIGKILL
    _check_gone(cmd, workers)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_of_replay_stops_lava_exit_143_one_line(ws, tmp_path):
    out = tmp_path / "r.json"
    out.write_text('{"previous": true}\n')
    cmd = _replay(ws, out)
    workers = cmd.wait_for_lava()
    time.sleep(1.0)
    os.kill(cmd.proc.pid, signal.SIGTERM)
    try:
        code = cmd.proc.wait(timeout=60)
    except Exception:  # pragma: no cover - the failure this test is about
        cmd.kill_all()
        raise
    cmd.reader.join(timeout=10)
    _check_gone(cmd, workers)
    assert code == 143, cmd.stderr[-3000:]
    lines = [ln for ln in cmd.stderr.replace("\r", "\n").splitlines() if ln.strip() and "Lava replay" not in ln]
    assert lines == ["brainleaks replay: terminated (SIGTERM)"], cmd.stderr[-3000:]
    assert json.loads(out.read_text()) == {"previous": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_run_during_its_replay_stage_leaves_no_lava_process(ws, tmp_path, sig):
    cfg = ws.config("kill.toml", CONFIG)
    run_dir = tmp_path / "run"
    cmd = Command(["run", cfg, "--out", str(run_dir)], ws.root)
    workers = cmd.wait_for_lava(timeout=400)
    time.sleep(1.0)
    os.kill(cmd.proc.pid, sig)
    code = cmd.proc.wait(timeout=60)
    _check_gone(cmd, workers)
    if sig == signal.SIGTERM:
        assert code == 143, cmd.stderr[-3000:]
        assert cmd.stderr.strip().splitlines()[-1] == "brainleaks run: terminated (SIGTERM)"
    assert not list(run_dir.rglob("*.tmp"))
    assert not (run_dir / "replay").exists() or not list((run_dir / "replay").iterdir())
