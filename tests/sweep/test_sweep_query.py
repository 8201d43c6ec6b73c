"""The query-only attacks inside ``brainleaks sweep`` (issue 30): the oracle answers through the cell's defense, the
budget is kept, a sample of its answers is recomputed on Lava and recorded per row."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brainleaks_lava.attacks.recon_file import load_recon
from brainleaks_lava.sweep import run_sweep

from sweep_util import REPO, tiny_head

torch.set_num_threads(1)
EVAL = REPO / "netx_models" / "mnist_eval_ann.h5"

# one target (784-32-10, T=4, spike-count read-out, 3 epochs on the vendored subset) deployed as is and with its
# posterior rounded to 0.25; nes and label with 200 queries each on two classes; Lava replay on
TINY = tiny_head("tiny_query", EVAL, 'readout = "spikes"\n') + '''[grid]
steps = [4]
defense = ["none", "round"]
[defenses.round]
round_posterior = 0.25
[attacks]
names = ["nes", "label"]
classes = [0, 1]
[attacks.params.nes]
queries = 200
population = 5
[attacks.params.label]
queries = 200
[evaluation]
draws = 1
[replay]
draws = 1
'''


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep_query")
    (d / "study.toml").write_text(TINY)
    out = d / "out"
    run_sweep(d / "study.toml", out)
    return out


def test_query_attacks_in_a_sweep(swept):
    rows = json.loads((swept / "results.json").read_text())["rows"]
    assert sorted((r["defense"], r["attack"]) for r in rows) == [("none", "label"), ("none", "nes"),
                                                                ("round", "label"), ("round", "nes")]
    for r in rows:
        assert 0 < r["queries"] <= 200 and r["query_agreement"] == 1.0 and r["lava_agreement"] == 1.0
        if r["attack"] == "nes":
            assert r["queries"] == 200  # 2 classes x 2 x 5 per iteration: the whole budget
    cell = [p for p in (swept / "cells").iterdir() if p.name.endswith("-round-s0")][0]
    res = load_recon(cell / "attacks" / "nes.h5")
    assert res.extra["oracle"]["round_posterior"] == 0.25
    assert np.all(np.isin(res.query_sample["outputs"], [0.0, 0.25, 0.5, 0.75, 1.0]))  # what the oracle answered
    assert "query_agreement" in (swept / "results.csv").read_text().splitlines()[0]
    report = (swept / "report.md").read_text()
    assert " queries | Lava answers |" in report
    assert sum(" | 200 | 100.0 |" in line for line in report.splitlines()) == 2  # the nes rows
