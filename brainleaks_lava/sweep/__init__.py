"""``brainleaks sweep``: grids of deployment choices and defenses, each cell attacked, scored and replayed on Lava.

- :mod:`.config`: the strict TOML study (base, grid, defenses, attacks);
- :mod:`.cells`: the units of work (train a target; run a cell), resumable one by one;
- :mod:`.engines`: where units run (this process, a process pool, Ray tasks);
- :mod:`.results`: ``results.csv`` / ``results.json``, ``report.md``, leakage-vs-accuracy plots with the
  Pareto front;
- :mod:`.runner`: ``run_sweep``, the orchestration.
"""
from __future__ import annotations

from .config import StudyConfig, load_study
from .runner import run_sweep

__all__ = ["StudyConfig", "load_study", "run_sweep"]
