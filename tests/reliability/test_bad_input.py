"""Every kind of bad input the CLI takes (the table of ``scripts/bad_input_table.py``): exit status 2 and
one line on stderr naming the file or field; nothing written in place of an output.

The cases run in this process (``cli.main``), which is fast; one of them also runs as a real
``brainleaks`` subprocess, and ``--debug`` is checked to show the traceback.
"""
from __future__ import annotations

import pytest

import bad_cases
from bad_cases import CASES, Workspace, problems, run_in_process, run_subprocess


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("bad_input"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exit_2_one_line_naming_the_culprit(ws, case):
    argv, names = case.build(ws)
    before = {p: p.stat().st_mtime_ns for p in ws.root.rglob("*") if p.is_file()}
    outcome = run_in_process(argv, ws.root)
    assert not problems(outcome, names), (argv, problems(outcome, names))
    assert outcome.lines[0].startswith(f"brainleaks {argv[0]}: error: "), outcome.lines[0]
    # nothing written: no output file, no temporary file, no existing file changed
    after = {p: p.stat().st_mtime_ns for p in ws.root.rglob("*") if p.is_file()}
    assert after == before, sorted(set(after) ^ set(before))


def test_there_are_at_least_15_kinds():
    assert len(CASES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)


def test_real_subprocess_and_debug_traceback(ws):
    argv, names = bad_cases.recon_non_binary(ws)
    outcome = run_subprocess(argv, ws.root)
    assert not problems(outcome, names), problems(outcome, names)
    debug = run_subprocess(["--debug"] + argv, ws.root)
    assert debug.code != 0
    assert "Traceback (most recent call last)" in debug.stderr and "ModelFileError" in debug.stderr
