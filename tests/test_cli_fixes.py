"""The CLI fixes of issue 32: a fast start, -q/-v after the command, suggestions for typos, defaults in --help,
train --limit for images, one name for MI-FACE's iterations, model files of the right type, a model given where a
reconstruction belongs (and vice versa), audit --data-root without a dataset, Ray logs without colour codes,
counts with their nouns."""
from __future__ import annotations

import argparse
import io
import json
import logging
import re
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from bl_testutils import modules_loaded_by
from brainleaks_lava import cli
from brainleaks_lava.cli import main
from brainleaks_lava.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "netx_models"
EVAL_ANN = SHIPPED / "mnist_eval_ann.h5"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------------------------------ start-up

def test_help_imports_nothing_heavy():
    """`brainleaks --help` and building the parser import neither torch, lava, numpy, h5py nor matplotlib (a command's
    options are added when it is chosen)."""
    code = ("from brainleaks_lava.cli import main\n"
            "assert main(['--help']) == 0\n"
            "assert main(['info', '--help']) == 0\n")
    assert modules_loaded_by(code, ("torch", "lava", "numpy", "h5py", "matplotlib"), ROOT) == []


# ------------------------------------------------------------------------------------------ -q / -v / --debug

@pytest.mark.parametrize("argv, quiet, verbose", [
    (["attack", "-q", "--model", "m.net", "--method", "bl2", "--out", "o.h5"], True, False),
    (["-q", "attack", "--model", "m.net", "--method", "bl2", "--out", "o.h5"], True, False),
    (["attack", "--model", "m.net", "--method", "bl2", "--out", "o.h5", "--verbose"], False, True),
    (["attack", "--model", "m.net", "--method", "bl2", "--out", "o.h5"], False, False),
])
def test_quiet_and_verbose_before_or_after_the_command(argv, quiet, verbose):
    ns = cli.build_parser().parse_args(argv)
    assert (ns.quiet, ns.verbose, ns.debug) == (quiet, verbose, False)


def test_quiet_after_the_command_runs(small_snn_path, capsys):
    from brainleaks_lava import progress

    assert main(["info", str(small_snn_path), "-q"]) == 0
    assert progress._quiet is True
    assert "topology:" in capsys.readouterr().out
    assert main(["info", str(small_snn_path)]) == 0
    assert progress._quiet is False


# ------------------------------------------------------------------------------------------ suggestions

@pytest.mark.parametrize("argv, suggestion", [
    (["atack"], "did you mean 'attack'?"),
    (["evalute", "--recon", "r.h5"], "did you mean 'evaluate'?"),
    (["attack", "--model", "m.net", "--methd", "bl2", "--out", "o.h5"], "did you mean '--method'?"),
    (["attack", "--model", "m.net", "--method", "bl2", "--out", "o.h5", "--iteratons=3"],
     "did you mean '--iterations'?"),
    (["attack", "--model", "m.net", "--method", "bl3", "--out", "o.h5"], "did you mean 'bl2'?"),
    (["--quite", "info", "m.net"], "did you mean '--quiet'?"),
])
def test_typos_get_a_suggestion(argv, suggestion, capsys):
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert line.endswith(f"{suggestion} (see '{line.split(':')[0]} --help')"), line


def test_no_suggestion_for_nothing_alike(capsys):
    assert main(["qqqqqq"]) == 2
    line = one_error_line(capsys)
    assert "invalid choice: 'qqqqqq'" in line and "did you mean" not in line


def test_negative_numbers_and_values_are_not_taken_for_options():
    assert cli._unknown_option(cli.build_parser(complete=True)._subparsers._group_actions[0].choices["attack"],
                               ["--lr", "-0.5", "--eta", "-1", "--input-range", "-1,1", "--", "--anything"]) is None
    assert cli._unknown_option(cli.build_parser(complete=True)._subparsers._group_actions[0].choices["attack"],
                               ["--lr", "-0.5", "-x"]) == "-x"


# ------------------------------------------------------------------------------------------ defaults in --help

def _options_with_defaults(parser: argparse.ArgumentParser):
    for a in parser._actions:
        if a.option_strings and a.help != argparse.SUPPRESS and a.default is not None and a.default is not False \
                and a.default != argparse.SUPPRESS and not isinstance(a.default, list):
            yield a


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_help_of_every_command_shows_its_defaults(command, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    sub = cli.build_parser(complete=True)._subparsers._group_actions[0].choices[command]
    shown = 0
    for a in _options_with_defaults(sub):
        helptext = " ".join((a.help or "").split())
        assert re.search(r"\(default\b|\bdefault\)", helptext), (command, a.option_strings, helptext)
        if "(default: " in helptext and not isinstance(a.default, tuple):
            assert helptext in text  # printed as written
        shown += 1
    assert "(default " not in text  # one spelling, "(default: X)"
    if command in ("train", "attack", "evaluate", "audit", "sweep"):
        assert shown >= 2


def test_defaults_are_the_parsers_own(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    sub = cli.build_parser(complete=True)._subparsers._group_actions[0].choices["train"]
    hidden = next(a for a in sub._actions if "--hidden" in a.option_strings)
    assert f"--hidden HIDDEN (default: {hidden.default})" in text
    assert text.count("(default: ") >= len(list(_options_with_defaults(sub))) - 2  # a help may state it in prose


# ------------------------------------------------------------------------------------------ train --limit (MNIST)

def test_limit_is_a_seeded_class_balanced_subsample():
    from brainleaks_lava.data import load_dataset, load_static

    full = load_static("mnist", None, split="train")
    a = load_dataset("mnist", None, split="train", limit=25)
    b = load_dataset("mnist", None, split="train", limit=25)
    assert len(a) == 25 and np.array_equal(a.labels, b.labels) and np.array_equal(a.images, b.images)
    counts = np.bincount(a.labels, minlength=10)
    assert counts.min() >= 2 and counts.max() <= 3  # round-robin over the 10 classes
    flat = full.images.reshape(len(full), -1)
    rows = [int(np.flatnonzero((flat == img.reshape(-1)).all(1))[0]) for img in a.images]
    assert rows == sorted(rows) and len(set(rows)) == 25  # images of the split, in its order
    assert rows != list(range(25))  # a sample, not the first 25
    assert np.array_equal(full.labels[rows], a.labels)
    assert "a seeded sample of 25 of its 1000 images" in a.source
    assert load_dataset("mnist", None, split="train", limit=5000) is not None
    assert len(load_dataset("mnist", None, split="train", limit=5000)) == len(full)
    with pytest.raises(InputError, match="limit"):
        load_dataset("mnist", None, split="train", limit=0)


@pytest.mark.slow
def test_train_limit_for_mnist(tmp_path, capsys):
    out = tmp_path / "ann.h5"
    assert main(["-q", "train", "--dataset", "mnist", "--arch", "ann", "--limit", "40", "--hidden", "8",
                 "--epochs", "1", "--threads", "1", "--out", str(out)]) == 0
    assert "on 40 images" in capsys.readouterr().out
    with h5py.File(out) as f:
        meta = json.loads(f.attrs["metadata"])
    assert meta["training"]["train_images"] == 40 and meta["validation_images"] == 40
    assert "a seeded sample of 40" in meta["data_source"]


# ------------------------------------------------------------------------------------------ MI-FACE iterations

MIFACE_CONFIG = """
[experiment]
name = "mi"

[dataset]
name = "mnist"

[targets.ann]
arch = "ann"
train = { hidden = 16, epochs = 1 }

[evaluators.ann]
kind = "ann"
train = { epochs = 1 }

[[attacks]]
name = "miface"
method = "miface"
target = "ann"
evaluator = "ann"
params = { PARAMS }
"""


def _config(tmp_path, params: str):
    from brainleaks_lava.report.config import load_config

    p = tmp_path / "mi.toml"
    p.write_text(MIFACE_CONFIG.replace("PARAMS", params))
    return load_config(p)


def test_miface_iterations_is_one_name(tmp_path, caplog):
    from brainleaks_lava.attacks import make_attack
    from brainleaks_lava.attacks.miface import MIFaceParams

    assert _config(tmp_path, "iterations = 7").attacks[0].params == {"iterations": 7}
    with caplog.at_level(logging.WARNING, logger="brainleaks_lava.report.config"):
        old = _config(tmp_path, "max_iterations = 9, lr = 0.2")
    assert old.attacks[0].params == {"iterations": 9, "lr": 0.2}
    assert any("'attacks[0].params.max_iterations' is the old name of 'iterations'" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(ConfigError, match="both 'iterations' and its old name 'max_iterations'"):
        _config(tmp_path, "iterations = 3, max_iterations = 9")
    with pytest.warns(FutureWarning, match="'max_iterations' is now called 'iterations'"):
        p = MIFaceParams(max_iterations=11)
    assert p.iterations == 11 and "max_iterations" not in p.to_dict()
    with pytest.raises(InputError, match="'iterations' only"):
        MIFaceParams(iterations=3, max_iterations=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns nothing
        assert MIFaceParams(iterations=5).iterations == 5


def test_cli_iterations_reach_miface(small_ann_path, tmp_path, capsys):
    from brainleaks_lava.attacks.recon_file import load_recon

    out = tmp_path / "mi.h5"
    assert main(["-q", "attack", "--model", str(small_ann_path), "--method", "miface", "--iterations", "3",
                 "--classes", "4", "--out", str(out)]) == 0
    rec = load_recon(out)
    assert rec.params["iterations"] == 3 and "max_iterations" not in rec.params
    assert int(rec.iterations[0]) <= 3
    stdout = capsys.readouterr().out
    assert "1 class," in stdout  # and not "1 classes"


# ------------------------------------------------------------------------------------------ model file types

@pytest.mark.parametrize("argv, says", [
    (["train", "--dataset", "mnist", "--arch", "ann", "--out", "x.net"], "an ANN target is written as an HDF5 .h5 file"),
    (["train", "--dataset", "mnist", "--arch", "snn", "--out", "x.h5"], "an SNN target is written as a NetX .net"),
    (["train", "--dataset", "mnist", "--arch", "snn-conv", "--out", "x"], "give --out NAME.net"),
    (["train-evaluator", "--dataset", "mnist", "--kind", "ann", "--out", "x.net"], "an evaluator is written as"),
])
def test_training_refuses_the_wrong_file_type(argv, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert says in line and argv[-1] in line
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def recon_path(tmp_path_factory, small_snn_path):
    from brainleaks_lava.attacks import adapter_for, make_attack
    from brainleaks_lava.attacks.recon_file import save_recon
    from brainleaks_lava.models.files import load_snn

    t = load_snn(small_snn_path)
    res = make_attack("bl2", adapter_for(t), iterations=1, population=2).invert(classes=[1, 2], seed=0,
                                                                                progress=False)
    return save_recon(res, tmp_path_factory.mktemp("recon") / "r.h5", model_path=str(small_snn_path),
                      model_sha256=t.sha256)


def test_a_model_where_a_reconstruction_belongs_and_vice_versa(recon_path, small_snn_path, capsys):
    cases = [
        (["evaluate", "--recon", str(EVAL_ANN), "--evaluator", str(EVAL_ANN)],
         f"{EVAL_ANN}: this is a model file (an evaluation classifier), not a reconstruction file"),
        (["evaluate", "--recon", str(small_snn_path), "--evaluator", str(EVAL_ANN)],
         f"{small_snn_path}: this is a model file (a NetX SNN network), not a reconstruction file"),
        (["plot", str(SHIPPED / "mnist_ann.h5")],
         "this is a model file (an ANN target), not a reconstruction file"),
        (["evaluate", "--recon", str(recon_path), "--evaluator", str(recon_path)],
         f"{recon_path}: this is a reconstruction file, not an evaluation classifier"),
        (["evaluate", "--recon", str(recon_path), "--evaluator", str(SHIPPED / "mnist_ann.h5")],
         "this is a model file (an ANN target), not an evaluation classifier"),
        (["attack", "--model", str(recon_path), "--method", "bl2", "--out", "never.h5"],
         f"{recon_path}: this is a reconstruction file, not a target model"),
        (["attack", "--model", str(EVAL_ANN), "--method", "miface", "--out", "never.h5"],
         "this is a model file (an evaluation classifier), not a target model"),
        (["replay", "--model", str(SHIPPED / "mnist_ann.h5"), "--random", "1"],
         "this is a model file (an ANN target), not a NetX network file (.net)"),
    ]
    for argv, says in cases:
        assert main(argv) == 2, argv
        line = one_error_line(capsys)
        assert says in line and "attribute 'format'" not in line, (argv, line)
    assert not Path("never.h5").exists()


# ------------------------------------------------------------------------------------------ audit --data-root

def test_audit_data_root_without_a_dataset_is_said_at_once(small_snn_path, tmp_path, capsys, monkeypatch):
    import importlib
    import shutil

    from brainleaks_lava.data.mnist import vendored_mnist_root

    audit = importlib.import_module("brainleaks_lava.audit")  # the module (the package's `audit` is the API's)

    calls = []

    def fake_audit(model, evaluator, out, **kw):  # the audit itself is tested in tests/test_audit.py
        calls.append(kw)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text("report\n")

    monkeypatch.setattr(audit, "run_audit", fake_audit)
    anonymous = tmp_path / "anon.net"
    shutil.copy(small_snn_path, anonymous)
    meta = json.loads(small_snn_path.with_suffix(".json").read_text())
    meta.pop("dataset")
    anonymous.with_suffix(".json").write_text(json.dumps(meta))
    root = str(vendored_mnist_root())
    argv = ["audit", "--evaluator", str(EVAL_ANN), "--data-root", root, "--out"]
    assert main([*argv[:1], str(anonymous), *argv[1:], str(tmp_path / "a1")]) == 0
    line = one_error_line(capsys)
    assert line.startswith("brainleaks audit: note:") and "does not name the dataset" in line and "--dataset" in line
    assert calls[-1]["data_root"] == root and calls[-1]["dataset"] is None
    # named by the sidecar, or given: nothing to say
    assert main([*argv[:1], str(small_snn_path), *argv[1:], str(tmp_path / "a2")]) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv[:1], str(anonymous), *argv[1:], str(tmp_path / "a3"), "--dataset", "mnist"]) == 0
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ Ray logs

def test_ray_log_prefixes_without_colour_codes(monkeypatch):
    from brainleaks_lava.sweep import engines

    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # not a terminal, as a log file
    engines.plain_ray_logs()
    assert engines.os.environ["RAY_COLOR_PREFIX"] == "0"
    monkeypatch.setenv("RAY_COLOR_PREFIX", "1")  # the user's choice is kept
    engines.plain_ray_logs()
    assert engines.os.environ["RAY_COLOR_PREFIX"] == "1"


def test_ray_prints_worker_lines_plain_with_it(monkeypatch):
    worker = pytest.importorskip("ray._private.worker")
    data = {"pid": 4242, "ip": "1.2.3.4", "localhost": "1.2.3.4", "task_name": "unit", "lines": ["epoch 1 done"]}
    monkeypatch.setattr(worker, "_worker_logs_enabled", True)

    def printed() -> str:
        buf = io.StringIO()
        worker.print_worker_logs(dict(data), buf)
        return buf.getvalue()

    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    assert "\x1b[" in printed()  # Ray's default, even into a file
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    from brainleaks_lava.sweep.engines import plain_ray_logs

    plain_ray_logs()
    text = printed()
    assert "\x1b" not in text and "(unit pid=4242) epoch 1 done" in text


# ------------------------------------------------------------------------------------------ plurals

def test_plural():
    from brainleaks_lava.text import plural

    assert [plural(n, "class") for n in (0, 1, 2)] == ["0 classes", "1 class", "2 classes"]
    assert plural(1, "image") == "1 image" and plural(3, "image") == "3 images"
    assert plural(2, "epoch") == "2 epochs" and plural(2, "batch") == "2 batches"
    assert plural("1,000", "cell") == "1,000 cells" and plural(2, "child", "children") == "2 children"


def test_counts_of_one_are_singular(capsys):
    assert main(["dataset", "--dataset", "mnist", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 image of 28x28, 1 class, per class" in out
    assert "classes" not in out.replace("per class", "") and "images of" not in out
