"""Defenses on constructed cases: posterior rounding, spike-count clipping, input flips, requantization, DP-SGD."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from brainleaks_lava.attacks import adapter_for
from brainleaks_lava.defenses.dp import DPConfig, clip_and_sum, epsilon_of, train_dp
from brainleaks_lava.defenses.noise import flip_spikes
from brainleaks_lava.defenses.quantize import requantize_net, requantize_weights, weight_bits
from brainleaks_lava.defenses.readout import ObservedPosterior, round_to_grid
from brainleaks_lava.errors import InputError
from brainleaks_lava.models.files import export_snn, load_target
from brainleaks_lava.models.snn import NeuronConfig, SNNSpec, SpikingMLP
from brainleaks_lava.models.training import TrainConfig


def _target(tmp_path, readout="spikes", seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(seed)
        model = SpikingMLP(SNNSpec(sizes=(40, 24, 5), steps=12, readout=readout,
                                   neuron=NeuronConfig(threshold=0.5)))
    for b in model.blocks:  # strong weights: the outputs spike often
        b.synapse.weight.data *= 6
    path = export_snn(model, tmp_path / f"t_{readout}.net", {"dataset": "mnist"})
    return load_target(path)


def _spikes(n=16, seed=0, p=0.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 40, 12, generator=g) < p).float()


def test_round_to_grid_values():
    p = torch.tensor([[0.04, 0.05, 0.151, 0.749, 0.0101]])
    assert torch.allclose(round_to_grid(p, 0.1), torch.tensor([[0.0, 0.1, 0.2, 0.7, 0.0]]))


def test_posterior_rounding_on_grid_and_default_unchanged(tmp_path):
    target = _target(tmp_path, "membrane")
    x = _spikes()
    exact = target.model.posterior(x)
    assert torch.equal(adapter_for(target).posterior(x), exact)  # no hook: the model's own posterior
    obs = ObservedPosterior(round_posterior=0.25)
    got = adapter_for(target, observe=obs).posterior(x)
    steps = got / 0.25
    assert torch.allclose(steps, steps.round(), atol=1e-6)  # every value on the grid
    assert torch.all((got - exact).abs() <= 0.125 + 1e-6)
    assert not torch.equal(got, exact)
    # the rounded posterior is flat: no gradient reaches the input, unless straight-through
    xg = x.clone().requires_grad_(True)
    obs(target.model, xg)[:, 0].sum().backward()
    assert xg.grad is None or torch.count_nonzero(xg.grad) == 0
    xs = x.clone().requires_grad_(True)
    ObservedPosterior(round_posterior=0.25, straight_through=True)(target.model, xs)[:, 0].sum().backward()
    assert torch.count_nonzero(xs.grad) > 0


def test_spike_count_clipping_caps_counts(tmp_path):
    target = _target(tmp_path, "spikes")
    model = target.model
    x = _spikes(p=0.8)
    out, _ = model.run(x)
    counts = out[..., model.settle:].sum(-1)
    assert counts.max() > 2  # the constructed case has counts above the cap
    obs = ObservedPosterior(clip_counts=2)
    logits = obs.logits(model, x)
    scale = float(model.deployment.posterior_scale)
    assert torch.allclose(logits, scale * torch.clamp(counts, max=2))
    assert logits.max() <= 2 * scale + 1e-6
    assert torch.allclose(obs(model, x), torch.softmax(logits, 1))
    with pytest.raises(InputError, match="spike counts"):
        ObservedPosterior(clip_counts=2).logits(_target(tmp_path, "membrane").model, x)


def test_input_flips_rate_seeded_and_gradient():
    x = torch.zeros(50, 40, 20)
    x[:, :20] = 1
    a = flip_spikes(x, 0.1, torch.Generator().manual_seed(3))
    b = flip_spikes(x, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    rate = (a != x).float().mean().item()
    assert 0.09 < rate < 0.11
    assert torch.equal(flip_spikes(x, 0.0, torch.Generator()), x)
    with pytest.raises(InputError):
        flip_spikes(x, 0.7, torch.Generator())


def test_requantize_weights_grid_ties_and_clip():
    w = np.array([-256, -6, -2, 0, 2, 4, 6, 10, 254], dtype=np.float32)
    got = requantize_weights(w, 2)  # multiples of 4, ties to even multiples
    assert np.all(got % 4 == 0)
    assert got.tolist() == [-256, -8, 0, 0, 0, 4, 8, 8, 252]
    assert np.array_equal(requantize_weights(w, 1), w)
    assert weight_bits(4) == 6.0


def test_requantize_net_file(tmp_path):
    target = _target(tmp_path, "membrane")
    dst = tmp_path / "q.net"
    info = requantize_net(target.path, dst, 4)
    with h5py.File(target.path) as f, h5py.File(dst) as g:
        for layer in ("0", "1"):
            w, q = f[f"layer/{layer}/weight"][()], g[f"layer/{layer}/weight"][()]
            assert np.all(q % 8 == 0) and np.array_equal(q, requantize_weights(w, 4))
            assert g[f"layer/{layer}/neuron/vThMant"][()] == f[f"layer/{layer}/neuron/vThMant"][()]
    assert info["changed"] > 0
    q = load_target(dst)  # the sidecar's checksum was updated: the copy loads as a target
    assert q.metadata["weight_step"] == 4
    assert not torch.equal(q.model.posterior(_spikes()), target.model.posterior(_spikes()))


def test_dp_clip_and_sum_constructed():
    g1 = [torch.tensor([3.0, 0.0]), torch.tensor([0.0])]  # norm 3: scaled to 1
    g2 = [torch.tensor([0.3, 0.0]), torch.tensor([0.4])]  # norm 0.5: kept
    total, norms = clip_and_sum([g1, g2], 1.0)
    assert np.allclose(norms, [3.0, 0.5])
    assert torch.allclose(total[0], torch.tensor([1.3, 0.0]))
    assert torch.allclose(total[1], torch.tensor([0.4]))
    assert epsilon_of(DPConfig(noise_multiplier=0.0), 0.01, 100) is None
    e1 = epsilon_of(DPConfig(noise_multiplier=1.0), 0.01, 100)
    e2 = epsilon_of(DPConfig(noise_multiplier=2.0), 0.01, 100)
    assert e1 > e2 > 0  # more noise, less epsilon


def test_dp_training_seeded_and_noisy():
    from brainleaks_lava.models.targets import snn_logits_fn

    g = np.random.default_rng(0)
    images = g.random((12, 5, 8)).astype(np.float32)
    labels = g.integers(0, 3, 12)

    def fit(noise, seed):
        with torch.random.fork_rng(devices=[]):
            torch.random.manual_seed(0)
            m = SpikingMLP(SNNSpec(sizes=(40, 8, 3), steps=6))
        hist = train_dp(m, snn_logits_fn(6), images, labels, TrainConfig(epochs=1, batch_size=4, lr=0.01, seed=seed,
                                                                          threads=1),
                        DPConfig(noise_multiplier=noise, max_grad_norm=0.5))
        return torch.cat([p.detach().flatten() for p in m.parameters()]), hist

    a, ha = fit(1.0, 0)
    b, _ = fit(1.0, 0)
    c, _ = fit(1.0, 1)
    d, hd = fit(0.0, 0)
    assert torch.equal(a, b)  # same seed, same weights
    assert not torch.equal(a, c) and not torch.equal(a, d)
    assert ha["epsilon"][0] > 0 and hd["epsilon"][0] is None
