"""BL-enc on constructed networks: gradient signs through each estimator, the priors, the encoders, the
start-confidence guard; the integrate-and-fire encoder; MI-FACE's rescue of saturated classes."""
import numpy as np
import pytest
import torch

import netx_nets
from brainleaks_lava.attacks import adapter_for, make_attack
from brainleaks_lava.attacks.encoder_aware import BLencParams, image_shape, total_variation
from brainleaks_lava.data.encoding import if_encode, to_spikes
from brainleaks_lava.errors import InputError
from brainleaks_lava.models.files import load_snn, load_target

STEPS = 12


@pytest.fixture(scope="module")
def signed_net(tmp_path_factory):
    """16 inputs -> 2 outputs: inputs 0-7 excite output 0 and inhibit output 1, inputs 8-15 the reverse."""
    return netx_nets.signed_net(tmp_path_factory.mktemp("signed") / "signed.net")


def _grad_of_rate(attack, rate, cls, gen_seed=0):
    rate = rate.clone().requires_grad_(True)
    x = attack._encode(rate, torch.Generator().manual_seed(gen_seed))
    loss, _ = attack._objective(x, torch.tensor([cls] * len(rate)))
    (g,) = torch.autograd.grad(loss.sum(), rate)
    return g


@pytest.mark.parametrize("encoding", ["rate", "if"])
@pytest.mark.parametrize("estimator", ["stochastic", "ste", "expectation"])
@pytest.mark.parametrize("objective", ["potential", "posterior", "margin"])
def test_gradient_sign_follows_the_weights(signed_net, encoding, estimator, objective):
    target = load_snn(signed_net, options={"steps": STEPS, "encoding": encoding})
    attack = make_attack("blenc", adapter_for(target), objective=objective, estimator=estimator)
    rate = torch.full((4, 16), 0.5)
    g = _grad_of_rate(attack, rate, cls=0)
    # raising an input that excites class 0 lowers the loss of class 0; one that inhibits it raises the loss
    assert torch.all(g[:, :8] <= 0) and torch.all(g[:, 8:] >= 0), g
    assert g[:, :8].sum() < 0 and g[:, 8:].sum() > 0
    g1 = _grad_of_rate(attack, rate, cls=1)
    assert g1[:, :8].sum() > 0 and g1[:, 8:].sum() < 0


def test_attack_drives_the_right_inputs(signed_net):
    target = load_snn(signed_net, options={"steps": STEPS})
    res = make_attack("blenc", adapter_for(target), iterations=60, tv=0.0).invert(seed=0, progress=False)
    rates = res.probabilities.mean(-1)  # (2, 16) rates of the Bernoulli encoder
    assert rates[0, :8].mean() > 2 * rates[0, 8:].mean() + 0.1
    assert rates[1, 8:].mean() > 2 * rates[1, :8].mean() + 0.1
    assert np.all(res.confidence > 0.9)
    assert res.extra["worse_than_start"] == [] and len(res.extra["start_confidence"]) == 2


def test_total_variation_and_the_prior_lowers_it(small_snn_path):
    flat = torch.zeros(1, 6, 6)
    checker = (torch.arange(36).reshape(6, 6) % 2 == torch.arange(6).view(6, 1) % 2).float()[None]
    assert float(total_variation(flat)) == 0.0
    assert float(total_variation(checker)) == pytest.approx(2.0)  # every neighbour differs by 1
    assert image_shape((784,)) == (28, 28) and image_shape((10,)) is None and image_shape((2, 4, 4)) == (2, 4, 4)
    adapter = adapter_for(load_target(small_snn_path))

    def tv_of(weight):
        r = make_attack("blenc", adapter, iterations=40, tv=weight).invert(classes=[0, 3], seed=0, progress=False)
        img = torch.as_tensor(r.probabilities.mean(-1)).reshape(2, 28, 28)
        return total_variation(img)
    assert torch.all(tv_of(1.0) < 0.7 * tv_of(0.0))


def test_encoders_of_the_result(small_snn_path, tmp_path):
    adapter = adapter_for(load_target(small_snn_path, options={"encoding": "if"}))
    r = make_attack("blenc", adapter, iterations=5).invert(classes=[1], seed=0, progress=False)
    # a deterministic encoder: the spikes are the integrate-and-fire coding of one rate per pixel
    assert r.probabilities is None and r.input_kind == "spikes"
    counts = r.samples.sum(-1)
    assert counts.max() > 0 and set(np.unique(r.samples)) <= {0, 1}
    adapter = adapter_for(load_target(small_snn_path))
    r = make_attack("blenc", adapter, iterations=5).invert(classes=[1], seed=0, progress=False)
    p = r.probabilities
    assert p.shape == (1, 784, 12) and np.all(p == p[..., :1])  # static: one rate shared over time
    r2 = make_attack("blenc", adapter, iterations=5).invert(classes=[1], seed=0, progress=False)
    np.testing.assert_array_equal(r.samples, r2.samples)  # seeded


def test_parameters_are_checked():
    for kw, name in (({"objective": "x"}, "objective"), ({"estimator": "x"}, "estimator"),
                     ({"parameterisation": "x"}, "parameterisation"), ({"tv": -1.0}, "tv"),
                     ({"init_rate": 1.0}, "init_rate"), ({"loss": "x"}, "loss"), ({"restarts": 0}, "restarts")):
        with pytest.raises(InputError, match=name):
            BLencParams(**kw)
    with pytest.raises(InputError, match="reference"):
        BLencParams.reference()


def test_integrator_objective_needs_an_integrator(tmp_path):
    path, _ = netx_nets.integrator_net(tmp_path / "integ.net")
    target = load_snn(path, options={"steps": STEPS})
    attack = make_attack("blenc", adapter_for(target))
    assert attack.objective == "integrator"
    r = attack.invert(classes=[0], seed=0, progress=False)
    assert r.confidence.shape == (1,)


def test_if_encode_is_integrate_and_fire():
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0, 0.3]])
    s = if_encode(x, steps=8)
    np.testing.assert_array_equal(s.sum(-1).numpy(), [[0, 2, 4, 8, 2]])  # floor(8 x)
    np.testing.assert_array_equal(s[0, 1].numpy(), [0, 0, 0, 1, 0, 0, 0, 1])  # v += 0.25, spike at v >= 1
    np.testing.assert_array_equal(to_spikes(x.numpy(), {"kind": "if", "steps": 8}).numpy(), s.numpy())
    with pytest.raises(InputError):
        if_encode(torch.tensor([[1.5]]), steps=4)


def test_miface_rescues_saturated_classes_and_reports_stuck_ones():
    """The shipped MNIST ANN at x = 0 gives class 8 a posterior of ~1e-9: the cost 1 - p is flat there."""
    adapter = adapter_for(load_target("netx_models/mnist_ann.h5"))
    with torch.no_grad():
        p0 = adapter.posterior(torch.zeros(1, 784))[0, 8]
    assert p0 < 1e-6
    paper = make_attack("miface", adapter, iterations=300).invert(classes=[8], seed=0, progress=False)
    assert paper.confidence[0] > 0.9 and paper.samples.max() > 0 and paper.extra["stuck_at_start"] == []
    ref = make_attack("miface", adapter, mode="reference", iterations=300).invert(classes=[8], seed=0,
                                                                                     progress=False)
    assert ref.confidence[0] < 1e-6 and ref.samples.max() == 0 and ref.extra["stuck_at_start"] == [8]


def test_miface_progress_below_float32_resolution_of_the_cost():
    """A class whose posterior starts at 2e-12 and climbs slowly: for 100 iterations 1 - p is exactly 1.0 in
    float32 although p grows a thousandfold. Paper mode measures progress on log p and reaches the class;
    reference mode compares the float32 cost (as published), sees no improvement, and its patience rule
    returns the start image (reported as stuck)."""
    from brainleaks_lava.models.ann import ANNSpec, SigmoidMLP

    model = SigmoidMLP(ANNSpec((2, 1, 2)))
    with torch.no_grad():  # logit of class 0: 80 * sigmoid(x1 + x2) - 67 (-27 at x = 0); class 1: 0
        model.layers[0].weight.fill_(1.0)
        model.layers[0].bias.zero_()
        model.layers[1].weight.copy_(torch.tensor([[80.0], [0.0]]))
        model.layers[1].bias.copy_(torch.tensor([-67.0, 0.0]))
    adapter = adapter_for(model)
    assert adapter.posterior(torch.zeros(1, 2))[0, 0] < 1e-11
    same_steps = {"lr": 1e-4, "iterations": 3000, "rescue_below": 0.5}
    paper = make_attack("miface", adapter, **same_steps).invert(classes=[0], seed=0, progress=False)
    ref = make_attack("miface", adapter, mode="reference", **same_steps).invert(classes=[0], seed=0, progress=False)
    assert paper.confidence[0] > 0.9 and paper.extra["stuck_at_start"] == []
    assert ref.iterations[0] == 100 and ref.samples.max() == 0 and ref.extra["stuck_at_start"] == [0]
    assert ref.confidence[0] < 1e-11


def test_miface_start_intensity():
    """``start`` sets the uniform start image (published: 0); a run stopped before its first step returns it."""
    from brainleaks_lava.attacks.miface import MIFaceParams

    adapter = adapter_for(load_target("netx_models/mnist_ann.h5"))
    r = make_attack("miface", adapter, start=0.5, iterations=1).invert(classes=[3], seed=0, progress=False)
    assert r.samples.shape == (1, 784) and np.all(r.samples == 0.5)  # the one image scored is the start
    with torch.no_grad():
        assert np.isclose(r.confidence[0], float(adapter.posterior(torch.full((1, 784), 0.5))[0, 3]), rtol=1e-5)
    with pytest.raises(InputError, match="start"):
        MIFaceParams(start=1.5)
