"""An interrupted training resumes after its last finished epoch and ends with the weights of an uninterrupted
one, bit for bit; a checkpoint of another training is reported and never used; each epoch's line shows loss,
training and validation accuracy."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from brainleaks_lava import progress
from brainleaks_lava.models.checkpoint import read_checkpoint
from brainleaks_lava.models.snn import SNNSpec, SpikingMLP
from brainleaks_lava.models.targets import snn_logits_fn
from brainleaks_lava.models.training import TrainConfig, train

torch.set_num_threads(1)
SPEC = SNNSpec(sizes=(16, 12, 3), steps=5)
CFG = TrainConfig(epochs=3, batch_size=8, lr=5e-3, seed=4, threads=1)


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = np.clip(rng.random((n, 4, 4)) * 0.3 + (labels[:, None, None] == np.arange(4)[None, :, None]) * 0.6, 0, 1)
    return images.astype(np.float32), labels


def _model():
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(1)
        return SpikingMLP(SPEC)


def _train(cfg=CFG, ckpt=None, logits_fn=None, identity=None, data_seed=0, resume=True):
    images, labels = _data(seed=data_seed)
    model = _model()
    hist = train(model, logits_fn or snn_logits_fn(SPEC.steps), images, labels, cfg, val=_data(12, seed=9),
                 checkpoint=ckpt, identity=identity or {"steps": SPEC.steps}, resume=resume, desc="tiny")
    return model, hist


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class Interrupt(Exception):
    pass


def _interrupting(after_batches: int):
    """The SNN's logits function, raising KeyboardInterrupt at training batch ``after_batches`` + 1 (as Ctrl-C)."""
    inner, seen = snn_logits_fn(SPEC.steps), [0]

    def fn(model, x, gen, device):
        if model.training:
            seen[0] += 1
            if seen[0] > after_batches:
                raise KeyboardInterrupt
        return inner(model, x, gen, device)
    return fn


@pytest.fixture(scope="module")
def straight():
    return _train()


def test_interrupted_mid_epoch_resumes_to_identical_weights(tmp_path, straight, capsys):
    ckpt = tmp_path / "m.h5.ckpt.h5"
    with pytest.raises(KeyboardInterrupt):
        _train(ckpt=ckpt, logits_fn=_interrupting(after_batches=2 * 5 + 2))  # 5 batches an epoch: in epoch 3
    assert read_checkpoint(ckpt).epoch == 2
    capsys.readouterr()
    model, hist = _train(ckpt=ckpt)
    err = capsys.readouterr().err
    assert f"tiny: resuming from epoch 2/3 (checkpoint {ckpt})" in err
    assert "tiny epoch 1/3" not in err and "tiny epoch 3/3: loss" in err
    _same(model, straight[0])
    assert hist == straight[1]


def test_two_epochs_then_one_more_equals_three(tmp_path, straight):
    ckpt = tmp_path / "ckpt.h5"
    two, _ = _train(TrainConfig(**{**CFG.to_dict(), "epochs": 2}), ckpt=ckpt)
    assert read_checkpoint(ckpt).epoch == 2
    three, hist = _train(ckpt=ckpt)
    _same(three, straight[0])
    assert hist == straight[1]
    with pytest.raises(AssertionError):
        _same(two, three)  # the third epoch did change the weights


def test_checkpoint_of_another_training_is_ignored_with_a_message(tmp_path, straight, caplog):
    ckpt = tmp_path / "ckpt.h5"
    _train(TrainConfig(**{**CFG.to_dict(), "epochs": 2, "lr": 1e-2}), ckpt=ckpt)
    with caplog.at_level(logging.WARNING):
        model, _ = _train(ckpt=ckpt)  # other lr: starts at epoch 1
    assert "other settings, data or model" in caplog.text
    _same(model, straight[0])
    assert read_checkpoint(ckpt).fingerprint != ""
    for change in ({"identity": {"steps": 6}}, {"data_seed": 1}):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            _train(ckpt=ckpt, **change)
        assert "other settings, data or model" in caplog.text


def test_unreadable_checkpoint_is_ignored_and_replaced(tmp_path, straight, caplog):
    ckpt = tmp_path / "ckpt.h5"
    ckpt.write_bytes(b"not hdf5")
    with caplog.at_level(logging.WARNING):
        model, _ = _train(ckpt=ckpt)
    assert "unreadable checkpoint" in caplog.text
    _same(model, straight[0])
    assert read_checkpoint(ckpt).epoch == 3


def test_resume_false_starts_afresh(tmp_path, straight, caplog):
    ckpt = tmp_path / "ckpt.h5"
    _train(TrainConfig(**{**CFG.to_dict(), "epochs": 2}), ckpt=ckpt)
    with caplog.at_level(logging.WARNING):
        model, hist = _train(ckpt=ckpt, resume=False)
    assert "not resuming" in caplog.text
    _same(model, straight[0])
    assert len(hist["loss"]) == 3


def test_epoch_lines_show_loss_train_and_val_accuracy_unless_quiet(straight, capsys):
    _train(TrainConfig(**{**CFG.to_dict(), "epochs": 1}))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("tiny epoch")]
    assert len(lines) == 1
    assert lines[0].startswith("tiny epoch 1/1: loss ") and "train acc " in lines[0] and "val acc " in lines[0]
    assert "(12 images)" in lines[0]
    progress.set_quiet(True)
    try:
        _train(TrainConfig(**{**CFG.to_dict(), "epochs": 1}))
    finally:
        progress.set_quiet(False)
    assert capsys.readouterr().err == ""
