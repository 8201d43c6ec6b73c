"""Training options of SNN targets: the firing threshold (weights in its units) and weight decay."""
import numpy as np
import pytest
import torch

from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError
from brainleaks_lava.models.files import export_snn, load_snn
from brainleaks_lava.netx.reader import read_network
from brainleaks_lava.models.snn import NeuronConfig, SNNSpec, SpikingMLP
from brainleaks_lava.models.targets import TargetRequest, snn_logits_fn
from brainleaks_lava.models.training import TrainConfig, train
from bl_testutils import assert_lava_run_equals_twin, random_spikes


def _seeded_model(spec, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(seed)
        return SpikingMLP(spec)


def test_initial_weights_are_in_units_of_the_threshold():
    m1 = _seeded_model(SNNSpec(sizes=(20, 8, 3), steps=5, neuron=NeuronConfig(threshold=1.0)))
    m8 = _seeded_model(SNNSpec(sizes=(20, 8, 3), steps=5, neuron=NeuronConfig(threshold=8.0)))
    for b1, b8 in zip(m1.blocks, m8.blocks):
        torch.testing.assert_close(b8.synapse.weight, 8.0 * b1.synapse.weight)


def test_posterior_scale_defaults_to_inverse_threshold():
    assert TargetRequest(neuron=NeuronConfig(threshold=8.0)).resolved_posterior_scale == 0.125
    assert TargetRequest(neuron=NeuronConfig(threshold=8.0), posterior_scale=2.0).resolved_posterior_scale == 2.0
    assert TargetRequest().resolved_posterior_scale == 1.0
    with pytest.raises(InputError, match="posterior_scale"):
        TargetRequest(posterior_scale=-1.0)


def _threshold8_model():
    spec = SNNSpec(sizes=(784, 40, 10), steps=10, neuron=NeuronConfig(threshold=8.0), posterior_scale=0.125)
    model = _seeded_model(spec, 3)
    with torch.no_grad():  # larger weights so that the network spikes on random inputs
        for b in model.blocks:
            b.synapse.weight.mul_(4)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(40, 28, 28, generator=g).numpy()
    train(model, snn_logits_fn(10), images, np.arange(40) % 10, TrainConfig(epochs=1, batch_size=10, lr=2e-2, seed=0))
    return model.eval()


def test_threshold_8_exports_finer_weights_and_reimports_identically(tmp_path):
    model = _threshold8_model()
    path = export_snn(model, tmp_path / "t8.net")
    layers = read_network(path).layers
    assert [l.neuron.vth_mant for l in layers] == [512, 512]
    # the weights use many more 8-bit levels relative to the threshold than +-a few steps
    assert max(int(np.abs(l.weight).max()) for l in layers) > 64
    twin = load_snn(path)
    assert twin.spec.neuron.threshold == 8.0 and twin.spec.posterior_scale == 0.125
    x = random_spikes(30, 784, 10, p=0.3, seed=1)
    with torch.no_grad():
        a, va = model.run(x)
        b, vb = twin.model.run(x)
    assert a.sum() > 0
    assert torch.equal(a, b) and torch.equal(va, vb)


@pytest.mark.slow
def test_threshold_8_runs_on_lava_like_twin(tmp_path):
    path = export_snn(_threshold8_model(), tmp_path / "t8.net")
    expected = assert_lava_run_equals_twin(path, random_spikes(4, 784, 10, p=0.3, seed=7))
    assert expected.sum() > 0


def _train_with_decay(weight_decay):
    """Images whose first 100 pixels are always 0: their weights get no gradient at all."""
    model = _seeded_model(SNNSpec(sizes=(784, 16, 4), steps=5), 1)
    before = model.blocks[0].synapse.weight.detach().clone().squeeze()
    g = torch.Generator().manual_seed(2)
    images = torch.rand(24, 28, 28, generator=g).numpy()
    images.reshape(24, -1)[:, :100] = 0
    train(model, snn_logits_fn(5), images, np.arange(24) % 4,
          TrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=0, weight_decay=weight_decay))
    return before, model.blocks[0].synapse.weight.detach().squeeze()


def test_weight_decay_shrinks_weights_that_no_data_trains():
    before, after = _train_with_decay(0.0)
    torch.testing.assert_close(after[:, :100], before[:, :100], rtol=0, atol=0)  # plain Adam leaves them alone
    before, after = _train_with_decay(5.0)
    shrink = after[:, :100].abs().sum() / before[:, :100].abs().sum()
    # AdamW: w <- w (1 - lr * wd) per step, 6 steps of factor 0.95
    assert abs(float(shrink) - 0.95 ** 6) < 1e-4


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1"])
def test_weight_decay_validation(bad):
    with pytest.raises(InputError, match="weight_decay"):
        TrainConfig(weight_decay=bad)


@pytest.mark.parametrize("flag, value, word", [("--weight-decay", "-1", "weight_decay"),
                                                ("--threshold", "0", "threshold")])
def test_cli_train_refuses_bad_option(tmp_path, capsys, flag, value, word):
    out = tmp_path / "m.net"
    assert main(["train", "--dataset", "mnist", "--arch", "snn", "--out", str(out), "--epochs", "1",
                 flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0]
    assert not out.exists()
