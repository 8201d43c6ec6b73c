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
    # streaming runs all 20 samples in one Lava runtime (with delays too: hardware.delay_models clears the
    # delay buffers NetX's reset leaves in flight), and in 3 with chunks of 7; per-sample runs one per sample
    # (two at a time, in parallel workers); two parallel workers stream 10 samples each (hardware.parallel)
    runs = [("stream", 200, 1, 1), ("stream", 7, 3, 1), ("per-sample", 200, N, 2), ("stream", 200, 2, 2)]
    if not any(layer.max_delay for layer in spec.computing):
        del runs[1]  # chunking without delays: tests/hardware/test_replay.py
    for mode, chunk, expected_runs, workers in runs:
        got = replay_network(spec, x.numpy(), mode=mode, chunk=chunk, progress=False, voltage=voltage,
                             workers=workers)
        assert got.runs == expected_runs, (feature, mode, chunk, got.runs)
        assert len(got.layers) == len(layers)
        for p, (a, b) in enumerate(zip(got.layers, layers)):
            assert a.shape == b.shape
            differ = int((a != b).sum())
            assert differ == 0, f"{feature} {mode} chunk {chunk}: layer {p} differs in {differ} spikes"
        np.testing.assert_array_equal(got.voltage, v, err_msg=f"{feature} {mode} chunk {chunk}: output voltage")


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
        got = replay_network(spec, x.numpy(), mode=mode, progress=False, voltage="pre", graded=True, workers=1)
        for p, (a, b) in enumerate(zip(got.layers, layers)):
            assert int((a != b).sum()) == 0, f"graded {mode}: layer {p} differs in {int((a != b).sum())} spikes"
        np.testing.assert_array_equal(got.voltage, v, err_msg=f"graded {mode}: output voltage")
