"""Process-wide guarantees that need no Lava: forked processes (grandchildren too) die with their parent,
whatever kills it; an unexpected exception is one 'internal error' line (the traceback with --debug); OS
errors are one line naming the path."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import bad_cases
from brainleaks_lava import cli
from proctree import session_processes

TREE = textwrap.dedent("""
    import os, sys, time
    from brainleaks_lava.interrupts import tie_children_to_parent
    assert tie_children_to_parent()
    if os.fork() == 0:          # child
        if os.fork() == 0:      # grandchild
            time.sleep(120)
            os._exit(0)
        time.sleep(120)
        os._exit(0)
    print("ready", flush=True)
    time.sleep(120)
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_children_and_grandchildren_die_with_the_parent(sig):
    p = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert p.stdout.readline().strip() == b"ready"
        deadline = time.time() + 10
        while len(session_processes(p.pid)) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert len(session_processes(p.pid)) == 3  # parent, child, grandchild
        os.kill(p.pid, sig)
        p.wait(timeout=10)
        deadline = time.time() + 5
        while session_processes(p.pid) and time.time() < deadline:
            time.sleep(0.05)
        assert session_processes(p.pid) == []
    finally:
        for pid in session_processes(p.pid):
            os.kill(pid, signal.SIGKILL)


def test_unexpected_exception_is_one_internal_error_line(monkeypatch, tmp_path, capsys):
    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "info", (cli.COMMANDS["info"][0], cli.COMMANDS["info"][1], broken))
    assert cli.main(["info", "x.net"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "internal error" in err[0] and "ZeroDivisionError" in err[0] and "--debug" in err[0]
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "info", "x.net"])


def test_os_error_is_one_line_naming_the_path(monkeypatch, capsys):
    def failing(args):
        raise PermissionError(13, "Permission denied", "/some/where.h5")

    monkeypatch.setitem(cli.COMMANDS, "info", (cli.COMMANDS["info"][0], cli.COMMANDS["info"][1], failing))
    assert cli.main(["info", "x.net"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == ["brainleaks info: error: /some/where.h5: Permission denied"]


def test_full_disk_keeps_the_previous_output_and_leaves_no_temporary_file(tmp_path):
    ws = bad_cases.Workspace(tmp_path)
    prev = ws.write("prev.json", '{"previous": 1}\n')
    case = bad_cases.CASE_BY_NAME["disk_full"]
    out = bad_cases.run_subprocess(["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--json", prev],
                                   ws.root, case=case)
    assert out.code == 2 and out.lines == [f"brainleaks evaluate: error: cannot write {prev}: File too large "
                                           f"(nothing was written; a previous file there is unchanged)"], out.stderr
    assert (ws.root / prev).read_text() == '{"previous": 1}\n'
    assert not [p for p in ws.root.iterdir() if p.name.endswith(".tmp")]
