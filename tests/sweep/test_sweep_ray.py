"""The CI study on Ray (a local cluster started here) gives the table of the local engine."""
from __future__ import annotations

import pytest

from brainleaks_lava.sweep import run_sweep

from sweep_util import CI_STUDY, rows

pytestmark = pytest.mark.slow


def test_ray_equals_local(tmp_path):
    ray = pytest.importorskip("ray")
    local = run_sweep(CI_STUDY, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        remote = run_sweep(CI_STUDY, tmp_path / "ray", engine="ray", workers=2)
        assert ray.is_initialized()  # a runtime the caller started is left running
    finally:
        ray.shutdown()
    assert sorted(remote["ran"]) == sorted(local["ran"]) and len(remote["ran"]) == 4
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")
    assert all(r["lava_agreement"] == 1.0 for r in rows(tmp_path / "ray"))

