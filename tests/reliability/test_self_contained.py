"""Files that point elsewhere: a ``.net``, reconstruction or evaluator file whose data lives in another file
(an HDF5 external link, external storage, a virtual dataset, or a soft link) is refused with one line,
before anything is read, and the other file is never opened.

The other file is a FIFO with no writer: opening it for reading blocks forever, so a reader that followed
the indirection would hang (the subprocess runs under a timeout) instead of failing loudly.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import bad_cases
from bad_cases import redirect
from brainleaks_lava.attacks.recon_file import load_recon
from brainleaks_lava.errors import ModelFileError
from brainleaks_lava.evaluation.classifiers import load_evaluator
from brainleaks_lava.models.files import load_target
from brainleaks_lava.netx.reader import read_network
from fuzzkit import watchdog


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = bad_cases.Workspace(tmp_path_factory.mktemp("self_contained"))
    os.mkfifo(ws.root / "trap.fifo")
    return ws


def _fifo_has_no_reader(fifo: Path) -> bool:
    """True if nobody has the FIFO open for reading now (opening it for writing fails with ENXIO)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        return e.errno == 6  # ENXIO
    os.close(fd)
    return False


HOWS = ["external_link", "external_storage", "virtual", "soft_link"]


@pytest.mark.parametrize("how", HOWS)
def test_net_pointing_elsewhere_is_refused_without_opening_the_target(ws, how):
    name = f"net_{how}.net"
    p = ws.copy(ws.net, name)
    with h5py.File(p, "a") as f:
        redirect(f, "layer/0/weight", how, str(ws.root / "trap.fifo"))
    before = p.read_bytes()
    t0 = time.time()
    out = bad_cases.run_subprocess(["info", name], ws.root, timeout=60)  # a reader opening the FIFO hangs
    assert time.time() - t0 < 60
    assert out.code == 2 and len(out.lines) == 1, out.stderr
    assert name in out.lines[0] and "layer/0/weight" in out.lines[0], out.lines[0]
    assert p.read_bytes() == before
    assert _fifo_has_no_reader(ws.root / "trap.fifo")
    for reader in (read_network, load_target):  # and in this process, under a watchdog
        with watchdog(20), pytest.raises(ModelFileError, match="layer/0/weight"):
            reader(p)


@pytest.mark.parametrize("how", HOWS)
def test_recon_pointing_elsewhere_is_refused(ws, how):
    p = ws.copy(ws.recon, f"recon_{how}.h5")
    with h5py.File(p, "a") as f:
        redirect(f, "samples", how, "/dev/zero" if how == "external_storage" else str(ws.root / "trap.fifo"))
    with watchdog(20), pytest.raises(ModelFileError, match="samples"):
        load_recon(p)
    out = bad_cases.run_subprocess(["replay", "--model", ws.net, "--recon", p.name], ws.root, timeout=60)
    assert out.code == 2 and len(out.lines) == 1 and p.name in out.lines[0], out.stderr


def test_evaluator_with_external_link_is_refused(ws):
    p = ws.copy(ws.evaluator, "eval_link.h5")
    with h5py.File(p, "a") as f:
        key = "state_dict/" + sorted(f["state_dict"].keys())[0]
        redirect(f, key, "external_link", str(ws.root / "trap.fifo"))
    with watchdog(20), pytest.raises(ModelFileError, match="external link"):
        load_evaluator(p)


def test_self_contained_files_still_load(ws):
    assert len(read_network(ws.root / ws.net).layers) == 2
    assert load_recon(ws.root / ws.recon).samples.shape[0] == 3
