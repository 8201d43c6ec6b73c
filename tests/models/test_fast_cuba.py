"""The fast CUBA kernel against lava-dl's own blocks: identical spikes and voltages, lava-dl's gradients.

Tolerances: the forward is compared with ``torch.equal`` everywhere. Gradients of the dynamics alone are
the same float32 operations in the same order as lava-dl's, except ``exp`` (vectorized and scalar CPU
paths may differ in the last bit): ``rtol=1e-6``. Gradients through the synapse differ by summation order
(one matrix product vs lava-dl's conv3d) of the same float32 products: ``rtol=1e-5`` with an absolute
floor of 1e-6 of the largest gradient (elements that are sums of cancelling terms).
"""
from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest
import torch

from brainleaks_lava.models import fast_cuba
from brainleaks_lava.models.files import export_snn
from brainleaks_lava.models.snn import NeuronConfig, SNNSpec, SpikingMLP, _import_slayer

NEURONS = [
    # threshold, current_decay, voltage_decay, tau_grad, scale_grad
    (1.0, 1.0, 0.3, 0.003, 3.0),  # the shipped MNIST target
    (1.0, 1.0, 0.3, 0.03, 3.0),  # the default NeuronConfig
    (1.25, 0.25, 0.1, 0.03, 1.0),  # current with memory
    (0.5, 0.0, 0.0, 1.0, 1.0),  # no leak at all (lava-dl's defaults for the surrogate)
    (2.0, 0.5, 1.0, 0.1, 2.0),  # voltage without memory
]


def _neuron(th, cd, vd, tg, sg):
    slayer = _import_slayer()
    return slayer.neuron.cuba.Neuron(threshold=th, current_decay=cd, voltage_decay=vd, tau_grad=tg, scale_grad=sg)


def _close(a, b, rtol):
    floor = 1e-6 * float(a.abs().max()) if a.numel() else 0.0
    return torch.allclose(a, b, rtol=rtol, atol=floor)


@pytest.mark.parametrize("settings", NEURONS)
def test_dynamics_equal_lava_dl_neuron(settings, loop):
    g = torch.Generator().manual_seed(7)
    neuron = _neuron(*settings)
    params = fast_cuba.CubaParams.from_neuron(neuron)
    assert params.threshold == neuron.threshold
    # graded synaptic input (not only the 1/32 grid): the dynamics are exact for any float32 input
    z = torch.randn(3, 11, 40, generator=g) * 0.8 + 0.3
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    v_ref = neuron.dynamics(z1)[1]
    s_ref = neuron.spike(v_ref)
    s, v = fast_cuba.cuba_dynamics(z2, params)
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    assert 0 < int(s.sum()) < s.numel()  # the case spikes, and not everywhere
    ws, wv = torch.randn(s.shape, generator=g), torch.randn(s.shape, generator=g)
    ((s_ref * ws).sum() + (v_ref * wv).sum()).backward()
    ((s * ws).sum() + (v * wv).sum()).backward()
    assert _close(z2.grad, z1.grad, rtol=1e-6)
    assert float(z2.grad.abs().sum()) > 0


def test_spatial_input_and_spike_only_gradient(loop):
    """(N, C, H, W, T) input as a conv layer gives it; the gradient through the spikes alone."""
    g = torch.Generator().manual_seed(1)
    neuron = _neuron(1.0, 1.0, 0.3, 0.03, 3.0)
    z = torch.randint(-20, 60, (2, 3, 4, 5, 16), generator=g).float() / 32
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    s_ref = neuron(z1)
    s, _ = fast_cuba.cuba_dynamics(z2, fast_cuba.CubaParams.from_neuron(neuron))
    assert s.shape == z.shape and torch.equal(s, s_ref)
    w = torch.randn(s.shape, generator=g)
    (s_ref * w).sum().backward()
    (s * w).sum().backward()
    assert _close(z2.grad, z1.grad, rtol=1e-6)


def test_threshold_boundary_constructed(loop):
    """Loihi spikes when v > threshold: v == 1 stays, v == 1 + 1/4096 spikes and resets to 0."""
    params = fast_cuba.CubaParams.from_config(1.0, 1.0, 0.0)  # u = z, v keeps everything
    z = torch.zeros(2, 1, 4)
    z[0, 0, 0] = 1.0  # v = 1, 1, 1, 1: never above the threshold
    z[1, 0, 0] = 1.0 + 1 / 4096  # v = 1 + 1/4096: spike, reset, then 0
    z[1, 0, 2] = 0.5
    s, v = fast_cuba.cuba_dynamics(z, params)
    assert s.tolist() == [[[0, 0, 0, 0]], [[1, 0, 0, 0]]]
    assert v.tolist() == [[[1, 1, 1, 1]], [[1 + 1 / 4096, 0, 0.5, 0.5]]]


def test_truncation_toward_zero():
    """trunc(v * (4096 - d) / 4096) toward zero for negative states, as lava-dl's right_shift_to_zero."""
    params = fast_cuba.CubaParams.from_config(1.0, 1.0, 0.5)  # keep 2048/4096
    z = torch.tensor([[[-3 / 4096, 0.0, 0.0]]])
    _, v = fast_cuba.cuba_dynamics(z, params)
    assert (v * 4096).tolist() == [[[-3, -1, 0]]]  # -1.5 -> -1, -0.5 -> 0
    ref = _neuron(1.0, 1.0, 0.5, 1, 1).dynamics(z)[1]
    assert torch.equal(v, ref)


def test_large_currents_round_through_float32_like_lava_dl(loop):
    """A current beyond 2**24 / 4096 is re-read by the voltage integrator as float32: both loops follow."""
    neuron = _neuron(1.0, 0.0, 0.0, 1, 1)  # current and voltage without decay: they grow
    z = torch.full((1, 2, 6), 3000.0)
    z[0, 1] += 1 / 4096
    v_ref = neuron.dynamics(z)[1]
    _, v = fast_cuba.cuba_dynamics(z, fast_cuba.CubaParams.from_neuron(neuron))
    assert torch.equal(v, v_ref)


def test_rejects_what_it_cannot_compute_exactly(monkeypatch):
    params = fast_cuba.CubaParams.from_config(1.0, 1.0, 0.3)
    with pytest.raises(ValueError, match="float32"):
        fast_cuba.cuba_dynamics(torch.zeros(1, 2, 3, dtype=torch.float64), params)
    monkeypatch.setattr(fast_cuba, "_NUMBA_KERNEL", False)
    with pytest.raises(ValueError, match="too large"):
        fast_cuba.cuba_dynamics(torch.full((1, 1, 4), 1e12), params)
    with pytest.raises(ValueError, match="threshold"):
        fast_cuba.CubaParams.from_config(4096.0, 1.0, 0.3)


# ------------------------------------------------------------------------------------------------------
# whole networks: SpikingMLP on the kernel vs on lava-dl's blocks
# ------------------------------------------------------------------------------------------------------

def _pair(sizes, neuron, readout="membrane", seed=0, steps=20, gain=3.0):
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(seed)
        a = SpikingMLP(SNNSpec(sizes=sizes, steps=steps, neuron=neuron, readout=readout))
    with torch.no_grad():  # larger weights, so that every layer spikes on random input
        for b in a.blocks:
            b.synapse.weight.mul_(gain)
    b = SpikingMLP(a.spec)
    b.load_state_dict(a.state_dict())
    a.kernel, b.kernel = "lava", "fast"
    return a, b


def _grads(model, x, y):
    model.zero_grad()
    x = x.clone().requires_grad_()
    loss = torch.nn.functional.cross_entropy(model.logits(x), y)
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.requires_grad] + [x.grad]


@pytest.mark.parametrize("sizes,settings,readout", [
    ((60, 10), NEURONS[0], "membrane"),
    ((60, 40, 10), NEURONS[0], "membrane"),
    ((60, 40, 10), NEURONS[2], "voltage"),
    ((60, 50, 30, 20, 10), NEURONS[1], "spikes"),
    ((60, 40, 30, 10), NEURONS[4], "membrane"),
])
def test_network_forward_identical_and_gradients_equal(sizes, settings, readout, loop):
    th, cd, vd, tg, sg = settings
    lava, fast = _pair(sizes, NeuronConfig(threshold=th, current_decay=cd, voltage_decay=vd, tau_grad=tg,
                                           scale_grad=sg), readout)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(6, sizes[0], 20, generator=g) < 0.3).float()
    y = torch.arange(6) % sizes[-1]
    with torch.no_grad():
        out_l, hid_l = lava(x, return_hidden=True)
        out_f, hid_f = fast(x, return_hidden=True)
    assert torch.equal(out_f, out_l)
    assert all(torch.equal(a, b) for a, b in zip(hid_f, hid_l)) and len(hid_f) == len(sizes) - 1
    assert all(0 < int(h.sum()) < h.numel() for h in hid_l[:-1])  # every hidden layer is active
    s_l, v_l = lava.run(x)
    s_f, v_f = fast.run(x)
    assert torch.equal(s_f, s_l) and torch.equal(v_f, v_l)
    assert torch.equal(fast.logits(x), lava.logits(x))
    for a, b in zip(_grads(fast, x, y), _grads(lava, x, y)):
        assert a.shape == b.shape and _close(a, b, rtol=1e-5)
        assert float(b.abs().sum()) > 0


def test_graded_input_goes_through_lava_dl_synapse(loop):
    """Non-binary inputs (graded drives) keep lava-dl's conv3d summation: still bit-identical."""
    lava, fast = _pair((50, 30, 10), NeuronConfig())
    x = torch.rand(4, 50, 15, generator=torch.Generator().manual_seed(2)) * 0.7
    assert torch.equal(fast.run(x)[1], lava.run(x)[1])
    y = torch.arange(4)
    for a, b in zip(_grads(fast, x, y), _grads(lava, x, y)):
        assert _close(a, b, rtol=1e-5)


def test_unsupported_blocks_fall_back_to_lava_dl_and_say_so(caplog):
    lava, fast = _pair((30, 20, 10), NeuronConfig())
    for m in (lava, fast):
        m.blocks[1].delay_shift = False
    x = (torch.rand(3, 30, 10, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    with caplog.at_level(logging.INFO, logger="brainleaks_lava.models.fast_cuba"):
        out = fast(x)
        fast(x)
    assert torch.equal(out, lava(x))
    notes = [r.getMessage() for r in caplog.records if "fast CUBA kernel" in r.getMessage()]
    assert len(notes) == 1 and "block 1: delay_shift=False" in notes[0]


def _export_weights(model, path):
    export_snn(model, path, {})
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out


def test_training_trajectory_and_export_match_lava_dl(tmp_path):
    """Four Adam steps on each kernel from the same start: the same quantized weights, float weights equal
    to float32 rounding, and the NetX file of the same weights identical dataset for dataset."""
    lava, fast = _pair((64, 32, 10), NeuronConfig(tau_grad=0.003), gain=2.0)
    g = torch.Generator().manual_seed(9)
    opts = [torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3) for m in (lava, fast)]
    for _ in range(4):
        x = (torch.rand(8, 64, 20, generator=g) < 0.3).float()
        y = torch.randint(0, 10, (8,), generator=g)
        losses = []
        for m, opt in zip((lava, fast), opts):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m.logits(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss))
        assert abs(losses[0] - losses[1]) <= 1e-6 * abs(losses[0])
    for bl, bf in zip(lava.blocks, fast.blocks):
        wl, wf = bl.synapse.weight.detach(), bf.synapse.weight.detach()
        assert torch.allclose(wf, wl, rtol=1e-5, atol=1e-7)
        assert torch.equal(bf.synapse._pre_hook_fx(wf), bl.synapse._pre_hook_fx(wl))
    # export: a fresh model run only on the fast kernel exports exactly what a lava-dl-run one does
    fresh_l, fresh_f = _pair((64, 32, 10), NeuronConfig(tau_grad=0.003), seed=4)
    x = (torch.rand(2, 64, 20, generator=g) < 0.3).float()
    fresh_l(x)
    fresh_f(x)
    a = _export_weights(fresh_l, tmp_path / "lava.net")
    b = _export_weights(fresh_f, tmp_path / "fast.net")
    assert a.keys() == b.keys() and "layer/0/weight" in a
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k


@pytest.mark.parametrize("readout", ["membrane", "voltage", "spikes"])
def test_validation_check_catches_a_file_that_differs(tmp_path, readout):
    """``brainleaks train`` validates on the fast kernel after checking the exported file's twin against it."""
    from brainleaks_lava.errors import ModelFileError
    from brainleaks_lava.models.files import load_snn
    from brainleaks_lava.models.targets import check_file_reproduces

    _, model = _pair((784, 30, 10), NeuronConfig(tau_grad=0.003), readout=readout, steps=10, gain=6.0)
    path = tmp_path / "m.net"
    export_snn(model, path, {})
    twin = load_snn(path).model
    images = torch.rand(6, 28, 28, generator=torch.Generator().manual_seed(3)).numpy()
    enc = {"kind": "rate", "steps": 10}
    check_file_reproduces(model, twin, images, enc, 1, path)  # the file reproduces the model
    with torch.no_grad():  # weight steps more in the model than in the file
        model.blocks[1].synapse.weight[:, :15] += 6 / 64
    with pytest.raises(ModelFileError, match="does not reproduce the trained model on 6 validation samples"):
        check_file_reproduces(model, twin, images, enc, 1, path)


def test_quantizer_equals_lava_dl_at_rounding_and_clamp_boundaries():
    neuron = _neuron(1.0, 1.0, 0.3, 1, 1)
    w = torch.tensor([-4.0, -4.015625, -4.015626, 3.96875, 3.984375, 3.984376, 0.015625, -0.015625, 0.046875,
                      1e-9, -7.0, 9.0])
    w = torch.cat([w, torch.randn(200, generator=torch.Generator().manual_seed(0)) * 2])
    g = torch.randn(w.shape, generator=torch.Generator().manual_seed(1))
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    qa, qb = neuron.quantize_8bit(a), fast_cuba.quantize_8bit(b)
    qa.backward(g)
    qb.backward(g)
    assert torch.equal(qa, qb) and torch.equal(a.grad, b.grad)
    assert qb[:9].tolist() == [-4.0, -4.0, -4.0, 3.96875, 3.96875, 3.96875, 0.0, 0.0, 0.0625]
    assert b.grad[:6].tolist() == [g[0], g[1], 0.0, g[3], 0.0, 0.0]  # clamped weights get no gradient
