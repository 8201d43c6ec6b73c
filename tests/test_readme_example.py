"""The README's Python API example runs as written, from the checkout's root (its paths are relative to it)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_python_example_runs(capsys, monkeypatch):
    text = (ROOT / "README.md").read_text()
    m = re.search(r"Python API, the same steps.*?```python\n(.*?)```", text, re.S)
    assert m, "README has no Python API example"
    monkeypatch.chdir(ROOT)
    exec(compile(m.group(1), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip().endswith("1.0")
