"""gen (issue 29): the latent search of a generative prior on tiny deployed networks: it raises the target's
confidence above its start, seeded, refuses a prior of another size and bad settings, replays on Lava, the CLI's
exit-2 cases, and the audit with a prior (gen in the portfolio, the prior's provenance in the report)."""
import json

import numpy as np
import pytest
import torch

import netx_nets
from brainleaks_lava.attacks import ATTACKS, adapter_for, make_attack
from brainleaks_lava.attacks.generative import GenAttack, GenParams, prior_text
from brainleaks_lava.audit import GEN_ENTRY, SNN_PORTFOLIO, PortfolioEntry, run_audit, snn_portfolio
from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError
from brainleaks_lava.models.files import load_snn
from brainleaks_lava.priors import Prior

STEPS = 12
EVAL = "netx_models/mnist_eval_snn.h5"
PROVENANCE = {"public_split": "constructed-test", "dataset": "mnist", "images": 0, "source": "random weights",
              "disjoint_from": "every record of every target (no image was read)"}


@pytest.fixture(scope="module")
def signed_net(tmp_path_factory):
    """16 inputs -> 2 outputs: inputs 0-7 excite output 0 and inhibit output 1, inputs 8-15 the reverse."""
    return netx_nets.signed_net(tmp_path_factory.mktemp("signed") / "signed.net")


def _prior(shape=(1, 4, 4), latent=4, seed=0, path="") -> Prior:
    """A decoder z -> sigmoid(W z + b) with seeded weights: every image a smooth function of the code."""
    n = int(np.prod(shape))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dec = torch.nn.Sequential(torch.nn.Linear(latent, n), torch.nn.Sigmoid())
    return Prior(dec, latent, shape, PROVENANCE, path=path)


def _target(path, encoding="rate"):
    return load_snn(path, options={"steps": STEPS, "encoding": encoding})


@pytest.mark.parametrize("encoding", ["rate", "if", "events"])
def test_latent_search_raises_the_confidence_above_its_start(signed_net, encoding):
    prior = _prior()
    attack = make_attack("gen", adapter_for(_target(signed_net, encoding)), prior=prior, starts=4, iterations=60)
    res = attack.invert(seed=0, progress=False)
    start, end = np.array(res.extra["start_confidence"]), np.array(res.extra["selected_confidence"])
    assert np.all(end > start) and np.all(end > 0.9) and np.any(end > start + 0.5), (start, end)
    assert res.extra["worse_than_start"] == [] and np.all(res.confidence > start)
    # the winners' codes decode to the reconstructions: class 0 lights inputs 0-7, class 1 inputs 8-15
    codes = torch.tensor(res.extra["latent_codes"])
    assert codes.shape == (2, 4) and len(res.extra["best_start"]) == 2 and res.extra["starts"] == 4
    with torch.no_grad():
        img = prior.decode(codes).numpy()
    assert img[0, :8].mean() > img[0, 8:].mean() and img[1, 8:].mean() > img[1, :8].mean()
    if encoding == "if":
        assert res.probabilities is None and res.samples.dtype == np.uint8
    else:  # Bernoulli encoders: the decoded image is the spike probability of every step
        np.testing.assert_allclose(res.probabilities, np.repeat(img[:, :, None], STEPS, 2), rtol=1e-5, atol=1e-6)
    assert res.extra["parameterisation"] == "static" and res.extra["objective"] == "potential"
    assert res.extra["prior"]["provenance"] == PROVENANCE and res.loss_history.shape == (60, 2)
    json.dumps(res.extra)  # a reconstruction file stores it as JSON


def test_the_best_start_is_kept(signed_net):
    res = make_attack("gen", adapter_for(_target(signed_net, "if")), prior=_prior(), starts=5,
                      iterations=3).invert(seed=1, progress=False)
    conf = np.array(res.extra["starts_confidence"])  # (classes, starts) at the end, as the selection saw them
    assert conf.shape == (2, 5)
    np.testing.assert_array_equal(res.extra["best_start"], conf.argmax(1))
    np.testing.assert_allclose(res.extra["selected_confidence"], conf.max(1))
    np.testing.assert_allclose(res.confidence, conf.max(1), rtol=1e-6)  # if: the deployed input is deterministic


def test_shift_images_moves_content_and_fills_zeros():
    from brainleaks_lava.attacks.generative import shift_images

    img = torch.arange(1, 13, dtype=torch.float32).view(1, 1, 3, 4)
    down_left = shift_images(img, 1, -1)
    np.testing.assert_array_equal(down_left[0, 0].numpy(), [[0, 0, 0, 0], [2, 3, 4, 0], [6, 7, 8, 0]])
    np.testing.assert_array_equal(shift_images(img, 0, 0).numpy(), img.numpy())
    assert shift_images(img, 3, 0).abs().sum() == 0 and shift_images(img, 0, -4).abs().sum() == 0


def test_selection_uses_the_confidence_under_shifts(tmp_path):
    path, shape = netx_nets.conv_net(tmp_path / "conv.net")  # (2, 12, 10): shifts of up to 1 pixel (an eighth of 10)
    adapter = adapter_for(load_snn(path, options={"steps": STEPS, "input_shape": shape}))
    prior = _prior(tuple(shape), latent=6)

    def run(**kw):
        return make_attack("gen", adapter, prior=prior, starts=4, iterations=5, **kw).invert(
            classes=[0, 1], seed=2, progress=False)
    res = run()
    shifts = res.extra["selection_shifts"]
    assert len(shifts) == 8 and shifts[0] == [0, 0] and any(s != [0, 0] for s in shifts)
    assert all(abs(dy) <= 1 and abs(dx) <= 1 for dy, dx in shifts)
    score, conf = np.array(res.extra["starts_selection_score"]), np.array(res.extra["starts_confidence"])
    assert score.shape == conf.shape == (2, 4)
    for i, b in enumerate(res.extra["best_start"]):  # the best under shifts among the starts within 0.001 of the best
        tied = conf[i] >= conf[i].max() - 0.001
        assert tied[b] and score[i, b] == score[i][tied].max()
    # a tolerance of 1 ties every start: the shift score alone decides
    every = run(select_tolerance=1.0)
    np.testing.assert_array_equal(every.extra["best_start"], np.array(every.extra["starts_selection_score"]).argmax(1))
    # one copy (the image itself): the score is the unshifted deployed confidence on the same draws
    one = run(select_shifts=1)
    assert one.extra["selection_shifts"] == [[0, 0]]
    np.testing.assert_allclose(one.extra["starts_selection_score"], one.extra["starts_confidence"], rtol=1e-6)
    np.testing.assert_array_equal(one.extra["best_start"], np.array(one.extra["starts_confidence"]).argmax(1))
    # an image under 8 pixels a side is not moved: 4x4 keeps only the image itself
    small = make_attack("gen", adapter_for(_target(netx_nets.signed_net(tmp_path / "s.net"))), prior=_prior(),
                        starts=2, iterations=2).invert(seed=0, progress=False)
    assert small.extra["selection_shifts"] == [[0, 0]]


def test_graded_input_layer(tmp_path):
    path, _ = netx_nets.input_layer(tmp_path / "input.net")
    target = load_snn(path, options={"steps": STEPS, "encoding": "graded", "input_range": (0.0, 2.0)})
    res = make_attack("gen", adapter_for(target), prior=_prior((1, 6, 6)), starts=2,
                      iterations=10).invert(classes=[0, 3], seed=0, progress=False)
    assert res.input_kind == "drive" and res.drive_range == (0.0, 2.0)
    assert res.samples.dtype == np.float32 and 0.0 <= res.samples.min() and res.samples.max() <= 2.0


def test_same_seed_same_reconstruction(signed_net):
    adapter = adapter_for(_target(signed_net))

    def run(seed):
        return make_attack("gen", adapter, prior=_prior(), starts=3, iterations=15).invert(seed=seed, progress=False)
    a, b, c = run(4), run(4), run(5)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert a.extra["latent_codes"] == b.extra["latent_codes"]
    assert a.extra["latent_codes"] != c.extra["latent_codes"]


def test_a_prior_of_another_size_is_refused(signed_net, tmp_path):
    adapter = adapter_for(_target(signed_net))
    with pytest.raises(InputError, match=r"makes 1x5x5 images \(25 values\), but the target takes 16 inputs"):
        make_attack("gen", adapter, prior=_prior((1, 5, 5)))
    path, shape = netx_nets.conv_net(tmp_path / "conv.net")  # (2, 12, 10): 240 inputs
    conv = adapter_for(load_snn(path, options={"steps": STEPS, "input_shape": shape}))
    with pytest.raises(InputError, match=r"makes 1x24x10 images \(240 values\), but the target takes 240 inputs "
                                         r"\(2x12x10\): the same number of values in another layout"):
        make_attack("gen", conv, prior=_prior((1, 24, 10)))
    assert make_attack("gen", conv, prior=_prior(tuple(shape))).prior.image_shape == tuple(shape)


def test_bad_parameters_are_refused(signed_net, small_ann_path):
    assert ATTACKS["gen"] is GenAttack and GenAttack.params_class is GenParams
    for kw, name in (({"starts": 0}, "starts"), ({"starts": 1001}, "starts"), ({"iterations": 0}, "iterations"),
                     ({"objective": "potential"}, "objective"), ({"latent_weight": -1.0}, "latent_weight"),
                     ({"lr": 0.0}, "lr"), ({"kappa": 0.0}, "kappa"), ({"estimator": "x"}, "estimator"),
                     ({"starts": 2.0}, "starts"), ({"select_shifts": 0}, "select_shifts"),
                     ({"select_shifts": 65}, "select_shifts"), ({"shift_pixels": 0}, "shift_pixels"),
                     ({"shift_pixels": 17}, "shift_pixels"), ({"shift_pixels": 1.5}, "shift_pixels"),
                     ({"select_tolerance": -0.1}, "select_tolerance"), ({"select_tolerance": 1.5}, "select_tolerance")):
        with pytest.raises(InputError, match=name):
            GenParams(**kw)
    with pytest.raises(InputError, match="no reference mode"):
        GenParams.reference()
    adapter = adapter_for(_target(signed_net))
    with pytest.raises(InputError, match="give prior="):
        make_attack("gen", adapter)
    with pytest.raises(InputError, match="prior must be a Prior or the path of a prior file, got int"):
        make_attack("gen", adapter, prior=42)
    with pytest.raises(InputError, match="bl2 has no parameter prior"):
        make_attack("bl2", adapter, prior=_prior())
    with pytest.raises(InputError, match="gen has no parameter tv .*prior"):
        make_attack("gen", adapter, prior=_prior(), tv=0.1)
    from brainleaks_lava.models.files import load_target

    with pytest.raises(InputError, match="gen needs a target that offers surrogate gradients"):
        make_attack("gen", adapter_for(load_target(small_ann_path)), prior=_prior((1, 28, 28)))


def test_every_start_counts_in_the_memory_check(signed_net, monkeypatch):
    from brainleaks_lava import safety

    monkeypatch.setattr(safety, "_available_memory", lambda: 10_000_000)
    attack = make_attack("gen", adapter_for(_target(signed_net)), prior=_prior(), starts=1000, iterations=1)
    with pytest.raises(InputError, match=r"gen on 2 classes \(2000 inputs of \(16, 12\) at once\)"):
        attack.invert(progress=False)
    make_attack("gen", adapter_for(_target(signed_net)), prior=_prior(), starts=10, iterations=1).invert(progress=False)


@pytest.mark.slow
def test_the_result_replays_on_lava_identically(signed_net, tmp_path):
    import brainleaks_lava
    from brainleaks_lava.attacks.recon_file import load_recon

    target = brainleaks_lava.load_target(signed_net, steps=STEPS, encoding="rate")
    res = brainleaks_lava.attack(target, "gen", prior=_prior(), classes=[0, 1], starts=2, iterations=20, seed=0,
                                 progress=False)
    assert brainleaks_lava.replay(target, res, draws=2, progress=False).agreement == 1.0
    back = load_recon(res.save(tmp_path / "gen.h5"))
    assert back.attack == "gen" and back.extra["prior"]["provenance"] == PROVENANCE
    np.testing.assert_array_equal(back.probabilities, res.probabilities)


def _prior_file(path, shape=(1, 4, 4)):
    """A prior file as train-prior writes one (an untrained VAE of the default architecture)."""
    from brainleaks_lava.priors.files import save_prior
    from brainleaks_lava.priors.vae import build_vae, default_architecture

    arch = default_architecture(shape, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        vae = build_vae(arch)
    save_prior(Prior(vae.decoder, 3, shape, PROVENANCE, encoder=vae.encoder, architecture=arch), path)
    return path


def test_cli_gen_and_its_exit_2_cases(signed_net, tmp_path, capsys):
    base = ["attack", "--model", str(signed_net), "--steps", str(STEPS), "--out", str(tmp_path / "r.h5")]
    assert main(base + ["--method", "gen"]) == 2
    assert "--method gen needs --prior FILE.h5" in capsys.readouterr().err
    assert main(base + ["--method", "blenc", "--prior", str(tmp_path / "p.h5")]) == 2
    assert "--prior applies to --method gen" in capsys.readouterr().err
    assert main(base + ["--method", "blenc", "--starts", "3"]) == 2
    assert "--starts does not apply to blenc" in capsys.readouterr().err
    assert main(base + ["--method", "blenc", "--select-shifts", "3"]) == 2
    assert "--select-shifts does not apply to blenc" in capsys.readouterr().err
    assert main(base + ["--method", "gen", "--prior", str(tmp_path / "p.h5"), "--select-shifts", "65"]) == 2
    assert "--select-shifts" in capsys.readouterr().err
    assert main(base + ["--method", "gen", "--prior", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert main(base + ["--method", "gen", "--prior", str(_prior_file(tmp_path / "wide.h5", (1, 4, 8)))]) == 2
    assert "makes 1x4x8 images (32 values), but the target takes 16 inputs" in capsys.readouterr().err
    assert not (tmp_path / "r.h5").exists()
    prior = _prior_file(tmp_path / "p.h5")
    assert main(base + ["--method", "gen", "--prior", str(prior), "--starts", "2", "--iterations", "5",
                        "--select-shifts", "3"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "public data constructed-test of mnist" in out
    from brainleaks_lava.attacks.recon_file import load_recon

    rec = load_recon(tmp_path / "r.h5")
    assert rec.attack == "gen" and rec.params["starts"] == 2 and rec.extra["prior"]["path"] == str(prior)
    assert rec.params["select_shifts"] == 3
    assert main(base[:-1] + [str(prior), "--method", "gen", "--prior", str(prior)]) == 2  # --out would replace it
    assert "is also the input --prior" in capsys.readouterr().err


def test_audit_portfolio_with_and_without_a_prior(small_snn_path, tmp_path):
    assert snn_portfolio(False) == SNN_PORTFOLIO and "gen" not in [e.method for e in SNN_PORTFOLIO]
    assert snn_portfolio(True) == SNN_PORTFOLIO[:1] + (GEN_ENTRY,) + SNN_PORTFOLIO[1:]
    small = (PortfolioEntry("bl2", "bl2", {"iterations": 3}), PortfolioEntry("gen", "gen", {"iterations": 10,
                                                                                            "starts": 2}))
    out = tmp_path / "audit"
    with pytest.raises(InputError, match="give --prior"):
        run_audit(small_snn_path, EVAL, out, classes=[0], draws=1, replay=False, portfolio=small, progress=False)
    with pytest.raises(InputError, match="the portfolio has no gen entry"):
        run_audit(small_snn_path, EVAL, out, classes=[0], draws=1, replay=False, portfolio=small[:1],
                  prior=_prior((1, 28, 28)), progress=False)
    with pytest.raises(InputError, match="makes 1x4x4 images"):
        run_audit(small_snn_path, EVAL, out, classes=[0], draws=1, replay=False, portfolio=small, prior=_prior(),
                  progress=False)
    assert not out.exists()
    rep = run_audit(small_snn_path, EVAL, out, classes=[0, 1], draws=2, replay=False, portfolio=small,
                    prior=_prior((1, 28, 28), latent=8), progress=False)
    assert [r["name"] for r in rep.attacks] == ["bl2", "gen"]
    assert rep.prior["provenance"] == PROVENANCE
    data = json.loads((out / "audit.json").read_text())
    assert data["prior"]["provenance"] == PROVENANCE
    assert data["prior"]["statement"].startswith("the generator never saw a training record of the target")
    text = (out / "report.md").read_text()
    assert f"generative prior of gen: {prior_text(rep.prior)}" in text
    assert "trained on public data constructed-test of mnist" in text
    assert "disjoint from every record of every target (no image was read)" in text
    assert "the generator never saw a training record of the target" in text


def test_audit_cli_prior(small_snn_path, small_ann_path, tmp_path, capsys):
    prior = _prior_file(tmp_path / "p28.h5", (1, 28, 28))
    out = tmp_path / "a"
    # a budget spent by the first attack: gen, second in the portfolio, is skipped, and the report still says so
    assert main(["audit", str(small_snn_path), "--evaluator", EVAL, "--prior", str(prior), "--classes", "0",
                 "--draws", "1", "--no-replay", "--budget", "0.001", "--out", str(out)]) == 0
    data = json.loads((out / "audit.json").read_text())
    assert [r["name"] for r in data["attacks"]] == ["bl2"] and data["skipped"][0] == "gen"
    assert data["prior"]["path"] == str(prior) and data["prior"]["provenance"] == PROVENANCE
    assert "generative prior of gen" in capsys.readouterr().out
    assert main(["audit", str(small_ann_path), "--evaluator", "netx_models/mnist_eval_ann.h5", "--prior", str(prior),
                 "--out", str(tmp_path / "b")]) == 2
    assert "gen attacks SNN targets" in capsys.readouterr().err
    assert main(["audit", str(small_snn_path), "--evaluator", EVAL, "--prior", str(prior), "--out", str(prior)]) == 2
    assert "is also the input --prior" in capsys.readouterr().err
