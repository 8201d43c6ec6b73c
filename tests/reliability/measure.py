"""Run a ``brainleaks`` command line as a user would and measure it: exit status, stderr, peak memory, wall time.

Round 3 of the reliability work (issue 31) asks that every bad-input case stays under 1 GB of peak memory and
30 s of wall time, measured in the test. Two ways of measuring:

- :func:`run_measured`: a real ``brainleaks`` subprocess (``python -m brainleaks_lava.cli``); its peak resident
  set size is its own high-water mark (``VmHWM`` of ``/proc/PID/status``, read every 20 ms while it runs: the
  kernel keeps the maximum, so only growth in the last 20 ms before exit can be missed). ``ru_maxrss`` from
  ``wait4`` would not do: Linux carries the forking parent's peak (pytest, with torch loaded) into it. The
  processes the command forks (Lava's workers) are sampled too: ``peak_tree_mb`` is the largest sum of their
  proportional set sizes (``Pss``: shared pages split between the processes sharing them) seen at once. Wall time from start to exit; a ``timeout`` kills the whole session.
- :class:`PeakMemory`: around an in-process call, the peak RSS of this process during the block (the kernel's
  high-water mark, reset at the start of the block through ``/proc/self/clear_refs``); the budget holds what the
  block added to the process (``MAX_ADDED_MB``), since the test process carries other tests' memory.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MAX_PEAK_MB = 1024.0  # issue 31: every bad-input test under 1 GB
MAX_SECONDS = 30.0  # ... and 30 s


@dataclass
class Measured:
    code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    peak_mb: float
    seconds: float
    peak_tree_mb: float = 0.0

    @property
    def lines(self) -> list[str]:
        from bad_cases import Outcome

        return Outcome(self.code if self.code is not None else -1, self.stderr, self.stdout).lines

    def budget_problems(self, max_mb: float = MAX_PEAK_MB, max_s: float = MAX_SECONDS) -> list[str]:
        out = []
        if self.peak_mb >= max_mb:
            out.append(f"peak memory {self.peak_mb:.0f} MB >= {max_mb:.0f} MB")
        if self.peak_tree_mb >= max_mb:
            out.append(f"peak memory of the process tree {self.peak_tree_mb:.0f} MB >= {max_mb:.0f} MB")
        if self.seconds >= max_s:
            out.append(f"wall time {self.seconds:.1f} s >= {max_s:.0f} s")
        if self.code is None:
            out.append("killed at the timeout")
        return out


def _env(extra: dict | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.update(extra or {})
    return env


def _status_kb(pid: int, key: str, file: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{file}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` (the command and everything it forked, which stays in its session)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # pid ) state ppid pgrp session
                out.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return out


class _Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_kb = self.tree_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.done.is_set():
            self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmHWM:"))
            if n % 5 == 0:  # the whole tree, every 100 ms (a scan of /proc)
                self.tree_kb = max(self.tree_kb, sum(_status_kb(p, "Pss:", "smaps_rollup")
                                                       for p in _session_pids(self.pid)))
            n += 1
            self.done.wait(self.every)


def run_measured(argv: list[str], cwd: str | os.PathLike, *, env: dict | None = None, timeout: float = 60.0,
                 send_signal: tuple[float, int] | None = None, stdin_text: str | None = None) -> Measured:
    """Run ``brainleaks <argv>`` in ``cwd`` in a session of its own and measure it.

    ``send_signal=(after_seconds, signum)`` sends a signal to the command after that many seconds (the process
    alone, as ``kill`` would). At ``timeout`` the whole session is killed and ``code`` is None.
    """
    cmd = [sys.executable, "-m", "brainleaks_lava.cli", *argv]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                            start_new_session=True)
    sampler = _Sampler(proc.pid)
    sampler.start()
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
               for s, b in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    if stdin_text is not None:
        with contextlib.suppress(OSError):
            proc.stdin.write(stdin_text.encode())
            proc.stdin.close()
    timer = None
    if send_signal is not None:
        after, signum = send_signal
        timer = threading.Timer(after, lambda: proc.poll() is None and os.kill(proc.pid, signum))
        timer.start()
    timed_out = threading.Event()

    def kill_at_timeout():
        timed_out.set()
        _kill_session(proc.pid)

    killer = threading.Timer(timeout, kill_at_timeout)
    killer.start()
    try:
        proc.wait()
    finally:
        killer.cancel()
        if timer is not None:
            timer.cancel()
        sampler.done.set()
        sampler.join()
    seconds = time.monotonic() - t0
    _kill_session(proc.pid)  # anything the command left behind
    for r in readers:
        r.join(timeout=10)
    return Measured(None if timed_out.is_set() else proc.returncode, (out or [b""])[0].decode(errors="replace"),
                    (err or [b""])[0].decode(errors="replace"), sampler.peak_kb / 1024.0, seconds,
                    sampler.tree_kb / 1024.0)


def _kill_session(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


# What an in-process case may add to the process it runs in: a fresh ``brainleaks`` process holds ~720 MB once torch
# and Lava are imported (measured with run_measured on ``info``), so a case adding less stays under 1 GB on its own.
# The process running the tests holds more than a fresh one (fixtures, other tests' modules), which says nothing
# about the case: only the growth during the case is held to this.
MAX_ADDED_MB = 256.0


class PeakMemory:
    """``with PeakMemory() as pm: ...`` then ``pm.peak_mb`` (this process's peak RSS during the block),
    ``pm.added_mb`` (that peak minus the RSS at the start: what the block itself allocated at most) and
    ``pm.seconds``. The high-water mark is reset at the start (``/proc/self/clear_refs``, Linux >= 4.0); where
    that is refused, the peak since the process started is used (an upper bound)."""

    def __enter__(self) -> "PeakMemory":
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.start_mb = _status_kb(os.getpid(), "VmRSS:") / 1024.0
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self._t0
        kb = _hwm_kb()
        if kb is None:
            import resource

            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mb = kb / 1024.0
        self.added_mb = max(self.peak_mb - self.start_mb, 0.0)

    def budget_problems(self, max_added_mb: float = MAX_ADDED_MB, max_s: float = MAX_SECONDS) -> list[str]:
        out = []
        if self.added_mb >= max_added_mb:
            out.append(f"the case added {self.added_mb:.0f} MB (peak {self.peak_mb:.0f} MB from {self.start_mb:.0f} MB) "
                       f">= {max_added_mb:.0f} MB")
        if self.seconds >= max_s:
            out.append(f"wall time {self.seconds:.1f} s >= {max_s:.0f} s")
        return out
