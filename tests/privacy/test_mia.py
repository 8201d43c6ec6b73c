"""``brainleaks mia`` end to end on small targets trained through the toolkit's own training path."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from brainleaks_lava.data import load_static
from brainleaks_lava.errors import InputError, ModelFileError
from brainleaks_lava.models.files import export_snn, load_target
from brainleaks_lava.models.snn import SNNSpec, SpikingMLP
from brainleaks_lava.models.targets import TargetRequest, train_on_arrays, train_target
from brainleaks_lava.models.training import TrainConfig
from brainleaks_lava.privacy import run_mia
from brainleaks_lava.cli import _run_mia as run_mia_cli
from brainleaks_lava.privacy.command import add_mia
from brainleaks_lava.privacy.shadows import in_mask, recipe_of

torch.set_num_threads(1)
MEMBERS = 20


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    """784-64-10, T=12, trained 60 epochs on 20 real digits (train_on_arrays, the path of 'brainleaks train');
    the member and non-member .npz files."""
    d = tmp_path_factory.mktemp("mia")
    tr = load_static("mnist", None, split="train")
    va = load_static("mnist", None, split="val")
    xm, ym = tr.images[:MEMBERS], tr.labels[:MEMBERS]
    xn, yn = va.images[:MEMBERS], va.labels[:MEMBERS]
    req = TargetRequest(dataset="mnist", hidden=64, steps=12)
    cfg = TrainConfig(epochs=60, batch_size=10, lr=1e-2, seed=0, threads=1)
    train_on_arrays(req, cfg, d / "t.net", xm, ym, xn, yn, classes=tr.classes, data_source="test: 20 digits",
                    validate_epochs=False)
    np.savez(d / "members.npz", images=xm, labels=ym)
    np.savez(d / "non.npz", images=xn, labels=yn)
    return d


@pytest.mark.slow
def test_memorising_target_leaks_on_twin_and_lava_and_reruns_reuse_shadows(memorised):
    d = memorised
    out = d / "out"
    kw = dict(members=d / "members.npz", non_members=d / "non.npz", shadows=2, progress=False, seed=0)
    rep = run_mia(d / "t.net", out, **kw)
    twin, lava = rep.metrics["twin"], rep.metrics["lava"]
    assert twin["loss"]["auc"] >= 0.9
    assert twin["loss"]["members"] == MEMBERS and twin["loss"]["non_members"] == MEMBERS
    assert set(twin) == {"loss", "confidence", "lira_online", "lira_offline"}
    assert twin == lava  # the deployed network leaks exactly what the twin does
    eq = rep.equivalence
    assert eq["identical_outputs"] == eq["samples"] == 2 * MEMBERS and eq["posteriors_identical"]
    assert rep.shadows["trained"] == 2 and rep.shadows["reused"] == 0
    for name in ("report.md", "mia.json", "scores.csv", "roc.png", ".brainleaks-mia", "shadows/0.net",
                 "shadows/1.in.npy", "shadows/1.logits.npy"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "mia.json").read_text())
    assert saved["metrics"]["twin"]["loss"]["auc"] == twin["loss"]["auc"]
    rows = (out / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * MEMBERS and "loss_twin" in rows[0] and "lira_online_lava" in rows[0]
    # each shadow trained on half the pool of 40, with its IN mask as drawn
    np.testing.assert_array_equal(np.load(out / "shadows" / "0.in.npy"), in_mask(2 * MEMBERS, 0, 0))
    assert load_target(out / "shadows" / "1.net").metadata["training"]["train_images"] == MEMBERS
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "shadows").iterdir()}
    # the same command again: the shadow models are reused, the result is the same
    rep2 = run_mia(d / "t.net", out, **kw)
    assert rep2.shadows["trained"] == 0 and rep2.shadows["reused"] == 2
    assert rep2.metrics == rep.metrics
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shadows").iterdir() if p.name in mtimes} == mtimes
    # one more shadow model: the first two are kept, one is trained
    rep3 = run_mia(d / "t.net", out, **{**kw, "shadows": 3})
    assert rep3.shadows["trained"] == 1 and rep3.shadows["reused"] == 2
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_untrained_target_is_at_chance(tmp_path):
    """Random weights, a sidecar naming MNIST but no recipe: members from the vendored split 'train', shadow-free
    attacks only, twin only."""
    spec = SNNSpec(sizes=(784, 64, 10), steps=12)
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(5)
        model = SpikingMLP(spec)
    export_snn(model, tmp_path / "r.net", {"dataset": "mnist", "encoding": {"kind": "rate", "steps": 12}})
    rep = run_mia(tmp_path / "r.net", tmp_path / "out", shadows=4, replay=False, progress=False)
    m = rep.metrics["twin"]["loss"]
    assert m["members"] == m["non_members"] == 250  # every vendored non-member, as many members
    assert abs(m["auc"] - 0.5) <= 0.15
    assert set(rep.metrics) == {"twin"} and set(rep.metrics["twin"]) == {"loss", "confidence"}
    assert rep.shadows["used"] == 0 and "no training recipe" in rep.shadows["why_none"]
    assert "LiRA not run" in (tmp_path / "out" / "report.md").read_text()
    scores = np.genfromtxt(tmp_path / "out" / "scores.csv", delimiter=",", names=True)
    assert len(np.unique(scores["loss_twin"])) > 100  # the random network answers, it is not all ties


def _cli_args(argv):
    p = argparse.ArgumentParser()
    add_mia(p)
    args = p.parse_args(argv)
    args.command, args.debug = "mia", False
    return args


def test_cli_without_member_information_exits_2(tmp_path, capsys):
    from brainleaks_lava import cli

    spec = SNNSpec(sizes=(16, 8, 2), steps=6)
    export_snn(SpikingMLP(spec), tmp_path / "f.net", {})
    argv = [str(tmp_path / "f.net"), "--out", str(tmp_path / "out"), "--no-replay"]
    if "mia" in cli.COMMANDS:
        code = cli.main(["mia", *argv])
    else:  # not registered yet: the same guarded runner the CLI uses
        code = cli._run_guarded(_cli_args(argv), run_mia_cli)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "no member information" in err[0] and "--members" in err[0] and "--dataset" in err[0]
    assert not (tmp_path / "out").exists()  # nothing written


def test_refusals(tmp_path, memorised):
    d = memorised
    with pytest.raises(InputError, match="both --members and --non-members"):
        run_mia(d / "t.net", tmp_path / "a", members=d / "members.npz", progress=False)
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.full((3, 28, 28), 255.0), labels=np.zeros(3, int))
    with pytest.raises(InputError, match=r"intensities in \[0, 1\]"):
        run_mia(d / "t.net", tmp_path / "b", members=bad, non_members=d / "non.npz", progress=False)
    np.savez(bad, images=np.zeros((3, 7, 7)), labels=np.zeros(3, int))
    with pytest.raises(InputError, match="784 values per image"):
        run_mia(d / "t.net", tmp_path / "c", members=bad, non_members=d / "non.npz", progress=False)
    obj = tmp_path / "obj.npz"
    np.savez(obj, images=np.array([object()], dtype=object), labels=np.zeros(1, int))
    with pytest.raises(InputError, match="must hold numbers"):
        run_mia(d / "t.net", tmp_path / "d", members=obj, non_members=d / "non.npz", progress=False)
    # the sidecar says 20 training images: the vendored split 'train' (1,000) cannot be its training set
    with pytest.raises(InputError, match="not its training set"):
        run_mia(d / "t.net", tmp_path / "e", progress=False)
    # an output directory another command wrote is refused before any work
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(Exception, match="holds other files"):
        run_mia(d / "t.net", other, members=d / "members.npz", non_members=d / "non.npz", progress=False)
    assert not any((tmp_path / n).exists() for n in "abcde")  # refused before anything was written
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_recipe_of_the_shipped_target_and_a_broken_sidecar(tmp_path):
    t = load_target("netx_models/mnist_snn.net")
    r, why = recipe_of(t)
    assert why == ""
    assert (r.request.arch, r.request.hidden, r.request.steps, r.request.readout) == ("snn", 3000, 25, "membrane")
    assert (r.train.epochs, r.train.batch_size, r.train.lr) == (10, 100, 5e-05)
    assert r.request.neuron.tau_grad == 0.003
    spec = SNNSpec(sizes=(16, 8, 2), steps=6)
    export_snn(SpikingMLP(spec), tmp_path / "s.net", {"encoding": {"kind": "rate", "steps": 6},
                                                      "training": {"epochs": 10 ** 9}})
    with pytest.raises(ModelFileError, match="training.epochs"):
        recipe_of(load_target(tmp_path / "s.net"))


def test_train_target_is_train_on_arrays_of_its_splits(tmp_path):
    """The refactor: train_target == train_on_arrays on the two splits (the shadow models' path), byte for byte."""
    req = TargetRequest(dataset="mnist", hidden=16, steps=5, downsample=4)
    cfg = TrainConfig(epochs=1, batch_size=100, lr=1e-3, seed=3, threads=1)
    train_target(req, cfg, tmp_path / "a.net")
    tr = load_static("mnist", None, split="train", downsample=4)
    va = load_static("mnist", None, split="val", downsample=4)
    train_on_arrays(req, cfg, tmp_path / "b.net", tr.images, tr.labels, va.images, va.labels, classes=tr.classes,
                    data_source=va.source)
    assert (tmp_path / "a.net").read_bytes() == (tmp_path / "b.net").read_bytes()
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    for m in (a, b):
        m["training"].pop("seconds")
        m.pop("net_file")
    assert a == b


@pytest.mark.slow
def test_process_pool_gives_the_same_shadow_models(memorised, tmp_path):
    """Shadow models trained by two spawned workers (1 torch thread each) give the results of this process."""
    d = memorised
    kw = dict(members=d / "members.npz", non_members=d / "non.npz", shadows=2, progress=False, replay=False,
              threads=1)
    one = run_mia(d / "t.net", tmp_path / "one", workers=1, **kw)
    two = run_mia(d / "t.net", tmp_path / "two", workers=2, **kw)
    assert two.shadows["trained"] == 2
    assert one.metrics == two.metrics
    for i in range(2):
        assert (tmp_path / "one" / "shadows" / f"{i}.net").read_bytes() == \
            (tmp_path / "two" / "shadows" / f"{i}.net").read_bytes()
