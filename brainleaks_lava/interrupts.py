"""Ctrl-C handling shared by the CLI and the Lava replay."""
from __future__ import annotations

import contextlib
import os
import signal


@contextlib.contextmanager
def ctrl_c_in_this_process_only():
    """Ctrl-C interrupts this process, not the Lava worker processes it forks.

    A terminal sends SIGINT to the whole process group. Lava's workers are forked from this process and
    inherit its handler: with Python's default one they die of ``KeyboardInterrupt`` mid-message, and
    the runtime's ``stop()`` (which the replay always calls) then waits for them forever. With this
    handler only this process raises ``KeyboardInterrupt``; ``finally: net.stop()`` shuts the workers
    down. Used around every Lava run (Python API) and by the CLI.
    """
    main_pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        # a forked worker: ignore; the CLI process stops the runtime

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
