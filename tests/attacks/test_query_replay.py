"""Issue 30: the oracle's answers checked on Lava, the query sample in reconstruction files, query-time defenses
in ``attack`` (API and CLI) and the query-only attacks in a sweep config."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import netx_nets
from brainleaks_lava.api import attack
from brainleaks_lava.attacks.oracle import QueryOracle, expose_answer
from brainleaks_lava.attacks.recon_file import load_recon, save_recon
from brainleaks_lava.defenses.readout import ObservedPosterior, observed_posterior
from brainleaks_lava.errors import ConfigError, InputError, ModelFileError
from brainleaks_lava.hardware.equivalence import check_query_sample
from brainleaks_lava.models.files import load_snn

STEPS = 12
REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "experiments" / "sweep_query_defenses.toml"


@pytest.fixture(scope="module")
def signed_net(tmp_path_factory):
    return netx_nets.signed_net(tmp_path_factory.mktemp("signed") / "signed.net")


def _target(path, **options):
    return load_snn(path, options={"steps": STEPS, "encoding": "rate", "readout": "spikes", **options})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "brainleaks_lava.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


# ------------------------------------------------------------------ one arithmetic for the oracle and for Lava

@pytest.mark.parametrize("clip,rnd", [(None, None), (3, None), (None, 0.1), (2, 0.25)])
def test_expose_answer_is_the_defended_posterior(signed_net, clip, rnd):
    """From the twin's logits, ``expose_answer`` gives what ``ObservedPosterior`` gives the attacker, the counts
    it clips and the label of the clipped counts."""
    model = _target(signed_net).model
    x = (torch.rand(40, 16, STEPS, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with torch.no_grad():
        logits = model.logits(x)
        want = ObservedPosterior(clip_counts=clip, round_posterior=rnd)(model, x).double().numpy()
        out, _ = model.run(x)
    counts = out[..., model.settle:].sum(-1).numpy().astype(np.int64)
    scale = float(model.deployment.posterior_scale)
    np.testing.assert_array_equal(expose_answer(logits, "posterior", scale, rnd, clip), want)
    capped = counts if clip is None else np.minimum(counts, clip)
    np.testing.assert_array_equal(expose_answer(logits, "counts", scale, rnd, clip), capped)
    np.testing.assert_array_equal(expose_answer(logits, "label", scale, rnd, clip), np.argmax(capped, 1))
    with pytest.raises(InputError, match="exposes must be one of"):
        expose_answer(logits, "voltages", scale)


# ------------------------------------------------------------------ the query sample on Lava

@pytest.mark.parametrize("exposes,defense", [("counts", None), ("posterior", {"round_posterior": 0.1}),
                                             ("label", {"clip_counts": 2, "input_flip": 0.05})])
def test_oracle_answers_are_the_chips(signed_net, exposes, defense):
    """Every sampled query replayed on Lava: identical spikes and the same answer; a tampered answer is caught."""
    target = _target(signed_net)
    oracle = QueryOracle(target, exposes=exposes, defense=observed_posterior(defense), budget=400, seed=5, keep=60)
    for i in range(4):
        oracle.query(torch.rand(100, 16, generator=torch.Generator().manual_seed(i)))
    sample = oracle.sample_for_replay(60)
    qc = check_query_sample(signed_net, sample, oracle.describe(), target, progress=False)
    assert qc.report.agreement == 1.0 and qc.same_answer.all() and len(qc.same_answer) == 60
    assert qc.to_dict()["differing_queries"] == []
    bad = {**sample, "outputs": sample["outputs"].copy()}
    if exposes == "label":
        bad["outputs"][7] = 1 - bad["outputs"][7]
    else:
        bad["outputs"][7, 0] += 1
    qc = check_query_sample(signed_net, bad, oracle.describe(), target, progress=False)
    assert qc.same_answer.sum() == 59 and qc.to_dict()["differing_queries"] == [int(sample["index"][7])]
    with pytest.raises(InputError, match="what it exposes"):
        check_query_sample(signed_net, sample, {"exposes": "everything"}, target, progress=False)


def test_query_sample_round_trip_and_corrupt_files(signed_net, tmp_path):
    target = _target(signed_net)
    res = attack(target, "nes", classes=[0, 1], queries=400, population=5, progress=False)
    q = res.query_sample
    assert q is not None and q["inputs"].shape[1:] == (16, STEPS) and len(q["inputs"]) == 200
    assert q["outputs"].shape == (200, 2) and np.all(np.diff(q["index"]) > 0) and q["index"].max() < 400
    path = save_recon(res, tmp_path / "nes.h5")
    back = load_recon(path)
    for key in ("inputs", "outputs", "index"):
        np.testing.assert_array_equal(back.query_sample[key], q[key])
    cases = {
        "missing": (lambda f: f.__delitem__("query_index"), "needs all of"),
        "non-binary": (lambda f: _replace(f, "query_inputs", f["query_inputs"][()] * 2), "binary spikes"),
        "shape": (lambda f: _replace(f, "query_inputs", f["query_inputs"][()][:, :8]), "like 'samples'"),
        "answers": (lambda f: _replace(f, "query_outputs", f["query_outputs"][()][:5]), "'query_outputs' must have"),
        "nan": (lambda f: _replace(f, "query_outputs", np.full_like(f["query_outputs"][()], np.nan)), "finite"),
        "order": (lambda f: _replace(f, "query_index", f["query_index"][()][::-1]), "increasing"),
    }
    for name, (damage, message) in cases.items():
        bad = tmp_path / f"{name}.h5"
        bad.write_bytes(path.read_bytes())
        with h5py.File(bad, "a") as f:
            damage(f)
        with pytest.raises(ModelFileError, match=message) as e:
            load_recon(bad)
        assert str(bad) in str(e.value)


def _replace(f, key, data):
    del f[key]
    f.create_dataset(key, data=data)


# ------------------------------------------------------------------ the defense in attack (API and CLI)

def test_attack_takes_the_deployments_defense(signed_net):
    target = _target(signed_net)
    res = attack(target, "nes", classes=[0], queries=200, population=5, defense={"round_posterior": 0.25},
                 progress=False)
    assert res.extra["oracle"]["round_posterior"] == 0.25 and res.extra["defense"] == {"round_posterior": 0.25}
    assert np.all(np.isin(res.query_sample["outputs"], [0.0, 0.25, 0.5, 0.75, 1.0]))
    res = attack(target, "bl2", classes=[0, 1], iterations=3, population=4, defense={"round_posterior": 0.5},
                 progress=False)
    assert np.all(np.isin(res.confidence, [0.0, 0.5, 1.0]))  # the gradient attacker sees the rounded posterior
    with pytest.raises(InputError, match="unknown defense setting 'round'"):
        attack(target, "nes", defense={"round": 0.1}, progress=False)
    with pytest.raises(InputError, match="round_posterior must be in"):
        attack(target, "nes", defense={"round_posterior": 1.5}, progress=False)


def test_cli_defense_and_query_replay(signed_net, tmp_path):
    common = ["--model", signed_net, "--steps", STEPS, "--encoding", "rate", "--readout", "spikes"]
    out = tmp_path / "nes.h5"
    r = _cli("attack", *common, "--method", "nes", "--queries", 300, "--classes", 0, "--round-posterior", 0.1,
             "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    assert "300 queries answered (nes, the deployment exposes posterior, posterior rounded to 0.1)" in r.stdout
    r = _cli("replay", *common, "--recon", out, "--draws", 1, "-q")
    assert r.returncode == 0, r.stderr
    assert "200/200 answered the same from Lava's read-out (posterior, posterior rounded to 0.1)" in r.stdout
    with h5py.File(out, "a") as f:  # an answer the chip would not give
        f["query_outputs"][3, 0] = 0.7
    r = _cli("replay", *common, "--recon", out, "--draws", 1, "-q")
    assert r.returncode == 1 and "199/200 answered the same" in r.stdout and "answered differently" in r.stderr
    for flags, message in [(["--method", "nes", "--round-posterior", 0], "round_posterior must be in (0, 1]"),
                           (["--method", "nes", "--input-flip", 0.9], "input_flip"),
                           (["--method", "nes", "--straight-through", "--round-posterior", 0.1], "straight-through"),
                           (["--method", "nes", "--clip-counts", 0], "clip-counts")]:
        r = _cli("attack", *common, *flags, "--out", tmp_path / "x.h5", "-q")
        assert r.returncode == 2 and message in r.stderr, (flags, r.stderr)
        assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------------ sweeps

def test_sweep_config_takes_query_attacks(tmp_path):
    from brainleaks_lava.sweep.config import load_study, resolve_attack

    assert resolve_attack("nes", "attacks.names[0]") == ("nes", {}, 0)
    assert resolve_attack("label", "attacks.names[0]") == ("label", {}, 0)
    with pytest.raises(ConfigError, match="nes"):
        resolve_attack("nes2", "attacks.names[0]")
    study = load_study(STUDY)
    assert [a.method for a in study.attacks] == ["bl2", "nes", "label"]
    assert study.attacks[1].params == {"queries": 100000}
    bad = tmp_path / "bad.toml"
    text = STUDY.read_text().replace("../netx_models", str(REPO / "netx_models"))
    bad.write_text(text.replace("queries = 100000\n\n[attacks.params.label]", "querys = 100000\n\n[attacks.params.label]"))
    with pytest.raises(ConfigError, match="attacks.params.nes.querys"):
        load_study(bad)


def test_api_replay_checks_the_oracles_answers(signed_net):
    import brainleaks_lava as bl

    target = _target(signed_net)
    res = attack(target, "label", classes=[0, 1], queries=300, progress=False)
    rep = bl.replay(target, res, draws=1, progress=False)
    assert rep.agreement == 1.0 and rep.queries is not None
    assert rep.queries.agreement == 1.0 and len(rep.queries.same_answer) == len(res.query_sample["index"]) >= 100
    res.query_sample["outputs"][0] = 1 - res.query_sample["outputs"][0]
    assert bl.replay(target, res, draws=1, progress=False).queries.same_answer.sum() == len(res.query_sample["index"]) - 1
    assert bl.replay(target, res.samples, targets=res.targets, progress=False).queries is None  # plain arrays
