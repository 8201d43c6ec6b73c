"""Ctrl-C in the middle of a Lava replay: exit 130 with one line, the previous output untouched, no temporary
file, no Lava worker process left.

The command runs in its own session (as a shell job would); SIGINT goes either to the CLI process only
(``kill -INT``) or to its whole process group (what Ctrl-C in a terminal does: Lava's worker processes
get it too). Leftover processes are found by session id in /proc, which also catches workers that were
re-parented to init after the CLI exited.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import bad_cases
from proctree import descendants, session_processes  # noqa: F401
from proctree import stat_fields as _stat_fields


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    ws = bad_cases.Workspace(tmp_path_factory.mktemp("sigint"))
    return ws, ws.root / ws.net, ws.root / ws.recon


def _brainleaks(*args: str) -> list[str]:
    return [sys.executable, "-m", "brainleaks_lava.cli", *args]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["process", "group"])
def test_ctrl_c_during_replay_keeps_previous_output(files, target, tmp_path):
    ws, net, recon = files
    out = tmp_path / "replay.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # a previous, complete run wrote a good report
    done = subprocess.run(_brainleaks("replay", "--model", str(net), "--recon", str(recon), "--draws", "1",
                                      "--json", str(out)), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    good = out.read_bytes()
    assert json.loads(good)["samples"] == 3

    # a long run (1,500 spike trains) writing the same report, interrupted once Lava is running
    proc = subprocess.Popen(_brainleaks("replay", "--model", str(net), "--recon", str(recon), "--draws", "500",
                                        "--json", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.extend(iter(lambda: proc.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    deadline = time.time() + 240
    workers: list[int] = []
    while time.time() < deadline and proc.poll() is None:
        workers = descendants(proc.pid)
        if b"Lava replay" in b"".join(err_chunks) and workers:
            break
        time.sleep(0.2)
    assert proc.poll() is None, b"".join(err_chunks).decode(errors="replace")[-3000:]
    assert workers, "no Lava worker process was seen"
    time.sleep(1.0)  # mid-run: the simulation is under way
    if target == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test is about
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the CLI did not exit within 120 s of SIGINT")
    reader.join(timeout=10)
    stdout = proc.stdout.read()
    stderr = b"".join(err_chunks).decode(errors="replace")

    assert code == 130, stderr[-3000:]
    lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip() and "Lava replay" not in ln]
    assert lines == ["brainleaks replay: interrupted"], stderr[-3000:]
    assert b"agreement" not in stdout
    assert out.read_bytes() == good  # the previous report, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.json"]  # no temporary file beside it
    time.sleep(0.5)
    assert session_processes(proc.pid) == [], "Lava processes outlived the CLI"
    assert not [p for p in workers if _stat_fields(p) and _stat_fields(p)[0] != "Z"]
