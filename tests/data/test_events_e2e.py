"""Event data through the whole chain, on tiny synthetic recordings written in N-MNIST's real format:
train (CLI) -> export -> BL-v2 (CLI) -> evaluate (CLI) -> Lava replay (CLI), replay agreement 100%."""
from __future__ import annotations

import json

import numpy as np
import pytest

from brainleaks_lava.attacks.recon_file import load_recon
from brainleaks_lava.cli import main
from brainleaks_lava.data import load_dataset, synthetic_events
from brainleaks_lava.evaluation.classifiers import train_evaluator
from brainleaks_lava.models.files import load_snn
from brainleaks_lava.models.training import TrainConfig
from event_fixtures import write_synthetic_nmnist

T = 14
CLASSES = 4


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory):
    """Moving bars (4 orientations) as N-MNIST .bin files: Train/ 40 per class, Test/ 10 per class."""
    root = tmp_path_factory.mktemp("nmnist")
    write_synthetic_nmnist(root, synthetic_events(40, CLASSES, size=(34, 34), time_bins=T, seed=1), "Train",
                           polarity=0)
    write_synthetic_nmnist(root, synthetic_events(10, CLASSES, size=(34, 34), time_bins=T, seed=2), "Test",
                           polarity=0)
    return root


@pytest.mark.slow
def test_event_chain_train_attack_evaluate_replay(nmnist_root, tmp_path, capsys):
    # the real loader frames the files with the paper's N-MNIST framing (T bins of 3 ms)
    tr = load_dataset("nmnist", nmnist_root, "train", time_bins=T)
    assert tr.frames.shape == (40 * CLASSES, 1, 34, 34, T) and tr.frames.sum() > 0

    net = tmp_path / "ev.net"
    assert main(["train", "--dataset", "nmnist", "--data-root", str(nmnist_root), "--arch", "snn",
                 "--hidden", "48", "--steps", str(T), "--epochs", "6", "--batch-size", "20", "--lr", "0.003",
                 "--threads", "1", "--out", str(net)]) == 0
    snn = load_snn(net)
    meta = snn.metadata
    assert meta["encoding"]["kind"] == "frames" and meta["input_shape"] == [1, 34, 34]
    assert snn.spec.sizes == (34 * 34, 48, 10) and snn.spec.steps == T
    assert meta["validation_accuracy"] >= 0.8  # 4 learnable classes, 40 validation recordings

    ev = tmp_path / "eval.h5"
    ev_meta = train_evaluator("snn", "nmnist", nmnist_root, ev,
                              TrainConfig(epochs=4, batch_size=20, lr=0.003, seed=0, threads=1),
                              steps=T, validate_each_epoch=False)
    assert ev_meta["input_shape"] == [34, 34] and ev_meta["encoding"]["channels"] == 1

    rec_path = tmp_path / "bl2.h5"
    classes = [str(c) for c in range(CLASSES)]
    assert main(["attack", "--model", str(net), "--method", "bl2", "--classes", *classes,
                 "--iterations", "15", "--seed", "0", "--threads", "1", "--out", str(rec_path)]) == 0
    rec = load_recon(rec_path)
    assert rec.samples.shape == (CLASSES, 34 * 34, T)
    # the attack raised the target's confidence for every class above the uniform 1/10
    assert np.all(rec.confidence > 0.1 + 0.05)

    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["evaluate", "--recon", str(rec_path), "--evaluator", str(ev), "--draws", "3",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Attack Acc." in printed and "DAA" in printed
    scored = json.loads(out.read_text())
    assert scored["summary"]["n_draws"] == 3

    rep = tmp_path / "replay.json"
    assert main(["replay", "--model", str(net), "--recon", str(rec_path), "--draws", "3",
                 "--json", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["samples"] == 3 * CLASSES and report["agreement"] == 1.0
    assert all(s["voltage_equal"] for s in report["per_sample"])

    # the runner on the same files: report with a PNG and a GIF of the frames (T frames)
    from PIL import Image

    from brainleaks_lava.report.runner import run_experiment

    cfg = tmp_path / "ev.toml"
    cfg.write_text(f"""
[experiment]
name = "ev"
[dataset]
name = "nmnist"
root = "{nmnist_root}"
time_bins = {T}
[targets.snn]
arch = "snn"
model = "ev.net"
[evaluators.snn]
kind = "snn"
model = "eval.h5"
[[attacks]]
name = "bl2"
method = "bl2"
mode = "paper"
target = "snn"
evaluator = "snn"
classes = [0, 1, 2, 3]
params = {{ iterations = 5 }}
[evaluation]
draws = 2
[replay]
draws = 2
""")
    md = run_experiment(cfg, out=tmp_path / "run")
    text = md.read_text()
    assert "![bl2 frames](bl2.gif)" in text and "| bl2 | 8 | 100.00% |" in text
    gif = Image.open(tmp_path / "run" / "bl2.gif")
    assert gif.n_frames == T


def test_train_nmnist_empty_dir_exit_2_says_where_files_go(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "t.net"
    assert main(["train", "--dataset", "nmnist", "--data-root", str(empty), "--arch", "snn",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(empty) in err[0] and "Train" in err[0] and "Test" in err[0]
    assert not out.exists()


def test_event_targets_refuse_ann(nmnist_root, tmp_path, capsys):
    assert main(["train", "--dataset", "nmnist", "--data-root", str(nmnist_root), "--arch", "ann",
                 "--out", str(tmp_path / "a.h5")]) == 2
    assert "event data" in capsys.readouterr().err
