import numpy as np
import pytest
import torch

from brainleaks_lava.attacks import adapter_for, make_attack
from brainleaks_lava.attacks.recon_file import recon_draws
from brainleaks_lava.errors import InputError
from brainleaks_lava.evaluation.classifiers import Evaluator
from brainleaks_lava.evaluation.metrics import attack_metrics
from brainleaks_lava.evaluation.score import evaluate_result, minmax_rows
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
