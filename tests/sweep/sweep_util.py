"""Helpers of the sweep tests."""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CI_STUDY = REPO / "experiments" / "sweep_ci.toml"
TIME_COLUMNS = ("attack_seconds", "cell_seconds")


def rows(out: Path) -> list[dict]:
    """The result rows of a sweep directory without the time columns, sorted by cell and attack."""
    data = json.loads((Path(out) / "results.json").read_text())
    return sorted(({k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in data["rows"]),
                  key=lambda r: (r["cell"], r["attack"]))
