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


def tiny_head(name: str, evaluator, extra_target: str = "") -> str:
    """The first tables of a tiny study config: the vendored MNIST subset, the ANN evaluator ``evaluator``, a
    784-32-10 target trained 3 epochs (threshold 4, lr 0.03), accuracy on 50 validation images; ``extra_target``:
    more lines of [target]."""
    return f"""
[study]
name = "{name}"
threads = 1
accuracy_limit = 50
[dataset]
name = "mnist"
[evaluator]
kind = "ann"
model = "{evaluator}"
[target]
hidden = 32
threshold = 4.0
epochs = 3
lr = 0.03
{extra_target}"""
