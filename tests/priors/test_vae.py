"""The VAE prior: it learns the modes of a tiny constructed dataset, it is seeded, its outputs are in [0, 1] at the
exact image shape, and its settings are checked."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainleaks_lava.errors import InputError
from brainleaks_lava.priors import Prior
from brainleaks_lava.priors.vae import check_architecture, default_architecture, train_prior

S = 12
TINY = {"kind": "conv-vae", "image_shape": [1, S, S], "latent_dim": 2, "work_shape": [S, S], "channels": [8, 16],
        "hidden": 32}


def four_modes() -> np.ndarray:
    """Four distinct 12x12 shapes: a horizontal bar, a vertical bar, a square ring, a thick diagonal."""
    m = np.zeros((4, S, S), np.float32)
    m[0, 5:7, 1:11] = 1
    m[1, 1:11, 5:7] = 1
    m[2, 2:10, 2:10] = 1
    m[2, 4:8, 4:8] = 0
    for i in range(1, 11):
        m[3, i, i] = m[3, i, min(i + 1, S - 1)] = 1
    return m


@pytest.fixture(scope="module")
def modes_prior():
    modes = four_modes()
    prior = train_prior(np.repeat(modes, 50, axis=0), epochs=100, batch_size=20, lr=5e-3, seed=0, threads=1,
                        progress=False, architecture=TINY)
    return modes, prior


def test_decoded_random_codes_reproduce_every_mode(modes_prior):
    modes, prior = modes_prior
    assert isinstance(prior, Prior) and prior.latent_dim == 2 and prior.image_shape == (1, S, S)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = prior.decode(z).numpy()
    assert x.shape == (500, S * S) and x.min() >= 0 and x.max() <= 1
    flat = modes.reshape(4, -1)
    between = np.abs(flat[:, None] - flat[None]).mean(2)
    half_gap = between[between > 0].min() / 2  # 0.111: nearer than this to a mode means "that mode"
    dist = np.abs(x[:, None, :] - flat[None]).mean(2)
    nearest, d = dist.argmin(1), dist.min(1)
    assert (d < 0.9 * half_gap).mean() >= 0.85, np.quantile(d, [0.5, 0.9])  # measured: 0.93-0.95 over 3 seeds
    assert np.median(d) < 0.05
    share = np.bincount(nearest, minlength=4) / len(nearest)
    assert share.min() >= 0.1, share  # every mode is reached (measured: 15-35 % each)
    # the decoder is not a memoriser of one image: the mean image is far from every mode
    assert np.abs(flat - flat.mean(0)).mean(1).min() > 2 * np.median(d)


def test_encoder_maps_each_mode_to_a_code_that_decodes_back(modes_prior):
    modes, prior = modes_prior
    with torch.no_grad():
        back = prior.decode(prior.encode(torch.as_tensor(modes.reshape(4, -1)))).numpy()
    assert np.abs(back - modes.reshape(4, -1)).mean(1).max() < 0.05


def test_decode_is_differentiable_in_the_code(modes_prior):
    _, prior = modes_prior
    z = torch.zeros(3, 2, requires_grad=True)
    prior.decode(z).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in prior.decoder.parameters())  # the prior itself stays fixed
    with pytest.raises(InputError, match=r"\(N, 2\)"):
        prior.decode(torch.zeros(3, 5))


def _quick(seed, images, **kw):
    return train_prior(images, epochs=2, batch_size=16, seed=seed, threads=1, progress=False, architecture=TINY, **kw)


def test_same_seed_same_weights_other_seed_other_weights():
    images = np.repeat(four_modes(), 8, axis=0)
    a, b, c = _quick(3, images), _quick(3, images), _quick(4, images)
    sa, sb, sc = (p.decoder.state_dict() for p in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert a.training["history"] == b.training["history"]
    # augmentation draws from the same seeded generator
    d, e = _quick(3, images, shift=1, flip=True), _quick(3, images, shift=1, flip=True)
    assert all(torch.equal(d.decoder.state_dict()[k], e.decoder.state_dict()[k]) for k in sa)
    assert any(not torch.equal(sa[k], d.decoder.state_dict()[k]) for k in sa)


def test_global_rng_is_untouched():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    _quick(0, np.repeat(four_modes(), 4, axis=0))
    assert torch.equal(torch.rand(3), before)


@pytest.mark.parametrize("shape, work", [((1, 28, 28), [28, 28]), ((1, 112, 92), [56, 48]), ((1, 28, 23), [28, 24])])
def test_default_architecture_and_exact_output_shape(shape, work):
    arch = default_architecture(shape)
    assert arch["work_shape"] == work and arch["latent_dim"] == (16 if max(shape) <= 32 else 32)
    from brainleaks_lava.priors.vae import ConvVAE

    vae = ConvVAE(arch)
    with torch.no_grad():
        x = vae.decoder(torch.randn(2, arch["latent_dim"]) * 5)
        mu, logvar = vae.encoder(torch.rand(2, *shape))
    assert tuple(x.shape) == (2, *shape) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert mu.shape == logvar.shape == (2, arch["latent_dim"])


@pytest.mark.parametrize("change, words", [
    ({"kind": "gan"}, "kind"), ({"latent_dim": 0}, "latent_dim"), ({"latent_dim": True}, "latent_dim"),
    ({"work_shape": [12, 10]}, "divisible"), ({"channels": [8] * 6}, "stages"), ({"image_shape": [1, 12]}, "image_shape"),
    ({"hidden": 10**9}, "hidden"), ({"extra": 1}, "unknown field"),
])
def test_architecture_fields_are_checked(change, words):
    with pytest.raises(InputError, match=words):
        check_architecture({**TINY, **change})


@pytest.mark.parametrize("images, kw, words", [
    (np.full((4, S, S), 1.5, np.float32), {}, r"\[0, 1\]"),
    (np.full((4, S, S), np.nan, np.float32), {}, r"\[0, 1\]"),
    (np.zeros((0, S, S), np.float32), {}, "N >= 1"),
    (np.zeros((4, S, S), np.float32), {"epochs": 0}, "epochs"),
    (np.zeros((4, S, S), np.float32), {"beta": -1.0}, "beta"),
    (np.zeros((4, S, S), np.float32), {"shift": 99}, "shift"),
    (np.zeros((4, 8, 8), np.float32), {}, "architecture is for images"),
])
def test_bad_training_arguments(images, kw, words):
    with pytest.raises(InputError, match=words):
        train_prior(images, **{"epochs": 1, "progress": False, "architecture": TINY, **kw})
