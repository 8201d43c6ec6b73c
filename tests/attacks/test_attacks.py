import numpy as np
import pytest
import torch

from brainleaks_lava.attacks import (BLv1Params, BLv2Params, BrainLeaksV1, BrainLeaksV2, MIFace, MIFaceParams,
                                     adapter_for, draw_samples, make_attack)
from brainleaks_lava.attacks.brainleaks_v1 import apply_ternary, quantize_paper, quantize_reference
from brainleaks_lava.attacks.brainleaks_v2 import clamp_and_scale, nes_weights
from brainleaks_lava.attacks.recon_file import load_recon, save_recon
from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError, ModelFileError
from brainleaks_lava.models.files import load_target


@pytest.fixture(scope="module")
def snn(small_snn_path):
    return load_target(small_snn_path)


@pytest.fixture(scope="module")
def ann(small_ann_path):
    return load_target(small_ann_path)


def _start_conf(adapter, zeros_shape, n):
    with torch.no_grad():
        p = adapter.posterior(torch.zeros((n, *zeros_shape)))
    return p[torch.arange(n), torch.arange(n)].numpy()


# ---------------------------------------------------------------- unit tests on hand-made tensors

def test_bl1_paper_quantizer_thresholds_max_normalised_gradient():
    g = torch.tensor([[[0.2, -1.0], [0.5, -0.49]]])  # max |g| = 1.0
    q = quantize_paper(g, eta=0.5)
    # descent: -sign(grad) where |g|/max >= 0.5
    assert torch.equal(q, torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]]))
    assert torch.equal(quantize_paper(torch.zeros(1, 2, 2), 0.5), torch.zeros(1, 2, 2))


def test_bl1_overflow_aware_update():
    x = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    u = torch.tensor([-1.0, 1.0, 1.0, -1.0, 0.0, 0.0])
    assert torch.equal(apply_ternary(x, u), torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0]))


def test_bl1_reference_mask_is_bernoulli_of_minmax():
    g = torch.tensor([[[0.0, -2.0, 1.0, 2.0]]])  # min-max of |g|: 0, 1, 0.5, 1
    hits = torch.zeros(4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2000):
        hits += quantize_reference(g, gen).abs()[0, 0]
    rates = hits / 2000
    assert rates[0] == 0 and rates[1] == 1 and rates[3] == 1
    assert abs(rates[2] - 0.5) < 0.05
    assert torch.equal(quantize_reference(g, gen)[0, 0, [1, 3]], torch.tensor([1.0, -1.0]))  # ascent sign


def test_eq4_weights_paper_and_reference():
    L = torch.tensor([[0.0, 1.0, 2.0]])
    e = np.exp([0.0, -1.0, -2.0])
    np.testing.assert_allclose(nes_weights(L, "paper").numpy()[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(nes_weights(L, "reference").numpy()[0], [0.0, 1 / 3, 2 / 3], rtol=1e-6)


def test_clamp_and_scale():
    p = torch.tensor([[[-0.5, 0.5], [2.0, 1.0]], [[-1.0, 0.25], [0.75, 0.5]]])
    out = clamp_and_scale(p)
    assert torch.equal(out[0], torch.tensor([[0.0, 0.25], [1.0, 0.5]]))  # row max 2 -> divided by 2
    assert torch.equal(out[1], torch.tensor([[0.0, 0.25], [0.75, 0.5]]))  # max <= 1: only clamped


# ---------------------------------------------------------------- parameter validation

@pytest.mark.parametrize("cls,kwargs,name", [
    (BLv1Params, {"iterations": 0}, "iterations"),
    (BLv1Params, {"eta": 0.0}, "eta"),
    (BLv1Params, {"eta": 1.5}, "eta"),
    (BLv1Params, {"mode": "fast"}, "mode"),
    (BLv1Params, {"stop_confidence": 2.0}, "stop_confidence"),
    (BLv2Params, {"population": 0}, "population"),
    (BLv2Params, {"lr": -1.0}, "lr"),
    (BLv2Params, {"rho": 1.5}, "rho"),
    (BLv2Params, {"momentum": 1.0}, "momentum"),
    (BLv2Params, {"xi": float("nan")}, "xi"),
    (BLv2Params, {"init_prob": 1.2}, "init_prob"),
    (BLv2Params, {"iterations": 2.5}, "iterations"),
    (MIFaceParams, {"patience": 0}, "patience"),
    (MIFaceParams, {"cost_threshold": -0.1}, "cost_threshold"),
    (MIFaceParams, {"lr": 0.0}, "lr"),
])
def test_bad_parameters_raise_value_error_naming_them(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_attack_checks_what_the_target_offers(snn, ann):
    with pytest.raises(InputError, match="input gradients of an ANN"):
        MIFace(adapter_for(snn))
    with pytest.raises(InputError, match="surrogate gradients"):
        BrainLeaksV2(adapter_for(ann))
    with pytest.raises(InputError, match="classes"):
        BrainLeaksV2(adapter_for(snn), iterations=1).invert(classes=[10])
    with pytest.raises(InputError, match="method"):
        make_attack("bl3", adapter_for(snn))


# ---------------------------------------------------------------- behaviour on small trained targets

def test_bl1_raises_confidence_of_every_class_and_is_binary(snn):
    a = adapter_for(snn)
    start = _start_conf(a, a.input_shape, 10)
    res = BrainLeaksV1(a, BLv1Params(iterations=40, eta=0.3)).invert(seed=0, progress=False)
    assert res.samples.shape == (10, 784, 12) and res.samples.dtype == np.uint8
    assert set(np.unique(res.samples)) <= {0, 1}
    assert np.all(res.confidence > start), (res.confidence, start)
    res_ref = make_attack("bl1", a, mode="reference").invert(seed=0, progress=False)
    assert np.all(res_ref.confidence > start)
    assert res_ref.params["iterations"] == 10


@pytest.mark.parametrize("mode", ["paper", "reference"])
def test_bl2_raises_confidence_probabilities_in_unit_interval(snn, mode):
    a = adapter_for(snn)
    start = _start_conf(a, a.input_shape, 10)
    res = make_attack("bl2", a, mode=mode, iterations=15, stop_confidence=None).invert(seed=1, progress=False)
    assert res.probabilities.shape == (10, 784, 12)
    assert res.probabilities.min() >= 0 and res.probabilities.max() <= 1
    assert set(np.unique(res.samples)) <= {0, 1} and res.samples.shape == (10, 784, 12)
    assert np.all(res.confidence > start)
    assert res.loss_history.shape == (15, 10)


def test_same_seed_same_reconstructions(snn):
    a = adapter_for(snn)
    r1 = make_attack("bl2", a, iterations=5).invert(classes=[1, 7], seed=4, progress=False)
    r2 = make_attack("bl2", a, iterations=5).invert(classes=[1, 7], seed=4, progress=False)
    r3 = make_attack("bl2", a, iterations=5).invert(classes=[1, 7], seed=5, progress=False)
    assert np.array_equal(r1.samples, r2.samples) and np.array_equal(r1.probabilities, r2.probabilities)
    assert not np.array_equal(r1.samples, r3.samples)
    b1 = make_attack("bl1", a, mode="reference").invert(classes=[3], seed=2, progress=False)
    b2 = make_attack("bl1", a, mode="reference").invert(classes=[3], seed=2, progress=False)
    assert np.array_equal(b1.samples, b2.samples)


def test_batched_rows_are_independent(snn):
    """Inverting classes together gives the same result per row as the math done row by row (BL-v1 paper
    mode is deterministic, so this checks that batching does not mix rows)."""
    a = adapter_for(snn)
    both = BrainLeaksV1(a, BLv1Params(iterations=5)).invert(classes=[2, 5], progress=False)
    one = BrainLeaksV1(a, BLv1Params(iterations=5)).invert(classes=[5], progress=False)
    assert np.array_equal(both.samples[1], one.samples[0])


def test_miface_raises_confidence_images_in_range(ann):
    a = adapter_for(ann)
    start = _start_conf(a, a.input_shape, 10)
    res = MIFace(a, MIFaceParams(iterations=300, patience=50)).invert(seed=0, progress=False)
    assert res.samples.shape == (10, 784)
    assert res.samples.min() >= 0 and res.samples.max() <= 1
    assert np.all(res.confidence > start)


def test_stop_confidence_stops_rows(snn):
    a = adapter_for(snn)
    res = make_attack("bl2", a, iterations=30, stop_confidence=0.5).invert(classes=[0, 1], seed=0, progress=False)
    assert np.all(res.iterations < 30)
    # BL-v2's default has no confidence stop: the same rows run every iteration (docs/attacks.md, stopping rule)
    full = make_attack("bl2", a, iterations=30).invert(classes=[0, 1], seed=0, progress=False)
    assert full.iterations.tolist() == [30, 30] and np.all(full.confidence >= 0.5)
    assert np.all(np.isfinite(full.loss_history))


def test_draw_samples_seeded_and_validated():
    p = np.full((2, 3, 4), 0.5, dtype=np.float32)
    d1 = draw_samples(p, 5, torch.Generator().manual_seed(0))
    d2 = draw_samples(p, 5, torch.Generator().manual_seed(0))
    assert d1.shape == (2, 5, 3, 4) and np.array_equal(d1, d2)
    with pytest.raises(InputError, match="probabilities"):
        draw_samples(p + 1, 5, torch.Generator())


# ---------------------------------------------------------------- files and CLI

def test_recon_roundtrip_and_cli(snn, small_snn_path, tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert main(["attack", "--model", str(small_snn_path), "--method", "bl2", "--iterations", "3",
                 "--classes", "0", "4", "--seed", "7", "--out", str(out)]) == 0
    r = load_recon(out)
    assert list(r.targets) == [0, 4] and r.seed == 7 and r.attack == "bl2" and r.mode == "paper"
    assert r.extra["model_sha256"] == snn.sha256
    again = make_attack("bl2", adapter_for(snn), iterations=3).invert(classes=[0, 4], seed=7, progress=False)
    assert np.array_equal(r.samples, again.samples)
    assert main(["attack", "--model", str(small_snn_path), "--method", "bl2", "--population", "0",
                 "--out", str(tmp_path / "x.h5")]) == 2
    assert "population" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_recon_reader_rejects_corrupt_files(snn, tmp_path):
    res = make_attack("bl2", adapter_for(snn), iterations=2).invert(classes=[0], progress=False)
    good = save_recon(res, tmp_path / "g.h5")
    data = good.read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match="t.h5"):
        load_recon(tmp_path / "t.h5")
    import h5py
    with h5py.File(good, "a") as f:
        f["samples"][0, 0, 0] = 3
    with pytest.raises(ModelFileError, match="binary"):
        load_recon(good)


def test_make_attack_unknown_parameter_is_input_error(small_snn_path):
    from brainleaks_lava.models.files import load_target

    with pytest.raises(ValueError, match="bl1 has no parameter population"):
        make_attack("bl1", adapter_for(load_target(small_snn_path)), population=5)
