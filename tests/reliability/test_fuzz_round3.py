"""Issue 31, round 3: property-based fuzzing of study configs (``brainleaks sweep`` TOMLs) and deployment cards.

Random mutations of a *valid* study and a *valid* card (keys deleted or added, values replaced by values of
another type, huge and negative numbers, long lists, unicode text; and raw byte mutations of the TOML text)
must give either a correct load or the toolkit's own error (a ``BrainleaksError`` naming the file), within a few
seconds and without a big allocation (the peak memory of each example, above what the process held before it,
stays under ``MAX_GROWTH_MB``). A study that loads has at most ``MAX_CELLS`` cells; a deployment that loads has its
time steps and input size within the toolkit's bounds. Fast and deterministic (``derandomize``); more examples::

    BRAINLEAKS_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest -q tests/reliability/test_fuzz_round3.py
"""
from __future__ import annotations

import functools
import math
import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brainleaks_lava.errors import BrainleaksError
from brainleaks_lava.models.files import load_snn
from brainleaks_lava.safety import MAX_INPUTS, MAX_TIME_STEPS
from brainleaks_lava.sweep.config import MAX_CELLS, load_study

import bad_cases
from fuzzkit import (KNOWN_KEYS, Scratch, apply_bytes, apply_tree, byte_plan, to_toml, toml_leaves, toml_values,
                     watchdog)
from measure import PeakMemory
from studies import STUDY as BASE_STUDY

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # 3.10
    import tomli as tomllib

FUZZ = settings(
    max_examples=int(os.environ.get("BRAINLEAKS_FUZZ_EXAMPLES", "120")),
    deadline=timedelta(seconds=5),  # each example: a few seconds at most
    derandomize="BRAINLEAKS_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HANG_SECONDS = 20
MAX_GROWTH_MB = 300.0  # no example may allocate more than this above what the process held before it
STEM = "fuzz3_target"  # every error message must name the file

# the shared small study, with every kind of section a study may have
STUDY = (BASE_STUDY.replace("seeds = [0]", "seeds = [0, 1]\naccuracy_limit = 100")
         .replace("steps = [8]", 'steps = [8, 16]\nweight_step = [1, 4]\nthreshold = [1.0, 2.0]\n'
                                 'defense = ["none", "round"]\n\n[defenses.round]\nround_posterior = 0.1')
         .replace('names = ["bl2"]', 'names = ["bl2"]\nclasses = [0, 1]')
         + "\n[evaluation]\ndraws = 2\n\n[replay]\ndraws = 1\n")

CARD = {"steps": 12, "encoding": "rate", "readout": "membrane", "classes": ["a", "b", "c", "d"],
        "input_shape": [20], "input_range": [0.0, 1.0], "posterior_scale": 1.0, "tau_grad": 0.03,
        "scale_grad": 3.0}
CARD_KEYS = ["steps", "encoding", "readout", "classes", "input_shape", "input_range", "posterior_scale", "tau_grad",
             "scale_grad", "seeds", "threads", "grid", "weight_step", "threshold", "hidden", "defense", "names"]

# values of the kinds that size work: huge and negative numbers, long lists, unicode text
sizes = st.one_of(
    st.sampled_from([10**5, 10**6, 10**9, 10**12, 2**31, 2**63 - 1, -(2**63), -1, -10**9, 0, 1e308, -1e308, 1e-308,
                     10_001, 1_001, 65_536]),
    st.integers(-(2**63), 2**63 - 1),
)
long_lists = st.one_of(
    st.integers(0, 5000).map(lambda n: list(range(1, n + 1))),
    st.tuples(st.integers(0, 3000), st.sampled_from([0.5, 1.0, 1e6, -1.0, ""])).map(lambda t: [t[1]] * t[0]),
    st.integers(0, 12_000).map(lambda n: [""] * n),
)
unicode_text = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x10FFFF,
                                              blacklist_categories=("Cs",)), max_size=30)
values = st.one_of(toml_values, sizes, long_lists, unicode_text, st.lists(sizes, max_size=4),
                   st.lists(toml_leaves, max_size=4))


def plan(keys):
    key = st.one_of(st.sampled_from(keys + KNOWN_KEYS), unicode_text)
    op = st.one_of(
        st.tuples(st.just("replace"), st.integers(0, 2**24), values),
        st.tuples(st.just("delete"), st.integers(0, 2**24)),
        st.tuples(st.just("add"), st.integers(0, 2**24), key, values),
    )
    return st.one_of(st.tuples(st.just("tree"), st.lists(op, min_size=1, max_size=4)),
                     st.tuples(st.just("text"), byte_plan.map(lambda p: p[1])))


@functools.lru_cache(maxsize=None)
def scratch() -> Scratch:
    return Scratch()


@functools.lru_cache(maxsize=None)
def bases() -> dict:
    d = scratch().dir
    (d / "eval.h5").write_bytes(b"x")  # the study names it; load_study only checks that it exists
    bad_cases.make_snn(d / f"{STEM}.net", sizes=(20, 8, 4), steps=6)
    return {"study": tomllib.loads(STUDY), "card": dict(CARD)}


@pytest.fixture(scope="module", autouse=True)
def _setup():
    import torch

    torch.set_flush_denormal(False)  # hypothesis needs subnormal floats (an earlier attack may have turned them off)
    bases()
    yield
    if scratch.cache_info().currsize:
        scratch().cleanup()
        scratch.cache_clear()
        bases.cache_clear()


def _text(base_tree: dict, base_text: str, p) -> bytes:
    if p[0] == "text":
        return apply_bytes(base_text.encode(), p[1])
    return to_toml(apply_tree(base_tree, p[1])).encode()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def documented(reader, path: Path):
    """``reader(path)`` within ``HANG_SECONDS`` and ``MAX_GROWTH_MB``: its value, or None after a
    ``BrainleaksError`` naming the file; anything else fails the test."""
    before = _rss_mb()
    with PeakMemory() as pm, watchdog(HANG_SECONDS):
        try:
            out = reader(path)
        except BrainleaksError as e:
            assert STEM in str(e), f"{type(e).__name__} does not name the file: {e}"
            out = None
    assert pm.peak_mb - before < MAX_GROWTH_MB, f"{reader.__name__} grew by {pm.peak_mb - before:.0f} MB"
    return out


@FUZZ
@given(p=plan(["study", "grid", "seeds", "threads", "steps", "hidden", "threshold", "weight_step", "defense",
               "evaluator", "train", "draws", "accuracy_limit", "defenses", "round_posterior", "attacks"]))
def test_fuzz_study_config(p):
    b = bases()
    path = scratch().put(f"{STEM}.toml", _text(b["study"], STUDY, p))
    study = documented(load_study, path)
    if study is not None:
        n = len(study.seeds) * len(study.defense_axis) * math.prod(len(v) for v in study.grid.values())
        assert n <= MAX_CELLS
        assert len(study.cells()) == n
        assert all(0 < s <= MAX_TIME_STEPS for s in study.grid["steps"]) and 0 < study.target["steps"] <= MAX_TIME_STEPS


@FUZZ
@given(p=plan(CARD_KEYS))
def test_fuzz_deployment_card(p):
    b = bases()
    base_text = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in CARD.items())
    scratch().put(f"{STEM}.card.toml", _text(b["card"], base_text, p))
    t = documented(load_snn, scratch().dir / f"{STEM}.net")
    if t is not None:
        dep = t.deployment
        assert 0 < dep.steps <= MAX_TIME_STEPS
        assert dep.input_shape is None or math.prod(dep.input_shape) <= MAX_INPUTS
        assert dep.classes is None or len(dep.classes) == 4
