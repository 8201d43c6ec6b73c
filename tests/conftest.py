"""Shared fixtures: small targets trained for a few steps on the vendored real-MNIST subset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainleaks_lava.data import load_static
from brainleaks_lava.models.ann import ANNSpec, SigmoidMLP
from brainleaks_lava.models.files import export_snn, save_ann
from brainleaks_lava.models.snn import SNNSpec, SpikingMLP
from brainleaks_lava.models.targets import flat_logits_fn, snn_logits_fn
from brainleaks_lava.models.training import TrainConfig, train

torch.set_num_threads(1)


def _seeded(build, seed):
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(seed)
        return build()


@pytest.fixture(scope="session")
def mnist_small():
    tr = load_static("mnist", None, split="train")
    va = load_static("mnist", None, split="val")
    return tr, va


@pytest.fixture(scope="session")
def small_snn_path(tmp_path_factory, mnist_small):
    """784-64-10 SNN, T=12, trained 2 epochs on 1,000 real MNIST digits, exported to NetX."""
    tr, _ = mnist_small
    spec = SNNSpec(sizes=(784, 64, 10), steps=12)
    model = _seeded(lambda: SpikingMLP(spec), 0)
    train(model, snn_logits_fn(spec.steps), tr.images, tr.labels,
          TrainConfig(epochs=2, batch_size=50, lr=2e-3, seed=0))
    path = tmp_path_factory.mktemp("snn") / "small.net"
    export_snn(model, path, {"dataset": "mnist"})
    return path


@pytest.fixture(scope="session")
def small_ann_path(tmp_path_factory, mnist_small):
    tr, _ = mnist_small
    model = _seeded(lambda: SigmoidMLP(ANNSpec(sizes=(784, 64, 10))), 0)
    train(model, flat_logits_fn, tr.images, tr.labels, TrainConfig(epochs=5, batch_size=50, lr=2e-3, seed=0))
    path = tmp_path_factory.mktemp("ann") / "small_ann.h5"
    save_ann(model, path, {"dataset": "mnist"})
    return path


@pytest.fixture(params=["numba", "torch"])
def loop(request, monkeypatch):
    """Run a test with fast_cuba's numba loop and with its torch-operations loop (CUDA's, and the one
    without numba)."""
    from brainleaks_lava.models import fast_cuba

    if request.param == "torch":
        monkeypatch.setattr(fast_cuba, "_NUMBA_KERNEL", False)
    elif fast_cuba._numba_kernel() is None:
        pytest.skip("numba not installed")
    return request.param
