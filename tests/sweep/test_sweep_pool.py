"""The CI study on a local pool of 2 processes gives the table of the inline engine."""
from __future__ import annotations

import pytest

from brainleaks_lava.sweep import run_sweep

from sweep_util import CI_STUDY, rows

pytestmark = pytest.mark.slow


def test_local_pool_equals_inline(tmp_path):
    inline = run_sweep(CI_STUDY, tmp_path / "inline")
    pool = run_sweep(CI_STUDY, tmp_path / "pool", workers=2)
    assert sorted(pool["ran"]) == sorted(inline["ran"]) and len(pool["ran"]) == 4
    assert rows(tmp_path / "pool") == rows(tmp_path / "inline")
