"""Run configs with the latent search gen: its prior file as ``params.prior`` (relative to the config file), every
config error naming its key, and a tiny run whose attack stage reruns when the prior file's content changes."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from brainleaks_lava.errors import ConfigError
from brainleaks_lava.priors.files import save_prior
from brainleaks_lava.priors.vae import train_prior
from brainleaks_lava.report.config import load_config
from brainleaks_lava.report.runner import run_experiment
from test_runner import TINY, write

# a small VAE for 28x28 images: trains in well under a second
ARCH = {"kind": "conv-vae", "image_shape": [1, 28, 28], "latent_dim": 4, "work_shape": [8, 8], "channels": [4, 8],
        "hidden": 16}
PROVENANCE = {"public_split": "test-digits", "dataset": "mnist", "images": 12, "source": "random test images",
              "disjoint_from": "the tiny target's training records"}

# test_runner's tiny run with the ANN target file and gen in place of its BL-v2 attack
GEN = (TINY.replace('name = "tiny"', 'name = "tinygen"')
       .replace("[evaluators.ann]", '[targets.ann]\narch = "ann"\nmodel = "ann.h5"\n\n[evaluators.ann]')
       .replace('name = "bl2"\nmethod = "bl2"', 'name = "gen1"\nmethod = "gen"')
       .replace("params = { iterations = 2, population = 3 }",
                'classes = [0, 1]\nparams = { prior = "priors/p.h5", starts = 2, iterations = 3 }'))


def tiny_prior(path, seed: int = 0):
    images = np.random.default_rng(seed).random((12, 28, 28)).astype(np.float32)
    prior = train_prior(images, epochs=1, batch_size=6, seed=seed, threads=1, progress=False, architecture=ARCH,
                        provenance=PROVENANCE)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_prior(prior, path)


@pytest.fixture
def config_dir(tmp_path):
    """A config directory with the files GEN names: a prior file and an (empty) ANN model file."""
    tiny_prior(tmp_path / "priors" / "p.h5")
    (tmp_path / "ann.h5").write_bytes(b"x")  # only its existence is checked when the config is read
    return tmp_path


def _key(key: str) -> str:
    return key.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")


def test_gen_config_accepted_with_its_prior_resolved_relative_to_the_config(config_dir):
    (config_dir / "sub").mkdir()
    cfg = load_config(write(config_dir / "sub", GEN.replace('"priors/p.h5"', '"../priors/p.h5"')
                            .replace('model = "ann.h5"', 'model = "../ann.h5"')))
    a = cfg.attacks[0]
    assert a.method == "gen" and a.prior == (config_dir / "priors" / "p.h5").resolve()
    assert a.params == {"starts": 2, "iterations": 3}  # the prior is not a parameter of GenParams
    assert "prior" not in a.settings()


@pytest.mark.parametrize("old,new,key,also", [
    # gen without its prior
    ('prior = "priors/p.h5", ', "", "attacks[0].params.prior", "missing key"),
    # a prior for another method
    ('method = "gen"', 'method = "blenc"', "attacks[0].params.prior", "only method gen"),
    # a key gen does not have
    ("iterations = 3", "iterations = 3, population = 4", "attacks[0].params.population", "allowed for gen"),
    # a prior file that does not exist: the key and the path
    ('"priors/p.h5"', '"priors/none.h5"', "attacks[0].params.prior", "priors/none.h5 does not exist"),
    # a directory is not a prior file
    ('"priors/p.h5"', '"priors"', "attacks[0].params.prior", "is not a file"),
    # a prior that is not a path
    ('"priors/p.h5"', "5", "attacks[0].params.prior", "must be the path of a prior file"),
    # GenParams' own checks
    ("starts = 2", "starts = 0", "attacks[0].params", "starts must be a positive integer"),
    ("iterations = 3", "iterations = 3, objective = \"ce\"", "attacks[0].params", "objective must be one of"),
    ("iterations = 3", "iterations = 3, latent_weight = -1.0", "attacks[0].params", "latent_weight"),
    # gen has one mode
    ('method = "gen"', 'method = "gen"\nmode = "reference"', "attacks[0].mode", "one mode"),
    # gen attacks SNN targets
    ('target = "snn"\nevaluator', 'target = "ann"\nevaluator', "attacks[0].method", "SNN targets"),
])
def test_bad_gen_config_names_the_key(config_dir, old, new, key, also):
    assert old in GEN
    with pytest.raises(ConfigError, match=_key(key)) as e:
        load_config(write(config_dir, GEN.replace(old, new, 1)))
    assert also in str(e.value)


def test_a_file_that_is_no_prior_is_refused_before_any_stage(config_dir):
    (config_dir / "priors" / "p.h5").write_bytes(b"not a prior file")
    out = config_dir / "run"
    with pytest.raises(ConfigError, match=_key("attacks[0].params.prior") + ".*not a usable prior file"):
        run_experiment(write(config_dir, GEN), out)
    assert not (out / "state.json").exists()


@pytest.mark.slow
def test_gen_run_reports_the_prior_and_reruns_the_attack_when_the_prior_changes(config_dir):
    text = GEN.replace('[targets.ann]\narch = "ann"\nmodel = "ann.h5"\n\n', "")
    cfg = write(config_dir, text)
    out = config_dir / "run"
    report = run_experiment(cfg, out)
    first = json.loads((out / "last_run.json").read_text())
    assert "attack/gen1" in first["ran"] and first["skipped"] == []
    recon = out / "attacks" / "gen1.h5"
    assert recon.is_file()
    from brainleaks_lava.attacks.recon_file import load_recon
    from brainleaks_lava.fileio import sha256_file

    prior_file = config_dir / "priors" / "p.h5"
    rec = load_recon(recon)
    assert rec.attack == "gen" and list(rec.targets) == [0, 1]
    assert rec.extra["prior"]["sha256"] == sha256_file(prior_file)
    assert rec.extra["prior"]["provenance"] == PROVENANCE
    state = json.loads((out / "state.json").read_text())
    assert state["attack/gen1"]["info"]["prior"]["sha256"] == sha256_file(prior_file)
    text_md = report.read_text()
    assert "Generative prior" in text_md and "public data test-digits of mnist, 12 images" in text_md
    assert json.loads((out / "metrics.json").read_text())["attacks"]["gen1"]["prior"]["provenance"] == PROVENANCE

    run_experiment(cfg, out)  # nothing changed: every stage is skipped
    assert json.loads((out / "last_run.json").read_text())["ran"] == []

    # another prior under the same name (another seed): the attack and what reads it run again, not the training
    before = sha256_file(recon)
    shutil.copyfile(tiny_prior(config_dir / "other.h5", seed=1), prior_file)
    run_experiment(cfg, out)
    last = json.loads((out / "last_run.json").read_text())
    assert {"attack/gen1", "evaluate/gen1", "replay/gen1", "report"} <= set(last["ran"])
    assert {"train/snn", "train/eval_ann"} <= set(last["skipped"])
    assert sha256_file(recon) != before
    assert load_recon(recon).extra["prior"]["sha256"] == sha256_file(prior_file)
