"""Attacks on a network deployed with a graded input drive: they optimise the drive within its range, the
result is a 'drive' reconstruction, which is saved, validated, scored and replayed on Lava."""
import h5py
import numpy as np
import pytest
import torch

import netx_nets
from brainleaks_lava.attacks import adapter_for, make_attack
from brainleaks_lava.attacks.recon_file import load_recon, save_recon
from brainleaks_lava.cli import main
from brainleaks_lava.errors import ModelFileError
from brainleaks_lava.evaluation.score import evaluator_input
from brainleaks_lava.models.files import load_snn

STEPS = 16


@pytest.fixture(scope="module")
def graded_net(tmp_path_factory):
    path, _ = netx_nets.input_layer(tmp_path_factory.mktemp("graded") / "input.net")
    return path


def _start(adapter, value):
    with torch.no_grad():
        return adapter.posterior(torch.full((1, *adapter.input_shape), value))[0].numpy()


@pytest.mark.parametrize("method", ["bl1", "bl2"])
@pytest.mark.parametrize("input_range", [(0.0, 1.0), (-1.0, 2.0)])
def test_attack_optimises_the_drive_within_its_range(graded_net, method, input_range):
    target = load_snn(graded_net, options={"steps": STEPS, "input_range": input_range})
    assert target.model.deployment.encoding == "graded"  # a network with an input layer: graded by default
    adapter = adapter_for(target)
    assert adapter.drive_range == input_range
    classes = [1, 3, 4]
    result = make_attack(method, adapter, iterations=30).invert(classes=classes, seed=0, progress=False)
    assert result.input_kind == "drive" and result.drive_range == input_range
    assert result.probabilities is None  # the drive is not sampled
    s = result.samples
    assert s.dtype == np.float32 and s.shape == (3, 36, STEPS)
    lo, hi = input_range
    assert s.min() >= lo and s.max() <= hi
    # graded values, not only the ends of the range
    assert np.any((s > lo + 1e-6) & (s < hi - 1e-6))
    start = _start(adapter, max(lo, 0.0))  # both attacks start from the drive 0
    for c, conf in zip(classes, result.confidence):
        assert conf > start[c] + 0.3, (method, c, conf, start[c])
    # the reported confidence is the twin's posterior of the returned drive
    with torch.no_grad():
        post = adapter.posterior(torch.as_tensor(s))
    np.testing.assert_allclose(post[np.arange(3), classes].numpy(), result.confidence, rtol=1e-5)


def test_bl1_graded_steps_move_the_drive_on_its_grid(graded_net):
    adapter = adapter_for(load_snn(graded_net, options={"steps": STEPS}))
    r = make_attack("bl1", adapter, iterations=10, graded_step=0.25).invert(classes=[1], seed=0, progress=False)
    q = r.samples / 0.25  # the range is [0, 1] and the start 0
    np.testing.assert_allclose(q, np.round(q), atol=1e-6)
    assert len(np.unique(r.samples)) > 2


def test_spike_attacks_unchanged_on_spike_input(graded_net):
    """The same file deployed with a rate encoder: 0/1 spikes into the input layer, as before."""
    adapter = adapter_for(load_snn(graded_net, options={"steps": STEPS, "encoding": "rate"}))
    assert adapter.drive_range is None
    r = make_attack("bl2", adapter, iterations=5).invert(classes=[1], seed=0, progress=False)
    assert r.input_kind == "spikes" and set(np.unique(r.samples)) <= {0, 1}


def test_drive_recon_roundtrip_and_validation(graded_net, tmp_path):
    adapter = adapter_for(load_snn(graded_net, options={"steps": STEPS, "input_range": (-1.0, 2.0)}))
    r = make_attack("bl2", adapter, iterations=3).invert(classes=[0, 1], seed=0, progress=False)
    path = save_recon(r, tmp_path / "drive.h5")
    back = load_recon(path)
    assert back.input_kind == "drive" and back.drive_range == (-1.0, 2.0)
    np.testing.assert_array_equal(back.samples, r.samples)
    np.testing.assert_allclose(back.view(), np.clip((r.samples + 1.0) / 3.0, 0, 1))

    def corrupt(name, edit):
        p = tmp_path / name
        p.write_bytes(path.read_bytes())
        with h5py.File(p, "r+") as f:
            edit(f)
        return p

    bad = corrupt("range.h5", lambda f: f.attrs.__setitem__("drive_range", "[2.0, 1.0]"))
    with pytest.raises(ModelFileError, match="drive_range"):
        load_recon(bad)
    bad = corrupt("nan.h5", lambda f: f.attrs.__setitem__("drive_range", "[0, NaN]"))
    with pytest.raises(ModelFileError, match="drive_range"):
        load_recon(bad)

    def outside(f):
        s = f["samples"][...]
        s[0, 0, 0] = 5.0
        del f["samples"]
        f["samples"] = s
    with pytest.raises(ModelFileError, match="samples.*drive range"):
        load_recon(corrupt("outside.h5", outside))


def test_evaluator_sees_the_normalised_time_average():
    class Ann:
        kind = "ann"
    drive = np.array([[[-1.0, 2.0], [0.5, 0.5]]], dtype=np.float32)  # range (-1, 2): means 0.5 and 0.5
    x = evaluator_input(drive, Ann(), "drive", torch.Generator(), (-1.0, 2.0))
    np.testing.assert_allclose(x.numpy(), [[0.5, 0.5]])


@pytest.mark.slow
def test_cli_attack_and_replay_of_a_graded_drive(graded_net, tmp_path, capsys):
    out = tmp_path / "g.h5"
    assert main(["attack", "--model", str(graded_net), "--method", "bl2", "--iterations", "10", "--classes", "1",
                 "3", "--steps", str(STEPS), "--out", str(out)]) == 0
    assert load_recon(out).input_kind == "drive"
    capsys.readouterr()
    assert main(["replay", "--model", str(graded_net), "--recon", str(out), "--steps", str(STEPS)]) == 0
    text = capsys.readouterr().out
    assert "agreement with the twin: 100.00% (2/2 identical" in text and "graded drives" in text
    # a drive cannot be replayed on a deployment that feeds spikes
    assert main(["replay", "--model", str(graded_net), "--recon", str(out), "--steps", str(STEPS),
                 "--encoding", "rate"]) == 2
    assert "graded input drives" in capsys.readouterr().err
