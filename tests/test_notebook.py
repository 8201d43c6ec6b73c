"""examples/quickstart.ipynb: a valid nbformat-4 notebook whose code cells run top to bottom (in one namespace, as a
kernel would run them, without Jupyter) and show a reconstruction grid."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def read_notebook() -> dict:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def test_notebook_is_nbformat_4():
    nb = read_notebook()
    assert nb["nbformat"] == 4 and isinstance(nb["nbformat_minor"], int)
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == len(ids)
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["metadata"], dict)
        assert isinstance(cell["source"], list) and all(isinstance(s, str) for s in cell["source"])
        if cell["cell_type"] == "code":  # shipped without outputs
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert sum(c["cell_type"] == "code" for c in nb["cells"]) >= 4


@pytest.mark.slow
def test_quickstart_runs_top_to_bottom_and_shows_the_grid(monkeypatch, tmp_path):
    import torch
    from matplotlib.figure import Figure

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # the notebook finds its files wherever it runs (the package's shipped models)
    namespace = {"__name__": "__main__"}
    cells = [c for c in read_notebook()["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}, code cell {i + 1}", "exec"), namespace)
    classes = namespace["CLASSES"]
    fig = namespace["fig"]
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(classes)
    assert [ax.get_title().splitlines()[0] for ax in fig.axes] == [f"class {c}" for c in classes]
    assert all(ax.images[0].get_array().shape == (28, 28) for ax in fig.axes)
    frame = namespace["frame"]
    assert len(frame) == len(classes) and list(frame["class"]) == classes
    assert frame["confidence"].between(0, 1).all()
    assert namespace["check"].equal  # the replayed reconstruction is identical on Lava
    assert list(tmp_path.iterdir()) == []  # it writes nothing
