"""Issue 31, round 3: one guarded opener for every file the toolkit reads, hangs, signals, Ray, locked HDF5 files,
the total size of an HDF5 file.

Every case is the command a user types (``brainleaks ...``), run as a real subprocess by ``measure.run_measured``
under a timeout: exit status 2 (143 for SIGTERM), one line naming the file, within 1 GB and 30 s, and nothing the
user had is changed (``bad_cases.snapshot``). The bad files:

- a FIFO where a file is read (a sweep's ``result.json`` on resume, a run's ``state.json``, a config, a model,
  a dataset file): reading one blocks for ever;
- a symbolic link to ``/dev/zero`` (a config, a deployment card, a sidecar, a ``result.json``, a dataset file):
  reading one never ends and fills the memory;
- a link from a sweep's own record to a file outside the sweep directory;
- a file over its size limit (a config, a gzip bomb as an MNIST file, an HDF5 file of many compressed datasets that
  declare 4 GB in 70 kB);
- an HDF5 file another process holds open for writing (HDF5 file locking);
- a Ray cluster address where nothing listens, or where something listens that is not Ray;
- SIGTERM during ``train``, ``attack``, ``sweep`` and Ray's start: exit 143 within seconds, no process left.
"""
from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

import bad_cases
import measure
import proctree
from measure import run_measured

REPO = Path(__file__).resolve().parents[2]
EVALUATOR = REPO / "netx_models" / "mnist_eval_ann.h5"
VENDORED = REPO / "brainleaks_lava" / "data" / "vendored" / "mnist"
CELL = "T8-w1-th4-h32-membrane-none-s0"
RESULT = f"S/cells/{CELL}/result.json"

# (case, the command a user types, what the toolkit does now)
TABLE = [
    ("sweep resumed, a cell's result.json is a FIFO", "brainleaks sweep study.toml --out S",
     "exit 2: S/cells/<cell>/result.json: the sweep record is not a regular file (a FIFO); not a record the sweep "
     "wrote (remove it to run that unit again)"),
    ("sweep resumed, result.json a link to /dev/zero", "brainleaks sweep study.toml --out S",
     "exit 2: ...result.json: the sweep record is not a regular file (a character device: /dev/zero); ..."),
    ("sweep resumed, result.json a link to a file outside the cell", "brainleaks sweep study.toml --out S",
     "exit 2: ...result.json: the sweep record is a link to <file>, outside S/cells/<cell>; ..."),
    ("run directory whose state.json is a FIFO", "brainleaks run c.toml --out R",
     "exit 2: R/state.json: the run state is not a regular file (a FIFO); not a brainleaks run state (...)"),
    ("config is a FIFO", "brainleaks run fifo.toml", "exit 2: fifo.toml: the config file is not a regular file (a FIFO)"),
    ("config is a link to /dev/zero", "brainleaks run zero.toml",
     "exit 2: zero.toml: the config file is not a regular file (a character device: /dev/zero)"),
    ("config of 17 MB", "brainleaks run huge.toml",
     "exit 2: huge.toml: the config file is larger than the 16,777,216-byte limit (... bytes)"),
    ("deployment card is a link to /dev/zero", "brainleaks info good.net --card zero.card.toml",
     "exit 2: zero.card.toml: the deployment card is not a regular file (a character device: /dev/zero)"),
    ("sidecar is a link to /dev/zero", "brainleaks info side0.net",
     "exit 2: side0.json: the sidecar is not a regular file (a character device: /dev/zero)"),
    ("model file is a link to /dev/zero", "brainleaks attack --model zero.h5 --method miface --out o.h5",
     "exit 2: zero.h5: the model file is not a regular file (a character device: /dev/zero)"),
    ("evaluator is a FIFO", "brainleaks evaluate --recon recon.h5 --evaluator fifo.h5",
     "exit 2: fifo.h5: the model file is not a regular file (a FIFO)"),
    ("MNIST images file is a FIFO", "brainleaks dataset --dataset mnist --data-root mnist_fifo",
     "exit 2: mnist_fifo/t10k-images-idx3-ubyte: the MNIST idx file is not a regular file (a FIFO)"),
    ("MNIST labels file is a link to /dev/zero", "brainleaks dataset --dataset mnist --data-root mnist_zero",
     "exit 2: mnist_zero/t10k-labels-idx1-ubyte: the MNIST idx file is not a regular file (a character device: "
     "/dev/zero)"),
    ("MNIST .gz that decompresses to 100 MB", "brainleaks dataset --dataset mnist --data-root mnist_bomb",
     "exit 2: ...t10k-images-idx3-ubyte.gz: the MNIST idx file decompresses to more than the 67,108,864-byte limit"),
    ("face image is a FIFO", "brainleaks dataset --dataset att-faces --data-root faces",
     "exit 2: faces/s1/3.pgm: the PGM image is not a regular file (a FIFO)"),
    ("HDF5 file of 4 compressed datasets declaring 4 GB in 70 kB", "brainleaks info big.net",
     "exit 2: big.net: its datasets declare 4,278,... bytes of data in total, more than the 2,147,483,648-byte "
     "limit of a file the toolkit reads"),
    ("HDF5 file held open for writing by another process", "brainleaks info locked.net",
     "exit 2: locked.net is locked by another process (HDF5 file locking); wait for it to finish or set "
     "HDF5_USE_FILE_LOCKING=FALSE"),
    ("Ray address where nothing listens", "brainleaks sweep study.toml --engine ray --address 127.0.0.1:<port> --out R",
     "exit 2 in ~1 s: cannot reach the Ray cluster at 127.0.0.1:<port>: Connection refused (no TCP connection "
     "within 5 s); start it with 'ray start --head' or give the right --address"),
    ("Ray address that accepts TCP but is not Ray", "brainleaks sweep study.toml --engine ray --address "
     "127.0.0.1:<port> --out R", "exit 2 after 20 s: cannot join the Ray cluster at ...: no answer from a Ray cluster "
     "there within 20 s (Ray's own log lines before it)"),
    ("SIGTERM while Ray connects", "brainleaks sweep study.toml --engine ray --address 127.0.0.1:<port> --out R",
     "exit 143 within 6 s of the signal: brainleaks sweep: terminated (SIGTERM)"),
    ("SIGTERM during train", "brainleaks train --dataset mnist --arch snn --hidden 64 --epochs 50 --out m.net",
     "exit 143 at once, one line, no m.net, no process left"),
    ("SIGTERM during attack", "brainleaks attack --model good.net --method bl2 --iterations 100000 --out out.h5",
     "exit 143 at once, one line, the previous out.h5 unchanged, no process left"),
    ("SIGTERM during sweep (local)", "brainleaks -q sweep long.toml --out L",
     "exit 143 at once, one line, no half cell, no process left"),
]

STUDY = (REPO / "experiments" / "sweep_ci.toml").read_text().replace("../netx_models/mnist_eval_ann.h5", str(EVALUATOR))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = bad_cases.Workspace(tmp_path_factory.mktemp("round3_files"))
    ws.net, ws.ann, ws.evaluator, ws.recon  # noqa: B018 - built once
    return ws


def check(m, *names, code=2):
    """Exit ``code``, one line naming ``names``, within 1 GB and 30 s (shown with ``pytest -s``)."""
    print(f"\n  exit {m.code}, {m.peak_mb:.0f} MB, {m.seconds:.1f} s: {m.lines[-1] if m.lines else m.stderr!r}")
    assert m.code == code, m.stderr
    assert len(m.lines) == 1, m.stderr
    for n in names:
        assert n in m.lines[0], m.lines[0]
    assert m.budget_problems() == [], m.budget_problems()


def unchanged(ws, argv, *names, timeout=60):
    """Run ``argv`` in the workspace: a bad-input outcome naming ``names``, and no file of the workspace changed."""
    before = bad_cases.snapshot(ws.root)
    m = run_measured(argv, ws.root, timeout=timeout)
    check(m, *names)
    assert bad_cases.changes(before, bad_cases.snapshot(ws.root)) == []
    return m


def fifo(path: Path) -> Path:
    if not os.path.lexists(path):
        os.mkfifo(path)
    return path


def zero_link(path: Path) -> Path:
    if not os.path.lexists(path):
        path.symlink_to("/dev/zero")
    return path


# ------------------------------------------------------------------------------------------------ sweep records

@pytest.fixture(scope="module")
def swept(ws):
    """A sweep directory with one finished cell."""
    ws.write("study.toml", STUDY)
    p = subprocess.run([sys.executable, "-m", "brainleaks_lava.cli", "-q", "sweep", "study.toml", "--out", "S",
                        "--max-cells", "1"], cwd=ws.root, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert (ws.root / RESULT).is_file()
    return ws


def _sweep_with(ws, make) -> None:
    """The finished sweep S, its result.json replaced by ``make(path)``, then the resumed sweep."""
    shutil.copytree(ws.root / "S", ws.root / "S.keep", symlinks=True)
    try:
        target = ws.root / RESULT
        target.unlink()
        make(target)
        return unchanged(ws, ["sweep", "study.toml", "--out", "S", "--max-cells", "1"], RESULT, timeout=90)
    finally:
        shutil.rmtree(ws.root / "S")
        (ws.root / "S.keep").rename(ws.root / "S")


def test_sweep_result_fifo_is_refused_not_waited_for(swept):
    m = _sweep_with(swept, fifo)
    assert "not a regular file (a FIFO)" in m.lines[0]


def test_sweep_result_link_to_dev_zero_is_refused(swept):
    m = _sweep_with(swept, zero_link)
    assert "a character device: /dev/zero" in m.lines[0]


def test_sweep_result_link_outside_the_cell_is_refused(swept):
    outside = swept.root / "S" / f"{CELL}-elsewhere.json"
    m = _sweep_with(swept, lambda p: (outside.write_text("{}"), p.symlink_to(outside)))
    assert f"outside S/cells/{CELL}" in m.lines[0]


# ------------------------------------------------------------------------------------------------ other text files

def test_run_state_fifo(ws):
    ws.config("c.toml", bad_cases.GOOD_CONFIG)
    (ws.root / "R").mkdir(exist_ok=True)
    fifo(ws.root / "R" / "state.json")
    m = unchanged(ws, ["run", "c.toml", "--out", "R"], "R/state.json", "a FIFO")
    assert "not a brainleaks run state" in m.lines[0]


def test_config_fifo(ws):
    fifo(ws.root / "fifo.toml")
    unchanged(ws, ["run", "fifo.toml", "--out", "R2"], "fifo.toml", "config file is not a regular file (a FIFO)")


def test_config_link_to_dev_zero(ws):
    zero_link(ws.root / "zero.toml")
    unchanged(ws, ["run", "zero.toml", "--out", "R2"], "zero.toml", "/dev/zero")


def test_config_over_the_limit(ws):
    ws.write("huge.toml", "# padding\n" * (17 << 17))
    unchanged(ws, ["run", "huge.toml", "--out", "R2"], "huge.toml", "larger than the 16,777,216-byte limit")


def test_card_link_to_dev_zero(ws):
    zero_link(ws.root / "zero.card.toml")
    unchanged(ws, ["info", ws.net, "--card", "zero.card.toml"], "zero.card.toml", "deployment card", "/dev/zero")


def test_sidecar_link_to_dev_zero(ws):
    ws.copy(ws.net, "side0.net").with_suffix(".json").unlink()
    zero_link(ws.root / "side0.json")
    unchanged(ws, ["info", "side0.net"], "side0.json", "sidecar", "/dev/zero")


def test_model_link_to_dev_zero(ws):
    zero_link(ws.root / "zero.h5")
    unchanged(ws, ["attack", "--model", "zero.h5", "--method", "miface", "--out", "o.h5"], "zero.h5", "/dev/zero")


def test_evaluator_fifo(ws):
    fifo(ws.root / "fifo.h5")
    unchanged(ws, ["evaluate", "--recon", ws.recon, "--evaluator", "fifo.h5"], "fifo.h5", "a FIFO")


# ------------------------------------------------------------------------------------------------ dataset files

def test_mnist_images_fifo(ws):
    d = ws.root / "mnist_fifo"
    d.mkdir(exist_ok=True)
    fifo(d / "t10k-images-idx3-ubyte")
    shutil.copy(VENDORED / "t10k-labels-idx1-ubyte.gz", d)
    unchanged(ws, ["dataset", "--dataset", "mnist", "--data-root", "mnist_fifo"],
              "mnist_fifo/t10k-images-idx3-ubyte", "a FIFO")


def test_mnist_labels_link_to_dev_zero(ws):
    d = ws.root / "mnist_zero"
    d.mkdir(exist_ok=True)
    shutil.copy(VENDORED / "t10k-images-idx3-ubyte.gz", d)
    zero_link(d / "t10k-labels-idx1-ubyte")
    unchanged(ws, ["dataset", "--dataset", "mnist", "--data-root", "mnist_zero"],
              "mnist_zero/t10k-labels-idx1-ubyte", "/dev/zero")


def test_mnist_gzip_bomb(ws):
    d = ws.root / "mnist_bomb"
    d.mkdir(exist_ok=True)
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * (100 << 20), compresslevel=9))
    shutil.copy(VENDORED / "t10k-labels-idx1-ubyte.gz", d)
    assert (d / "t10k-images-idx3-ubyte.gz").stat().st_size < 1 << 20
    unchanged(ws, ["dataset", "--dataset", "mnist", "--data-root", "mnist_bomb"],
              "mnist_bomb/t10k-images-idx3-ubyte.gz", "decompresses to more than the 67,108,864-byte limit")


def test_face_image_fifo(ws):
    import numpy as np

    for k in (1, 2):
        for i in range(1, 11):
            p = ws.root / "faces" / f"s{k}" / f"{i}.pgm"
            if (k, i) == (1, 3):
                p.parent.mkdir(parents=True, exist_ok=True)
                fifo(p)
            elif not p.exists():
                ws.write(f"faces/s{k}/{i}.pgm", b"P5\n92 112\n255\n" + np.full(92 * 112, 7 * i, np.uint8).tobytes())
    unchanged(ws, ["dataset", "--dataset", "att-faces", "--data-root", "faces"], "faces/s1/3.pgm", "a FIFO")


# ------------------------------------------------------------------------------------------------ HDF5 files

def test_hdf5_total_declared_size_is_capped(ws):
    p = ws.copy(ws.net, "big.net")
    with h5py.File(p, "a") as f:  # 4 datasets just under the 1 GiB per-dataset cap, never written: 70 kB on disk
        for i in range(4):
            f.create_dataset(f"pad/{i}", shape=(1020 << 20,), dtype="u1", chunks=(1 << 20,), compression="gzip")
    assert p.stat().st_size < 1 << 20
    m = unchanged(ws, ["info", "big.net"], "big.net", "more than the 2,147,483,648-byte limit")
    assert "4,278," in m.lines[0]


def test_locked_hdf5_file_is_reported_as_locked(ws):
    ws.copy(ws.net, "locked.net")
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time\nf = h5py.File('locked.net', 'a')\n"
                               "print('held', flush=True)\ntime.sleep(120)"], cwd=ws.root, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        m = run_measured(["info", "locked.net"], ws.root, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    check(m, "locked.net is locked by another process (HDF5 file locking)", "HDF5_USE_FILE_LOCKING=FALSE")
    assert "corrupt" not in m.lines[0]


# ------------------------------------------------------------------------------------------------ Ray

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def not_ray():
    """A TCP port that accepts connections and never speaks Ray's protocol."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


def test_ray_address_where_nothing_listens(ws):
    pytest.importorskip("ray")
    ws.write("study.toml", STUDY)
    port = _free_port()
    m = run_measured(["sweep", "study.toml", "--engine", "ray", "--address", f"127.0.0.1:{port}", "--out", "RX"],
                     ws.root, timeout=60)
    check(m, f"cannot reach the Ray cluster at 127.0.0.1:{port}", "Connection refused")
    assert m.seconds < 10
    assert not (ws.root / "RX").exists()  # refused before the sweep directory is made


@pytest.mark.slow
def test_ray_address_that_is_not_ray_gives_up(ws, not_ray):
    pytest.importorskip("ray")
    ws.write("study.toml", STUDY)
    m = run_measured(["sweep", "study.toml", "--engine", "ray", "--address", f"127.0.0.1:{not_ray}", "--out", "RY"],
                     ws.root, timeout=60)
    print(f"\n  exit {m.code}, {m.peak_mb:.0f} MB, {m.seconds:.1f} s: {m.lines[-1]!r} ({len(m.lines)} lines)")
    assert m.code == 2, m.stderr
    # Ray's own log lines come first (its C++ client logs each failed attempt); ours is the last
    assert m.lines[-1].startswith(f"brainleaks sweep: error: cannot join the Ray cluster at 127.0.0.1:{not_ray}: no "
                                  f"answer"), m.stderr
    assert m.budget_problems() == [], m.budget_problems()


def test_sigterm_while_ray_connects(ws, not_ray):
    pytest.importorskip("ray")
    ws.write("study.toml", STUDY)
    m = run_measured(["sweep", "study.toml", "--engine", "ray", "--address", f"127.0.0.1:{not_ray}", "--out", "RZ"],
                     ws.root, timeout=60, send_signal=(8.0, signal.SIGTERM))
    print(f"\n  exit {m.code}, {m.peak_mb:.0f} MB, {m.seconds:.1f} s: {m.lines[-1]!r} ({len(m.lines)} lines)")
    assert m.code == 143, m.stderr
    assert m.lines[-1] == "brainleaks sweep: terminated (SIGTERM)", m.stderr
    assert m.seconds < 8.0 + 8, m.seconds  # the watchdog's 5 s grace, the interpreter's exit
    assert m.budget_problems() == [], m.budget_problems()


# ------------------------------------------------------------------------------------------------ SIGTERM

def terminate(argv: list[str], cwd: Path, after: float) -> tuple:
    """Start ``brainleaks argv`` in a session of its own, SIGTERM it ``after`` seconds later; returns (exit status,
    seconds from the signal to the exit, stderr lines, processes of the session still alive 5 s later, peak MB)."""
    cmd = proctree.Command(argv, cwd)
    sampler = measure._Sampler(cmd.proc.pid)
    sampler.start()
    try:
        time.sleep(after)
        assert cmd.proc.poll() is None, f"ended before the signal: {cmd.stderr[-2000:]}"
        t0 = time.monotonic()
        os.kill(cmd.proc.pid, signal.SIGTERM)
        try:
            code = cmd.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - t0
        sampler.done.set()
        sampler.join()
        left = cmd.alive_after(5)
        cmd.reader.join(timeout=10)
        lines = bad_cases.Outcome(code if code is not None else -1, cmd.stderr, "").lines
        return code, seconds, lines, left, sampler.peak_kb / 1024
    finally:
        cmd.kill_all()


def _check_terminated(outcome, command: str) -> None:
    code, seconds, lines, left, peak = outcome
    print(f"\n  exit {code}, {peak:.0f} MB, {seconds:.1f} s after the signal: {lines}")
    assert code == 143, lines
    assert seconds < 10, seconds
    assert lines == [f"brainleaks {command}: terminated (SIGTERM)"], lines
    assert left == [], f"processes left: {left}"
    assert peak < measure.MAX_PEAK_MB, peak


def test_sigterm_during_train(ws):
    before = bad_cases.snapshot(ws.root)
    out = terminate(["train", "--dataset", "mnist", "--arch", "snn", "--hidden", "64", "--epochs", "50", "--out",
                     "m.net"], ws.root, after=8)
    _check_terminated(out, "train")
    # no model and no sidecar; only the checkpoint the same command resumes from
    assert bad_cases.changes(before, bad_cases.snapshot(ws.root)) in ([], ["m.net.ckpt.h5"])


def test_sigterm_during_attack(ws):
    ws.write("out.h5", b"a previous result, kept byte for byte")
    before = bad_cases.snapshot(ws.root)
    out = terminate(["attack", "--model", ws.net, "--method", "bl2", "--iterations", "100000", "--out", "out.h5"],
                    ws.root, after=8)
    _check_terminated(out, "attack")
    assert bad_cases.changes(before, bad_cases.snapshot(ws.root)) == []


def test_sigterm_during_local_sweep(ws):
    study = STUDY.replace('name = "sweep_ci"', 'name = "long"').replace("iterations = 5", "iterations = 100000")
    ws.write("long.toml", study)
    out = terminate(["-q", "sweep", "long.toml", "--out", "L"], ws.root, after=10)
    _check_terminated(out, "sweep")
    cells = ws.root / "L" / "cells"
    half = [d.name for d in cells.iterdir() if not d.name.startswith(".") and not (d / "result.json").is_file()]
    assert half == []  # a cell is renamed into place only once complete
    assert not list((ws.root / "L").rglob(".*.tmp"))  # no temporary file of an interrupted write
