"""Property-based fuzzing of every reader of untrusted files.

Random mutations of *valid* files (raw byte flips/truncations/insertions, HDF5 datasets and attributes
replaced by values of the wrong dtype or shape, NaN/inf, deleted and extra keys, mutated JSON sidecars
and JSON attributes, mutated TOML text and TOML trees with values of wrong types, and structural mutations:
objects turned into external or soft links, datasets given external storage or made virtual, all pointing at a
FIFO that would hang a reader following them) must give either a correct load or the documented exception (a ``BrainleaksError`` naming the file), never another
exception and never a hang.

Example counts: the hypothesis profile ``brainleaks-fuzz`` runs ``BRAINLEAKS_FUZZ_EXAMPLES`` examples per
reader (default 2,000, deterministic, which is what CI runs). A bigger random run::

    BRAINLEAKS_FUZZ_EXAMPLES=20000 OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q \\
        tests/reliability/test_fuzz.py --hypothesis-show-statistics
"""
from __future__ import annotations

import functools
import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brainleaks_lava.attacks.recon_file import load_recon, recon_draws
from brainleaks_lava.errors import BrainleaksError
from brainleaks_lava.models.files import load_ann, load_snn, load_target
from brainleaks_lava.netx.reader import read_network
from brainleaks_lava.report.config import _NAME, load_config

import bad_cases
from fuzzkit import (Scratch, apply_bytes, apply_h5, apply_tree, byte_plan, h5_plan, json_values, points_elsewhere,
                     to_toml, toml_values, tree_plan, watchdog)

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # 3.10
    import tomli as tomllib

EXAMPLES = int(os.environ.get("BRAINLEAKS_FUZZ_EXAMPLES", "2000"))
settings.register_profile(
    "brainleaks-fuzz",
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),  # a slow example is a failure (the watchdog below catches real hangs)
    derandomize="BRAINLEAKS_FUZZ_EXAMPLES" not in os.environ,  # CI: the same 2,000 examples every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("brainleaks-fuzz")
HANG_SECONDS = 30

STEM = "fuzz_target"  # every error message must name the file: its stem is in both the file and its sidecar


# ----------------------------------------------------------------------------------------------
# valid base files, built once
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def scratch() -> Scratch:
    return Scratch()


@functools.lru_cache(maxsize=None)
def bases() -> dict:
    d = scratch().path("bases")
    d.mkdir()
    net = bad_cases.make_snn(d / "base.net", sizes=(20, 8, 4), steps=6)
    ann = bad_cases.make_ann(d / "base_ann.h5", sizes=(20, 8, 4))
    recon = bad_cases.save_result(bad_cases.spike_result(features=20, steps=6, classes=(0, 3)), d / "recon.h5")
    image = bad_cases.save_result(bad_cases.image_result(features=20, classes=(1,)), d / "image.h5")
    cfg_dir = scratch().path("cfg")
    cfg_dir.mkdir()
    for name in ("good.net", "eval.h5"):  # the config's model paths must exist; they are not read
        (cfg_dir / name).write_bytes(b"x")
    return {
        "net": net.read_bytes(),
        "sidecar": json.loads(net.with_suffix(".json").read_text()),
        "ann": ann.read_bytes(),
        "recon": recon.read_bytes(),
        "image_recon": image.read_bytes(),
        "config_text": bad_cases.GOOD_CONFIG,
        "config": tomllib.loads(bad_cases.GOOD_CONFIG),
        "config_dir": cfg_dir,
    }


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    import torch

    # Attacks run earlier in the session switch on flush-to-zero (``torch.set_flush_denormal``); hypothesis
    # refuses to generate floats when subnormals are not representable.
    torch.set_flush_denormal(False)
    bases()  # built here, not inside the first example (its deadline is for the readers)
    yield
    if scratch.cache_info().currsize:
        scratch().cleanup()
        scratch.cache_clear()
        bases.cache_clear()


def _h5_file(data: bytes, plan, name: str) -> Path:
    path = scratch().put(name, data if plan[0] != "bytes" else apply_bytes(data, plan[1]))
    if plan[0] == "h5":
        apply_h5(path, plan[1])
    return path


def _json_attr(path: Path, key: str, ops) -> None:
    import h5py

    with h5py.File(path, "a") as f:
        tree = json.loads(f.attrs[key])
        f.attrs[key] = json.dumps(apply_tree(tree, ops))


TRACE = os.environ.get("BRAINLEAKS_FUZZ_TRACE")  # a file: each example's input is copied there before reading


def documented(reader, path: Path, stem: str = STEM):
    """``reader(path)``; a ``BrainleaksError`` naming the file is fine (returns None), anything else fails.

    A file whose data would come from elsewhere (link, external storage, virtual dataset; the other file is a
    FIFO that would hang the reader) must be refused."""
    if TRACE:
        Path(TRACE).write_bytes(path.read_bytes())
    elsewhere = path.suffix in (".net", ".h5") and points_elsewhere(path)
    with watchdog(HANG_SECONDS):
        try:
            out = reader(path)
        except BrainleaksError as e:
            assert stem in str(e), f"{type(e).__name__} does not name the file: {e}"
            return None
    assert not elsewhere, f"{reader.__name__} read a file whose data lives elsewhere"
    return out


# ----------------------------------------------------------------------------------------------
# (1) model files: NetX .net (+ JSON sidecar) and torch HDF5
# ----------------------------------------------------------------------------------------------

net_plans = st.one_of(
    byte_plan, h5_plan,
    st.tuples(st.just("sidecar"), tree_plan(json_values)),
    st.tuples(st.just("sidecar_bytes"), byte_plan.map(lambda p: p[1])),
)


@FUZZ
@given(plan=net_plans)
def test_fuzz_net_reader(plan):
    b = bases()
    path = _h5_file(b["net"], plan if plan[0] in ("bytes", "h5") else ("none",), f"{STEM}.net")
    side = json.dumps(b["sidecar"]).encode()
    if plan[0] == "sidecar":
        side = json.dumps(apply_tree(b["sidecar"], plan[1])).encode()
    elif plan[0] == "sidecar_bytes":
        side = apply_bytes(side, plan[1])
    scratch().put(f"{STEM}.json", side)

    net = documented(read_network, path)
    layers = None if net is None else net.computing
    if layers is not None:
        assert all(l.weight.dtype == np.int64 and l.weight.ndim == 2 for l in layers if l.kind == "dense")
        for prev, cur in zip(layers, layers[1:]):
            assert cur.in_size == prev.out_size
    for reader in (load_snn, load_target):
        t = documented(reader, path)
        if t is not None:
            assert layers is not None
            assert t.spec.sizes == (net.num_inputs, *[l.out_size for l in layers])
            assert t.spec.readout in ("spikes", "voltage", "membrane")


ann_plans = st.one_of(byte_plan, h5_plan, st.tuples(st.just("metadata"), tree_plan(json_values)))


@FUZZ
@given(plan=ann_plans)
def test_fuzz_torch_h5_reader(plan):
    b = bases()
    path = _h5_file(b["ann"], plan if plan[0] != "metadata" else ("none",), f"{STEM}.h5")
    if plan[0] == "metadata":
        _json_attr(path, "metadata", plan[1])
    for reader in (load_ann, load_target):
        t = documented(reader, path)
        if t is not None:
            assert t.arch == "ann"
            x = np.zeros((1, t.model.spec.sizes[0]), np.float32)
            import torch
            with torch.no_grad():
                assert t.model.posterior(torch.as_tensor(x)).shape == (1, t.model.spec.sizes[-1])


# ----------------------------------------------------------------------------------------------
# (2) reconstruction files
# ----------------------------------------------------------------------------------------------

recon_plans = st.tuples(
    st.sampled_from(["recon", "image_recon"]),
    st.one_of(byte_plan, h5_plan, st.tuples(st.sampled_from(["params", "extra"]), tree_plan(json_values))),
)


@FUZZ
@given(plan=recon_plans)
def test_fuzz_recon_reader(plan):
    base, plan = plan
    path = _h5_file(bases()[base], plan if plan[0] in ("bytes", "h5") else ("none",), f"{STEM}.h5")
    if plan[0] in ("params", "extra"):
        _json_attr(path, plan[0], plan[1])
    r = documented(load_recon, path)
    if r is not None:  # a file that loads is usable: its draws have the documented shape
        d = recon_draws(r, 2, seed=0)
        assert d.shape[1:] == r.samples.shape
        assert r.input_kind in ("spikes", "image")
        if r.input_kind == "spikes":
            assert set(np.unique(d).tolist()) <= {0, 1}


# ----------------------------------------------------------------------------------------------
# (3) experiment configs (TOML)
# ----------------------------------------------------------------------------------------------

config_plans = st.one_of(
    st.tuples(st.just("text"), byte_plan.map(lambda p: p[1])),
    st.tuples(st.just("tree"), tree_plan(toml_values)),
)


@FUZZ
@given(plan=config_plans)
def test_fuzz_config_reader(plan):
    b = bases()
    if plan[0] == "text":
        data = apply_bytes(b["config_text"].encode(), plan[1])
    else:
        data = to_toml(apply_tree(b["config"], plan[1])).encode()
    path = b["config_dir"] / f"{STEM}.toml"
    path.write_bytes(data)
    cfg = documented(load_config, path)
    if cfg is not None:  # every name that becomes a file name in the run directory is a plain name
        names = [cfg.name] + list(cfg.targets) + list(cfg.evaluators) + [a.name for a in cfg.attacks]
        assert all(_NAME.fullmatch(n) for n in names), names
        run = Path("/run-dir")
        for n in names:
            assert (run / "models" / f"eval_{n}.h5").resolve().parent == run / "models"

