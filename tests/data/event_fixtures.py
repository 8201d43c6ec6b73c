"""Writers of tiny event-camera files in the real on-disk formats, for the event-loader tests.

- N-MNIST: ``<root>/Train|Test/<digit>/<name>.bin``, 5 bytes per event (x, y, polarity bit 7 of
  byte 2, 23-bit big-endian microsecond timestamp in the rest of bytes 2..4).
- DVS Gesture (tonic's pre-processed release): ``<root>/ibmGestureTrain|ibmGestureTest/
  <user>_<lighting>/<label>.npy``, a numeric (N, 4) array with columns x, y, p, t[ms].

Events are given as tuples ``(x, y, t_us, p)`` for N-MNIST and rows ``(x, y, p, t_ms)`` for DVS,
in each format's own column order.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

NMNIST_OVERFLOW = (0, 240, 0, 0)  # (x, y, t, p) of a timestamp-overflow marker record


def nmnist_bytes(events: Iterable[Sequence[int]]) -> bytes:
    """Encode ``(x, y, t_us, p)`` tuples as N-MNIST 5-byte records."""
    out = bytearray()
    for x, y, t, p in events:
        assert 0 <= x < 256 and 0 <= y < 256 and 0 <= t < 2**23 and p in (0, 1)
        out += bytes((x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF))
    return bytes(out)


def write_nmnist_bin(path: Path, events: Iterable[Sequence[int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nmnist_bytes(events))
    return path


def write_nmnist_sample(root: Path, folder: str, label: int, name: str, events) -> Path:
    """Write ``<root>/<folder>/<label>/<name>.bin`` (folder is "Train" or "Test")."""
    return write_nmnist_bin(Path(root) / folder / str(label) / f"{name}.bin", events)


def write_dvs_npy(path: Path, rows) -> Path:
    """Save rows ``(x, y, p, t_ms)`` as a plain numeric .npy file (int64 unless given an array)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rows if isinstance(rows, np.ndarray) else np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    return path


def write_dvs_sample(root: Path, folder: str, user: str, label: int, rows) -> Path:
    """Write ``<root>/<folder>/<user>/<label>.npy`` (folder "ibmGestureTrain" or "ibmGestureTest")."""
    return write_dvs_npy(Path(root) / folder / user / f"{label}.npy", rows)


# ------------------------------------------------------------------------------------------
# hostile files: pickles must be refused, never loaded
# ------------------------------------------------------------------------------------------

def record_unpickling(marker: str) -> None:
    """Called only if a pickle written by :func:`write_pickled_npy` is ever unpickled."""
    Path(marker).write_text("unpickled!")


class _Tripwire:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (record_unpickling, (self.marker,))


def write_pickled_npy(path: Path, marker: Path) -> Path:
    """A real .npy file holding an object array; unpickling it would create ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty(1, dtype=object)
    arr[0] = _Tripwire(str(marker))
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=True)
    return path


def write_raw_pickle(path: Path, marker: Path) -> Path:
    """A bare pickle stream under a .npy name; unpickling it would create ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Tripwire(str(marker))))
    return path


# ------------------------------------------------------------------------------------------
# synthetic frames -> real formats
# ------------------------------------------------------------------------------------------

def frames_to_events(frames: np.ndarray, window: int, polarity: int = 1) -> list[tuple[int, int, int, int]]:
    """One event per spike of binary frames (C=1, H, W, T): ``(x, y, k*window + window//2, polarity)``,
    sorted by time. With ``ToFrames(window, T, origin_us=0)`` the events bin back to ``frames``."""
    _, ys, xs, ks = np.nonzero(frames)
    order = np.lexsort((xs, ys, ks))
    return [(int(xs[i]), int(ys[i]), int(ks[i]) * window + window // 2, polarity) for i in order]


def write_synthetic_nmnist(root: Path, dataset, folder: str = "Train", window_us: int = 3000,
                           polarity: int = 1) -> list[Path]:
    """Write a :func:`synthetic_events` dataset (labels < 10, size <= 34x34) as N-MNIST .bin files
    (every spike an event of ``polarity``; the N-MNIST preset framing keeps polarity 0)."""
    paths = []
    for i, (frames, label) in enumerate(zip(dataset.frames, dataset.labels)):
        events = frames_to_events(frames, window_us, polarity=polarity)
        paths.append(write_nmnist_sample(root, folder, int(label), f"{i:05d}", events))
    return paths


def write_synthetic_dvs(root: Path, dataset, folder: str = "ibmGestureTrain", window_ms: int = 50) -> list[Path]:
    """Write a :func:`synthetic_events` dataset (labels < 10, size <= 128x128) as DVS Gesture .npy files,
    one user folder per sample."""
    paths = []
    for i, (frames, label) in enumerate(zip(dataset.frames, dataset.labels)):
        rows = [(x, y, p, t) for x, y, t, p in frames_to_events(frames, window_ms)]
        paths.append(write_dvs_sample(root, folder, f"user{i:02d}_synthetic", int(label), rows))
    return paths
