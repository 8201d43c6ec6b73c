"""The README's Python API example runs as written."""
import re
from pathlib import Path

import pytest


@pytest.mark.slow
def test_readme_python_example_runs(capsys):
    text = Path("README.md").read_text()
    m = re.search(r"Python API, the same steps.*?```python\n(.*?)```", text, re.S)
    assert m, "README has no Python API example"
    exec(compile(m.group(1), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip().endswith("1.0")
