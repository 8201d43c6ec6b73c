"""The evaluator panel: features of every kind, augmentation, junk, the residual and the reject judges, the CLI.

Everything runs on one thread with constructed inputs, tiny models or the vendored 1,250-image MNIST subset.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from brainleaks_lava.attacks.base import AttackResult
from brainleaks_lava.cli import main
from brainleaks_lava.data import load_static, rate_encode
from brainleaks_lava.errors import InputError, ModelFileError
from brainleaks_lava.evaluation.augment import JUNK_RECIPES, JunkSource, augment, blob_images, junk_images
from brainleaks_lava.evaluation.classifiers import (
    EVALUATOR_FORMAT,
    JUNK_PLACEHOLDER,
    REJECT_CLASS,
    CNNEvaluator,
    CubaCNNEvaluator,
    Evaluator,
    RejectCNNEvaluator,
    ResidualCNNEvaluator,
    SpikingCNNEvaluator,
    ann_logits_fn,
    load_evaluator,
    train_evaluator,
    training_logits_fn,
)
from brainleaks_lava.evaluation.score import evaluate_result
from brainleaks_lava.models.files import read_torch_h5, save_torch_h5
from brainleaks_lava.models.training import TrainConfig
from brainleaks_lava.progress import set_quiet


@pytest.fixture(autouse=True)
def one_thread_quiet():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    set_quiet(True)
    yield
    set_quiet(False)
    torch.set_num_threads(old)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def seeded(build, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(seed)
        return build()


def build(kind: str, shape=(28, 28), classes=10):
    if kind == "ann":
        return CNNEvaluator(shape, classes)
    if kind == "reject":
        return RejectCNNEvaluator(shape, classes + 1)
    if kind == "resnet":
        return ResidualCNNEvaluator(shape, classes, channels=(8, 16, 32))
    if kind == "snn":
        return SpikingCNNEvaluator(shape, classes)
    return CubaCNNEvaluator(shape, classes)


def wrap(model, kind: str) -> Evaluator:
    classes = [str(i) for i in range(model.num_classes)]
    if kind == "reject":
        classes[-1] = REJECT_CLASS
    return Evaluator(model=model.eval(), kind="snn" if kind == "cuba" else kind, input_shape=model.input_shape,
                     steps=6 if kind in ("snn", "cuba") else 0, classes=tuple(classes))


def fc_inputs(model, x):
    """What the last linear layer received during ``model.logits(x)``, captured by a hook."""
    layer = model.blocks[-1].synapse if isinstance(model, CubaCNNEvaluator) else model.fc
    seen = []
    handle = layer.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].detach(), out.detach())))
    try:
        with torch.no_grad():
            logits = model.logits(x)
    finally:
        handle.remove()
    return layer, seen[0][0], seen[0][1], logits


# ------------------------------------------------------------------------------------------------
# features


@pytest.mark.parametrize("kind", ["ann", "reject", "resnet"])
def test_image_features_feed_the_last_linear_layer_to_the_logits(kind):
    model = seeded(lambda: build(kind))
    ev = wrap(model, kind)
    x = torch.rand(7, 28, 28, generator=gen(1))
    f = ev.features(x, batch_size=3)  # several batches
    assert f.shape == (7, ev.feature_size) and f.dtype == torch.float32 and not f.requires_grad
    assert ev.feature_size == model.fc.in_features
    with torch.no_grad():
        assert torch.allclose(model.fc(f), ev.logits(x), atol=1e-5)
    layer, seen_in, _, _ = fc_inputs(model, x)
    assert torch.allclose(seen_in, f, atol=1e-6)  # the very vector the forward pass feeds fc
    # the inputs posterior accepts: other layouts and spike trains (rate-decoded)
    assert torch.allclose(ev.features(x.reshape(7, 784)), f)
    spikes = rate_encode(x, steps=5, generator=gen(2))
    assert torch.allclose(ev.features(spikes), ev.features(spikes.mean(-1)))
    assert ev.features(x[:0]).shape == (0, ev.feature_size)
    with pytest.raises(InputError, match="x must"):
        ev.features(torch.rand(2, 27, 28))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        ev.features(x * 2)


@pytest.mark.parametrize("kind", ["snn", "cuba"])
def test_spiking_features_are_hidden_spike_rates_whose_read_out_is_the_mean_output_current(kind):
    model = seeded(lambda: build(kind))
    ev = wrap(model, kind)
    spikes = rate_encode(torch.rand(4, 28, 28, generator=gen(3)), steps=6, generator=gen(4))
    f = ev.features(spikes, batch_size=3)
    assert f.shape == (4, ev.feature_size) == (4, 384) and not f.requires_grad
    # spike rates: multiples of 1/T in [0, 1]
    assert float(f.min()) >= 0 and float(f.max()) <= 1
    assert torch.allclose(f * 6, torch.round(f * 6), atol=1e-5)
    layer, seen_in, seen_out, logits = fc_inputs(model, spikes)
    assert torch.allclose(ev.logits(spikes), logits, atol=1e-6)
    # the last linear layer applied to the features is the time-averaged input current of the output neurons
    with torch.no_grad():
        if kind == "snn":
            read = layer(f)
            mean_current = seen_out.reshape(4, 6, -1).mean(1)  # fc ran on (N*T, features) frames
        else:
            read = layer(f.unsqueeze(-1))[..., 0]
            mean_current = seen_out.mean(-1)
    assert torch.allclose(read, mean_current, atol=1e-5)
    assert read.abs().sum() > 0
    with pytest.raises(InputError, match="binary"):
        ev.features(spikes * 0.5)


# ------------------------------------------------------------------------------------------------
# augmentation and junk


def spot(h, w, cy, cx, sy, sx=None):
    sx = sy if sx is None else sx
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.exp(-((yy - cy) ** 2) / (2 * sy ** 2) - ((xx - cx) ** 2) / (2 * sx ** 2))


def moments(img):
    h, w = img.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    m = img.double() / img.double().sum()
    cy, cx = float((m * yy).sum()), float((m * xx).sum())
    cov = torch.tensor([[(m * (yy - cy) ** 2).sum(), (m * (yy - cy) * (xx - cx)).sum()],
                        [(m * (yy - cy) * (xx - cx)).sum(), (m * (xx - cx) ** 2).sum()]])
    return cy, cx, cov


def test_augment_is_seeded_keeps_shape_and_range_and_differs_across_seeds():
    x = torch.rand(6, 1, 28, 28, generator=gen(0)) * 0.6 + 0.2
    a, b, c = augment(x, gen(5)), augment(x, gen(5)), augment(x, gen(6))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-3)
    assert not torch.allclose(a, x, atol=1e-3)
    assert float(a.min()) >= float(x.min()) - 1e-6 and float(a.max()) <= float(x.max()) + 1e-6
    # the global RNG is not used
    state = torch.random.get_rng_state()
    augment(x, gen(5))
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(InputError, match="images"):
        augment(x[:, 0], gen(0))
    with pytest.raises(InputError, match="generator"):
        augment(x, 0)


def test_augment_without_range_is_the_identity_and_shifts_stay_within_two_pixels():
    x = torch.stack([spot(28, 28, 14, 14, 2.0), spot(28, 28, 10, 17, 1.5)]).unsqueeze(1)
    same = augment(x, gen(1), shift=0.0, rotate=0.0, scale=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-5)
    img = spot(28, 28, 14, 14, 2.0)[None, None].repeat(64, 1, 1, 1)
    moved = augment(img, gen(2), rotate=0.0, scale=(1.0, 1.0))
    d = np.array([[a - b for a, b in zip(moments(m[0])[:2], (14.0, 14.0))] for m in moved])
    assert np.abs(d).max() <= 2.0 + 1e-3
    assert np.abs(d).mean() > 0.6  # uniform on [-2, 2]: mean |shift| 1
    assert np.abs(d[:, 0] - d[:, 1]).max() > 0.5  # the axes move independently


def test_augment_rotates_and_scales_without_shearing_a_non_square_image():
    h, w = 40, 20  # a warp done in normalised coordinates without the aspect correction would shear
    line = spot(h, w, 20, 10, 8.0, 1.2)[None, None].repeat(16, 1, 1, 1)
    out = augment(line, gen(3), shift=0.0, rotate=30.0, scale=(1.0, 1.0))
    _, _, cov0 = moments(line[0, 0])
    length0 = float(torch.linalg.eigvalsh(cov0)[-1])
    angles = []
    for img in out[:, 0]:
        _, _, cov = moments(img)
        ev_, vec = torch.linalg.eigh(cov)
        assert float(ev_[-1]) == pytest.approx(length0, rel=0.06)  # a rotation keeps the line's length
        angles.append(abs(math.degrees(math.atan2(float(vec[1, -1]), float(vec[0, -1])))) % 180)
    angles = np.minimum(angles, 180 - np.array(angles))
    assert angles.max() <= 30.5 and angles.max() > 10
    # scaling: an isotropic spot grows by the scale factor in both axes
    blob = spot(40, 40, 20, 20, 4.0)[None, None]
    big = augment(blob, gen(4), shift=0.0, rotate=0.0, scale=(1.1, 1.1))
    _, _, cov_b = moments(big[0, 0])
    _, _, cov_s = moments(blob[0, 0])
    assert math.sqrt(float(cov_b[0, 0]) / float(cov_s[0, 0])) == pytest.approx(1.1, rel=0.02)
    assert math.sqrt(float(cov_b[1, 1]) / float(cov_s[1, 1])) == pytest.approx(1.1, rel=0.02)


def one_hot_source(classes=10):
    """Real images of class c: pixel c on, everything else off."""
    images = np.zeros((5 * classes, 28, 28), np.float32)
    labels = np.repeat(np.arange(classes), 5)
    images[np.arange(len(labels)), 0, labels] = 1.0
    return JunkSource(images, labels)


def test_junk_is_seeded_in_range_and_covers_every_recipe():
    src = one_hot_source()
    a, b, c = src(300, gen(0)), src(300, gen(0)), src(300, gen(1))
    assert a.shape == (300, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    flat = a.reshape(300, -1)
    nonzero = (flat > 0).sum(1)
    constant = (flat == flat[:, :1]).all(1)
    halves = ((flat == 0) | (flat == 0.5)).all(1) & (nonzero > 0)
    # two-class means: exactly two pixels at 0.5, at the positions of two different classes (row 0)
    assert int(halves.sum()) > 20
    for img in a[halves]:
        on = torch.nonzero(img == 0.5)
        assert len(on) == 2 and (on[:, 0] == 0).all() and on[0, 1] != on[1, 1]
    # pixel-shuffled real images: one pixel on, anywhere
    single = (nonzero == 1) & (flat.max(1).values == 1)
    assert int(single.sum()) > 20
    assert int(constant.sum()) > 20  # constant images
    many = flat[nonzero > 100]  # uniform noise, blobs, dense Bernoulli draws
    assert len(many) > 60
    assert len(JUNK_RECIPES) == 6
    with pytest.raises(InputError, match="n must"):
        junk_images(-1, src, gen(0))


def test_blob_images_are_smooth_shapes_in_range():
    b = blob_images(40, (28, 28), gen(0))
    assert b.shape == (40, 28, 28) and float(b.min()) >= 0 and float(b.max()) <= 1
    assert torch.equal(b, blob_images(40, (28, 28), gen(0)))
    cover = (b > 0).float().mean((1, 2))
    assert float(cover.min()) > 0 and float(cover.max()) < 1  # shapes, neither empty nor full
    # smooth: neighbouring pixels differ far less than in uniform noise
    soft = b[(b > 0).float().mean((1, 2)) > 0]
    step = (soft[:, 1:, :] - soft[:, :-1, :]).abs().mean()
    noise = torch.rand(40, 28, 28, generator=gen(1))
    assert step < 0.3 * (noise[:, 1:, :] - noise[:, :-1, :]).abs().mean()


class _Echo(torch.nn.Module):
    """A 'model' whose logits are its input images, to see what a training logits function feeds it."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def logits(self, x):
        return x.reshape(len(x), -1)


def test_training_logits_fn_fills_junk_and_augments_in_training_mode_only():
    tr = load_static("mnist", None, split="train")
    src = JunkSource(tr.images[:100], tr.labels[:100])
    fn = training_logits_fn(ann_logits_fn, augment_images=True, junk=src)
    x = torch.as_tensor(tr.images[:8]).clone()
    x[[2, 5]] = JUNK_PLACEHOLDER
    model = _Echo()
    model.eval()
    assert torch.equal(fn(model, x, gen(0), "cpu"), x.reshape(8, -1))  # validation: the data as it is
    model.train()
    out = fn(model, x, gen(0), "cpu")
    assert torch.equal(out, fn(model, x, gen(0), "cpu"))
    assert float(out.min()) >= 0 and float(out.max()) <= 1  # no placeholder left
    assert not torch.allclose(out[[0, 1, 3]], x[[0, 1, 3]].reshape(3, -1), atol=1e-3)  # warped
    # without junk or augmentation the base function is used as it is
    assert training_logits_fn(ann_logits_fn) is ann_logits_fn


# ------------------------------------------------------------------------------------------------
# reject judges


@pytest.fixture(scope="module")
def brief_judges(tmp_path_factory):
    """A reject judge and a plain ann judge, trained the same way (3 epochs, augmented) on the vendored subset."""
    d = tmp_path_factory.mktemp("judges")
    cfg = TrainConfig(epochs=3, batch_size=50, lr=2e-3, seed=0, threads=1)
    out = {}
    for kind in ("reject", "ann"):
        with torch.random.fork_rng(devices=[]):
            train_evaluator(kind, "mnist", None, d / f"{kind}.h5", cfg, augment=True, validate_each_epoch=False)
        out[kind] = d / f"{kind}.h5"
    return out


def test_reject_metadata_round_trips_through_save_and_load(brief_judges, tmp_path):
    ev = load_evaluator(brief_judges["reject"])
    assert ev.kind == "reject" and ev.rejects and isinstance(ev.model, RejectCNNEvaluator)
    assert ev.classes == tuple("0123456789") + (REJECT_CLASS,)
    assert (ev.num_classes, ev.target_classes) == (11, 10)
    meta = ev.metadata
    assert meta["format"] == EVALUATOR_FORMAT and meta["rejects"] is True and meta["augment"] is True
    assert meta["junk"]["recipes"] == list(JUNK_RECIPES)
    assert meta["augmentation"]["shift_px"] == 2 and meta["augmentation"]["rotate_deg"] == 10
    assert meta["training"]["junk_per_epoch"] == 100  # ceil(1000 images / 10 classes)
    x = torch.rand(5, 28, 28, generator=gen(9))
    assert ev.posterior(x).shape == (5, 11)
    # written again and read back: same posteriors, same flags
    save_torch_h5(ev.model, tmp_path / "again.h5", EVALUATOR_FORMAT, meta)
    again = load_evaluator(tmp_path / "again.h5")
    assert again.rejects and again.target_classes == 10
    assert torch.equal(again.posterior(x), ev.posterior(x))
    plain = load_evaluator(brief_judges["ann"])
    assert not plain.rejects and plain.target_classes == plain.num_classes == 10
    assert plain.metadata["augment"] is True and plain.metadata["junk"] is None


@pytest.mark.parametrize("change, match", [
    ({"rejects": False}, "rejects"),
    ({"rejects": "yes"}, "rejects"),
    ({"classes": [str(i) for i in range(11)]}, "reject"),
    ({"augment": 1}, "augment"),
])
def test_inconsistent_reject_metadata_is_refused(brief_judges, tmp_path, change, match):
    meta, arrays, fmt = read_torch_h5(brief_judges["reject"], "brainleaks-evaluator")
    model = RejectCNNEvaluator((28, 28), 11)
    save_torch_h5(model, tmp_path / "bad.h5", fmt, {**meta, **change})
    with pytest.raises(ModelFileError, match=match):
        load_evaluator(tmp_path / "bad.h5")


def test_flag_on_a_plain_kind_is_refused():
    with pytest.raises(InputError, match="rejects"):
        Evaluator(model=CNNEvaluator(), kind="ann", input_shape=(28, 28), steps=0, classes=tuple("0123456789"),
                  metadata={"rejects": True})
    with pytest.raises(InputError, match="classes"):
        RejectCNNEvaluator((28, 28), 2)


def digit_at_confidence(ev, x, level=0.5) -> float:
    top, arg = ev.posterior(x).max(1)
    return float(((arg < ev.target_classes) & (top >= level)).float().mean())


def test_reject_judge_sends_noise_to_reject_where_the_plain_judge_sees_digits(brief_judges):
    rej, ann = load_evaluator(brief_judges["reject"]), load_evaluator(brief_judges["ann"])
    va = load_static("mnist", None, split="val")
    # both still read digits
    assert float((rej.predict(va.images).numpy() == va.labels).mean()) > 0.7
    assert float((ann.predict(va.images).numpy() == va.labels).mean()) > 0.7
    noise = torch.rand(300, 28, 28, generator=gen(123))
    blobs = blob_images(200, (28, 28), gen(456))
    assert float((rej.predict(noise) == 10).float().mean()) > 0.9
    for x in (noise, blobs):
        assert digit_at_confidence(rej, x) < digit_at_confidence(ann, x)
    assert digit_at_confidence(rej, noise) <= 0.05


def image_result(images, targets):
    images = np.asarray(images, np.float32).reshape(len(targets), -1)
    r = len(targets)
    return AttackResult(attack="miface", mode="white", params={}, seed=0, targets=np.asarray(targets),
                        samples=images, confidence=np.zeros(r, np.float32), iterations=np.zeros(r, np.int64),
                        loss_history=np.zeros((1, r), np.float32))


def test_evaluate_result_counts_rejected_reconstructions_as_misses(brief_judges):
    rej = load_evaluator(brief_judges["reject"])
    va = load_static("mnist", None, split="val")
    right = np.array([int(np.flatnonzero(va.labels == c)[0]) for c in range(10)])
    right = right[rej.predict(va.images[right]).numpy() == va.labels[right]]  # digits it reads correctly
    assert len(right) >= 5
    targets = va.labels[right]
    noise = torch.rand(len(right), 28, 28, generator=gen(77)).numpy()
    assert (rej.predict(noise).numpy() == 10).all()
    e_real = evaluate_result(image_result(va.images[right], targets), rej)
    e_noise = evaluate_result(image_result(noise, targets), rej)
    assert e_real.posteriors.shape == (1, len(right), 11)
    assert e_real.summary["accuracy"]["mean"] == 1.0 and e_real.extra["reject_rate"] == 0.0
    assert e_noise.summary["accuracy"]["mean"] == 0.0 and e_noise.extra["reject_rate"] == 1.0
    assert e_noise.summary["avg_confidence"]["mean"] < 0.1
    with pytest.raises(InputError, match="10 classes"):
        evaluate_result(image_result(noise[:1], [10]), rej)  # the reject output is no target


# ------------------------------------------------------------------------------------------------
# CLI


def test_cli_trains_a_tiny_resnet_and_refuses_a_bad_kind(tmp_path, capsys):
    out = tmp_path / "resnet.h5"
    code = main(["--quiet", "train-evaluator", "--kind", "resnet", "--dataset", "mnist", "--downsample", "2",
                 "--epochs", "1", "--threads", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "resnet evaluator (augmented)" in capsys.readouterr().out
    ev = load_evaluator(out)
    assert ev.kind == "resnet" and isinstance(ev.model, ResidualCNNEvaluator) and ev.input_shape == (14, 14)
    assert ev.metadata["augment"] is True and ev.metadata["architecture"]["channels"] == [32, 64, 128]
    assert ev.features(torch.rand(3, 14, 14)).shape == (3, 128)
    plain = tmp_path / "ann.h5"
    assert main(["--quiet", "train-evaluator", "--kind", "ann", "--dataset", "mnist", "--downsample", "2",
                 "--epochs", "1", "--threads", "1", "--out", str(plain)]) == 0
    assert load_evaluator(plain).metadata["augment"] is False  # ann keeps its old default
    capsys.readouterr()
    bad = tmp_path / "bad.h5"
    assert main(["train-evaluator", "--kind", "svm", "--dataset", "mnist", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--kind" in err[0] and "'svm'" in err[0] and "resnet" in err[0] and "reject" in err[0]
    assert not bad.exists()


def test_event_data_refuses_image_judges_and_augmentation(tmp_path):
    with pytest.raises(InputError, match="spiking"):
        train_evaluator("resnet", "nmnist", tmp_path, tmp_path / "x.h5", TrainConfig(epochs=1))
    with pytest.raises(InputError, match="augment"):
        train_evaluator("snn", "nmnist", tmp_path, tmp_path / "x.h5", TrainConfig(epochs=1), augment=True)
