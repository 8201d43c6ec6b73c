"""The NetX reader, the deployment description and ``info`` on files built in lava-dl (no Lava run)."""
import json

import h5py
import numpy as np
import pytest
import torch

import netx_nets
from brainleaks_lava.cli import main
from brainleaks_lava.errors import ModelFileError
from brainleaks_lava.models.files import load_snn
from brainleaks_lava.netx.deployment import resolve
from brainleaks_lava.netx.reader import read_network
from brainleaks_lava.netx.spec import ConvLayer, DenseLayer, InputLayer, PoolLayer


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def _replace(f, key, value):
    del f[key]
    f[key] = value


def test_specs_hold_the_files_integers(tmp_path):
    path, shape = netx_nets.conv_net(tmp_path / "c.net")
    spec = read_network(path, input_shape=shape)
    kinds = [layer.kind for layer in spec.layers]
    assert kinds == ["conv", "conv", "flatten", "dense"]
    c0, c1 = spec.layers[:2]
    assert isinstance(c0, ConvLayer) and c0.stride == (2, 2) and c0.padding == (1, 2) and c0.kernel == (3, 5)
    assert c1.dilation == (2, 2) and c1.groups == 2 and c1.out_shape == (6, 6, 5)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(c0.weight, f["layer/0/weight"][()].reshape(c0.weight.shape).astype(int))
        np.testing.assert_array_equal(c0.bias, f["layer/0/bias"][()].astype(int))
        assert c0.neuron.vth_mant == int(f["layer/0/neuron/vThMant"][()])
    assert spec.layers[3].in_shape == (180,) and spec.num_outputs == 10
    # stride 2: the file alone does not say the input size
    with pytest.raises(ModelFileError, match=r"layer/0: the file does not say the network's input shape"):
        read_network(path)


def test_input_layer_pool_delay_integrator_average(tmp_path):
    spec = read_network(netx_nets.input_layer(tmp_path / "i.net")[0])
    assert isinstance(spec.layers[0], InputLayer) and spec.has_input_layer and spec.input_shape == (36,)
    assert spec.layers[0].weight == 96 and spec.layers[0].bias == 6  # 1.5 and 0.1 on lava-dl's 1/64 grid
    spec = read_network(*netx_nets.pool_net(tmp_path / "p.net"))
    pool = spec.layers[1]
    assert isinstance(pool, PoolLayer) and pool.out_shape == (4, 4, 4) and pool.conv_weight().shape == (4, 1, 2, 2)
    spec = read_network(netx_nets.delay_net(tmp_path / "d.net")[0])
    assert spec.layers[0].delay is not None and spec.settle_steps() == 3 + spec.layers[0].max_delay + \
        spec.layers[1].max_delay
    assert spec.clean_steps()[0] == spec.layers[0].max_delay
    spec = read_network(netx_nets.integrator_net(tmp_path / "n.net")[0])
    assert spec.integrator_output and not spec.output_layer.neuron.spiking
    spec = read_network(netx_nets.average_net(tmp_path / "a.net")[0])
    assert spec.layers[-1].kind == "average" and spec.num_outputs == 5


@pytest.mark.parametrize("edit, message", [
    (lambda f: _replace(f, "layer/1/type", np.array([b"dense_rec"])),
     r"layer/1/type: layer type 'dense_rec' cannot be modelled"),
    (lambda f: f["layer/1"].create_dataset("weight_rec", data=np.zeros((10, 10))),
     r"layer/1/weight_rec: unsupported key 'weight_rec' in a dense layer"),
    (lambda f: _replace(f, "layer/0/neuron/type", "SDNN"), r"layer/0/neuron/type: neuron type 'SDNN'"),
    (lambda f: _replace(f, "layer/0/neuron/gradedSpike", True), r"layer/0/neuron/gradedSpike: graded spikes"),
    (lambda f: f["layer/0/neuron"].create_dataset("sigma_output", data=1),
     r"layer/0/neuron/sigma_output: unsupported neuron key 'sigma_output'"),
    (lambda f: _replace(f, "layer/0/neuron/vDecay", 5000), r"layer/0/neuron: iDecay .* vDecay 5000 outside"),
    (lambda f: _replace(f, "layer/1/delay", -np.ones(10)), r"layer/1/delay: negative delay"),
    # found by the fuzz test: the first layer's weight is a group, read while the input shape is inferred
    (lambda f: (f["layer/0"].__delitem__("weight"), f["layer/0"].create_group("weight").create_dataset(
        "real", data=np.zeros((10, 784)))), r"layer/0/weight: complex weights"),
    (lambda f: f["layer/0"].__delitem__("weight"), r"layer/0/weight: missing"),
])
def test_unmodellable_files_refused_naming_layer_and_key(tmp_path, edit, message):
    path, _ = netx_nets.dense_bias(tmp_path / "m.net")
    if "delay" in message:
        _edit(path, lambda f: f["layer/1"].create_dataset("delay", data=np.zeros(10)))
    _edit(path, edit)
    with pytest.raises(ModelFileError, match=message):
        read_network(path)
    assert main(["info", str(path)]) == 2


def test_conv_delay_refused(tmp_path):
    path, shape = netx_nets.conv_net(tmp_path / "c.net")
    _edit(path, lambda f: f["layer/0"].create_dataset("delay", data=np.zeros(4)))
    with pytest.raises(ModelFileError, match=r"layer/0/delay: unsupported delays on conv layers"):
        read_network(path, input_shape=shape)


def test_clipped_and_truncated_weights_reported(tmp_path, capsys):
    path, _ = netx_nets.dense_per_layer(tmp_path / "m.net")
    with h5py.File(path, "r+") as f:
        w = f["layer/1/weight"][()]
        w[0, :3] = [300, -400, 7.5]
        _replace(f, "layer/1/weight", w)
    spec = read_network(path)
    layer = spec.layers[1]
    assert isinstance(layer, DenseLayer)
    assert layer.weight[0, 0] == 254 and layer.weight[0, 1] == -256 and layer.weight[0, 2] == 7  # as NetX runs it
    assert any("2 weights outside Loihi's 8-bit mantissa range, clipped" in n for n in layer.notes)
    assert any("1 non-integer weight values truncated" in n for n in layer.notes)
    assert main(["info", str(path), "--steps", "16"]) == 0
    out = capsys.readouterr().out
    assert "Loihi 2 readiness: NOT ready" in out and "layer/1 (dense): 2 weights outside" in out
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["network"]["loihi2_ready"] is False and info["network"]["neurons"] == 48 + 32 + 10
    assert info["deployment"]["sources"] == {"input_shape": "file"}


def test_per_layer_parameters_and_loihi_type_reach_the_twin(tmp_path):
    t = load_snn(netx_nets.loihi_type(tmp_path / "l.net")[0])
    neurons = [layer.neuron for layer in t.net.computing]
    assert [n.kind for n in neurons] == ["LOIHI"] * 3
    assert len({(n.i_decay, n.v_decay, n.vth_mant) for n in neurons}) == 3
    assert "theta" in neurons[0].ignored
    for twin_layer, n in zip(t.model.twin.layers, neurons):
        assert float(twin_layer.neuron.threshold) == n.vth_mant / 64


def test_deployment_sources_card_options_defaults(tmp_path, caplog):
    path, _ = netx_nets.dense_bias(tmp_path / "m.net")
    spec = read_network(path)
    dep = resolve(spec, path, {})
    assert (dep.steps, dep.encoding, dep.readout) == (25, "rate", "spikes")
    assert "no encoding, readout, steps given" in caplog.text
    (tmp_path / "m.card.toml").write_text('steps = 40\nencoding = "if"\nreadout = "membrane"\n'
                                          'classes = ["a","b","c","d","e","f","g","h","i","j"]\n')
    dep = resolve(spec, path, {}, {"steps": 32})
    assert dep.steps == 32 and dep.encoding == "if" and dep.readout == "membrane" and dep.classes[1] == "b"
    assert dep.sources["steps"] == "option" and dep.sources["encoding"] == "card m.card.toml"
    assert dep.posterior_scale == 1 / spec.output_layer.neuron.threshold
    (tmp_path / "m.card.toml").write_text('steps = 40\nwhatever = 1\n')
    with pytest.raises(ModelFileError, match=r"m.card.toml: unknown key 'whatever'"):
        resolve(spec, path, {})
    (tmp_path / "m.card.toml").write_text('steps = 2\n')
    with pytest.raises(ModelFileError, match=r"T=2 steps, but the network needs more than its 2 settle"):
        resolve(spec, path, {})
    (tmp_path / "m.card.toml").write_text('readout = "integrator"\n')
    with pytest.raises(ModelFileError, match=r"read-out 'integrator' needs a last layer without a neuron group"):
        resolve(spec, path, {})


def test_attack_runs_on_a_foreign_conv_network(tmp_path):
    from brainleaks_lava.attacks import adapter_for, make_attack

    path, shape = netx_nets.conv_net(tmp_path / "c.net")
    t = load_snn(path, options={"input_shape": shape, "steps": 16})
    res = make_attack("bl2", adapter_for(t), iterations=3).invert(classes=[0, 3], seed=1, progress=False)
    assert res.samples.shape == (2, int(np.prod(shape)), 16)
    again = make_attack("bl2", adapter_for(t), iterations=3).invert(classes=[0, 3], seed=1, progress=False)
    np.testing.assert_array_equal(res.samples, again.samples)
    with torch.no_grad():
        p = t.model.posterior(torch.as_tensor(res.samples, dtype=torch.float32))
    np.testing.assert_allclose(p[[0, 1], [0, 3]].numpy(), res.confidence, rtol=1e-5)
