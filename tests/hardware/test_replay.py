import dataclasses
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from brainleaks_lava.attacks import adapter_for, make_attack
from brainleaks_lava.attacks.recon_file import recon_draws, save_recon
from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError
from brainleaks_lava.hardware import replay as replay_mod
from brainleaks_lava.hardware.equivalence import check_equivalence, first_difference, twin_outputs
from brainleaks_lava.hardware.replay import check_spikes, replay
from brainleaks_lava.models.files import load_snn
from brainleaks_lava.models.snn import SpikingMLP
from bl_testutils import random_spikes


def mlp_copy(target, readout: str) -> SpikingMLP:
    """A SpikingMLP with the weights of a loaded MLP target and another read-out."""
    m = SpikingMLP(dataclasses.replace(target.spec, readout=readout))
    with torch.no_grad():
        for block, layer in zip(m.blocks, target.net.computing):
            block.synapse.weight.copy_(torch.as_tensor(layer.weight / 64.0).reshape(block.synapse.weight.shape))
    return m.eval()


def child_processes() -> list[int]:
    """PIDs of all live descendants of this process (from /proc), except Python's multiprocessing
    resource tracker: a single helper that the standard library starts on first use of shared memory
    and keeps until the interpreter exits (it is not a Lava worker and runs no simulation)."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                if fields[0] != "Z":
                    parents[int(d.name)] = int(fields[1])
            except (OSError, ValueError):
                continue
    me, out, frontier = os.getpid(), [], [os.getpid()]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return [p for p in out if not _is_resource_tracker(p)]


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"multiprocessing.resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.fixture(scope="module")
def snn(small_snn_path):
    return load_snn(small_snn_path)


@pytest.mark.slow
def test_streamed_equals_per_sample_equals_twin(snn, small_snn_path):
    x = random_spikes(30, 784, 12, p=0.2, seed=11).numpy()
    res = make_attack("bl2", adapter_for(snn), iterations=8).invert(seed=3, progress=False)
    x = np.concatenate([x, res.samples.astype(np.float32)])
    assert x.shape == (40, 784, 12)
    assert snn.spec.readout == "membrane"
    twin, twin_v = twin_outputs(snn.model, x, voltage=True)
    streamed, streamed_v = replay(small_snn_path, x, mode="stream", progress=False, voltage="pre")
    per_sample, per_sample_v = replay(small_snn_path, x, mode="per-sample", progress=False, voltage="pre")
    assert twin.sum() > 20  # the comparison is about real spikes
    np.testing.assert_array_equal(streamed, twin)
    np.testing.assert_array_equal(per_sample, twin)
    # output potentials before the reset (the posterior's input) agree exactly too, they are not
    # trivially zero, and they include steps where a neuron fired (restored from v and u on Lava)
    assert np.abs(twin_v).max() > 0.5 and len(np.unique(twin_v)) > 100
    assert (twin_v[:, :, 2:-1] > snn.spec.neuron.threshold).sum() > 20
    np.testing.assert_array_equal(streamed_v, twin_v)
    np.testing.assert_array_equal(per_sample_v, twin_v)
    # the post-reset read-out ("voltage") is what Lava's monitor reads as is: 0 where a neuron fired
    post_twin = mlp_copy(snn, "voltage")
    post_twin.settle = 2
    _, post_v = twin_outputs(post_twin, x, voltage=True)
    assert not np.array_equal(post_v, twin_v)
    np.testing.assert_array_equal(replay(small_snn_path, x, progress=False, voltage="post")[1], post_v)
    # streaming in several Lava runs (chunks) gives the same result
    np.testing.assert_array_equal(replay(small_snn_path, x, chunk=7, progress=False), twin)
    assert child_processes() == []


def test_pre_reset_voltage_restores_lavas_update():
    """Constructed case in Lava's fixed-point units (dv = 1228: 70 % kept per step)."""
    v_post = np.array([[100, 0, 5000, 0]])
    u = np.array([[100, 8000, 4000, 70000]])
    pre = replay_mod.pre_reset_voltage(v_post, u, 1228)
    # step 1: 100 * 2868 >> 12 = 70, + 8000; step 2 kept (no reset); step 3: -> 5000 * 2868 >> 12 = 3500
    np.testing.assert_array_equal(pre, [[100, 8070, 5000, 73500]])
    # negative voltages decay toward 0 symmetrically, as in Lava
    np.testing.assert_array_equal(replay_mod.pre_reset_voltage(np.array([[-100, 0]]), np.array([[0, 9000]]), 1228),
                                  [[-100, 8930]])


def test_stream_clears_only_delayed_synapses():
    """Streamed replays mark DelayDense / DelaySparse synapses (the window and the step of their clear) and
    run them with the clearing models; other synapses are left to Lava."""
    replay_mod._lava()
    from scipy.sparse import csr_matrix
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.sparse.process import DelaySparse

    from brainleaks_lava.hardware import delay_models

    w, d = np.ones((3, 4), int), np.full((3, 4), 2)
    for syn in (DelayDense(weights=w, delays=d), DelaySparse(weights=csr_matrix(w), delays=csr_matrix(d))):
        assert delay_models.clear_each_window(syn, 24, 3)
        assert (syn.proc_params[delay_models.WINDOW], syn.proc_params[delay_models.OFFSET]) == (24, 3)
        assert delay_models.MODELS[type(syn)].run_spk is delay_models._ClearEachWindow.run_spk
    assert not delay_models.clear_each_window(Dense(weights=w), 24, 3)
    assert not delay_models.clear_each_window(None, 24, 3)


def test_replay_refuses_unknown_voltage_kind(small_snn_path):
    with pytest.raises(InputError, match="voltage"):
        replay(small_snn_path, np.zeros((1, 784, 12), np.float32), voltage="mid")


@pytest.mark.slow
def test_perturbed_file_reported_with_sample_and_step(snn, small_snn_path, tmp_path):
    x = random_spikes(10, 784, 12, p=0.2, seed=12).numpy()
    hidden, _ = snn.model.twin.run_all(torch.as_tensor(x))
    busiest = int(hidden[0].sum(dim=(0, 2)).argmax())
    bad = tmp_path / "perturbed.net"
    bad.write_bytes(Path(small_snn_path).read_bytes())
    with h5py.File(bad, "a") as f:
        w = f["layer/1/weight"]
        row = w[0]
        row[busiest] = 254  # one weight changed to the largest 8-bit value
        w[0] = row
    report = check_equivalence(bad, x, targets=np.zeros(10, int), twin_path=small_snn_path, progress=False)
    assert report.agreement < 1.0
    first = report.mismatches[0]
    lava = replay(bad, x[first.index:first.index + 1], progress=False)[0]
    ref = twin_outputs(snn.model, x[first.index:first.index + 1])[0]
    assert first.layer == 1 and first.first_diff[0] == 0  # the perturbed output neuron, in the output layer
    # the output spikes are the layer's one step late
    assert first_difference(lava, ref) == (0, first.first_diff[1] + 1)
    assert child_processes() == []


def test_first_difference():
    a = np.zeros((3, 5))
    b = a.copy()
    assert first_difference(a, b) is None
    b[2, 3] = 1
    b[1, 4] = 1
    assert first_difference(a, b) == (2, 3)


def test_check_spikes_rejects_bad_input():
    with pytest.raises(InputError, match="binary"):
        check_spikes(np.full((1, 4, 5), 0.5), 4)
    with pytest.raises(InputError, match="NaN"):
        check_spikes(np.full((1, 4, 5), np.nan), 4)
    with pytest.raises(InputError, match="3 features but the model takes 4"):
        check_spikes(np.zeros((1, 3, 5)), 4)
    with pytest.raises(InputError, match="shape"):
        check_spikes(np.zeros((4, 5)), 4)


def our_segments() -> set[str]:
    """Shared memory blocks in /dev/shm created by this process's replays (their names carry its pid)."""
    from brainleaks_lava.hardware.shm_recorders import PREFIX

    return {n for n in os.listdir("/dev/shm") if n.startswith(f"{PREFIX}{os.getpid()}-")}


def test_shared_buffers_unlinked_on_exit_and_on_error():
    replay_mod._lava()
    from brainleaks_lava.hardware.shm_recorders import SharedBuffers, SPIKE_DTYPE, VAR_DTYPE

    with SharedBuffers() as buffers:
        a = buffers.new((3, 2), 5, SPIKE_DTYPE)
        b = buffers.new((4,), 5, VAR_DTYPE)
        assert our_segments() == {a.name, b.name}
        assert a.read().shape == (5, 3, 2) and a.read().dtype == np.int32 and not a.read().any()
        assert b.read().shape == (5, 4) and b.read().dtype == np.int64
    assert our_segments() == set()
    with pytest.raises(ZeroDivisionError):
        with SharedBuffers() as buffers:
            buffers.new((3,), 2, SPIKE_DTYPE)
            1 / 0
    assert our_segments() == set()


def test_shared_buffer_too_large_for_dev_shm_fails_in_the_host(monkeypatch):
    """A block that /dev/shm cannot hold is refused when it is created (its pages are allocated then), and
    unlinked, rather than killing a Lava worker with SIGBUS when it writes there."""
    import errno

    replay_mod._lava()
    from brainleaks_lava.hardware.shm_recorders import SharedBuffers, SPIKE_DTYPE

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="cannot reserve 0.1 MiB of shared memory"):
        with SharedBuffers() as buffers:
            buffers.new((1000,), 25, SPIKE_DTYPE)
    assert our_segments() == set()


@pytest.mark.slow
def test_replay_records_through_shared_memory_and_unlinks_it(small_snn_path, monkeypatch):
    """Spikes of every layer and the probed v and u are written by the Lava workers into shared memory
    blocks that exist during the run and are gone after it."""
    seen = []
    collect = replay_mod._collect

    def spy(buffer):
        seen.append((buffer.name, buffer.name in our_segments()))
        return collect(buffer)

    monkeypatch.setattr(replay_mod, "_collect", spy)
    x = random_spikes(4, 784, 12, p=0.2, seed=5).numpy()
    replay_mod.replay_network(load_snn(small_snn_path).model.net, x, chunk=2, progress=False, voltage="pre")
    assert len(seen) == 2 * 4 and all(alive for _, alive in seen)  # 2 chunks x (2 layers, v, u)
    assert len({name for name, _ in seen}) == len(seen)
    assert our_segments() == set()
    assert child_processes() == []


@pytest.mark.slow
@pytest.mark.parametrize("where", ["reading", "building"])
def test_runtime_stopped_after_exception(small_snn_path, monkeypatch, where):
    def boom(*args, **kwargs):
        raise RuntimeError(f"injected failure while {where}")

    if where == "reading":  # Lava is running, the shared memory is written
        monkeypatch.setattr(replay_mod, "_collect", boom)
    else:  # the spike recorders' blocks exist, Lava has not started
        replay_mod._lava()
        from brainleaks_lava.hardware import shm_recorders

        monkeypatch.setattr(shm_recorders.VarRecorder, "probe", boom)
        record = shm_recorders.record_in_neuron  # the output voltage recorded by the neuron's own model

        def boom_on_voltage(neuron, what, buffer):
            if what != "s":
                boom()
            record(neuron, what, buffer)
        monkeypatch.setattr(shm_recorders, "record_in_neuron", boom_on_voltage)
    with pytest.raises(RuntimeError, match="injected"):
        replay(small_snn_path, random_spikes(3, 784, 12).numpy(), progress=False, voltage="pre")
    assert child_processes() == []
    assert our_segments() == set()


@pytest.mark.slow
def test_replay_cli_exit_codes(snn, small_snn_path, tmp_path, capsys):
    res = make_attack("bl2", adapter_for(snn), iterations=5).invert(classes=[0, 1, 2], seed=0, progress=False)
    rec = save_recon(res, tmp_path / "r.h5")
    assert main(["replay", "--model", str(small_snn_path), "--recon", str(rec), "--draws", "3",
                 "--json", str(tmp_path / "rep.json")]) == 0
    out = capsys.readouterr().out
    assert "agreement with the twin: 100.00% (9/9" in out
    assert (tmp_path / "rep.json").exists()
    # shape of the reconstructions does not match the model
    other = tmp_path / "other.net"
    from brainleaks_lava.models.files import export_snn
    from brainleaks_lava.models.snn import SNNSpec, SpikingMLP
    export_snn(SpikingMLP(SNNSpec(sizes=(100, 8, 10), steps=12)), other)
    assert main(["replay", "--model", str(other), "--recon", str(rec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "784 features but the model takes 100" in err[0]
    assert main(["replay", "--model", str(small_snn_path), "--recon", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert child_processes() == []


@pytest.mark.slow
def test_equivalence_confidences_from_voltage_and_from_spikes(snn, small_snn_path, tmp_path):
    """Voltage read-out: the report's confidences are the twin's voltage posterior, equal on Lava.
    A spike-count read-out copy of the same weights is compared on spikes alone."""
    from brainleaks_lava.models.files import export_snn
    from brainleaks_lava.models.snn import SNNSpec, SpikingMLP

    x = random_spikes(6, 784, 12, p=0.2, seed=21).numpy()
    y = np.arange(6)
    rep = check_equivalence(small_snn_path, x, targets=y, progress=False)
    with torch.no_grad():
        p = snn.model.posterior(torch.as_tensor(x)).numpy()
    assert rep.agreement == 1.0 and all(s.voltage_equal for s in rep.samples)
    np.testing.assert_allclose([s.twin_confidence for s in rep.samples], p[y, y], rtol=1e-6)
    assert [s.lava_confidence for s in rep.samples] == [s.twin_confidence for s in rep.samples]

    m = mlp_copy(snn, "spikes")
    path = export_snn(m, tmp_path / "spikes.net")
    rep2 = check_equivalence(path, x, targets=y, progress=False)
    assert rep2.agreement == 1.0 and all(s.voltage_equal is None for s in rep2.samples)
    with torch.no_grad():
        p2 = m.posterior(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose([s.lava_confidence for s in rep2.samples], p2[y, y], rtol=1e-6)
    assert not np.allclose(p2[y, y], p[y, y])
    assert child_processes() == []
