"""Independent jobs in forked worker processes, at most ``workers`` at a time (used by the Lava replay).

Each job runs in a process of its own, forked from this one (Lava is already imported and the job's data
is inherited, nothing is pickled on the way in); its result comes back through a pipe. A forked process is
not daemonic, so it may start Lava's own worker processes. ``multiprocessing.Pool`` workers are daemonic and
cannot; a 'spawn' context would import Lava again in every worker (seconds).

Processes and interrupts:

- the workers are forked inside ``ctrl_c_in_this_process_only``: they die with this process however it dies
  (``interrupts.tie_children_to_parent``), and so do the Lava processes each of them forks;
- a worker handles its first SIGINT / SIGTERM like the replay in the main process does (Lava is stopped) and
  ignores later ones (``interrupts.become_worker``);
- when this process is interrupted, or a job fails, every running worker gets SIGTERM, is waited for
  (``STOP_GRACE`` seconds at most, then SIGKILL) and reaped before the exception goes on; shared memory
  blocks a killed worker left behind are unlinked (``shm_recorders.release_segments_of``).
"""
from __future__ import annotations

import logging
import os
import signal
import time
import traceback
import typing as ty

from ..interrupts import become_worker, ctrl_c_in_this_process_only

log = logging.getLogger(__name__)

STOP_GRACE = 15.0  # seconds a worker has to stop its Lava runtime after SIGTERM before it is killed


class WorkerDied(RuntimeError):
    """A worker process ended without reporting a result (killed, or crashed in Lava)."""


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_forked(jobs: ty.Sequence, fn: ty.Callable, workers: int, on_result: ty.Callable, what: str = "job") -> None:
    """``fn(job)`` for every job, each in a forked process, at most ``workers`` at a time, started in the order
    of ``jobs``; ``on_result(job, value)`` is called here as results arrive. The first failure (an exception
    raised by ``fn``, re-raised here, or a worker that died) stops the other workers and is raised; so is an
    interrupt. No worker is left running or unreaped when this returns or raises."""
    import multiprocessing
    from multiprocessing.connection import wait

    from . import shm_recorders

    ctx = multiprocessing.get_context("fork")
    pending = list(jobs)
    running: dict = {}  # receiving end of the pipe -> (process, job)
    with ctrl_c_in_this_process_only():  # also ties the forked workers to this process
        _resource_tracker_running()
        try:
            while pending or running:
                while pending and len(running) < workers:
                    job = pending.pop(0)
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_child, args=(send, fn, job), name=f"brainleaks-{what}")
                    proc.start()
                    send.close()  # only the worker writes; its end closing means it is gone
                    running[recv] = (proc, job)
                for conn in wait(list(running)):
                    proc, job = running.pop(conn)
                    try:
                        message = conn.recv()
                    except EOFError:
                        message = None
                    finally:
                        conn.close()
                    proc.join()
                    shm_recorders.release_segments_of(proc.pid)
                    if message is None:
                        raise WorkerDied(f"the {what} worker (pid {proc.pid}) for {job} ended with exit code "
                                         f"{proc.exitcode} and no result")
                    status, value, detail = message
                    if status == "interrupted":
                        raise KeyboardInterrupt
                    if status == "error":
                        log.debug("%s %s failed in worker %d:\n%s", what, job, proc.pid, detail)
                        raise value
                    on_result(job, value)
        finally:
            _stop(running)


def _child(conn, fn, job) -> None:
    """The worker process: run the job, send (status, value, traceback text), leave without exit handlers."""
    become_worker()
    status, value, detail = "ok", None, ""
    try:
        with ctrl_c_in_this_process_only():
            value = fn(job)
    except KeyboardInterrupt:
        status = "interrupted"
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        status, value, detail = "error", e, traceback.format_exc()
    for sig in (signal.SIGINT, signal.SIGTERM):  # done: later signals change nothing
        signal.signal(sig, signal.SIG_IGN)
    try:
        try:
            conn.send((status, value, detail))
        except (BrokenPipeError, ConnectionError, OSError):  # the parent stopped listening
            pass
        except Exception as e:  # noqa: BLE001 - the value or exception does not pickle
            conn.send(("error", RuntimeError(f"{type(e).__name__} sending the result of {job}: {e}\n{detail}"), detail))
        conn.close()
    finally:
        # no multiprocessing exit handlers, no traceback printed by multiprocessing: Lava was stopped by fn
        os._exit(0)


def _stop(running: dict) -> None:
    """SIGTERM every running worker, wait ``STOP_GRACE`` seconds for it, then SIGKILL; reap; unlink what it
    left in shared memory."""
    if not running:
        return
    from . import shm_recorders

    procs = [proc for proc, _ in running.values()]
    for conn in running:  # a worker blocked sending its result gets EPIPE and leaves
        conn.close()
    running.clear()
    for proc in procs:
        if proc.exitcode is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:  # pragma: no cover - ended meanwhile
                pass
    deadline = time.monotonic() + STOP_GRACE
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.exitcode is None:
            log.warning("Lava replay worker %d did not stop within %.0f s of SIGTERM; killed", proc.pid, STOP_GRACE)
            proc.kill()
            proc.join()
        shm_recorders.release_segments_of(proc.pid)


def _resource_tracker_running() -> None:
    """Start Python's shared-memory resource tracker here, before forking, so the workers share this process's
    tracker instead of each starting its own."""
    try:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    except Exception:  # pragma: no cover - best effort
        pass
