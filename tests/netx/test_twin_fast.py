"""The NetX twin's fast path (fast_cuba's kernel, matrix-product dense synapses) against its lava-dl path.

For every small NetX net of ``netx_nets`` and the shipped MNIST target, on random 0/1 inputs and on graded
ones: every layer's spikes and the output voltage before and after the reset are compared with
``torch.equal``. Input gradients: the kernel's backward repeats lava-dl's float32 operations (``exp`` may
differ in the last bit) and a matrix product sums the same products as lava-dl's conv3d in another order,
so they are compared with ``rtol=1e-5`` and an absolute floor of 1e-6 of the largest gradient (elements
that are sums of cancelling terms). Each comparison also checks that the fast path ran.
"""
from __future__ import annotations

import pytest
import torch

import netx_nets
from brainleaks_lava.models import fast_cuba
from brainleaks_lava.models.files import load_target
from brainleaks_lava.netx import twin as twin_mod
from brainleaks_lava.netx.reader import read_network
from brainleaks_lava.netx.twin import NetxTwin

T = 20
N = 6


def _close(a, b, rtol=1e-5):
    floor = 1e-6 * float(a.abs().max()) if a.numel() else 0.0
    return torch.allclose(a, b, rtol=rtol, atol=floor)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the fast kernel's calls (the proof the fast path ran)."""
    calls = []
    for name in ("cuba_time_major", "cuba_time_major_both"):
        def counting(*args, _orig=getattr(fast_cuba, name), **kwargs):
            calls.append(args[0].shape)
            return _orig(*args, **kwargs)

        monkeypatch.setattr(fast_cuba, name, counting)
    return calls


def _run(twin, x):
    """Every layer's spikes, output spikes, voltage before / after the reset, and the gradient of a loss
    that reads all three w.r.t. the input."""
    x = x.clone().requires_grad_(True)
    layers, _ = twin.run_all(x)
    out, pre, post = twin.outputs(x)
    weights = torch.linspace(-1.0, 1.0, out.shape[1]).view(1, -1, 1)
    (0.1 * (pre * pre).sum() + (out * weights).sum() + post.sum()).backward()
    return [a.detach() for a in layers], out.detach(), pre.detach(), post.detach(), x.grad


def _compare(spec, x, kernel_calls, what):
    kernel_calls.clear()
    slow = _run(NetxTwin(spec, fast=False), x)
    assert not kernel_calls, "fast=False must not use the kernel"
    fast = _run(NetxTwin(spec, fast=True), x)
    assert kernel_calls, "the fast path did not run"
    for p, (a, b) in enumerate(zip(slow[0], fast[0])):
        assert torch.equal(a, b), f"{what}: layer {p} differs in {int((a != b).sum())} spikes"
    for name, a, b in zip(("output spikes", "voltage before reset", "voltage after reset"), slow[1:4], fast[1:4]):
        assert torch.equal(a, b), f"{what}: {name} differ"
    assert slow[4].abs().max() > 0, f"{what}: no input gradient to compare"
    assert _close(slow[4], fast[4]), f"{what}: input gradients differ by {float((slow[4] - fast[4]).abs().max())}"
    return slow


@pytest.mark.parametrize("feature", sorted(netx_nets.FEATURES))
def test_fast_twin_equals_lava_dl_twin(tmp_path, feature, loop, kernel_calls):
    path, shape = netx_nets.FEATURES[feature](tmp_path / f"{feature}.net")
    spec = read_network(path, input_shape=shape)
    g = torch.Generator().manual_seed(sum(map(ord, feature)))
    x = (torch.rand(N, *shape, T, generator=g) < 0.3).float()
    layers = _compare(spec, x, kernel_calls, f"{feature} binary")[0]
    assert sum(float(a.sum()) for a in layers) > 100  # real activity
    graded = torch.rand(N, *shape, T, generator=g) * 1.5 - 0.25  # off the 0/1 grid: conv3d + fast dynamics
    _compare(spec, graded, kernel_calls, f"{feature} graded")


def test_dense_matmul_only_for_binary_inputs(tmp_path, monkeypatch):
    path, shape = netx_nets.dense_bias(tmp_path / "d.net")
    twin = NetxTwin(read_network(path, input_shape=shape), fast=True)
    assert all(layer._matmul for layer in twin.layers)
    used = []
    orig = twin_mod.TwinLayer.synapse

    def conv(self, x):
        used.append(self.layer.index)
        return orig(self, x)

    monkeypatch.setattr(twin_mod.TwinLayer, "synapse", conv)
    x = (torch.rand(3, *shape, T) < 0.3).float()
    twin.run_all(x)
    assert used == []  # 0/1 input: matrix products only
    twin.run_all(x * 0.5)
    assert used == [0]  # graded input: the first layer's conv3d, then 0/1 spikes again


def test_module_switch(tmp_path, kernel_calls, monkeypatch):
    path, shape = netx_nets.dense_per_layer(tmp_path / "d.net")
    twin = NetxTwin(read_network(path, input_shape=shape))  # fast=None: follows FAST_PATH
    x = (torch.rand(2, *shape, T) < 0.3).float()
    monkeypatch.setattr(twin_mod, "FAST_PATH", False)
    twin.run(x)
    assert not kernel_calls
    monkeypatch.setattr(twin_mod, "FAST_PATH", True)
    twin.run(x)
    assert kernel_calls
    kernel_calls.clear()
    twin.set_fast(False).run(x)
    assert not kernel_calls


def test_integrator_threshold_keeps_lava_dl_dynamics(tmp_path):
    path, shape = netx_nets.integrator_net(tmp_path / "i.net")
    twin = NetxTwin(read_network(path, input_shape=shape))
    assert twin.layers[0]._cuba is not None
    assert twin.layers[-1]._cuba is None  # threshold 2048: outside the kernel's range


@pytest.mark.parametrize("kind", ["binary", "rates"])
def test_shipped_mnist_target(kind, kernel_calls):
    """The shipped 784-3000-10 target, T = 25: 0/1 spikes (BL-v1/v2, BL-enc's stochastic estimator) and
    rates (BL-enc's expectation estimator)."""
    target = load_target("netx_models/mnist_snn.net")
    spec = target.net
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, spec.num_inputs, target.deployment.steps, generator=g) * 0.6
    if kind == "binary":
        x = torch.bernoulli(x, generator=g)
    layers, _, pre, _, _ = _compare(spec, x, kernel_calls, f"mnist {kind}")
    assert float(layers[0].sum()) > 100 and float(pre.abs().max()) > 0.1  # the read-out is the voltage


@pytest.mark.parametrize("use", ["spikes", "delayed", "both", "voltage"])
def test_kernel_with_delayed_spikes_equals_shift_outside(use, loop):
    """``cuba_time_major_both`` (the twin's hidden layers) against ``cuba_time_major`` + ``step_delay_tm``:
    the same values and, as the backward performs the same operations, bit-identical gradients."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(T, 4, 9, generator=g) * 0.8 + 0.4
    params = fast_cuba.CubaParams.from_config(1.0, 0.5, 0.2, 0.03, 3.0)
    bias = torch.randint(-20, 21, (9,), generator=g) / 64
    w = [torch.randn(T, 4, 9, generator=g) for _ in range(3)]
    grads = []
    for both in (False, True):
        zz = z.clone().requires_grad_(True)
        if both:
            s, v, d = fast_cuba.cuba_time_major_both(zz, params, bias=bias, bias_from=2)
        else:
            s, v = fast_cuba.cuba_time_major(zz, params, bias=bias, bias_from=2)
            d = fast_cuba.step_delay_tm(s)
        grads.append((s.detach(), v.detach(), d.detach()))
        loss = {"spikes": (s * w[0]).sum(), "delayed": (d * w[1]).sum(), "voltage": (v * w[2]).sum(),
                "both": (s * w[0]).sum() + (d * w[1]).sum() + (v * w[2]).sum()}[use]
        loss.backward()
        grads.append(zz.grad)
    (outs0, grad0), (outs1, grad1) = grads[:2], grads[2:]
    for a, b in zip(outs0, outs1):
        assert torch.equal(a, b)
    assert grad0.abs().max() > 0 and torch.equal(grad0, grad1)
