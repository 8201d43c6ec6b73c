"""--device / device=: names, errors, CPU results unchanged, and (with a GPU) CUDA results against the CPU's.

Without CUDA (this suite's usual machine) the tests check the device names and their errors, that ``--device cpu``
gives bit for bit what no flag gives, that ``--device cuda`` exits 2 naming the option and what is available, and
the rule that decides whether a replay compares Lava with the twin on its GPU or with a CPU copy.

With CUDA (``skipif`` otherwise), tolerances and why:

- The twin's forward pass on 0/1 spikes is compared with ``torch.equal``: its dynamics are integers (fast_cuba's
  torch loop holds them in float64 on a GPU) and a dense synapse sums multiples of 1/64 that are exact in float32
  in any order (TF32 is switched off when a CUDA device is resolved). So spikes and voltages are the same bits.
- Attacks are compared within tolerances, because input gradients are float32 sums whose order differs on a GPU
  (~1e-6 relative, as between the twin's fast and lava-dl paths, tests/netx/test_twin_fast.py), and the optimiser
  carries those differences on. Random draws come from the same CPU generator, so a Bernoulli sample differs only
  where a uniform draw falls between the two runs' probabilities: rare, but it then changes that member's gradient.
  BL-v2 (5 iterations): mean |probability difference| <= 1e-3, at most 0.5 % of the final spikes differ, target
  confidence within 0.02. MI-FACE (50 steps, no sampling): images within 1e-4.
- Evaluator posteriors (float convolutions): within 1e-5.
- Reconstructions made on a GPU, replayed on Lava, equal the twin spike for spike; the comparison runs on the CPU
  twin, and on the GPU twin where it is exact (a dense network fed spikes).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError, ModelFileError
from brainleaks_lava.models.device import DEVICE_NAMES, available_devices, check_device_name, resolve_device

ROOT = Path(__file__).resolve().parents[1]
SNN = str(ROOT / "netx_models" / "mnist_snn.net")
ANN = str(ROOT / "netx_models" / "mnist_ann.h5")
EVAL_ANN = str(ROOT / "netx_models" / "mnist_eval_ann.h5")
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device")
without_cuda = pytest.mark.skipif(CUDA, reason="this machine has a CUDA device")


# ---------------------------------------------------------------------------------------------- names

@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu ", "auto", "cuda", "cuda:0", "cuda:12"])
def test_device_names_accepted_by_spelling(name):
    assert check_device_name(name) == name.strip().lower()


@pytest.mark.parametrize("name", ["gpu", "", "cuda:", "cuda:x", "cuda:0:1", "mps", "cpu:0", "cuda0", 0, 1.5])
def test_unknown_device_names_are_input_errors_naming_the_option(name):
    for check in (check_device_name, resolve_device):
        with pytest.raises(InputError, match="--device must be one of cpu, auto, cuda, cuda:N"):
            check(name)
    with pytest.raises(InputError) as e:
        resolve_device(name)
    assert f"(available here: {', '.join(available_devices())})" in str(e.value)


def test_resolution_on_the_cpu_and_of_torch_devices():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(torch.device("cpu", 0)) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    with pytest.raises(InputError, match=r"--device must be one of .* got 'meta' \(available here: cpu, auto"):
        resolve_device(torch.device("meta"))


@without_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1", torch.device("cuda")])
def test_cuda_without_cuda_names_the_option_and_what_is_available(name):
    assert available_devices() == ["cpu", "auto"]
    with pytest.raises(InputError, match=r"--device cuda.*no CUDA device.*available: cpu, auto"):
        resolve_device(name)


def test_checking_a_name_imports_no_torch():
    """The CLI checks --device while parsing; --help must stay fast, so the spelling check imports no torch."""
    code = ("import sys; from brainleaks_lava.models.device import check_device_name; "
            "check_device_name('cuda:1'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_bad_device_fails_before_any_file_is_read(tmp_path):
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    from brainleaks_lava.models.files import load_target

    missing = tmp_path / "missing.net"
    with pytest.raises(ModelFileError):
        load_target(missing)  # the file is the problem without a device
    for load in (load_target, load_evaluator):
        with pytest.raises(InputError, match="--device"):
            load(missing, device="gpu")


# ---------------------------------------------------------------------------------------------- CPU: unchanged

@pytest.fixture(scope="module")
def snn_target():
    from brainleaks_lava.models.files import load_target

    return load_target(SNN)


def test_targets_and_evaluators_report_and_change_their_device(snn_target):
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    from brainleaks_lava.models.files import load_target

    assert snn_target.device == torch.device("cpu")
    ann = load_target(ANN, device="cpu")
    assert ann.device == torch.device("cpu") and ann.to("cpu") is ann
    ev = load_evaluator(EVAL_ANN, device="cpu")
    assert ev.device == torch.device("cpu") and ev.to("cpu") is ev
    with pytest.raises(InputError, match="--device"):
        ann.to("tpu")


def test_twin_delays_follow_the_model_and_stay_out_of_its_state(tmp_path):
    """Synaptic delays are a buffer of the twin (so .to(device) moves them), not part of its state dict."""
    import netx_nets
    from brainleaks_lava.models.files import load_snn

    path, _ = netx_nets.delay_net(tmp_path / "d.net")
    twin = load_snn(path).model
    layer = twin.twin.layers[0]
    assert layer.delays is not None and "delays" in dict(layer.named_buffers())
    assert not any(k.endswith("delays") for k in twin.state_dict())
    twin.to(torch.float64)  # buffers of integers keep their dtype: the delays are still the file's steps
    assert layer.delays.dtype == torch.long


def test_api_device_cpu_is_the_default_bit_for_bit(snn_target):
    from brainleaks_lava import api

    kw = dict(classes=[0, 3], seed=5, iterations=3, population=3, progress=False)
    a = api.attack(snn_target, "bl2", **kw)
    b = api.attack(SNN, "bl2", device="cpu", **kw)
    for name in ("samples", "probabilities", "confidence", "loss_history", "iterations"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    ea = api.evaluate(a, EVAL_ANN, draws=3)
    eb = api.evaluate(b, EVAL_ANN, draws=3, device="cpu")
    assert np.array_equal(ea.posteriors, eb.posteriors)
    assert ea.summary == eb.summary


def _recon_arrays(path):
    from brainleaks_lava.attacks.recon_file import load_recon

    r = load_recon(path)
    return {k: getattr(r, k) for k in ("samples", "probabilities", "confidence", "loss_history", "iterations",
                                       "targets")}


def test_cli_device_cpu_gives_what_no_flag_gives(tmp_path, capsys):
    common = ["--model", SNN, "--method", "bl2", "--iterations", "3", "--population", "3", "--classes", "1", "7",
              "--seed", "2", "--threads", "1"]
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["attack", *common, "--out", str(a)]) == 0
    assert main(["attack", *common, "--device", "cpu", "--out", str(b)]) == 0
    ra, rb = _recon_arrays(a), _recon_arrays(b)
    for k in ra:
        assert np.array_equal(ra[k], rb[k]), k
    ja, jb = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["evaluate", "--recon", str(a), "--evaluator", EVAL_ANN, "--draws", "4", "--json", str(ja)]) == 0
    assert main(["evaluate", "--recon", str(a), "--evaluator", EVAL_ANN, "--draws", "4", "--device", "cpu",
                 "--json", str(jb)]) == 0
    assert json.loads(ja.read_text()) == json.loads(jb.read_text())
    capsys.readouterr()


@without_cuda
def test_cli_cuda_without_cuda_exits_2_naming_the_option(tmp_path, capsys):
    recon = tmp_path / "r.h5"
    assert main(["attack", "--model", SNN, "--method", "bl1", "--iterations", "1", "--classes", "0",
                 "--out", str(recon)]) == 0
    capsys.readouterr()
    runs = [
        (["attack", "--model", SNN, "--method", "bl1", "--out", str(tmp_path / "o.h5")], tmp_path / "o.h5"),
        (["evaluate", "--recon", str(recon), "--evaluator", EVAL_ANN, "--json", str(tmp_path / "e.json")],
         tmp_path / "e.json"),
        (["replay", "--model", SNN, "--random", "2", "--json", str(tmp_path / "p.json")], tmp_path / "p.json"),
        (["audit", SNN, "--evaluator", EVAL_ANN, "--out", str(tmp_path / "audit")], tmp_path / "audit"),
    ]
    for argv, output in runs:
        assert main([*argv, "--device", "cuda"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, (argv, err)
        assert f"brainleaks {argv[0]}: error: --device cuda" in err[0] and "available: cpu, auto" in err[0], err
        assert not output.exists(), argv


def test_cli_unknown_device_is_a_usage_error(capsys):
    for argv in (["attack", "--model", SNN, "--method", "bl1", "--out", "o.h5"], ["evaluate", "--recon", "r.h5",
                 "--evaluator", EVAL_ANN], ["replay", "--model", SNN, "--random", "1"], ["audit", SNN, "--evaluator",
                                                                                         EVAL_ANN]):
        assert main([*argv, "--device", "gpu"]) == 2
        err = capsys.readouterr().err
        assert "argument --device: must be one of cpu, auto, cuda, cuda:N, got 'gpu'" in err


# ---------------------------------------------------------------------------------------------- replay's twin side

def _load(made):
    """A target of one of ``netx_nets``' files: (path, input shape)."""
    from brainleaks_lava.models.files import load_snn

    path, shape = made
    return load_snn(path, options={"input_shape": shape})


def test_which_twins_are_exact_on_a_gpu(tmp_path, snn_target):
    """The rule of ``NetxTwin.device_inexact_reason``: dense and input layers on the fast kernel fed spikes are
    exact anywhere; a graded input into a dense layer, convolutions and lava-dl's dynamics are not."""
    import netx_nets

    twin = snn_target.model.twin
    assert twin.device_inexact_reason(binary_input=True) is None
    assert "dense synapse fed inputs other than 0/1" in twin.device_inexact_reason(binary_input=False)
    conv = _load(netx_nets.conv_net(tmp_path / "c.net")).model.twin
    assert "conv synapse runs as a convolution" in conv.device_inexact_reason(binary_input=True)
    inp = _load(netx_nets.input_layer(tmp_path / "i.net")).model.twin
    assert inp.device_inexact_reason(binary_input=False) is None  # the input layer's drive is elementwise
    twin.set_fast(False)
    try:
        assert "lava-dl's dynamics" in twin.device_inexact_reason(binary_input=True)
    finally:
        twin.set_fast(None)


def test_replay_compares_with_a_cpu_copy_where_a_gpu_is_not_exact(tmp_path, snn_target, monkeypatch, caplog):
    """``comparison_twin`` with the twin said to be on a GPU (no GPU needed to test the decision)."""
    import logging

    import netx_nets
    from brainleaks_lava.hardware import equivalence

    switched = []
    monkeypatch.setattr(equivalence, "_CPU_NOTES", set())
    monkeypatch.setattr(equivalence, "module_device", lambda m: torch.device("cuda"))
    monkeypatch.setattr(equivalence, "exact_float32", lambda: switched.append(True))
    spikes = (np.random.default_rng(0).random((2, 784, 25)) < 0.2).astype(np.float32)
    model = snn_target.model
    assert equivalence.comparison_twin(model, spikes) is model and switched  # dense, fed spikes: exact there
    conv = _load(netx_nets.conv_net(tmp_path / "c.net")).model
    x = np.zeros((1, conv.num_inputs, 8), np.float32)
    with caplog.at_level(logging.INFO, logger="brainleaks_lava.hardware.equivalence"):
        ref = equivalence.comparison_twin(conv, x)
    assert ref is not conv and "runs on the CPU, not cuda" in caplog.text
    monkeypatch.undo()
    with torch.no_grad():  # the copy computes what the original does
        a, b = conv.run(torch.as_tensor(x)), ref.run(torch.as_tensor(x))
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.slow
def test_cli_replay_device_cpu_gives_what_no_flag_gives(tmp_path, capsys):
    ja, jb = tmp_path / "a.json", tmp_path / "b.json"
    argv = ["replay", "--model", SNN, "--random", "3", "--workers", "1"]
    assert main([*argv, "--json", str(ja)]) == 0
    assert main([*argv, "--device", "cpu", "--json", str(jb)]) == 0
    a, b = json.loads(ja.read_text()), json.loads(jb.read_text())
    assert a["agreement"] == 1.0 and a["per_sample"] == b["per_sample"]
    capsys.readouterr()


# ---------------------------------------------------------------------------------------------- CUDA

@needs_cuda
def test_auto_and_cuda_resolve_to_the_gpu():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with pytest.raises(InputError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@needs_cuda
def test_twin_on_cuda_is_the_cpu_twin_bit_for_bit(snn_target):
    from brainleaks_lava.models.files import load_target

    gpu = load_target(SNN, device="cuda")
    assert gpu.device.type == "cuda"
    x = (torch.rand(6, 784, 25, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    with torch.no_grad():
        cpu_layers, cpu_v = snn_target.model.twin.run_all(x)
        gpu_layers, gpu_v = gpu.model.twin.run_all(x.cuda())
    for a, b in zip(cpu_layers, gpu_layers):
        assert torch.equal(a, b.cpu())
    assert torch.equal(cpu_v, gpu_v.cpu())


@needs_cuda
def test_bl2_on_cuda_matches_cpu_within_tolerance(snn_target):
    from brainleaks_lava import api

    kw = dict(classes=[0, 1, 7], seed=3, iterations=5, population=5, progress=False)
    cpu = api.attack(snn_target, "bl2", **kw)
    gpu = api.attack(SNN, "bl2", device="cuda", **kw)
    assert isinstance(gpu.samples, np.ndarray) and gpu.samples.dtype == cpu.samples.dtype
    assert float(np.abs(gpu.probabilities - cpu.probabilities).mean()) <= 1e-3
    assert float((gpu.samples != cpu.samples).mean()) <= 0.005
    assert np.allclose(gpu.confidence, cpu.confidence, atol=0.02)


@needs_cuda
def test_miface_on_cuda_matches_cpu_within_tolerance():
    from brainleaks_lava import api

    kw = dict(classes=[2, 5], seed=0, iterations=50, progress=False)
    cpu = api.attack(ANN, "miface", **kw)
    gpu = api.attack(ANN, "miface", device="cuda", **kw)
    assert np.allclose(gpu.samples, cpu.samples, atol=1e-4)


@needs_cuda
def test_evaluator_on_cuda_matches_cpu(snn_target):
    from brainleaks_lava import api

    res = api.attack(snn_target, "bl2", classes=[0, 1], seed=0, iterations=3, population=3, progress=False)
    cpu = api.evaluate(res, EVAL_ANN, draws=3)
    gpu = api.evaluate(res, EVAL_ANN, draws=3, device="cuda")
    assert np.allclose(gpu.posteriors, cpu.posteriors, atol=1e-5)


@needs_cuda
@pytest.mark.slow
def test_cuda_reconstructions_replay_on_lava_identical_to_the_twin(snn_target):
    from brainleaks_lava import api
    from brainleaks_lava.models.files import load_target

    res = api.attack(SNN, "bl2", classes=[0, 1], seed=0, iterations=3, population=3, progress=False, device="cuda")
    cpu_report = api.replay(snn_target, res, draws=1, progress=False, workers=1)  # the CPU twin
    assert cpu_report.agreement == 1.0
    gpu_report = api.replay(load_target(SNN, device="cuda"), res, draws=1, progress=False, workers=1)
    assert gpu_report.agreement == 1.0
    assert [s.twin_confidence for s in gpu_report.samples] == [s.twin_confidence for s in cpu_report.samples]
