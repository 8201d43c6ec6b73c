"""Signals and child processes, shared by the CLI and the Lava replay.

- Ctrl-C (SIGINT) and SIGTERM interrupt this process only, not the Lava worker processes it forks; the
  CLI turns them into one line and exit status 130 / 143 after Lava has been stopped.
- Every process forked from this one (Lava's workers, and the processes they fork) is killed when its
  parent dies, however the parent dies (SIGKILL included): see :func:`tie_children_to_parent`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A ``KeyboardInterrupt``, so every ``finally`` and cleanup that handles Ctrl-C (stopping
    the Lava runtime, removing temporary files) handles it too; the CLI exits with 143 instead of 130."""


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_tied = False
_forking_pid = None


def _prctl():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl


def _remember_parent() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent() -> None:
    """In a freshly forked child: ask the kernel for SIGKILL when the parent dies."""
    try:
        if _prctl()(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != _forking_pid:  # the parent died between fork() and prctl(): nobody would kill us
        os._exit(1)


def tie_children_to_parent() -> bool:
    """From now on, every process this one forks dies (SIGKILL) when the process that forked it dies.

    Lava forks its workers (``multiprocessing`` with the 'fork' start method); they outlive a parent that is
    killed (``kill -9``, OOM killer) and keep gigabytes under PID 1 forever. ``os.register_at_fork`` runs
    ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in every forked child; the registration is inherited by the child,
    so the workers' own children are tied to the workers in turn and a whole tree goes down with its root.
    Process-wide and idempotent; a no-op (returns False) where ``prctl`` does not exist. The kernel sends the
    signal when the *thread* that forked the child ends: Lava forks from the thread that calls ``run()``.
    """
    global _tied
    if _tied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        _prctl()
    except (OSError, AttributeError):  # pragma: no cover
        return False
    os.register_at_fork(before=_remember_parent, after_in_child=_die_with_parent)
    _tied = True
    log.debug("forked processes die with their parent (PR_SET_PDEATHSIG)")
    return True


@contextlib.contextmanager
def ctrl_c_in_this_process_only():
    """Ctrl-C and SIGTERM interrupt this process, not the Lava worker processes it forks.

    A terminal sends SIGINT to the whole process group. Lava's workers are forked from this process and
    inherit its handler: with Python's default one they die of ``KeyboardInterrupt`` mid-message, and
    the runtime's ``stop()`` (which the replay always calls) then waits for them forever. With this
    handler only this process raises ``KeyboardInterrupt`` (``Terminated`` for SIGTERM); ``finally:
    net.stop()`` shuts the workers down. Processes forked inside the block die with this process
    (:func:`tie_children_to_parent`). Used around every Lava run (Python API) and by the CLI.
    """
    tie_children_to_parent()
    main_pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() == main_pid:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        # a forked worker: ignore; the CLI process stops the runtime

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
