"""Where a sweep's units run: in this process, a local process pool, or Ray tasks.

``Engine(engine, workers, address).run(fn, tasks)`` yields ``(index, result)`` as units finish. Units are the
plain functions of :mod:`.cells` on plain dicts; each writes its own files, so the engine only carries their
records back.

- ``local`` with ``workers`` 1: one after the other in this process (Ctrl-C stops at once).
- ``local`` with ``workers`` N > 1: ``concurrent.futures.ProcessPoolExecutor`` with N spawned processes.
- ``ray``: every unit is a Ray task (``ray.remote(num_cpus=1, max_retries=2)``: a task whose worker process
  dies is run again; an exception raised by the unit is not retried). The records come back through Ray's
  object store. Without ``address`` a Ray runtime already initialised in this process is used, else a local one
  is started with ``workers`` CPUs; with ``address`` (``ray://host:10001`` or ``host:6379``) the existing
  cluster is joined; its nodes must be able to import ``brainleaks_lava`` and see the output directory at the
  same path (a shared file system), as each task writes its cell there. Ray 2.60's ``ray start --head`` enables
  token authentication: the machine running the sweep then needs ``RAY_AUTH_MODE=token`` and the cluster's token
  (``~/.ray/auth_token`` or ``RAY_AUTH_TOKEN``); without them joining fails with ``InvalidAuthToken``.
  Ray's client retries an address for many minutes in C code no signal interrupts, so the address is first
  checked with a plain TCP connection (:func:`check_reachable`, 5 s), the CLI gives ``ray.init`` 20 s to join,
  and the toolkit's SIGINT / SIGTERM handlers are put back after ``ray.init`` replaced them.

Every unit sets its own torch thread count (the study's ``threads``, default 1), so the engines give the same
records for the same seeds (tests/sweep compare them).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InputError
from ..interrupts import give_up_after

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


class Engine:
    """A context that runs units: ``with Engine("ray", 2) as eng: for i, rec in eng.run(fn, tasks): ...``.
    A Ray runtime it starts is shut down on exit; one that was running before is left alone."""

    def __init__(self, engine: str = "local", workers: int = 1, address: str | None = None):
        if engine not in ENGINES:
            raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        from ..safety import check_threads

        check_threads(workers, "workers", minimum=1)
        self.engine, self.workers, self.address = engine, workers, address
        if engine == "ray" and address and not _ray_running():
            check_reachable(address)  # before any work: Ray itself retries an absent cluster for many minutes
        self._started_ray = False
        self._pool = None  # one process pool for every phase of a sweep (its workers import torch and Lava once)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False

    def run(self, fn: Callable[[dict], dict], tasks: list[dict]) -> Iterator[tuple[int, dict]]:
        """Yield ``(index, record)`` as units finish."""
        if not tasks:
            return
        if self.engine == "ray":
            yield from self._ray(fn, tasks)
        elif self.workers == 1 or len(tasks) == 1:
            for i, t in enumerate(tasks):
                yield i, fn(t)
        else:
            if self._pool is None:
                self._pool = _make_pool(self.workers)
            yield from _pool_run(self._pool, fn, tasks)

    def _ray_init(self):
        plain_ray_logs()
        try:
            import ray
        except ImportError:
            raise InputError("--engine ray needs Ray: pip install 'brainleaks-lava[sweep]' (or pip install ray)"
                             ) from None
        if not ray.is_initialized():
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)}}
            kwargs = {"runtime_env": env, "include_dashboard": False, "log_to_driver": True}
            if self.address:
                try:
                    with give_up_after(RAY_JOIN_SECONDS, f"cannot join the Ray cluster at {self.address}: no answer "
                                       f"from a Ray cluster there within {RAY_JOIN_SECONDS:g} s (is it the address "
                                       f"of a Ray head node?)"):
                        _ray_init_keeping_handlers(ray, address=self.address, **kwargs)
                except (ConnectionError, RuntimeError) as e:
                    raise InputError(f"cannot join the Ray cluster at {self.address}: {' '.join(str(e).split())}; "
                                     "a cluster started by 'ray start' with token authentication also needs "
                                     "RAY_AUTH_MODE=token here (the token from ~/.ray/auth_token or RAY_AUTH_TOKEN)"
                                     ) from None
            else:
                _ray_init_keeping_handlers(ray, num_cpus=self.workers, **kwargs)
            self._started_ray = True
        elif self.address:
            log.warning("Ray is already initialised in this process; --address %s is not used", self.address)
        return ray

    def _ray(self, fn, tasks):
        ray = self._ray_init()
        remote = ray.remote(num_cpus=1, max_retries=2)(fn)
        refs = {remote.remote(t): i for i, t in enumerate(tasks)}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for r in ready:
                    i = refs.pop(r)
                    try:
                        result = ray.get(r)
                    except ray.exceptions.RayTaskError as e:  # the unit's own exception, raised here
                        raise e.as_instanceof_cause() from None
                    yield i, result
        except BaseException:
            for r in refs:
                ray.cancel(r, force=True)
            raise


def plain_ray_logs() -> None:
    """Ray forwards its workers' output lines with a colour-coded ``(task pid=...)`` prefix (ANSI escapes) whether
    or not the output is a terminal, so a sweep's output redirected to a log file was full of escape codes. Unless
    stdout and stderr are both terminals, they are turned off here (``RAY_COLOR_PREFIX=0``, read by Ray's driver
    for every line it prints); a value the user set is kept."""
    def terminal(stream) -> bool:
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError, OSError):  # a closed or replaced stream
            return False

    if "RAY_COLOR_PREFIX" not in os.environ and not (terminal(sys.stdout) and terminal(sys.stderr)):
        os.environ["RAY_COLOR_PREFIX"] = "0"


RAY_CONNECT_SECONDS = 5.0  # a TCP connection to the cluster's address, before Ray is asked to join it
RAY_JOIN_SECONDS = 20.0  # ray.init(address=...) of a reachable cluster takes a few seconds


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and getattr(ray, "is_initialized", lambda: False)()


def check_reachable(address: str, timeout: float = RAY_CONNECT_SECONDS) -> None:
    """``InputError`` unless a TCP connection to the ``HOST:PORT`` of ``address`` (``ray://HOST:PORT`` too) opens
    within ``timeout`` seconds. Ray's own client retries an address where nothing listens for many minutes, in C
    code that no signal interrupts; this plain connection fails at once (refused) or after ``timeout`` (no
    route, filtered). Addresses without a port (``auto``) are left to Ray."""
    import socket

    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return
    host = host.strip("[]") or "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, OverflowError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise InputError(f"cannot reach the Ray cluster at {address}: {reason} (no TCP connection within "
                         f"{timeout:g} s); start it with 'ray start --head' or give the right --address") from None


def _ray_init_keeping_handlers(ray, **kwargs) -> None:
    """``ray.init`` without losing this process's SIGINT / SIGTERM handlers.

    ``ray.init`` installs its own SIGTERM handler (``sys.exit(15)``; a runtime started here installs one that
    exits with 1): the toolkit's handler (``interrupts``: exit 143, one line, the Ray runtime shut down by
    ``Engine.__exit__``) is put back afterwards. A SIGTERM that arrived during ``ray.init`` meets Ray's handler
    and surfaces as ``SystemExit``; it is turned into the toolkit's interruption."""
    import signal

    from .. import interrupts

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    before = interrupts.received

    def interrupted() -> BaseException | None:  # a signal recorded (by interrupts' watcher) during ray.init
        sig = interrupts.received
        if sig is None or before is not None:
            return None
        return interrupts.Terminated() if sig == signal.SIGTERM else KeyboardInterrupt()

    try:
        ray.init(**kwargs)
    except SystemExit:
        if interrupted() is None:
            raise
        raise interrupted() from None
    finally:
        with contextlib.suppress(ValueError, TypeError):  # not the main thread / a handler not set from Python
            for sig, h in saved.items():
                signal.signal(sig, h)
    if interrupted() is not None:  # the signal came while Ray's handler was in place and did not raise
        raise interrupted()


def _make_pool(workers: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_start)


def _pool_run(pool, fn, tasks):
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                i = pending.pop(f)
                yield i, f.result()
    except BaseException:
        for f in pending:
            f.cancel()
        raise


def _worker_start() -> None:
    """In a spawned pool worker: make 'fork' its default start method again, as Lava, which forks its own
    runtime processes, requires (``hardware.replay``); the worker itself holds no threads yet."""
    import multiprocessing

    multiprocessing.set_start_method("fork", force=True)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])
