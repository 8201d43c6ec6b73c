"""Every kind of bad input the CLI takes (the table of ``scripts/bad_input_table.py``): exit status 2 and
one line on stderr naming the file or field; nothing written in place of an output.

The cases run in this process (``cli.main``), which is fast; one of them also runs as a real
``brainleaks`` subprocess, and ``--debug`` is checked to show the traceback.
"""
from __future__ import annotations

import pytest

import bad_cases
from bad_cases import CASES, Workspace, changes, problems, run_in_process, run_subprocess, snapshot
from measure import PeakMemory


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("bad_input"))


IN_PROCESS = [c for c in CASES if c.signal is None]
INTERRUPTIONS = [c for c in CASES if c.signal is not None]


@pytest.mark.parametrize("case", IN_PROCESS, ids=[c.name for c in IN_PROCESS])
def test_bad_input_exit_2_one_line_naming_the_culprit(ws, case):
    argv, names = case.build(ws)
    before = snapshot(ws.root)
    with PeakMemory() as pm:  # issue 31: under 1 GB and 30 s, measured here
        outcome = run_in_process(argv, ws.root, case)
    assert not problems(outcome, names), (argv, problems(outcome, names))
    assert pm.budget_problems() == [], (argv, pm.budget_problems())
    assert outcome.lines[0].startswith(f"brainleaks {argv[0]}: error: "), outcome.lines[0]
    # nothing written: no output file, no temporary file, every input and earlier output byte-identical
    assert changes(before, snapshot(ws.root)) == []


@pytest.mark.slow
@pytest.mark.parametrize("case", INTERRUPTIONS, ids=[c.name for c in INTERRUPTIONS])
def test_interruption_one_line_exit_130_143_nothing_left(ws, case):
    argv, names = case.build(ws)
    before = snapshot(ws.root)
    outcome = run_subprocess(argv, ws.root, case=case)
    assert not problems(outcome, names, case.expected_code), (argv, problems(outcome, names, case.expected_code))
    after = snapshot(ws.root)
    # inputs and earlier outputs intact, no temporary file; an interrupted run keeps what it completed
    assert [k for k in changes(before, after) if not k.startswith("interrupted_run/")] == []
    assert not [k for k in after if k.endswith(".tmp")]


def test_round_2_adds_at_least_25_cases_in_every_category():
    round2 = [c for c in CASES if c.category != "bad input"]
    assert len(round2) >= 25
    assert {c.category for c in round2} == {"file points elsewhere", "output over input", "OS error",
                                            "metadata trusted too far", "interruption"}


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
