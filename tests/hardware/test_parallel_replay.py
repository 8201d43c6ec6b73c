"""Parallel Lava replay (several runtimes, each in a forked worker) equals the serial replay exactly, and the
fast models (LIF neurons recording into shared memory, the Dense row-sum synapse) equal Lava's own models
with recorder processes."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import netx_nets
from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError
from brainleaks_lava.hardware import parallel
from brainleaks_lava.hardware import replay as replay_mod
from brainleaks_lava.hardware.replay import auto_workers, plan_jobs, replay_network
from brainleaks_lava.netx.reader import read_network
from bl_testutils import random_spikes
from test_replay import child_processes

SHIPPED = Path(__file__).resolve().parents[2] / "netx_models" / "mnist_snn.net"


def assert_same(a, b):
    assert a.runs >= 1 and b.runs >= 1
    assert a.settle == b.settle
    assert len(a.layers) == len(b.layers)
    for p, (x, y) in enumerate(zip(a.layers, b.layers)):
        assert (x is None) == (y is None), p
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y, err_msg=f"layer {p}")
    np.testing.assert_array_equal(a.voltage, b.voltage)


def leaked_segments() -> set[str]:
    """Recording blocks in /dev/shm whose creator is no longer alive (other test runs may own live ones)."""
    out = set()
    for n in os.listdir("/dev/shm"):
        if n.startswith("brainleaks-rec-"):
            pid = int(n[len("brainleaks-rec-"):].split("-")[0])
            if not _alive([pid]):
                out.add(n)
    return out


@pytest.mark.slow
def test_shipped_target_parallel_equals_serial():
    """784-3000-10, T=25, membrane read-out: every layer, the pre-reset output voltage and the posterior.
    21 samples in 6 streamed runs (3 rounds of 2 workers, results arriving in any order)."""
    from brainleaks_lava.models.files import load_snn
    from brainleaks_lava.netx.target import readout_logits

    target = load_snn(SHIPPED)
    spec = target.model.net
    assert target.spec.readout == "membrane"
    from brainleaks_lava.data import load_static
    from brainleaks_lava.data.encoding import rate_encode

    images = load_static("mnist", None, split="val").images[:21]
    x = rate_encode(images, steps=25, generator=torch.Generator().manual_seed(31)).numpy()  # real digits
    serial = replay_network(spec, x, progress=False, voltage="pre", workers=1)
    par = replay_network(spec, x, chunk=4, progress=False, voltage="pre", workers=2)
    assert serial.runs == 1 and par.runs == 6
    assert_same(par, serial)
    assert serial.layers[0].sum() > 1000 and serial.output.sum() > 20  # real activity in both layers
    assert len(np.unique(serial.voltage)) > 100
    dep = target.model.deployment
    post = [torch.softmax(readout_logits(dep, target.model.settle, r.output, r.voltage), 1).numpy()
            for r in (serial, par)]
    np.testing.assert_array_equal(post[0], post[1])
    # and the replay is still the twin's, spike for spike and voltage for voltage
    from brainleaks_lava.hardware.equivalence import twin_outputs

    ref, ref_v = twin_outputs(target.model, x, voltage=True)
    np.testing.assert_array_equal(par.output, ref)
    np.testing.assert_array_equal(par.voltage, ref_v)
    assert child_processes() == []


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("parallel-nets")
    out = {}
    for name in ("delay_bias", "input_layer", "conv"):
        path, shape = netx_nets.FEATURES[name](d / f"{name}.net")
        out[name] = (read_network(path, input_shape=shape), shape)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["delay_bias", "input_layer"])
def test_other_networks_parallel_equals_serial(nets, name):
    """Delays cleared per window, an input layer driven at its neurons: 24 samples, every layer, both voltages."""
    spec, shape = nets[name]
    x = random_spikes(24, int(np.prod(shape)), 16, p=0.3, seed=7).numpy()
    serial = replay_network(spec, x, progress=False, voltage="pre", workers=1)
    par = replay_network(spec, x, chunk=5, progress=False, voltage="pre", workers=2)
    assert par.runs == 6
    assert_same(par, serial)
    assert all(a.sum() > 0 for a in serial.layers)
    # one run per sample, in parallel, equals the stream too
    per_sample = replay_network(spec, x[:4], mode="per-sample", progress=False, voltage="post", workers=2)
    stream_post = replay_network(spec, x[:4], progress=False, voltage="post", workers=1)
    assert per_sample.runs == 4
    for a, b in zip(per_sample.layers, stream_post.layers):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(per_sample.voltage, stream_post.voltage)
    assert child_processes() == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["delay_bias", "input_layer", "conv"])
def test_fast_models_equal_lavas_models_with_recorder_processes(nets, name, monkeypatch):
    spec, shape = nets[name]
    x = random_spikes(6, int(np.prod(shape)), 16, p=0.3, seed=8).numpy()
    fast = replay_network(spec, x, progress=False, voltage="pre", workers=1)
    monkeypatch.setattr(replay_mod, "FAST_MODELS", False)
    lava = replay_network(spec, x, progress=False, voltage="pre", workers=1)
    assert_same(fast, lava)
    assert all(a.sum() > 0 for a in fast.layers)


def test_plan_and_automatic_workers():
    assert plan_jobs(5, "per-sample", 200, 2) == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]
    assert plan_jobs(450, "stream", 200, 1) == [(0, 200), (200, 200), (400, 50)]
    # several workers: a multiple of the worker count of near-equal runs of at most `chunk` samples
    assert plan_jobs(450, "stream", 200, 2) == [(0, 113), (113, 113), (226, 112), (338, 112)]
    assert plan_jobs(40, "stream", 200, 2) == [(0, 20), (20, 20)]
    assert plan_jobs(3, "stream", 200, 5) == [(0, 1), (1, 1), (2, 1)]
    assert plan_jobs(21, "stream", 4, 2) == [(0, 4), (4, 4), (8, 4), (12, 3), (15, 3), (18, 3)]
    assert auto_workers(1500, cpus=2) == 2 and auto_workers(1500, cpus=1) == 1 and auto_workers(1500, cpus=8) == 2
    assert auto_workers(19, cpus=2) == 1 and auto_workers(20, cpus=2) == 2  # a runtime per 10 streamed samples
    assert auto_workers(2, "per-sample", cpus=2) == 2 and auto_workers(1, "per-sample", cpus=2) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True, "2"])
def test_bad_workers_refused(small_snn_path, bad):
    with pytest.raises(InputError, match="workers must be a positive integer or None / 'auto'"):
        replay_mod.replay(small_snn_path, np.zeros((2, 784, 12), np.float32), workers=bad, progress=False)


def test_replay_cli_workers_option(small_snn_path, capsys):
    assert main(["replay", "--model", str(small_snn_path), "--random", "2", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "--workers: must be a positive integer or 'auto', got '0'" in err
    assert main(["replay", "--model", str(small_snn_path), "--random", "2", "--workers", "many"]) == 2
    assert "got 'many'" in capsys.readouterr().err


@pytest.mark.slow
def test_replay_cli_parallel(small_snn_path, capsys):
    assert main(["replay", "--model", str(small_snn_path), "--random", "24", "--workers", "2"]) == 0
    assert "agreement with the twin: 100.00% (24/24" in capsys.readouterr().out
    assert child_processes() == []


@pytest.mark.slow
def test_error_in_a_worker_is_raised_and_everything_stopped(small_snn_path, monkeypatch):
    """A job that fails raises its own exception here; the other worker is stopped; nothing is left."""
    spec = read_network(small_snn_path)
    x = random_spikes(8, 784, 12, p=0.2, seed=3).numpy()
    run = replay_mod._run_lava

    def fail_on_second_chunk(spec, data, *args, **kwargs):
        if np.array_equal(data[:, :12], x[4]):  # the chunk starting at sample 4
            raise ValueError("injected failure in a worker")
        return run(spec, data, *args, **kwargs)

    monkeypatch.setattr(replay_mod, "_run_lava", fail_on_second_chunk)
    before = leaked_segments()
    with pytest.raises(ValueError, match="injected failure in a worker"):
        replay_network(spec, x, chunk=4, progress=False, voltage="pre", workers=2)
    assert child_processes() == []
    assert leaked_segments() - before == set()


@pytest.mark.slow
def test_killed_worker_reported_its_lava_processes_gone_and_memory_unlinked(small_snn_path, monkeypatch, tmp_path):
    """A worker killed mid-run (SIGKILL, after Lava wrote into its shared memory): ``WorkerDied`` here, the
    Lava processes it had forked die with it, its shared memory blocks are unlinked."""
    from test_replay import child_processes as descendants_of_me

    spec = read_network(small_snn_path)
    x = random_spikes(8, 784, 12, p=0.2, seed=4).numpy()
    collect = replay_mod._collect
    note = tmp_path / "worker.txt"

    def die(buffer):
        if not note.exists():
            note.write_text(" ".join(map(str, [os.getpid(), *descendants_of_me()])))
            os.kill(os.getpid(), signal.SIGKILL)
        return collect(buffer)

    monkeypatch.setattr(replay_mod, "_collect", die)
    with pytest.raises(parallel.WorkerDied, match="exit code -9"):
        replay_network(spec, x, chunk=4, progress=False, voltage="pre", workers=2)
    pids = [int(p) for p in note.read_text().split()]
    assert len(pids) >= 3  # the worker and the Lava processes it forked
    deadline = time.time() + 10
    while time.time() < deadline and _alive(pids):
        time.sleep(0.1)
    assert _alive(pids) == []
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"brainleaks-rec-{pids[0]}-")]
    assert child_processes() == []


@pytest.mark.slow
def test_ctrl_c_stops_every_worker(small_snn_path, monkeypatch):
    """SIGINT to this process while two workers run Lava: KeyboardInterrupt here, no process left."""
    from brainleaks_lava import interrupts

    # an earlier in-process CLI call armed the CLI's exit watchdog (it would end pytest 5 s after the signal);
    # the interrupt this test causes is not left behind for later tests either
    monkeypatch.setattr(interrupts, "_exit_after", {})
    monkeypatch.setattr(interrupts, "received", None)
    spec = read_network(small_snn_path)
    x = random_spikes(1000, 784, 12, p=0.2, seed=5).numpy()
    seen, running = [], threading.Event()

    def interrupt():
        deadline = time.time() + 60
        while time.time() < deadline:
            kids = child_processes()
            if len(kids) >= 6:  # two workers and their Lava processes
                seen.extend(kids)
                time.sleep(0.5)
                if running.is_set():
                    os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.1)

    threading.Thread(target=interrupt, daemon=True).start()
    running.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            replay_network(spec, x, progress=False, voltage="pre", workers=2)
    finally:
        running.clear()
    assert seen
    assert child_processes() == []
    assert _alive(seen) == []


def _alive(pids) -> list[int]:
    out = []
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2:].split()[0] != "Z":
            out.append(p)
    return out
