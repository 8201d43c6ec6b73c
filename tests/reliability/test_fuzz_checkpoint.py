"""Property-based fuzzing of training checkpoints (``models.checkpoint``, ``<out>.ckpt.h5``).

Random mutations of a *valid* checkpoint (raw byte flips, truncations, insertions and zeroed runs; HDF5-level edits:
datasets and attributes deleted, replaced by values of another dtype or shape, single elements changed, extra
datasets, groups and attributes, objects turned into links or external storage pointing at a FIFO; the JSON
metadata attribute mutated as a tree) must either resume from exactly the state that was written, or raise the
toolkit's own error naming the file, never another exception and never a hang:

- reading and restoring (``read_checkpoint`` + ``restore``, what a resume does) gives back the epoch, history,
  fingerprint, weights, optimizer state and generator state of the original, bit for bit, or raises
  ``ModelFileError`` naming the file (``CheckpointChanged`` when the content no longer matches its checksum);
- the training's resume decision (``models.training._resume``) then resumes from that same state, refuses a
  changed checkpoint (``CheckpointChanged``, the CLI's exit 2) or, for a file that is not a readable, verifiable
  checkpoint at all, reports it and starts at epoch 1.

Deterministic (``derandomize``) and bounded: ``BRAINLEAKS_FUZZ_CKPT_EXAMPLES`` examples per plan family (default
400; the whole file takes about 30 s on one core).
"""
from __future__ import annotations

import functools
import json
import logging
import os
from datetime import timedelta

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brainleaks_lava.errors import BrainleaksError, ModelFileError
from brainleaks_lava.models import training
from brainleaks_lava.models.checkpoint import CheckpointChanged, read_checkpoint, restore
from brainleaks_lava.models.snn import SNNSpec, SpikingMLP
from brainleaks_lava.models.targets import snn_logits_fn

from fuzzkit import (Scratch, apply_bytes, apply_h5, apply_tree, byte_plan, h5_plan, json_values, points_elsewhere,
                     tree_plan, watchdog)

EXAMPLES = int(os.environ.get("BRAINLEAKS_FUZZ_CKPT_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG_SECONDS = 30
STEM = "fuzz_ckpt"  # every error must name the file

SPEC = SNNSpec(sizes=(16, 12, 3), steps=5)
CFG = training.TrainConfig(epochs=2, batch_size=8, lr=5e-3, seed=4, threads=1)
IDENTITY = {"steps": SPEC.steps}


def _data():
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 3
    images = np.clip(rng.random((24, 4, 4)) * 0.3 + (labels[:, None, None] == np.arange(4)[None, :, None]) * 0.6, 0, 1)
    return images.astype(np.float32), labels


def _fresh():
    """A freshly built model, optimizer and generator, as a training that resumes builds them."""
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(1)
        model = SpikingMLP(SPEC)
    return model, torch.optim.Adam(model.parameters(), lr=CFG.lr), torch.Generator().manual_seed(CFG.seed)


@functools.lru_cache(maxsize=None)
def scratch() -> Scratch:
    return Scratch()


@functools.lru_cache(maxsize=None)
def base() -> dict:
    """A checkpoint written by one epoch of a real training, and the state it holds."""
    path = scratch().path("base.ckpt.h5")
    images, labels = _data()
    model, _, _ = _fresh()
    fingerprint = training.training_fingerprint(CFG.to_dict(), IDENTITY, model, images, labels)
    one_epoch = training.TrainConfig(**{**CFG.to_dict(), "epochs": 1})
    training.train(model, snn_logits_fn(SPEC.steps), images, labels, one_epoch, checkpoint=path, identity=IDENTITY,
                   desc="fuzz")
    torch.set_flush_denormal(False)  # training switched it on; hypothesis needs subnormal floats
    ckpt = read_checkpoint(path)
    m, o, g = _fresh()
    restore(ckpt, path, m, o, g)
    return {"bytes": path.read_bytes(), "fingerprint": fingerprint, "ckpt": ckpt, "model": m.state_dict(),
            "optimizer": o.state_dict()["state"], "generator": g.get_state()}


@pytest.fixture(scope="module", autouse=True)
def _setup():
    base()  # built here, not inside the first example (its deadline is for the reader)
    yield
    scratch().cleanup()
    scratch.cache_clear()
    base.cache_clear()


def _same_state(model, opt, gen) -> None:
    b = base()
    for k, v in model.state_dict().items():
        assert torch.equal(v, b["model"][k]), k
    state = opt.state_dict()["state"]
    assert state.keys() == b["optimizer"].keys()
    for idx, entries in state.items():
        assert entries.keys() == b["optimizer"][idx].keys()
        for key, v in entries.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optimizer"][idx][key])), (idx, key)
    assert torch.equal(gen.get_state(), b["generator"])


def _mutated(plan) -> "os.PathLike":
    data = base()["bytes"]
    path = scratch().put(f"{STEM}.ckpt.h5", apply_bytes(data, plan[1]) if plan[0] == "bytes" else data)
    if plan[0] == "h5":
        apply_h5(path, plan[1])
    elif plan[0] == "metadata":
        import h5py

        with h5py.File(path, "a") as f:
            f.attrs["metadata"] = json.dumps(apply_tree(json.loads(f.attrs["metadata"]), plan[1]))
    return path


def check_resume(path) -> str:
    """The property (module docstring); returns what happened: 'resumed', 'changed' or 'refused'."""
    elsewhere = points_elsewhere(path)
    b = base()
    with watchdog(HANG_SECONDS):
        try:
            ckpt = read_checkpoint(path)
            model, opt, gen = _fresh()
            restore(ckpt, path, model, opt, gen)
        except BrainleaksError as e:
            assert isinstance(e, ModelFileError), type(e)
            assert STEM in str(e), f"{type(e).__name__} does not name the file: {e}"
            read = "changed" if isinstance(e, CheckpointChanged) else "refused"
        else:
            assert not elsewhere, "resumed from a file whose data lives elsewhere"
            expected = b["ckpt"]
            assert (ckpt.epoch, ckpt.epochs, ckpt.fingerprint, ckpt.history) == \
                (expected.epoch, expected.epochs, expected.fingerprint, expected.history)
            _same_state(model, opt, gen)
            read = "resumed"
        # the training's decision agrees
        model, opt, gen = _fresh()
        try:
            resumed = training._resume(path, b["fingerprint"], CFG, True, "fuzz", model, opt, gen)
        except CheckpointChanged as e:
            assert read == "changed" and STEM in str(e), (read, e)
            return read
    if read == "resumed":
        assert resumed is not None and resumed[0] == b["ckpt"].epoch
        _same_state(model, opt, gen)
    else:
        assert resumed is None, read  # not a verifiable checkpoint: reported, training starts at epoch 1
    return read


def test_valid_changed_and_unverifiable_checkpoints(caplog):
    """The base cases, deterministically: as written it resumes; one weight edited is refused; without its
    checksum (an older version's file) it is reported and not resumed from."""
    import h5py

    path = scratch().put(f"{STEM}.ckpt.h5", base()["bytes"])
    assert check_resume(path) == "resumed"
    with h5py.File(path, "a") as f:
        f["state_dict/blocks.0.synapse.weight"][0, 0] += 1 / 32
    with pytest.raises(CheckpointChanged, match=f"checkpoint {path} does not match its checksum: changed since it "
                                                f"was written; remove it or use --no-resume"):
        read_checkpoint(path)
    assert check_resume(path) == "changed"
    path = scratch().put(f"{STEM}.ckpt.h5", base()["bytes"])
    with h5py.File(path, "a") as f:
        del f.attrs["state_sha256"]
    with caplog.at_level(logging.WARNING):
        assert check_resume(path) == "refused"
    assert f"checkpoint {path} has no checksum of its state (written by an older version)" in caplog.text


@FUZZ
@given(plan=byte_plan)
def test_fuzz_checkpoint_bytes(plan):
    check_resume(_mutated(plan))


@FUZZ
@given(plan=st.one_of(h5_plan, st.tuples(st.just("metadata"), tree_plan(json_values))))
def test_fuzz_checkpoint_hdf5(plan):
    check_resume(_mutated(plan))
