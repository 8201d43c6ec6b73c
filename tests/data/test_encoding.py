"""Rate coding: reproducibility, layout, statistics, input validation, no global RNG."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from brainleaks_lava.data import RateEncoder, rate_decode, rate_encode
from brainleaks_lava.errors import InputError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 3) -> np.ndarray:
    return (np.arange(n * 4 * 5, dtype=np.float32).reshape(n, 4, 5) % 11) / 10


def test_same_seed_same_spikes_different_seed_different():
    x = images()
    a = rate_encode(x, steps=30, generator=gen(7))
    b = rate_encode(x, steps=30, generator=gen(7))
    c = rate_encode(x, steps=30, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # no generator -> a fresh generator seeded with 0, every time
    assert torch.equal(rate_encode(x, steps=30), rate_encode(x, steps=30))
    assert torch.equal(rate_encode(x, steps=30), rate_encode(x, steps=30, generator=gen(0)))


def test_shape_dtype_binary_nct_layout():
    x = images(3)
    s = rate_encode(x, steps=12, generator=gen(1))
    assert s.shape == (3, 20, 12)  # (N, features, T): images flattened
    assert s.dtype == torch.float32
    assert set(torch.unique(s).tolist()) <= {0.0, 1.0}
    # features follow the row-major flattening of each image: zero pixels never spike, ones always do
    flat = torch.from_numpy(x.reshape(3, 20))
    assert torch.all(s[flat == 0] == 0)
    assert torch.all(s[flat == 1] == 1)
    mnist_like = torch.rand((2, 28, 28), generator=gen(2))
    assert rate_encode(mnist_like, steps=5, generator=gen(3)).shape == (2, 784, 5)
    assert rate_encode(np.zeros((4,)), steps=3).shape == (4, 1, 3)


def test_firing_rate_matches_intensity():
    p = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]])
    s = rate_encode(p, steps=10_000, generator=gen(123))
    rate = rate_decode(s)
    assert rate.shape == (1, 5) and rate.dtype == torch.float32
    assert torch.allclose(rate, p, atol=0.01)
    assert rate[0, 0] == 0.0 and rate[0, 4] == 1.0


def test_firing_rate_over_many_samples():
    x = np.full((10_000, 3), [0.2, 0.5, 0.75], dtype=np.float32)
    s = rate_encode(x, steps=1, generator=gen(5))
    per_feature = s.mean(dim=(0, 2))
    assert torch.allclose(per_feature, torch.tensor([0.2, 0.5, 0.75]), atol=0.01)


def test_global_rng_untouched():
    torch_state = torch.get_rng_state().clone()
    np_state = np.random.get_state()
    rate_encode(images(), steps=20)
    rate_encode(images(), steps=20, generator=gen(9))
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2] == np_state[2]


def test_rate_decode_round_trip_and_validation():
    s = torch.tensor([[[1, 0, 1, 0], [1, 1, 1, 1]]], dtype=torch.float32)
    np.testing.assert_allclose(rate_decode(s).numpy(), [[0.5, 1.0]])
    np.testing.assert_allclose(rate_decode(s.numpy().astype(np.uint8)).numpy(), [[0.5, 1.0]])
    with pytest.raises(InputError, match="binary"):
        rate_decode(s * 0.5)
    with pytest.raises(InputError, match=r"\(N, features, T\)"):
        rate_decode(torch.zeros(4, 4))
    with pytest.raises(InputError, match="T = 0"):
        rate_decode(torch.zeros(1, 2, 0))


@pytest.mark.parametrize("bad, match", [
    (np.array([[0.5, np.nan]]), "NaN"),
    (np.array([[0.5, np.inf]]), "NaN or infinite"),
    (np.array([[0.5, 1.5]]), r"\[0, 1\]"),
    (np.array([[-0.1, 0.5]]), r"\[0, 1\]"),
    (np.array([[0, 255]], dtype=np.uint8), r"\[0, 1\]"),
    (np.array([[0.5, 1.0 + 1e-12]]), r"\[0, 1\]"),  # checked before rounding to float32
])
def test_bad_images_raise_input_error_naming_images(bad, match):
    with pytest.raises(InputError, match=match) as e:
        rate_encode(bad, steps=4)
    assert "images" in str(e.value)
    with pytest.raises(ValueError):  # InputError is a ValueError too
        rate_encode(torch.from_numpy(bad), steps=4)


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_bad_steps_raise_input_error_naming_steps(steps):
    with pytest.raises(InputError, match="steps"):
        rate_encode(images(), steps=steps)
    with pytest.raises(InputError, match="steps"):
        RateEncoder(steps=steps)


def test_bad_generator():
    with pytest.raises(InputError, match="generator"):
        rate_encode(images(), steps=3, generator=0)


def test_rate_encoder_delegates_and_is_frozen():
    enc = RateEncoder(steps=9)
    assert RateEncoder().steps == 25
    x = images()
    assert torch.equal(enc(x, gen(4)), rate_encode(x, steps=9, generator=gen(4)))
    assert enc(x, None).shape == (3, 20, 9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        enc.steps = 3
