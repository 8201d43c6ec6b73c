"""Progress output: plain lines (no carriage returns) off a terminal, nothing with --quiet, tqdm on a tty."""
import io
import sys

import pytest

from brainleaks_lava import progress
from brainleaks_lava.cli import main


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _reset():
    yield
    progress.set_quiet(False)


def test_lines_off_a_terminal(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)
    clock = iter(range(0, 1000, 2))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    bar = progress.progress_bar(range(3), desc="BL-v2 (paper)")
    for _ in bar:
        bar.set_postfix(conf="0.500")
    text = err.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("BL-v2 (paper): 1/3 it (33%), ") and lines[-1].endswith(", conf=0.500, done")
    assert len(lines) == 4  # one per step here (LINE_EVERY 0) and the final one


def test_short_loops_print_nothing_and_quiet_prints_nothing(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    for _ in progress.progress_bar(range(5), desc="fast"):
        pass
    assert err.getvalue() == ""  # under a second: not worth a line
    progress.set_quiet(True)
    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)
    with progress.progress_bar(total=3, desc="x") as bar:
        bar.update(3)
    assert err.getvalue() == ""


def test_terminal_gets_tqdm(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Tty())
    bar = progress.progress_bar(range(2), desc="t")
    assert type(bar).__module__.startswith("tqdm")
    list(bar)


def test_cli_quiet_flag_sets_quiet(small_snn_path, tmp_path, capsys):
    assert main(["--quiet", "attack", "--model", str(small_snn_path), "--method", "bl2", "--iterations", "2",
                 "--classes", "0", "--out", str(tmp_path / "r.h5")]) == 0
    assert progress._quiet is True
    assert capsys.readouterr().err == ""
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("brainleaks-lava ") and "lava-nc " in out and "lava-dl " in out and "torch " in out
