"""The query oracle and the query-only attacks (issue 30): the oracle exposes only what it declares and never
passes its budget; NES estimates the gradient; nes and label invert a tiny deployed network; seeded."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netx_nets
from brainleaks_lava.attacks import ATTACKS, adapter_for, make_attack
from brainleaks_lava.attacks.oracle import QueryBudgetExceeded, QueryOracle
from brainleaks_lava.attacks.query_only import LabelParams, NESParams, nes_gradient
from brainleaks_lava.defenses import ObservedPosterior
from brainleaks_lava.errors import InputError
from brainleaks_lava.models.files import load_snn

STEPS = 12


@pytest.fixture(scope="module")
def signed_net(tmp_path_factory):
    """16 inputs -> 2 outputs: inputs 0-7 excite output 0 and inhibit output 1, inputs 8-15 the reverse."""
    return netx_nets.signed_net(tmp_path_factory.mktemp("signed") / "signed.net")


def _target(path, encoding="rate"):
    return load_snn(path, options={"steps": STEPS, "encoding": encoding})


def _reachable(root, limit=20_000):
    """Everything reachable from ``root`` through attributes, ``vars()``/``__dict__``, ``dir()``, properties,
    containers and bound methods (not closure cells or the garbage collector)."""
    seen, stack, found = set(), [root], []
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type)):
            continue
        seen.add(id(obj))
        found.append(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
            continue
        if isinstance(obj, (torch.Tensor, np.ndarray, torch.nn.Module)):
            continue
        if hasattr(obj, "__self__") and not isinstance(obj, type(len)):
            stack.append(obj.__self__)
        try:
            stack.extend(vars(obj).values())
        except TypeError:
            pass
        if not callable(obj) or obj is root:
            for name in dir(obj):
                if name in ("__class__", "__init_subclass__", "__subclasshook__", "__globals__", "__closure__",
                            "__code__", "__builtins__", "__module__", "__doc__"):
                    continue
                try:
                    stack.append(getattr(obj, name))
                except Exception:
                    pass
    return found


def _model_parts(objs):
    return [o for o in objs if isinstance(o, (torch.nn.Module, torch.nn.Parameter))
            or (isinstance(o, torch.Tensor) and o.requires_grad)]


@pytest.mark.parametrize("exposes", ["counts", "posterior", "label"])
def test_the_oracle_hides_the_model(signed_net, exposes):
    target = _target(signed_net)
    weights = [p.detach().clone() for p in target.model.parameters()] + [b.clone() for b in target.model.buffers()]
    oracle = QueryOracle(adapter_for(target), exposes=exposes, defense=ObservedPosterior(round_posterior=0.1),
                         budget=50, seed=0)
    oracle.query(np.full((3, 16), 0.5))
    # the walk can find a model: through the adapter it does (so the check below can fail)
    assert _model_parts(_reachable(adapter_for(target)))
    objs = _reachable(oracle)
    assert not _model_parts(objs)
    tensors = [o for o in objs if isinstance(o, torch.Tensor)]
    for w in weights:
        assert not any(t.shape == w.shape and torch.equal(t, w) for t in tensors if w.numel() > 2)
    for name in ("model", "twin", "net", "adapter", "target", "parameters", "weights", "gradient"):
        assert not hasattr(oracle, name)
    assert oracle.exposes == exposes and oracle.num_classes == 2 and oracle.queries_used == 3


def test_what_each_exposure_returns(signed_net):
    target = _target(signed_net)
    x = torch.rand(6, 16, generator=torch.Generator().manual_seed(0))
    labels = QueryOracle(target, exposes="label", budget=10).query(x)
    assert labels.shape == (6,) and labels.dtype.kind == "i" and set(labels.tolist()) <= {0, 1}
    post = QueryOracle(target, exposes="posterior", defense=ObservedPosterior(round_posterior=0.1), budget=10).query(x)
    assert post.shape == (6, 2)
    np.testing.assert_allclose(post / 0.1, np.round(post / 0.1), atol=1e-6)  # on the 0.1 grid
    exact = QueryOracle(target, exposes="posterior", budget=10).query(x)
    assert not np.allclose(exact / 0.1, np.round(exact / 0.1), atol=1e-6)  # without rounding: not on it
    counts = QueryOracle(target, exposes="counts", budget=10, seed=0).query(x)
    assert counts.dtype.kind == "i" and counts.min() >= 0 and counts.max() > 1
    clipped = QueryOracle(target, exposes="counts", defense=ObservedPosterior(clip_counts=1), budget=10,
                          seed=0).query(x)
    np.testing.assert_array_equal(clipped, np.minimum(counts, 1))  # same seed, same encoding, then clipped
    hooked = adapter_for(target, observe=ObservedPosterior(clip_counts=1))  # an adapter's defense is the oracle's
    np.testing.assert_array_equal(QueryOracle(hooked, exposes="counts", budget=10, seed=0).query(x), clipped)
    # the answers are the twin's on the oracle's encoding: labels are the argmax of the counts of the same seed
    np.testing.assert_array_equal(QueryOracle(target, exposes="label", budget=10, seed=0).query(x),
                                  counts.argmax(1))
    with pytest.raises(InputError, match="images must hold intensities"):
        QueryOracle(target, budget=10).query(np.full((1, 16), 2.0))
    with pytest.raises(InputError, match="exposes"):
        QueryOracle(target, exposes="logits")


@settings(max_examples=25, deadline=None)
@given(budget=st.integers(1, 40), sizes=st.lists(st.integers(1, 15), min_size=1, max_size=12))
def test_the_budget_is_never_exceeded(signed_net_model, budget, sizes):
    model, calls = signed_net_model
    oracle = QueryOracle(model, exposes="label", budget=budget, seed=0)
    answered = 0
    for n in sizes:
        before = calls[0]
        if answered + n > budget:
            with pytest.raises(QueryBudgetExceeded, match="budget"):
                oracle.query(np.zeros((n, 16)))
            assert calls[0] == before  # refused before the twin ran
        else:
            assert len(oracle.query(np.zeros((n, 16)))) == n
            answered += n
            assert calls[0] > before
        assert oracle.queries_used == answered <= budget
        assert oracle.remaining == budget - answered


@pytest.fixture(scope="module")
def signed_net_model(signed_net):
    """The twin with a counter of its runs (the test keeps its own reference; the oracle gets the model)."""
    model = _target(signed_net).model
    calls = [0]
    run = model.run

    def counted(x):
        calls[0] += 1
        return run(x)
    model.run = counted
    return model, calls


def test_replay_sample_is_what_the_twin_saw(signed_net):
    target = _target(signed_net)
    oracle = QueryOracle(target, exposes="counts", budget=500, seed=3, keep=20)
    for i in range(10):
        oracle.query(torch.rand(30, 16, generator=torch.Generator().manual_seed(i)))
    s = oracle.sample_for_replay(15)
    assert s["inputs"].shape == (15, 16, STEPS) and s["inputs"].dtype == np.uint8
    assert np.all(np.diff(s["index"]) > 0) and s["index"].max() < 300
    with torch.no_grad():
        out, _ = target.model.run(torch.as_tensor(s["inputs"], dtype=torch.float32))
    np.testing.assert_array_equal(out[..., target.model.settle:].sum(-1).numpy(), s["outputs"])
    assert s["index"].min() < 150 < s["index"].max()  # a sample of the whole run, not its start
    with pytest.raises(InputError, match="k must be"):
        oracle.sample_for_replay(21)


def test_nes_points_along_the_true_gradient():
    """On a tiny smooth network: the antithetic estimate vs autograd's gradient of the same objective."""
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 12), torch.nn.Tanh(), torch.nn.Linear(12, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    y = torch.tensor([0, 1, 2])

    def objective(theta, cls):
        return -torch.log_softmax(net(torch.sigmoid(theta)), 1).gather(1, cls.view(-1, 1)).squeeze(1)

    theta = torch.randn(3, 20, generator=g)
    th = theta.clone().requires_grad_(True)
    (true,) = torch.autograd.grad(objective(th, y).sum(), th)
    pairs = 2000
    with torch.no_grad():
        est = nes_gradient(lambda pts: objective(pts, y.repeat_interleave(2 * pairs)), theta, 0.01, pairs,
                           torch.Generator().manual_seed(1))
    cos = torch.nn.functional.cosine_similarity(est, true, dim=1)
    assert torch.all(cos > 0.9), cos
    with torch.no_grad():  # with few samples the estimate is poor: the test measures something
        few = nes_gradient(lambda pts: objective(pts, y.repeat_interleave(2)), theta, 0.01, 1,
                           torch.Generator().manual_seed(1))
    assert torch.nn.functional.cosine_similarity(few, true, dim=1).mean() < 0.9


@pytest.mark.parametrize("exposes", ["posterior", "counts"])
def test_nes_raises_the_target_confidence(signed_net, exposes):
    adapter = adapter_for(_target(signed_net, "if"))
    attack = make_attack("nes", adapter, queries=1200, population=10, exposes=exposes, lr=0.3, tv=0.0)
    res = attack.invert(seed=0, progress=False)
    start = np.asarray(res.extra["start_confidence"])
    assert np.all(res.confidence > start + 0.2), (res.confidence, start)
    assert res.extra["queries"] <= 1200 and res.extra["queries"] == attack.oracle.queries_used
    assert res.extra["oracle"]["exposes"] == exposes and res.samples.dtype == np.uint8
    rates = res.samples.mean(-1)
    assert rates[0, :8].mean() > rates[0, 8:].mean() and rates[1, 8:].mean() > rates[1, :8].mean()


def test_label_attack_ends_on_the_target_label(signed_net):
    target = _target(signed_net, "if")
    attack = make_attack("label", adapter_for(target), queries=600, population=12)
    res = attack.invert(seed=0, progress=False)
    assert res.extra["found_start"] == [True, True] and res.extra["queries"] <= 600
    with torch.no_grad():
        labels = target.model.logits(torch.as_tensor(res.samples, dtype=torch.float32)).argmax(1)
    np.testing.assert_array_equal(labels.numpy(), res.targets)
    assert max(res.extra["radius"]) > LabelParams().radius  # moved away from the boundary


def test_same_seed_same_reconstruction(signed_net):
    adapter = adapter_for(_target(signed_net))
    for method, kw in (("nes", {"queries": 400}), ("label", {"queries": 200})):
        a = make_attack(method, adapter, **kw).invert(seed=5, progress=False)
        b = make_attack(method, adapter, **kw).invert(seed=5, progress=False)
        np.testing.assert_array_equal(a.samples, b.samples)
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        c = make_attack(method, adapter, **kw).invert(seed=6, progress=False)
        assert not np.array_equal(a.probabilities, c.probabilities)


def test_parameters_are_checked(signed_net):
    assert ATTACKS["nes"].params_class is NESParams and ATTACKS["label"].params_class is LabelParams
    for kw, name in (({"queries": 0}, "queries"), ({"population": 0}, "population"), ({"sigma": 0.0}, "sigma"),
                     ({"exposes": "label"}, "label"), ({"objective": "x"}, "objective")):
        with pytest.raises(InputError, match=name):
            NESParams(**kw)
    assert NESParams.reference().sigma == NESParams().sigma
    with pytest.raises(InputError, match="grow"):
        LabelParams(grow=0.5)
    adapter = adapter_for(_target(signed_net))
    with pytest.raises(InputError, match="buys no NES iteration"):
        make_attack("nes", adapter, queries=30, population=10).invert(progress=False)


def test_the_oracle_speaks_each_encoders_input_domain(signed_net, tmp_path):
    """events: spike trains in, the twin's answer on them; graded: images in [0, 1] become the drive
    lo + (hi - lo) x of the deployment's input range; query-only attacks run on both."""
    target = _target(signed_net, "events")
    spikes = (torch.rand(4, 16, STEPS, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        want = target.model.posterior(spikes).numpy()
    np.testing.assert_allclose(QueryOracle(target, exposes="posterior", budget=4).query(spikes), want, rtol=1e-6)
    with pytest.raises(InputError, match="binary"):
        QueryOracle(target, exposes="posterior", budget=4).query(spikes * 0.5)
    res = make_attack("nes", adapter_for(target), queries=200).invert(seed=0, progress=False)
    assert res.extra["parameterisation"] == "per-step" and res.probabilities.shape == (2, 16, STEPS)
    path, _ = netx_nets.input_layer(tmp_path / "input.net")
    graded = load_snn(path, options={"steps": STEPS, "encoding": "graded", "input_range": (0.0, 2.0)})
    img = torch.rand(3, 36, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = graded.model.logits(2.0 * img.unsqueeze(-1).expand(3, 36, STEPS)).argmax(1).numpy()
    np.testing.assert_array_equal(QueryOracle(graded, exposes="label", budget=3).query(img), want)
    res = make_attack("label", adapter_for(graded), queries=300).invert(classes=[0, 1], seed=0, progress=False)
    assert res.input_kind == "drive" and res.samples.min() >= 0.0 and res.samples.max() <= 2.0
