"""Progress that suits where it goes.

On a terminal, tqdm bars. When stderr is not a terminal (a log file, CI, a pipe), a bar would be one long
line of carriage returns; there each loop writes a short plain line after ``FIRST_LINE`` second, then at most
every ``LINE_EVERY`` seconds,
and one when it ends (only if it ran for at least a second). ``set_quiet(True)`` (the CLI's ``--quiet``)
turns all progress off. Library code calls :func:`progress_bar` instead of tqdm, and :func:`status` for the
one-line milestones a person follows a long command by (a stage starting and ending, an epoch's accuracy, a
training resumed): plain lines on stderr, with or without a terminal, off with ``--quiet``.
"""
from __future__ import annotations

import sys
import time

LINE_EVERY = 10.0
FIRST_LINE = 1.0  # seconds before a loop's first line
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = bool(quiet)


def status(message: str) -> None:
    """One line on stderr for the person running the command (nothing when quiet). On a terminal it is written
    through tqdm so that an open progress bar is redrawn below it instead of being overwritten."""
    if _quiet:
        return
    stream = sys.stderr
    try:
        if getattr(stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            tqdm.write(message, file=stream)
        else:
            stream.write(message + "\n")
        stream.flush()
    except (OSError, ValueError):  # a closed or broken stream must not end the computation
        pass


def format_duration(seconds: float) -> str:
    """Wall time for people: ``0.4s``, ``42s``, ``3m12s``, ``1h05m``."""
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_bar(iterable=None, *, total=None, desc: str = "", unit: str = "it", disable: bool = False, **kwargs):
    """A progress object with tqdm's interface (iteration, ``update``, ``set_postfix``, ``close``, ``with``)."""
    if disable or _quiet:
        return _Silent(iterable)
    stream = sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=stream, **kwargs)
    return _Lines(iterable, total, desc, unit, stream)


class _Silent:
    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Lines(_Silent):
    """Plain progress lines: ``desc: 40/300 it (13%), 12 s, conf=0.91``."""

    def __init__(self, iterable, total, desc, unit, stream):
        super().__init__(iterable)
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n, self.postfix = 0, ""
        self.start = self.last = time.monotonic()
        self.closed = False
        self.lines = 0

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self.last >= (LINE_EVERY if self.lines else FIRST_LINE):  # a first sign of life soon
            self.last = now
            self._line(now)

    def set_postfix(self, *args, **kwargs):
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def close(self):
        if self.closed:
            return
        self.closed = True
        now = time.monotonic()
        if now - self.start >= 1.0:
            self._line(now, done=True)

    def _line(self, now, done=False):
        of = f"/{self.total}" if self.total else ""
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        text = f"{self.desc}: {self.n}{of} {self.unit}{pct}, {now - self.start:.0f} s"
        if self.postfix:
            text += f", {self.postfix}"
        if done:
            text += ", done"
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.lines += 1
        except (OSError, ValueError):  # a closed or broken stream must not end the computation
            pass
