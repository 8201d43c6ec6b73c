import json
from pathlib import Path

import pytest

from brainleaks_lava.cli import main
from brainleaks_lava.errors import ConfigError
from brainleaks_lava.report.config import load_config
from brainleaks_lava.report.runner import run_experiment

TINY = """
[experiment]
name = "tiny"
seed = 3
threads = 1

[dataset]
name = "mnist"

[targets.snn]
arch = "snn"
train = { hidden = 16, epochs = 1, steps = 8, batch_size = 100 }

[evaluators.ann]
kind = "ann"
train = { epochs = 1, batch_size = 100 }

[[attacks]]
name = "bl2"
method = "bl2"
target = "snn"
evaluator = "ann"
params = { iterations = 2, population = 3 }

[evaluation]
draws = 2

[replay]
enabled = true
draws = 2
"""


def write(tmp_path, text, name="exp.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def no_partial_files(run_dir: Path) -> bool:
    return not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_train_or_attack(tmp_path):
    cfg = write(tmp_path, TINY)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="injected failure after the attack stage"):
        run_experiment(cfg, out, fail_after="attack")
    state = json.loads((out / "state.json").read_text())
    assert {"train/snn", "train/eval_ann", "attack/bl2"} <= set(state)
    assert not (out / "report.md").exists()
    assert no_partial_files(out)
    attack_file = out / "attacks" / "bl2.h5"
    mtime = attack_file.stat().st_mtime_ns

    report = run_experiment(cfg, out)
    last = json.loads((out / "last_run.json").read_text())
    assert set(last["skipped"]) == {"train/snn", "train/eval_ann", "attack/bl2"}
    assert set(last["ran"]) == {"evaluate/bl2", "replay/bl2", "report"}
    assert attack_file.stat().st_mtime_ns == mtime
    text = report.read_text()
    assert "Attack Acc." in text and "identical to twin" in text and (out / "bl2.png").is_file()
    assert no_partial_files(out)

    run_experiment(cfg, out)  # nothing changed: every stage is skipped
    last = json.loads((out / "last_run.json").read_text())
    assert last["ran"] == []

    # changing an attack parameter reruns that attack and what depends on it, not the training
    write(tmp_path, TINY.replace("iterations = 2", "iterations = 3"))
    run_experiment(cfg, out)
    last = json.loads((out / "last_run.json").read_text())
    assert "train/snn" in last["skipped"] and "attack/bl2" in last["ran"] and "report" in last["ran"]

    # scoring with contrast standardisation reruns the evaluation and the report only, and says so
    write(tmp_path, TINY.replace("iterations = 2", "iterations = 3").replace("draws = 2\n\n[replay]",
                                                                            "draws = 2\ncontrast = \"standardise\"\n\n[replay]"))
    report = run_experiment(cfg, out)
    last = json.loads((out / "last_run.json").read_text())
    assert set(last["ran"]) == {"evaluate/bl2", "report"}
    stats = json.loads((out / "evaluation" / "bl2.json").read_text())["contrast"]
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    m, sd = load_evaluator(out / "models" / "eval_ann.h5").image_stats
    assert stats == {"mean": m, "std": sd} and 0.05 < m < 0.3
    assert "standardised to a grey-level mean" in report.read_text()
    assert json.loads((out / "metrics.json").read_text())["attacks"]["bl2"]["contrast"] == stats


@pytest.mark.parametrize("mutation,key", [
    (("[dataset]\nname = \"mnist\"", "[dataset]\nname = \"mnist\"\nroots = \"x\""), "dataset.roots"),
    (("seed = 3", "seed = \"three\""), "experiment.seed"),
    (("draws = 2\n\n[replay]", "draws = 2.5\n\n[replay]"), "evaluation.draws"),
    (("enabled = true", "enabled = 1"), "replay.enabled"),
    (("draws = 2\n\n[replay]", "draws = 2\ncontrast = \"bright\"\n\n[replay]"), "evaluation.contrast"),
    (("draws = 2\n\n[replay]", "draws = 2\ncontrast = [0.4]\n\n[replay]"), "evaluation.contrast"),
    (("draws = 2\n\n[replay]", "draws = 2\ncontrast = [0.4, 0.0]\n\n[replay]"), "evaluation.contrast"),
    (("draws = 2\n\n[replay]", "draws = 2\ncontrast = [\"a\", 0.2]\n\n[replay]"), "evaluation.contrast"),
    (("draws = 2\n\n[replay]", "draws = 2\ncontrast = 0.4\n\n[replay]"), "evaluation.contrast"),
    (("params = { iterations = 2, population = 3 }", "params = 5"), "attacks[0].params"),
    (("method = \"bl2\"", "method = \"bl9\""), "attacks[0].method"),
    (("target = \"snn\"\nevaluator", "target = \"cnn\"\nevaluator"), "attacks[0].target"),
    (("[targets.snn]\narch = \"snn\"", "[targets.snn]\narch = \"snn\"\ncolour = 1"), "targets.snn.colour"),
    (("hidden = 16", "hiden = 16"), "targets.snn.train.hiden"),
    (("hidden = 16", "hidden = 16, weight_decay = -0.5"), "targets.snn.train.weight_decay"),
    (("hidden = 16", "hidden = 16, threshold = 0.0"), "targets.snn.train.threshold"),
    (("hidden = 16", "hidden = 16, threshold = \"8\""), "targets.snn.train.threshold"),
    (("hidden = 16", "hidden = 16, tau_grad = 0.0"), "targets.snn.train.tau_grad"),
    (("hidden = 16", "hidden = 16, scale_grad = -1.0"), "targets.snn.train.scale_grad"),
])
def test_bad_config_names_the_key(tmp_path, mutation, key):
    old, new = mutation
    assert old in TINY
    cfg = write(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(cfg)


def test_contrast_setting_forms(tmp_path):
    with_contrast = lambda v: TINY.replace("draws = 2\n\n[replay]", f"draws = 2\ncontrast = {v}\n\n[replay]")
    assert load_config(write(tmp_path, TINY)).contrast == "none"
    assert load_config(write(tmp_path, with_contrast('"standardize"'))).contrast == "standardise"
    assert load_config(write(tmp_path, with_contrast("[0.5, 0.25]"))).contrast == (0.5, 0.25)
    events = with_contrast('"standardise"').replace('name = "mnist"', 'name = "nmnist"\nroot = "."')
    with pytest.raises(ConfigError, match="evaluation.contrast.*nmnist"):
        load_config(write(tmp_path, events))


def test_train_settings_threshold_and_weight_decay_accepted(tmp_path):
    cfg = load_config(write(tmp_path, TINY.replace("hidden = 16", "hidden = 16, threshold = 8.0, weight_decay = 0.5")))
    assert cfg.targets["snn"].train["threshold"] == 8.0 and cfg.targets["snn"].train["weight_decay"] == 0.5


def test_surrogate_settings_reach_the_trained_target(tmp_path):
    cfg = write(tmp_path, TINY.replace("hidden = 16", "hidden = 16, tau_grad = 0.003, scale_grad = 2.0"))
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="injected failure after the train stage"):
        run_experiment(cfg, out, fail_after="train")
    neuron = json.loads((out / "models" / "snn.json").read_text())["spec"]["neuron"]
    assert neuron["tau_grad"] == 0.003 and neuron["scale_grad"] == 2.0


def test_cli_run_bad_config_exit_2(tmp_path, capsys):
    cfg = write(tmp_path, TINY.replace("seed = 3", "sede = 3"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "experiment.sede" in err[0]
    assert not (tmp_path / "r").exists()


def test_paths_resolved_relative_to_config(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "t.net").write_bytes(b"x")
    text = TINY.replace('train = { hidden = 16, epochs = 1, steps = 8, batch_size = 100 }', 'model = "../models/t.net"')
    cfg = load_config(write(tmp_path / "sub", text))
    assert cfg.targets["snn"].model == (tmp_path / "models" / "t.net").resolve()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(write(tmp_path / "sub", text.replace("../models/t.net", "../models/none.net")))


@pytest.mark.parametrize("name", ["demo", "mnist", "att_faces", "nmnist", "dvs_gesture"])
def test_shipped_experiment_configs_parse(name, tmp_path):
    """Every experiments/*.toml is valid under the strict schema (its dataset root pointed at a tmp dir)."""
    from brainleaks_lava.report.config import parse_config, tomllib

    path = Path(__file__).resolve().parents[2] / "experiments" / f"{name}.toml"
    raw = tomllib.loads(path.read_text())
    if "root" in raw["dataset"]:
        raw["dataset"]["root"] = str(tmp_path)
    cfg = parse_config(raw, path)
    assert cfg.name == name and cfg.attacks and cfg.paper
    assert {a.target for a in cfg.attacks} <= set(cfg.targets)
    if name in ("nmnist", "dvs_gesture"):
        assert cfg.time_bins and "time_bins" in cfg.data_options()


def test_blenc_attack_in_a_run(tmp_path):
    """A run config may name BL-enc (method blenc, with its own parameters); its reconstructions are
    evaluated, replayed on Lava and reported like the other attacks; a key BL-enc lacks is named."""
    text = TINY.replace('method = "bl2"', 'method = "blenc"').replace(
        "params = { iterations = 2, population = 3 }", "params = { iterations = 3, tv = 2.0, init_rate = 0.4, sparsity = 0.0 }")
    with pytest.raises(ConfigError, match=r"attacks\[0\]\.params\.population.*allowed for blenc"):
        load_config(write(tmp_path, text.replace("sparsity = 0.0", "sparsity = 0.0, population = 3"), "bad.toml"))
    cfg = write(tmp_path, text)
    assert load_config(cfg).attacks[0].params["tv"] == 2.0
    out = tmp_path / "run"
    run_experiment(cfg, out)
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    assert "BL-enc" in report
    entry = metrics["attacks"]["bl2"]
    assert entry["method"] == "blenc" and entry["replay"]["agreement"] == 1.0 and entry["replay"]["samples"] == 20


def test_every_evaluator_kind_of_the_panel_is_accepted_and_others_are_refused(tmp_path):
    """The independent judges (resnet, reject) can be trained or named by a run config like ann and snn."""
    for kind in ("resnet", "reject", "snn"):
        cfg = load_config(write(tmp_path, TINY.replace('kind = "ann"', f'kind = "{kind}"', 1)))
        assert cfg.evaluators["ann"].kind == kind
    with pytest.raises(ConfigError, match=r"evaluators\.ann\.kind.*one of ann, snn, resnet, reject, got 'vit'"):
        load_config(write(tmp_path, TINY.replace('kind = "ann"', 'kind = "vit"', 1)))
