import dataclasses

import numpy as np
import pytest
import torch

from brainleaks_lava.attacks import adapter_for, make_attack
from brainleaks_lava.attacks.base import AttackResult
from brainleaks_lava.attacks.recon_file import recon_draws
from brainleaks_lava.data.encoding import rate_encode
from brainleaks_lava.errors import InputError
from brainleaks_lava.evaluation.classifiers import Evaluator
from brainleaks_lava.evaluation.metrics import attack_metrics
from brainleaks_lava.evaluation.score import evaluate_result, minmax_rows, resolve_contrast, standardise_rows
from brainleaks_lava.models.files import load_target


@pytest.fixture(scope="module")
def snn(small_snn_path):
    return load_target(small_snn_path)


def test_bl2_scored_over_independent_draws(snn):
    """The metrics of each draw equal the metrics computed by hand on that draw's posteriors."""
    res = make_attack("bl2", adapter_for(snn), iterations=6).invert(seed=2, progress=False)
    ev = Evaluator(model=snn.model, kind="snn", input_shape=(28, 28), steps=12, classes=tuple("0123456789"))
    out = evaluate_result(res, ev, draws=5, seed=9)
    assert out.summary["n_draws"] == 5 and len(out.per_draw) == 5
    d = recon_draws(res, 5, 9)
    for k in range(5):
        with torch.no_grad():
            post = snn.model.posterior(torch.as_tensor(d[k], dtype=torch.float32)).numpy().astype(np.float64)
        post /= post.sum(1, keepdims=True)
        assert out.per_draw[k] == attack_metrics(post, res.targets, 10)
    accs = [m.accuracy for m in out.per_draw]
    assert out.summary["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert out.summary["accuracy"]["std"] == pytest.approx(np.std(accs))
    # deterministic reconstructions are scored once
    bl1 = make_attack("bl1", adapter_for(snn), iterations=3).invert(seed=0, progress=False)
    assert evaluate_result(bl1, ev, draws=5).summary["n_draws"] == 1


def test_minmax_rows():
    x = np.array([[0.2, 0.4, 0.6], [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(minmax_rows(x), [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]])


def test_evaluator_with_fewer_classes_is_refused(snn):
    res = make_attack("bl2", adapter_for(snn), iterations=1).invert(classes=[9], progress=False)
    ev = Evaluator(model=snn.model, kind="snn", input_shape=(28, 28), steps=12, classes=tuple("01234"))
    with pytest.raises(InputError, match="class 9"):
        evaluate_result(res, ev, draws=2)


# ------------------------------------------------------------------------------------------------
# contrast standardisation: scoring what a reconstruction shows, not how bright it is

def _snn_evaluator(snn, **meta):
    return Evaluator(model=snn.model, kind="snn", input_shape=(28, 28), steps=12, classes=tuple("0123456789"),
                     metadata=meta)


def _image_result(images, targets):
    n = len(images)
    return AttackResult(attack="miface", mode="paper", params={}, seed=0, targets=np.asarray(targets),
                        samples=np.asarray(images, dtype=np.float32), confidence=np.zeros(n, np.float32),
                        iterations=np.ones(n, np.int64), loss_history=np.zeros((1, n), np.float32))


def test_standardise_rows_on_constructed_images():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 4.0]])
    out = standardise_rows(x, 0.5, 0.1)
    z = (x[0] - 1.5) / np.sqrt(1.25)
    np.testing.assert_allclose(out[0], 0.5 + 0.1 * z, rtol=1e-6)
    assert out[0].mean() == pytest.approx(0.5, abs=1e-6) and out[0].std() == pytest.approx(0.1, rel=1e-5)
    np.testing.assert_array_equal(out[1], np.float32(0.5))  # a constant image: uniform at the mean
    # values beyond [0, 1] are clipped: row 2 has z = (-0.577 x3, 1.732)
    np.testing.assert_allclose(standardise_rows(x[2:], 0.5, 0.5)[0], [0.5 - 0.5 / np.sqrt(3)] * 3 + [1.0], rtol=1e-6)
    assert out.dtype == np.float32


def test_resolve_contrast_forms_and_errors(snn):
    ev = _snn_evaluator(snn, image_stats={"mean": 0.2, "std": 0.3})
    assert resolve_contrast(None, ev) is None and resolve_contrast("none", ev) is None
    assert resolve_contrast("standardise", ev) == (0.2, 0.3) == resolve_contrast("standardize", ev)
    assert resolve_contrast((0.4, 0.1), ev) == (0.4, 0.1)
    bare = _snn_evaluator(snn)
    bare.path = "old_eval.h5"
    with pytest.raises(InputError, match="old_eval.h5: the evaluator records no grey-level statistics"):
        resolve_contrast("standardise", bare)
    for bad in ("bright", (0.4,), (1.2, 0.1), (0.4, 0.0), (float("nan"), 0.1), ("a", "b")):
        with pytest.raises(InputError, match="contrast"):
            resolve_contrast(bad, ev)


def test_contrast_scores_content_not_brightness(snn):
    """A BL-v2 reconstruction and a 4x dimmer copy of it score identically under contrast standardisation
    (and differently without it); each draw is a seeded rate coding of the standardised expected image."""
    res = make_attack("bl2", adapter_for(snn), iterations=4).invert(classes=[1, 4, 7], seed=1, progress=False)
    dim = dataclasses.replace(res, probabilities=res.probabilities * 0.25)  # a power of two: exact scaling
    ev = _snn_evaluator(snn)
    bright_c = evaluate_result(res, ev, draws=3, seed=5, contrast=(0.3, 0.2))
    dim_c = evaluate_result(dim, ev, draws=3, seed=5, contrast=(0.3, 0.2))
    assert np.array_equal(bright_c.posteriors, dim_c.posteriors)
    assert bright_c.summary["n_draws"] == 3 and bright_c.extra["contrast"] == {"mean": 0.3, "std": 0.2}
    raw_bright, raw_dim = evaluate_result(res, ev, draws=3, seed=5), evaluate_result(dim, ev, draws=3, seed=5)
    assert not np.array_equal(raw_bright.posteriors, raw_dim.posteriors) and raw_bright.extra["contrast"] is None
    # by hand: the time-averaged probabilities, standardised, rate-coded 3 times with one seeded generator
    shown = standardise_rows(res.probabilities.mean(-1, dtype=np.float64), 0.3, 0.2)
    gen = torch.Generator().manual_seed(5)
    for k in range(3):
        with torch.no_grad():
            post = snn.model.posterior(rate_encode(shown, steps=12, generator=gen)).numpy().astype(np.float64)
        np.testing.assert_array_equal(bright_c.posteriors[k], post / post.sum(1, keepdims=True))
    # a deterministic reconstruction (BL-v1 spikes) is scored once, from its spike trains' time average
    bl1 = make_attack("bl1", adapter_for(snn), iterations=2).invert(classes=[3], progress=False)
    assert evaluate_result(bl1, ev, draws=4, contrast=(0.3, 0.2)).summary["n_draws"] == 1


def test_contrast_makes_minmax_scaling_of_images_irrelevant():
    from brainleaks_lava.evaluation.classifiers import CNNEvaluator

    torch.manual_seed(0)
    ann = Evaluator(model=CNNEvaluator((28, 28), 10).eval(), kind="ann", input_shape=(28, 28), steps=0,
                    classes=tuple("0123456789"), metadata={"image_stats": {"mean": 0.13, "std": 0.3}})
    x = np.random.default_rng(0).random((4, 784)) * 0.5
    a = evaluate_result(_image_result(x, [0, 1, 2, 3]), ann, contrast="standardise")
    b = evaluate_result(_image_result(0.5 * x + 0.25, [0, 1, 2, 3]), ann, contrast="standardise")
    np.testing.assert_allclose(a.posteriors, b.posteriors, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        want = torch.softmax(ann.model.logits(torch.as_tensor(standardise_rows(x, 0.13, 0.3))), 1).numpy()
    np.testing.assert_allclose(a.posteriors[0], want / want.sum(1, keepdims=True), rtol=1e-5)


def test_contrast_refuses_event_evaluators(snn):
    res = make_attack("bl1", adapter_for(snn), iterations=1).invert(classes=[0], progress=False)
    ev = _snn_evaluator(snn, encoding={"kind": "frames", "steps": 12})
    with pytest.raises(InputError, match="event frames"):
        evaluate_result(res, ev, contrast=(0.3, 0.2))
