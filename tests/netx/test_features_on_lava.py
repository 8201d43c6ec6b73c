"""One network per NetX feature, built in lava-dl, exported, reloaded from the file: every layer's spikes
(and the output voltage) of the twin equal Lava fixed_pt's, 20 inputs, streamed and one run per sample."""
import numpy as np
import pytest
import torch

import netx_nets
from brainleaks_lava.hardware.replay import replay_network
from brainleaks_lava.netx.reader import read_network
from brainleaks_lava.netx.twin import NetxTwin

T = 24
N = 20


def _twin_reference(spec, x):
    twin = NetxTwin(spec)
    with torch.no_grad():
        layers, v = twin.run_all(x)
    layers = [a.numpy().copy() for a in layers]
    v = v.reshape(len(x), -1, x.shape[-1]).double().numpy().copy()
    for a, clean in zip(layers, spec.clean_steps()):
        a[..., :clean] = 0
    v[..., :spec.settle_steps()] = 0
    return layers, v


@pytest.mark.slow
@pytest.mark.parametrize("feature", sorted(netx_nets.FEATURES))
def test_twin_equals_lava_every_layer(tmp_path, feature):
    path, shape = netx_nets.FEATURES[feature](tmp_path / f"{feature}.net")
    spec = read_network(path, input_shape=shape)
    assert spec.input_shape == shape
    g = torch.Generator().manual_seed(sum(map(ord, feature)))
    x = (torch.rand(N, *shape, T, generator=g) < 0.3).float()
    layers, v = _twin_reference(spec, x)
    # the comparison is about real activity: every spiking layer spikes, the read-out voltage moves
    for layer, a in zip(spec.computing, layers):
        if layer.neuron.spiking:
            assert a.sum() > 50, (feature, layer.index)
    assert np.abs(v).max() > 0.1
    voltage = "pre" if spec.output_layer.neuron.spiking else "post"
    # networks with synaptic delays stream one sample per run (hardware.replay: Lava's delayed synapses
    # carry activity across resets), so for them both modes are the same runs
    for mode in ("stream", "per-sample"):
        got = replay_network(spec, x.numpy(), mode=mode, progress=False, voltage=voltage)
        assert len(got.layers) == len(layers)
        for p, (a, b) in enumerate(zip(got.layers, layers)):
            assert a.shape == b.shape
            assert int((a != b).sum()) == 0, f"{feature} {mode}: layer {p} differs in {int((a != b).sum())} spikes"
        np.testing.assert_array_equal(got.voltage, v, err_msg=f"{feature} {mode}: output voltage")


@pytest.mark.slow
def test_graded_drive_equals_lava_every_layer(tmp_path):
    """An input layer driven by graded values (not 0/1 spikes): round(x * weight + bias) on both sides."""
    path, shape = netx_nets.input_layer(tmp_path / "input.net")
    spec = read_network(path, input_shape=shape)
    g = torch.Generator().manual_seed(11)
    x = torch.rand(N, *shape, T, generator=g) * 1.5 - 0.25  # drives of both signs, off the 0/1 grid
    layers, v = _twin_reference(spec, x)
    assert all(a.sum() > 50 for a in layers)
    for mode in ("stream", "per-sample"):
        got = replay_network(spec, x.numpy(), mode=mode, progress=False, voltage="pre", graded=True)
        for p, (a, b) in enumerate(zip(got.layers, layers)):
            assert int((a != b).sum()) == 0, f"graded {mode}: layer {p} differs in {int((a != b).sum())} spikes"
        np.testing.assert_array_equal(got.voltage, v, err_msg=f"graded {mode}: output voltage")
