"""Issue 31, round 3: every count a user or a file can set is bounded before work starts, the bound in the message.

- threads and workers (``--threads`` of train, train-evaluator, attack and audit; ``replay --workers``; ``sweep
  --workers``; ``experiment.threads`` of a run config; ``study.threads``; the Python API's ``TrainConfig``,
  ``apply_threads``, replay ``workers`` and sweep ``Engine``): at most ``safety.max_threads()`` = 4 per CPU;
- a study's cells, counted from the lengths of its axes before anything is expanded (at most 10,000 cells and
  1,000 values per axis), and its evaluator's training settings;
- the time steps of a deployment, from every source (card, sidecar, option, config) through one check (at most
  ``safety.MAX_TIME_STEPS``), and the other card fields that size work (input shape, class names, the card's size);
- reconstruction files: time steps, features, reconstructions and values per dataset, from the shapes alone,
  for every consumer (evaluate, plot, replay, run); ``plot`` bounds its panels and the frames of its GIF.

Every CLI case runs as a real ``brainleaks`` subprocess, measured: exit 2, one line naming the file or field and
the bound, under 1 GB and 30 s, nothing written.
"""
from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

import bad_cases
from bad_cases import Workspace, changes, snapshot
from measure import PeakMemory, run_measured
from studies import STUDY

from brainleaks_lava.attacks.recon_file import MAX_RECON_VALUES, MAX_RECONSTRUCTIONS, RECON_FORMAT
from brainleaks_lava.errors import ConfigError, InputError, ModelFileError
from brainleaks_lava.report.plot import MAX_GIF_FRAMES, MAX_PLOT_PANELS
from brainleaks_lava.safety import MAX_COUNTS, MAX_INPUTS, MAX_TIME_STEPS, max_threads
from brainleaks_lava.sweep.config import MAX_AXIS_VALUES, MAX_CELLS

TOP = max_threads()  # 4 per CPU of this machine

# (case, the command a user types, what the toolkit does now)
TABLE = [
    ("torch threads: a million", "brainleaks train --dataset mnist --arch snn --out m.net --threads 1000000",
     "exit 2 before any work: 'argument --threads: must be an integer in 0..N (4 per CPU; this process may use "
     "C), got 1000000' (was: creating threads, 30,000 seen, deaf to SIGTERM)"),
    ("torch threads of train-evaluator", "brainleaks train-evaluator --dataset mnist --kind ann --out e.h5 "
     "--threads 1000000", "exit 2: the same line"),
    ("torch threads of attack", "brainleaks attack --model good.net --method bl1 --out o.h5 --threads 1000000",
     "exit 2: the same line"),
    ("torch threads of audit", "brainleaks audit good.net --evaluator eval.h5 --threads 1000000",
     "exit 2: the same line"),
    ("Lava runtimes in parallel", "brainleaks replay --model good.net --recon recon.h5 --workers 1000000",
     "exit 2: 'argument --workers: must be an integer in 1..N (4 per CPU; ...), got 1000000'"),
    ("sweep worker processes", "brainleaks sweep study.toml --workers 1000000", "exit 2: the same bound"),
    ("run config threads", "brainleaks run threads.toml  (experiment.threads = 1000000)",
     "exit 2: \"threads.toml: 'experiment.threads' must be an integer in 0..N (4 per CPU; ...), got 1000000\""),
    ("study threads", "brainleaks sweep study_threads.toml  (study.threads = 1000000)",
     "exit 2: \"study_threads.toml: 'study.threads' must be an integer in 0..N (...)\""),
    ("study of 5.8e12 cells", "brainleaks sweep cells.toml  (300 seeds x 1000 steps x 1000 hidden x 300 "
     "thresholds x 64 weight steps)",
     "exit 2 before expanding anything: 'cells.toml: the grid has 5,760,000,000,000 cells (300 study.seeds x ...); "
     "a study may have at most 10,000 cells (split it into several studies)' (was: out of memory)"),
    ("study axis of 5000 values", "brainleaks sweep axis.toml  (grid.steps = [1, ..., 5000])",
     "exit 2: \"axis.toml: 'grid.steps' lists 5000 values; a study axis may have at most 1000\""),
    ("study evaluator time steps", "brainleaks sweep eval_steps.toml  (evaluator.train = { steps = 1000000 })",
     "exit 2: \"'evaluator.train.steps' must be positive and at most 10000, got 1000000\""),
    ("study grid time steps", "brainleaks sweep grid_steps.toml  (grid.steps = [8, 100000])",
     "exit 2: \"'grid.steps[1]' must be at most 10000, got 100000\""),
    ("deployment card: 100,000 time steps", "brainleaks attack --model card_steps.net --method bl1 --out o.h5  "
     "(card_steps.card.toml: steps = 100000)",
     "exit 2: \"deployment card card_steps.card.toml: 'steps' must be an integer in 1..10000, got 100000\" (was: 13 "
     "GB peak)"),
    ("deployment card: input shape of 3e10 values", "brainleaks info card_shape.net  (input_shape = [100000, 100000, "
     "3])", "exit 2: \"deployment card card_shape.card.toml: 'input_shape' must hold at most 1048576 values per "
     "sample (its product is 30000000000), ...\""),
    ("deployment card: 10,001 class names", "brainleaks info card_classes.net",
     "exit 2: \"deployment card card_classes.card.toml: 'classes' must list 1..10000 class names (it lists 10001)\""),
    ("deployment card of 100 kB", "brainleaks info card_big.net",
     "exit 2: 'card_big.card.toml: the deployment card is larger than the 65,536-byte limit (100,011 bytes)'"),
    ("--steps 100000", "brainleaks attack --model good.net --method bl1 --out o.h5 --steps 100000",
     "exit 2: 'argument --steps: must be an integer in 1..10000 (time steps per sample), got 100000'"),
    ("reconstruction of 57,000 time steps, scored", "brainleaks evaluate --recon long.h5 --evaluator eval.h5",
     "exit 2 before reading the data: \"long.h5: the time steps of 'samples' (shape (3, 784, 57000)) must be an "
     "integer in 1..10000, got 57000\" (was: 2 GB)"),
    ("... drawn", "brainleaks plot long.h5", "exit 2: the same line (was: 3.4 GB, then a crash in the GIF writer)"),
    ("... replayed", "brainleaks replay --model good.net --recon long.h5", "exit 2: the same line"),
    ("20,000 reconstructions in one file", "brainleaks evaluate --recon many.h5 --evaluator eval.h5",
     "exit 2: \"many.h5: the number of reconstructions ('samples' of shape (20000, 4, 2)) must be an integer in "
     "0..10000, got 20000\""),
    ("2,000,000 features", "brainleaks plot wide.h5",
     "exit 2: \"wide.h5: the features of 'samples' (shape (1, 2000000, 1)) must be an integer in 0..1048576\""),
    ("loss history of 5e7 values", "brainleaks evaluate --recon history.h5 --evaluator eval.h5",
     "exit 2: \"history.h5: 'loss_history' of shape (50000000, 3) holds 150000000 values; a reconstruction file "
     "holds at most 33554432 per dataset\""),
    ("a figure of 300 reconstructions", "brainleaks plot panels.h5",
     "exit 2: 'panels.h5 holds 300 reconstructions; a figure shows at most 200'"),
    ("an animation of 10,000 time steps (valid)", "brainleaks plot t10k.h5 --out t10k.gif",
     "exit 0: a GIF of 500 frames, each the mean of 20 steps (logged), under 1 GB"),
    ("every other count", "brainleaks train --dataset mnist --arch snn --hidden 99999999 --out m.net (and --population, "
     "--random, --draws, --seed, a run config's attack iterations)",
     "exit 2 naming the option and its bound (safety.MAX_COUNTS)"),
    ("an attack batch larger than memory", "brainleaks attack --model good.net --method bl2 --population 4096 --steps "
     "10000 --iterations 1 --out o.h5", "exit 2 before any work: 'bl2 on 10 classes (40960 inputs ...) needs N GiB, more "
     "than the M GiB of memory available'"),
]


def _list(values) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _recon(path: Path, shape: tuple, history: tuple | None = None, random: bool = False) -> None:
    """A reconstruction file of spike trains of ``shape`` (R, features, T): compressed zeros (or random spikes),
    small on disk whatever the shape says."""
    r = shape[0]
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": RECON_FORMAT, "attack": "bl2", "mode": "paper", "params": "{}", "seed": 0,
                        "model_path": "", "model_sha256": "", "input_kind": "spikes", "seconds": 0.0, "extra": "{}"})
        f.create_dataset("targets", data=np.arange(r, dtype=np.int64) % 10, compression="gzip")
        chunks = (1, min(shape[1], 1 << 16), min(shape[2], 1000))
        if random:
            data = (np.random.default_rng(0).random(shape) < 0.1).astype(np.uint8)
            f.create_dataset("samples", data=data, compression="gzip", chunks=chunks)
        else:
            f.create_dataset("samples", shape=shape, dtype=np.uint8, compression="gzip", chunks=chunks)
        f.create_dataset("confidence", data=np.zeros(r, np.float32), compression="gzip")
        f.create_dataset("iterations", data=np.zeros(r, np.int64), compression="gzip")
        h = history or (1, r)
        f.create_dataset("loss_history", shape=h, dtype=np.float32, compression="gzip",
                         chunks=(min(h[0], 1 << 20), h[1]))


def _card(ws: Workspace, stem: str, text: str) -> str:
    ws.copy(ws.net, f"{stem}.net")
    ws.write(f"{stem}.card.toml", text)
    return f"{stem}.net"


def _file(ws: Workspace, name: str, build) -> str:
    if not (ws.root / name).exists():
        build(ws.root / name)
    return name


# ----------------------------------------------------------------------------------------------
# the cases: name -> build(ws) -> (argv, strings the one line must hold)
# ----------------------------------------------------------------------------------------------

def _threads(option: str, minimum: int):
    return ["--" + option, f"must be an integer in {minimum}..{TOP}", "per CPU", "1000000"]


def _study(ws, name, text):
    ws.evaluator
    return ws.write(name, text)


def _config_params(ws, old: str, new: str, names: list[str]):
    name = ws.config(names[0], bad_cases.GOOD_CONFIG.replace(old, new))
    return ["run", name, "--out", "run_out"], names


CASES = {
    # threads and workers
    "threads_train": lambda ws: (["train", "--dataset", "mnist", "--arch", "snn", "--out", "m.net", "--threads",
                                  "1000000"], _threads("threads", 0)),
    "threads_train_evaluator": lambda ws: (["train-evaluator", "--dataset", "mnist", "--kind", "ann", "--out", "e.h5",
                                            "--threads", "1000000"], _threads("threads", 0)),
    "threads_attack": lambda ws: (["attack", "--model", ws.net, "--method", "bl1", "--out", "o.h5", "--threads",
                                   "1000000"], _threads("threads", 0)),
    "threads_audit": lambda ws: (["audit", ws.net, "--evaluator", ws.evaluator, "--out", "audit_out", "--threads",
                                  "1000000"], _threads("threads", 0)),
    "workers_replay": lambda ws: (["replay", "--model", ws.net, "--recon", ws.recon, "--workers", "1000000"],
                                  _threads("workers", 1)),
    "workers_sweep": lambda ws: (["sweep", _study(ws, "study.toml", STUDY), "--out", "sweep_out", "--workers",
                                  "1000000"], _threads("workers", 1)),
    "threads_run_config": lambda ws: (
        ["run", ws.config("threads.toml", bad_cases.GOOD_CONFIG.replace("seed = 0", "seed = 0\nthreads = 1000000")),
         "--out", "run_out"], ["threads.toml", "'experiment.threads'", f"0..{TOP}", "per CPU", "1000000"]),
    "threads_study": lambda ws: (
        ["sweep", _study(ws, "study_threads.toml", STUDY.replace("threads = 1", "threads = 1000000")), "--out",
         "sweep_out"], ["study_threads.toml", "'study.threads'", f"0..{TOP}", "1000000"]),
    # the size of a study
    "study_cells": lambda ws: (
        ["sweep", _study(ws, "cells.toml", STUDY.replace("seeds = [0]", f"seeds = {_list(range(300))}").replace(
            "steps = [8]", f"steps = {_list(range(1, 1001))}\nhidden = {_list(range(1, 1001))}\n"
                           f"threshold = {_list(round(1 + i / 1000, 3) for i in range(300))}\n"
                           f"weight_step = {_list(range(1, 65))}")), "--out", "sweep_out"],
        ["cells.toml", "5,760,000,000,000 cells", "300 study.seeds", "1000 grid.steps", f"at most {MAX_CELLS:,}"]),
    "study_axis": lambda ws: (
        ["sweep", _study(ws, "axis.toml", STUDY.replace("steps = [8]", f"steps = {_list(range(1, 5001))}")),
         "--out", "sweep_out"], ["axis.toml", "'grid.steps'", "5000 values", f"at most {MAX_AXIS_VALUES}"]),
    "study_evaluator_steps": lambda ws: (
        ["sweep", _study(ws, "eval_steps.toml", STUDY.replace('model = "eval.h5"',
                                                               "train = { epochs = 1, steps = 1000000 }")),
         "--out", "sweep_out"], ["eval_steps.toml", "'evaluator.train.steps'", f"at most {MAX_TIME_STEPS}", "1000000"]),
    "study_grid_steps": lambda ws: (
        ["sweep", _study(ws, "grid_steps.toml", STUDY.replace("steps = [8]", "steps = [8, 100000]")), "--out",
         "sweep_out"], ["grid_steps.toml", "'grid.steps[1]'", f"at most {MAX_TIME_STEPS}", "100000"]),
    # deployments
    "card_steps": lambda ws: (
        ["attack", "--model", _card(ws, "card_steps", "steps = 100000\n"), "--method", "bl1", "--out", "o.h5"],
        ["deployment card card_steps.card.toml", "'steps'", f"1..{MAX_TIME_STEPS}", "100000"]),
    "card_input_shape": lambda ws: (
        ["info", _card(ws, "card_shape", "input_shape = [100000, 100000, 3]\n")],
        ["card_shape.card.toml", "'input_shape'", f"at most {MAX_INPUTS} values", "30000000000"]),
    "card_classes": lambda ws: (
        ["info", _card(ws, "card_classes", "classes = [" + ", ".join(['""'] * 10_001) + "]\n")],
        ["card_classes.card.toml", "'classes'", "1..10000", "10001"]),
    "card_too_big": lambda ws: (
        ["info", _card(ws, "card_big", "steps = 12\n" + "# padding\n" * 10_000)],
        ["card_big.card.toml", "65,536-byte limit", "100,011 bytes"]),
    "cli_steps": lambda ws: (["attack", "--model", ws.net, "--method", "bl1", "--out", "o.h5", "--steps", "100000"],
                             ["--steps", f"1..{MAX_TIME_STEPS}", "100000"]),
    # reconstruction files
    "recon_long_evaluate": lambda ws: (
        ["evaluate", "--recon", _file(ws, "long.h5", lambda p: _recon(p, (3, 784, 57_000))), "--evaluator",
         ws.evaluator], ["long.h5", "time steps", "(3, 784, 57000)", f"1..{MAX_TIME_STEPS}"]),
    "recon_long_plot": lambda ws: (
        ["plot", _file(ws, "long.h5", lambda p: _recon(p, (3, 784, 57_000)))],
        ["long.h5", "time steps", f"1..{MAX_TIME_STEPS}", "57000"]),
    "recon_long_replay": lambda ws: (
        ["replay", "--model", ws.net, "--recon", _file(ws, "long.h5", lambda p: _recon(p, (3, 784, 57_000)))],
        ["long.h5", "time steps", f"1..{MAX_TIME_STEPS}", "57000"]),
    "recon_many": lambda ws: (
        ["evaluate", "--recon", _file(ws, "many.h5", lambda p: _recon(p, (20_000, 4, 2))), "--evaluator",
         ws.evaluator], ["many.h5", "number of reconstructions", f"0..{MAX_RECONSTRUCTIONS}", "20000"]),
    "recon_features": lambda ws: (
        ["plot", _file(ws, "wide.h5", lambda p: _recon(p, (1, 2_000_000, 1)))],
        ["wide.h5", "features", f"0..{MAX_INPUTS}", "2000000"]),
    "recon_history": lambda ws: (
        ["evaluate", "--recon", _file(ws, "history.h5", lambda p: _recon(p, (3, 784, 12), history=(50_000_000, 3))),
         "--evaluator", ws.evaluator], ["history.h5", "'loss_history'", "150000000 values", str(MAX_RECON_VALUES)]),
    # every other count an option sets (safety.MAX_COUNTS), and their product in an attack's batch
    "hidden": lambda ws: (["train", "--dataset", "mnist", "--arch", "snn", "--hidden", "99999999", "--out", "m.net"],
                          ["--hidden", f"1..{MAX_COUNTS['hidden'][0]}", "99999999"]),
    "population": lambda ws: (["attack", "--model", ws.net, "--method", "bl2", "--population", "100000", "--out",
                               "o.h5"], ["--population", f"1..{MAX_COUNTS['population'][0]}", "100000"]),
    "random_samples": lambda ws: (["replay", "--model", ws.net, "--random", "1000000"],
                                  ["--random", f"1..{MAX_COUNTS['random'][0]}", "1000000"]),
    "draws": lambda ws: (["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--draws", "100000"],
                         ["--draws", f"1..{MAX_COUNTS['draws'][0]}", "100000"]),
    "seed": lambda ws: (["attack", "--model", ws.net, "--method", "bl1", "--seed", "9" * 30, "--out", "o.h5"],
                        ["--seed", f"0..{MAX_COUNTS['seed'][0]}"]),
    "config_iterations": lambda ws: _config_params(ws, "iterations = 2", "iterations = 99999999",
                                                   ["iterations.toml", "attacks[0].params", "iterations",
                                                    f"1..{MAX_COUNTS['iterations'][0]}"]),
    "attack_batch_memory": lambda ws: (
        ["attack", "--model", ws.net, "--method", "bl2", "--population", "4096", "--steps", "10000", "--iterations",
         "1", "--out", "o.h5"], ["bl2 on 10 classes", "40960 inputs", "GiB", "memory available"]),
    "plot_panels": lambda ws: (
        ["plot", _file(ws, "panels.h5", lambda p: _recon(p, (300, 4, 2)))],
        ["panels.h5", "300 reconstructions", f"at most {MAX_PLOT_PANELS}"]),
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("bounds"))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_count_exit_2_one_line_with_the_bound(ws, name):
    argv, names = CASES[name](ws)
    before = snapshot(ws.root)
    m = run_measured(argv, ws.root, timeout=60)
    assert m.code == 2, (argv, m.code, m.stderr[-2000:])
    assert len(m.lines) == 1, (argv, m.stderr[-2000:])
    line = m.lines[0]
    assert line.startswith(f"brainleaks {argv[0]}: error: "), line
    missing = [n for n in names if n not in line]
    assert not missing, (missing, line)
    assert m.budget_problems() == [], (argv, m.budget_problems(), m.peak_mb, m.seconds)
    assert changes(before, snapshot(ws.root)) == []  # nothing written, every input byte for byte


def test_long_animation_is_binned_to_the_frame_bound(ws):
    """A valid file of 10,000 time steps: plot writes a GIF of at most MAX_GIF_FRAMES frames (each the mean of
    consecutive steps, logged), within the budget."""
    from PIL import Image

    name = _file(ws, "t10k.h5", lambda p: _recon(p, (3, 784, 10_000), random=True))
    m = run_measured(["plot", name, "--out", "t10k.gif"], ws.root, timeout=120)
    assert m.code == 0, m.stderr[-2000:]
    assert m.lines == [f"WARNING brainleaks_lava.report.plot: {name}: 10000 time steps drawn as 500 frames, each the "
                       f"mean of 20 steps (at most {MAX_GIF_FRAMES} frames and 268435456 pixels in an animation)"]
    assert m.budget_problems() == [], m.budget_problems()
    with Image.open(ws.root / "t10k.gif") as gif:
        assert 1 < gif.n_frames <= MAX_GIF_FRAMES


def test_time_bins_are_means_of_consecutive_steps():
    from brainleaks_lava.report.plot import time_bins

    a = np.arange(2 * 7, dtype=np.float32).reshape(2, 7)
    np.testing.assert_allclose(time_bins(a, 3), [[1, 4, 6], [8, 11, 13]])
    assert time_bins(a, 1) is a


# ----------------------------------------------------------------------------------------------
# the Python API: the same bounds
# ----------------------------------------------------------------------------------------------

def test_api_thread_and_worker_counts_are_bounded():
    import torch

    from brainleaks_lava.hardware.replay import check_workers
    from brainleaks_lava.models.training import TrainConfig, apply_threads
    from brainleaks_lava.sweep.engines import Engine

    before = torch.get_num_threads()
    bound = re.escape(f"must be an integer in 0..{TOP} (4 per CPU")
    with PeakMemory() as pm:
        with pytest.raises(InputError, match="threads " + bound):
            TrainConfig(threads=10**6)
        with pytest.raises(InputError, match="threads " + bound):
            apply_threads(10**6)
        assert torch.get_num_threads() == before  # refused before torch was told anything
        with pytest.raises(InputError, match=re.escape(f"workers must be an integer in 1..{TOP}")):
            check_workers(10**6)
        with pytest.raises(InputError, match=re.escape(f"workers must be an integer in 1..{TOP}")):
            Engine("local", 10**6)
        assert check_workers(TOP) == TOP and TrainConfig(threads=TOP).threads == TOP
    assert pm.budget_problems() == []


def test_api_deployment_option_steps_bounded(ws):
    from brainleaks_lava.models.files import load_snn

    with PeakMemory() as pm:
        with pytest.raises(ModelFileError, match=r"deployment option: 'steps' must be an integer in 1\.\.10000, got "
                                                 r"100000"):
            load_snn(ws.root / ws.net, options={"steps": 100_000})
    assert pm.budget_problems() == []


def test_study_cells_counted_without_expanding():
    from brainleaks_lava.sweep.config import count_cells

    huge = {"steps": list(range(1000)), "hidden": list(range(1000)), "threshold": list(range(1000))}
    with PeakMemory() as pm:
        with pytest.raises(ConfigError, match=r"the grid has 1,000,000,000 cells \(1000 grid.steps x 1000 grid.threshold"
                                              r" x 1000 grid.hidden\); a study may have at most 10,000 cells"):
            count_cells([0], huge)
        assert count_cells([0, 1], {"steps": [8, 16], "defense": ["none", "dp"]}) == 8
    assert pm.budget_problems() == []
