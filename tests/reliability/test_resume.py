"""Resume trusts nothing stale: a stage whose input changed on disk (same path, same config) runs again; a run
directory's ``state.json`` that is not a state is refused; temporary files of killed writers are removed."""
from __future__ import annotations

import json
import os
import re
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


# ---------------------------------------------------------------------------------------------------------
# what a person sees while a run goes, and training stages that resume mid-way
# ---------------------------------------------------------------------------------------------------------

def _stage_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(("stage ", "run "))]


def test_run_prints_a_line_per_stage_start_end_and_skip_unless_quiet(ws, capsys):
    from brainleaks_lava import progress

    cfg, out = ws.root / "exp.toml", ws.root / "run"
    capsys.readouterr()
    run_experiment(cfg, out)
    lines = _stage_lines(capsys.readouterr().err)
    heads = ["stage 1/3: attack bl2", "stage 2/3: evaluate bl2", "stage 3/3: report"]
    assert [ln for ln in lines if ln.endswith(" ...")] == [h + " ..." for h in heads]
    done = [ln for ln in lines if " done in " in ln]
    assert [ln.split(" done in ")[0] for ln in done] == heads
    assert all(re.fullmatch(r"(\d+\.\ds|\d+s|\d+m\d\ds|\d+h\d\dm)", ln.split(" done in ")[1]) for ln in done)
    assert re.fullmatch(r"run bad-input: 3 stages run, 0 already done, in \S+", lines[-1])

    run_experiment(cfg, out)
    again = _stage_lines(capsys.readouterr().err)
    assert again[:-1] == [h + ": already done, skipped" for h in heads]
    assert re.fullmatch(r"run bad-input: 0 stages run, 3 already done, in \S+", again[-1])

    progress.set_quiet(True)
    try:
        run_experiment(cfg, out, force=True)
    finally:
        progress.set_quiet(False)
    assert capsys.readouterr().err == ""


TRAIN_CONFIG = """
[experiment]
name = "resume"
seed = 3
threads = 1

[dataset]
name = "mnist"

[targets.snn]
arch = "snn"
train = { hidden = 16, epochs = 3, steps = 6, batch_size = 100 }

[[attacks]]
name = "bl2"
method = "bl2"
target = "snn"
params = { iterations = 1, population = 2 }

[replay]
enabled = false
"""


def _interrupt_after_checkpoints(monkeypatch, n: int) -> None:
    """Ctrl-C right after the training's ``n``-th checkpoint is written."""
    from brainleaks_lava.models import training

    real, count = training.save_checkpoint, [0]

    def save(*args, **kwargs):
        real(*args, **kwargs)
        count[0] += 1
        if count[0] == n:
            raise KeyboardInterrupt
    monkeypatch.setattr(training, "save_checkpoint", save)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The training stage of TRAIN_CONFIG, uninterrupted."""
    root = tmp_path_factory.mktemp("straight")
    (root / "exp.toml").write_text(TRAIN_CONFIG)
    run_experiment(root / "exp.toml", root / "run")
    return root / "run"


def test_run_interrupted_in_training_resumes_after_the_last_epoch_to_the_same_model(tmp_path, straight_run,
                                                                                    monkeypatch, capsys):
    from brainleaks_lava.models.checkpoint import read_checkpoint

    (tmp_path / "exp.toml").write_text(TRAIN_CONFIG)
    out = tmp_path / "run"
    ckpt = out / "models" / "snn.net.ckpt.h5"
    _interrupt_after_checkpoints(monkeypatch, 2)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tmp_path / "exp.toml", out)
    err = capsys.readouterr().err
    assert "stage 1/3: train target snn ..." in err
    assert re.search(r"^stage 1/3: train target snn: stopped after \S+; run the same command again to resume$", err, re.M)
    assert f"train snn: stopped in epoch 3/3; epochs 1-2 are kept in {ckpt}" in err
    assert read_checkpoint(ckpt).epoch == 2 and not (out / "models" / "snn.net").exists()
    monkeypatch.undo()

    run_experiment(tmp_path / "exp.toml", out)
    err = capsys.readouterr().err
    assert f"train snn: resuming from epoch 2/3 (checkpoint {ckpt})" in err
    epochs = re.findall(r"^train snn epoch (\d)/3: loss [\d.]+, train acc [\d.]+%, val acc [\d.]+% \(250 images\)", err, re.M)
    assert epochs == ["3"]
    net = out / "models" / "snn.net"
    assert net.read_bytes() == (straight_run / "models" / "snn.net").read_bytes()
    side, ref = (json.loads(p.with_suffix(".json").read_text()) for p in (net, straight_run / "models" / "snn.net"))
    assert side["training"]["history"] == ref["training"]["history"] and len(side["training"]["history"]["val_acc"]) == 3
    assert not ckpt.exists() and not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_train_killed_mid_training_resumes_to_the_same_model(tmp_path):
    """``kill -9`` of ``brainleaks train`` after its first epoch; the same command resumes and writes the file an
    uninterrupted training writes."""
    import signal
    import time

    from proctree import Command

    from brainleaks_lava.cli import main
    from brainleaks_lava.models.snn import NeuronConfig
    from brainleaks_lava.models.targets import TargetRequest, train_target
    from brainleaks_lava.models.training import TrainConfig

    out = tmp_path / "k.net"
    args = ["train", "--dataset", "mnist", "--arch", "snn", "--hidden", "48", "--steps", "12", "--batch-size", "25",
            "--epochs", "3", "--threads", "1", "--seed", "2", "--out", str(out)]
    cmd = Command(args, tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and cmd.proc.poll() is None and "epoch 1/3: loss" not in cmd.stderr:
        time.sleep(0.05)
    os.kill(cmd.proc.pid, signal.SIGKILL)
    assert cmd.proc.wait(timeout=30) == -signal.SIGKILL, cmd.stderr[-2000:]
    ckpt = tmp_path / "k.net.ckpt.h5"
    assert ckpt.is_file() and not out.exists()

    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    m = re.search(r"train snn: resuming from epoch (\d)/3", err.getvalue())
    assert m and 1 <= int(m.group(1)) <= 2, err.getvalue()
    assert not ckpt.exists() and [p.name for p in sorted(tmp_path.iterdir())] == ["k.json", "k.net"]

    ref = tmp_path / "ref" / "k.net"
    train_target(TargetRequest(dataset="mnist", arch="snn", hidden=48, steps=12, neuron=NeuronConfig.with_overrides()),
                 TrainConfig(epochs=3, batch_size=25, seed=2, threads=1), ref)
    assert out.read_bytes() == ref.read_bytes()
