import h5py
import numpy as np
import pytest
import torch

from brainleaks_lava.cli import main
from brainleaks_lava.errors import ModelFileError
from brainleaks_lava.models.files import export_snn, load_snn, load_target, sidecar_path
from brainleaks_lava.netx.reader import read_network
from brainleaks_lava.models.snn import NeuronConfig, SNNSpec, SpikingMLP, posterior_from_spikes
from brainleaks_lava.models.training import TrainConfig, train
from brainleaks_lava.models.targets import snn_logits_fn
from bl_testutils import assert_lava_run_equals_twin, random_spikes


def _trained_tiny(tmp_path):
    """A 784-40-10 network trained a few steps (weights move away from their initial values)."""
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(3)
        model = SpikingMLP(SNNSpec(sizes=(784, 40, 10), steps=10))
    with torch.no_grad():  # larger initial weights so that the network spikes on random inputs
        for b in model.blocks:
            b.synapse.weight.mul_(4)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(40, 28, 28, generator=g).numpy()
    labels = np.arange(40) % 10
    before = model.blocks[0].synapse.weight.detach().clone()
    train(model, snn_logits_fn(10), images, labels, TrainConfig(epochs=2, batch_size=10, lr=5e-3, seed=0))
    assert not torch.equal(before, model.blocks[0].synapse.weight.detach())
    return model.eval()


def test_export_reimport_identical_spikes(tmp_path):
    model = _trained_tiny(tmp_path)
    path = export_snn(model, tmp_path / "tiny.net", {"dataset": "test"})
    twin = load_snn(path)
    x = random_spikes(50, 784, 10, p=0.3, seed=1)
    with torch.no_grad():
        a, ha = model(x, return_hidden=True)
        b = twin.model(x)
        hb, _ = twin.model.twin.run_all(x)  # every layer, in its own steps (lava-dl blocks delay by one)
    assert a.sum() > 0, "the test network must spike to be meaningful"
    assert torch.equal(a, b)
    for la, lb in zip(ha, hb):
        assert torch.equal(la[..., 1:], lb[..., :-1]) and not la[..., 0].any()
    assert twin.spec.neuron.current_decay == 1.0
    assert abs(twin.spec.neuron.voltage_decay - 0.3) < 1 / 4096
    assert twin.metadata["net_sha256"] == twin.sha256


def test_net_file_holds_integer_device_values(tmp_path):
    model = _trained_tiny(tmp_path)
    path = export_snn(model, tmp_path / "tiny.net")
    layers = read_network(path).layers
    assert [l.weight.shape for l in layers] == [(40, 784), (10, 40)]
    for l in layers:
        assert np.all(l.weight % 2 == 0)  # 8-bit quantizer: step 2/64 -> even integers
        assert l.neuron.vth_mant == 64 and l.neuron.i_decay == 4096 and l.neuron.v_decay == 1229


def test_posterior_is_softmax_of_scaled_counts():
    out = torch.zeros(2, 3, 5)
    out[0, 1, :4] = 1
    out[1, 2, :2] = 1
    p = posterior_from_spikes(out, 0.5)
    expected0 = torch.softmax(torch.tensor([0.0, 2.0, 0.0]), 0)
    assert torch.allclose(p[0], expected0)
    assert torch.allclose(p.sum(1), torch.ones(2))


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all", None])
def test_bad_model_files_are_model_file_errors(tmp_path, content):
    path = tmp_path / "bad.net"
    if content is None:  # a truncated real file
        model = SpikingMLP(SNNSpec(sizes=(6, 4, 3), steps=5))
        export_snn(model, tmp_path / "good.net")
        data = (tmp_path / "good.net").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.net"):
        load_target(path)


def test_unknown_layer_type_and_inconsistent_shapes(tmp_path):
    model = SpikingMLP(SNNSpec(sizes=(6, 4, 3), steps=5))
    path = export_snn(model, tmp_path / "m.net")
    with h5py.File(path, "a") as f:
        del f["layer/1/type"]
        f["layer/1"].create_dataset("type", (1,), "S10", [b"convT"])
    with pytest.raises(ModelFileError, match="layer/1/type: layer type 'convT' cannot be modelled"):
        load_snn(path)
    path2 = export_snn(model, tmp_path / "m2.net")
    with h5py.File(path2, "a") as f:
        del f["layer/1/weight"]
        f["layer/1"].create_dataset("weight", data=np.zeros((3, 5)))
    with pytest.raises(ModelFileError, match=r"layer/1/weight: shape \(3, 5\), but the layer has 3 neurons and 4 inputs"):
        load_snn(path2)


@pytest.mark.parametrize("cmd", ["info", "attack"])
def test_cli_bad_model_file_exit_2_one_line(tmp_path, capsys, cmd):
    bad = tmp_path / "trunc.net"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    argv = ["info", str(bad)] if cmd == "info" else ["attack", "--model", str(bad), "--method", "bl2",
                                                      "--out", str(tmp_path / "r.h5")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trunc.net" in err[0]
    assert not (tmp_path / "r.h5").exists()


def test_neuron_config_validation():
    with pytest.raises(ValueError, match="voltage_decay"):
        NeuronConfig(voltage_decay=1.5)
    with pytest.raises(ValueError, match="threshold"):
        NeuronConfig(threshold=0)


@pytest.mark.slow
def test_exported_file_runs_on_lava_fixed_pt_like_twin(small_snn_path):
    assert_lava_run_equals_twin(small_snn_path, random_spikes(6, 784, 12, p=0.25, seed=5), min_voltage=0.5)


def test_sidecar_written_with_sha(tmp_path):
    model = SpikingMLP(SNNSpec(sizes=(6, 4, 3), steps=5))
    path = export_snn(model, tmp_path / "m.net", {"dataset": "x"})
    import json
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["spec"]["steps"] == 5 and meta["dataset"] == "x" and len(meta["net_sha256"]) == 64


def test_voltage_readout_posterior_matches_definition():
    """run() gives forward()'s spikes; the voltage posteriors are the time average (steps >= L) of a
    softmax of the output voltage, before the step's reset ("membrane", the default) or after it
    ("voltage"), computed here by hand."""
    torch.manual_seed(3)
    m = SpikingMLP(SNNSpec(sizes=(30, 20, 4), steps=10, readout="voltage", posterior_scale=0.7))
    for b in m.blocks:
        b.synapse.weight.data *= 6
    pre = SpikingMLP(SNNSpec(sizes=(30, 20, 4), steps=10, posterior_scale=0.7))
    assert pre.spec.readout == "membrane"
    pre.load_state_dict(m.state_dict())
    x = random_spikes(5, 30, 10, p=0.4, seed=2)
    with torch.no_grad():
        s, v = m.run(x)
        assert torch.equal(s, m(x)) and s.sum() > 0
        s_pre, v_pre = pre.run(x)
        assert torch.equal(s_pre, s)
        # post-reset: no voltage above threshold is left at a step where the neuron spiked
        last = m.blocks[-1]
        _, raw = last.neuron.dynamics(last.synapse(m.blocks[0](x)))
        fired = raw >= 1.0
        assert fired.any() and torch.all(v[fired] == 0) and torch.equal(v[~fired], raw[~fired])
        # pre-reset: the potential the neuron reached, above the threshold where it spiked
        assert torch.equal(v_pre, raw) and torch.all(v_pre[fired] >= 1.0)
        for model, volts in ((m, v), (pre, v_pre)):
            expected = torch.stack([torch.softmax(0.7 * volts[:, :, t], dim=1) for t in range(2, 10)]).mean(0)
            torch.testing.assert_close(model.posterior(x), expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(m.posterior(x), pre.posterior(x))
    # the spike read-out ignores voltages entirely
    m2 = SpikingMLP(SNNSpec(sizes=(30, 20, 4), steps=10, readout="spikes", posterior_scale=0.7))
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(m2.posterior(x), posterior_from_spikes(m2(x), 0.7))
    with pytest.raises(ValueError, match="readout"):
        SNNSpec(sizes=(3, 2), readout="rates")
