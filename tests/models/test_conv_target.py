"""The convolutional SNN target: trained with ``brainleaks train --arch snn-conv``, exported to NetX,
rebuilt from the file identically, attacked with BL-v2 and replayed on Lava spike for spike."""
import numpy as np
import pytest
import torch

from brainleaks_lava.attacks import adapter_for, make_attack
from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError
from brainleaks_lava.hardware.equivalence import check_equivalence
from brainleaks_lava.models.conv_snn import ConvSNN
from brainleaks_lava.models.files import export_snn, load_snn
from brainleaks_lava.models.snn import SNNSpec
from brainleaks_lava.netx.spec import PoolLayer


def test_conv_target_reimports_identically(tmp_path):
    torch.manual_seed(0)
    model = ConvSNN(SNNSpec(sizes=(784, 10), steps=10), (1, 28, 28)).eval()
    with torch.no_grad():
        model(torch.zeros(1, 784, 3))  # as after training: every block's neuron shape is set
    path = export_snn(model, tmp_path / "c.net")
    t = load_snn(path)
    assert [layer.kind for layer in t.net.layers] == ["conv", "pool", "conv", "pool", "flatten", "dense"]
    assert isinstance(t.net.layers[1], PoolLayer) and t.net.input_shape == (1, 28, 28)
    x = (torch.rand(8, 784, 10, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    with torch.no_grad():
        a, va = model.run(x)
        b, vb = t.model.run(x)
        assert torch.equal(a, b) and torch.equal(va, vb)
        torch.testing.assert_close(model.posterior(x), t.model.posterior(x))
    layers, _ = t.model.twin.run_all(x)
    assert all(float(s.sum()) > 0 for s in layers[:-1])  # every hidden layer spikes: the check means something


def test_conv_target_needs_maps_divisible_by_4():
    with pytest.raises(InputError, match="multiples of 4"):
        ConvSNN(SNNSpec(sizes=(2 * 34 * 34, 10), steps=10), (2, 34, 34))


@pytest.mark.slow
def test_train_attack_replay_conv_target(tmp_path, capsys):
    out = tmp_path / "conv.net"
    assert main(["train", "--dataset", "mnist", "--arch", "snn-conv", "--epochs", "1", "--steps", "10",
                 "--lr", "1e-3", "--batch-size", "50", "--out", str(out)]) == 0
    assert "snn-conv target, validation accuracy" in capsys.readouterr().out
    t = load_snn(out)
    res = make_attack("bl2", adapter_for(t), iterations=3).invert(classes=[0, 1], seed=0, progress=False)
    assert res.samples.shape == (2, 784, 10)
    report = check_equivalence(out, res.samples, res.targets, progress=False)
    assert report.agreement == 1.0 and report.layers == 5
    assert all(s.voltage_equal for s in report.samples)
    np.testing.assert_allclose([s.twin_confidence for s in report.samples],
                               [s.lava_confidence for s in report.samples])
