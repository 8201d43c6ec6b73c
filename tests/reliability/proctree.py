"""Process-tree helpers for the interruption tests: start a ``brainleaks`` command in its own session, wait
until Lava's workers run, and find every live process of the session in /proc (which also catches workers
re-parented to init after the CLI died)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()  # fields from 3 (state) on


def session_processes(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            f = stat_fields(int(d.name))
            if f and f[0] != "Z" and int(f[3]) == sid:  # field 6 (session) is f[3]
                out.append(int(d.name))
    return out


def descendants(pid: int) -> list[int]:
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            f = stat_fields(int(d.name))
            if f and f[0] != "Z":
                parents[int(d.name)] = int(f[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


class Command:
    """``python -m brainleaks_lava.cli ARGS`` in a new session, stderr collected by a thread."""

    def __init__(self, args: list[str], cwd: Path | None = None):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "brainleaks_lava.cli", *args], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     start_new_session=True)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=lambda: self.chunks.extend(iter(lambda: self.proc.stderr.read1(4096), b"")),
                                       daemon=True)
        self.reader.start()

    @property
    def stderr(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def wait_for_lava(self, timeout: float = 240, min_workers: int = 2) -> list[int]:
        """Wait until Lava's replay progress shows and workers exist; returns the process tree seen."""
        deadline = time.time() + timeout
        workers: list[int] = []
        while time.time() < deadline and self.proc.poll() is None:
            workers = descendants(self.proc.pid)
            if "Lava replay" in self.stderr and len(workers) >= min_workers:
                return workers
            time.sleep(0.2)
        raise AssertionError(f"Lava did not start (exit {self.proc.poll()}): {self.stderr[-3000:]}")

    def alive_after(self, seconds: float) -> list[int]:
        """Processes of the command's session still alive ``seconds`` after now (polls; returns early when none)."""
        deadline = time.time() + seconds
        while True:
            left = session_processes(self.proc.pid)
            if not left or time.time() > deadline:
                return left
            time.sleep(0.2)

    def kill_all(self) -> None:
        for pid in session_processes(self.proc.pid):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
