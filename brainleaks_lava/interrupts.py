"""Signals and child processes, shared by the CLI and the Lava replay.

- Ctrl-C (SIGINT) and SIGTERM interrupt this process only, not the Lava worker processes it forks; the
  CLI turns them into one line and exit status 130 / 143 after Lava has been stopped.
- Every process forked from this one (Lava's workers, and the processes they fork) is killed when its
  parent dies, however the parent dies (SIGKILL included): see :func:`tie_children_to_parent`.
- A signal is heard even while the main thread is stuck in C code (Ray connecting, libhdf5, Lava): the CLI then
  ends within the watchdog's grace (:func:`_watch_signals`); a C call that never returns is given up after a
  deadline (:func:`give_up_after`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

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


_exit_after: dict = {}  # set by exit_if_stuck(): grace seconds and the command's name


def exit_if_stuck(command: str, grace: float = 5.0) -> None:
    """After Ctrl-C or SIGTERM, leave at the latest ``grace`` seconds later, whatever is stuck.

    An interrupt that lands while Lava's runtime starts can leave ``net.stop()`` joining a worker that never got
    the stop message, forever (seen in about 2 of 5 SIGTERMs sent 1 s after a replay started; a clean stop
    takes well under a second). Armed by the CLI: a watchdog thread then removes the
    temporary files of writes in progress, prints the command's one line and ends the process with 130 / 143;
    the workers die with it (:func:`tie_children_to_parent`). Not used by the Python API.
    """
    _exit_after.update(command=command, grace=float(grace))


reported = False  # the CLI sets it once it printed its line: the watchdog then prints nothing
received: int | None = None  # the interrupting signal, once one arrived (whatever exception it turned into)
_once = False  # set in forked workers (become_worker): only the first interrupt raises


def become_worker() -> None:
    """Called first in a worker process forked from this one (``hardware.parallel``): no exit watchdog (the
    parent process has its own and stops its workers), no interrupt inherited from the parent, and only the
    first SIGINT / SIGTERM raises. A worker gets two when Ctrl-C reaches the whole process group (the
    terminal's SIGINT, then the parent's SIGTERM); a second one would interrupt the ``net.stop()`` that the
    first one started."""
    global received, _once
    _exit_after.clear()
    received = None
    _once = True


_armed = threading.Lock()  # taken (never released) by the first _arm_watchdog: one watchdog per process


def _arm_watchdog(signum: int) -> None:
    """Start the thread that ends the process ``grace`` seconds after the first interrupt. It waits for no lock
    and imports nothing (the main thread may hold them, stuck): what it needs is bound here, in the handler.
    Called by the signal handler and by the signal watcher thread (:func:`_watch_signals`), whichever is first."""
    if not _exit_after or not _armed.acquire(blocking=False):
        return
    import time

    from .fileio import _ACTIVE_TEMPS

    code, what = (143, "terminated (SIGTERM)") if signum == signal.SIGTERM else (130, "interrupted")
    line = f"brainleaks {_exit_after['command']}: {what}\n".encode()
    grace, debug = _exit_after["grace"], log.isEnabledFor(logging.DEBUG)
    if debug:
        import faulthandler

    def fire():
        time.sleep(grace)
        if debug:  # --debug: where it was stuck
            with contextlib.suppress(Exception):
                os.write(2, b"still running after the interrupt; the threads:\n")
                faulthandler.dump_traceback(all_threads=True)
        finish(code, line, list(_ACTIVE_TEMPS))

    threading.Thread(target=fire, name="brainleaks-exit-watchdog", daemon=True).start()


def finish(code: int, line: bytes | None = None, temps=()) -> None:
    """End the process now with ``code``: remove ``temps``, write ``line`` on stderr unless the CLI already did,
    flush what can be flushed, and skip the exit handlers (multiprocessing's joins Lava's workers, which
    may wait forever after an interrupt; the workers die with this process anyway)."""
    for p in temps:
        with contextlib.suppress(OSError):
            os.unlink(p)
    if line is not None and not reported:
        with contextlib.suppress(OSError):
            os.write(2, b"\n" + line)  # on a line of its own: a progress bar may be half drawn
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


@contextlib.contextmanager
def give_up_after(seconds: float, message: str, code: int = 2):
    """End the process (``code``, ``message`` as the command's one error line) if the block is still running
    ``seconds`` later: for a C call that never returns and cannot be interrupted (Ray's connection to an address
    that accepts TCP but never answers as a Ray cluster). Only in the CLI (armed by :func:`exit_if_stuck`); for
    the Python API a no-op."""
    if not _exit_after:
        yield
        return
    from .fileio import _ACTIVE_TEMPS

    line = f"brainleaks {_exit_after['command']}: error: {message}\n".encode()
    timer = threading.Timer(seconds, lambda: finish(code, line, list(_ACTIVE_TEMPS)))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


_watching = False
_fork_hook = False


def _no_wakeup_fd_in_child() -> None:
    """In a forked child: the parent's signal watcher must not hear the child's signals."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)


def _watch_signals(main_pid: int):
    """Hear SIGINT / SIGTERM even while the main thread is stuck in C code; returns a function that stops it.

    Python runs a signal handler only between two bytecodes of the main thread: while the main thread waits in
    a C call that does not return (Ray connecting to a cluster that does not answer, a libhdf5 or Lava call),
    the handler, and so the exit watchdog, never runs and SIGTERM is lost. Python's C-level handler still
    writes the signal's number to the wakeup file descriptor (``signal.set_wakeup_fd``); a thread reading it
    records the signal and arms the watchdog (:func:`_arm_watchdog`), which ends the process ``grace`` seconds
    later with the command's line and 130 / 143 if it has not ended by then. Processes forked from this one
    drop the descriptor (they would otherwise report their own signals to this process)."""
    import socket

    global _watching, _fork_hook
    if _watching:
        return lambda: None
    r, w = socket.socketpair()
    w.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        r.close()
        w.close()
        return lambda: None
    _watching = True
    if not _fork_hook:
        os.register_at_fork(after_in_child=_no_wakeup_fd_in_child)
        _fork_hook = True

    def watch():
        global received
        while True:
            try:
                data = r.recv(64)
            except OSError:
                data = b""
            if not data:  # stopped
                r.close()
                return
            for signum in data:
                if signum in (signal.SIGINT, signal.SIGTERM) and os.getpid() == main_pid:
                    if received is None:
                        received = signum
                    _arm_watchdog(signum)

    threading.Thread(target=watch, name="brainleaks-signal-watcher", daemon=True).start()

    def stop():
        global _watching
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(previous)
        w.close()  # the watcher reads end-of-file and ends
        _watching = False

    return stop


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
            global received
            if _once and received is not None:  # a worker already stopping
                return
            received = signum
            _arm_watchdog(signum)
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        # a forked worker: ignore; the CLI process stops the runtime

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    previous_hook = sys.unraisablehook

    def unraisable(u):
        # The interrupt landed where Python cannot raise: in an at-fork callback (Lava forks a worker; logging's
        # lock release runs in the parent) or a finalizer. It would be lost and the run go on: deliver it again.
        if os.getpid() == main_pid and u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
            sig = signal.SIGTERM if issubclass(u.exc_type, Terminated) else signal.SIGINT
            main = threading.main_thread().ident  # again from another thread, once this callback is over
            threading.Timer(0.05, signal.pthread_kill, (main, sig)).start()
            return
        previous_hook(u)

    sys.unraisablehook = unraisable
    stop_watching = _watch_signals(main_pid)
    try:
        yield
    finally:
        stop_watching()
        sys.unraisablehook = previous_hook
        for sig, h in previous.items():
            signal.signal(sig, h)
