"""Event data in the folders tonic's datasets write under ``save_to``, framed exactly as before tonic.

A user who downloaded N-MNIST or DVS Gesture with ``tonic.datasets.NMNIST(save_to)`` /
``tonic.datasets.DVSGesture(save_to)`` has::

    save_to/NMNIST/train.zip, test.zip, Train/<digit>/<id>.bin, Test/<digit>/<id>.bin
    save_to/DVSGesture/ibmGestureTrain.tar.gz, ibmGestureTest.tar.gz,
                       ibmGestureTrain/<user>_<lighting>/<label>.npy, ibmGestureTest/...

The tests below write tiny recordings in those folders (real file formats), load them with
``load_events(name, save_to)`` and compare the frames with

- a plain-numpy statement of the framing rules, written here (``reference_frames``), and
- sha256 digests of the frames the hand-written pipeline produced before tonic took over reading,
  downsampling and binning (recorded with that code from these very files), so "identical to
  today's frames" is checked literally, not only against the reference.

They also build tonic's own dataset objects on the same folders (downloading switched off) and
check that our loader sees the same files, labels and events.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from brainleaks_lava.data import load_events
from brainleaks_lava.data.events import DVS_FOLDERS, NMNIST_FOLDERS
from brainleaks_lava.data.framing import (Clamp, Events, Framing, SelectPolarity, ToFrames, dvs_gesture_framing,
                                          nmnist_framing)
from event_fixtures import NMNIST_OVERFLOW, write_dvs_npy, write_nmnist_bin

# ------------------------------------------------------------------------------------------
# tiny recordings that look like the real ones
# ------------------------------------------------------------------------------------------


def nmnist_like(seed: int, n: int = 1200) -> dict[str, np.ndarray]:
    """~300 ms of a 34x34 recording: a blob circling the centre (three saccade-like loops), 10 %
    uniform noise; timestamps on a 250 us grid, so neighbouring pixels often fire simultaneously;
    the first events at t = 0 (where tonic's Denoise would keep everything)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 1200, n)) * 250
    t[0] = 0
    phase = 2 * np.pi * t / 100_000
    x = np.rint(17 + 9 * np.sin(phase) + rng.normal(0, 1.5, n))
    y = np.rint(17 + 9 * np.cos(phase) + rng.normal(0, 1.5, n))
    noise = rng.random(n) < 0.10
    x[noise], y[noise] = rng.integers(0, 34, noise.sum()), rng.integers(0, 34, noise.sum())
    return {"x": np.clip(x, 0, 33).astype(np.int64), "y": np.clip(y, 0, 33).astype(np.int64),
            "t": t.astype(np.int64), "p": rng.integers(0, 2, n).astype(np.int64)}


def dvs_like(seed: int, n: int = 3000, span_ms: int = 2500) -> dict[str, np.ndarray]:
    """A 128x128 hand blob moving on a circle for ``span_ms`` ms (past the 1.5 s the default
    framing keeps), 5 % noise; millisecond timestamps, so many events share one."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span_ms, n))
    phase = 2 * np.pi * t / 700
    x = np.rint(64 + 30 * np.sin(phase) + rng.normal(0, 3, n))
    y = np.rint(64 + 30 * np.cos(phase) + rng.normal(0, 3, n))
    noise = rng.random(n) < 0.05
    x[noise], y[noise] = rng.integers(0, 128, noise.sum()), rng.integers(0, 128, noise.sum())
    return {"x": np.clip(x, 0, 127).astype(np.int64), "y": np.clip(y, 0, 127).astype(np.int64),
            "t": t.astype(np.int64) * 1000, "p": rng.integers(0, 2, n).astype(np.int64)}


def write_nmnist_with_overflows(path: Path, ev: dict[str, np.ndarray], every: int = 400) -> Path:
    """Write ``ev`` as a .bin file with a timestamp-overflow record every ``every`` events: the
    stored timestamps are the true ones minus 2**13 us per overflow record before them."""
    rows, shift = [], 0
    for i, (x, y, t, p) in enumerate(zip(*(ev[k].tolist() for k in "xytp"))):
        if i and i % every == 0:
            rows.append(NMNIST_OVERFLOW)
            shift += 2**13
        rows.append((x, y, t - shift, p))
    return write_nmnist_bin(path, rows)


# (folder, digit, file id, seed)
NMNIST_FILES = [("Train", 1, "00004", 11), ("Train", 1, "00010", 12), ("Train", 7, "00002", 13),
                ("Test", 0, "00003", 14), ("Test", 9, "00001", 15)]
# (folder, user folder, label, seed, how the file is stored)
DVS_FILES = [("ibmGestureTrain", "user01_fluorescent", 0, 21, "int64"),
             ("ibmGestureTrain", "user01_fluorescent", 4, 22, "float64"),
             ("ibmGestureTrain", "user01_fluorescent", 10, 23, "int64"),   # "other gestures": left out
             ("ibmGestureTrain", "user02_led", 9, 24, "shuffled"),         # rows not in time order
             ("ibmGestureTest", "user24_natural", 3, 25, "int64")]


@pytest.fixture(scope="module")
def save_to(tmp_path_factory) -> Path:
    """One tonic ``save_to`` folder holding both datasets, archives included (as tonic leaves them)."""
    root = tmp_path_factory.mktemp("save_to")
    for name in ("train.zip", "test.zip"):
        (root / "NMNIST").mkdir(exist_ok=True)
        (root / "NMNIST" / name).write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    for folder, digit, ident, seed in NMNIST_FILES:
        write_nmnist_with_overflows(root / "NMNIST" / folder / str(digit) / f"{ident}.bin", nmnist_like(seed))
    (root / "DVSGesture").mkdir()
    for name in ("ibmGestureTrain.tar.gz", "ibmGestureTest.tar.gz"):
        (root / "DVSGesture" / name).write_bytes(b"")
    for folder, user, label, seed, kind in DVS_FILES:
        ev = dvs_like(seed)
        arr = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] // 1000], axis=1)
        if kind == "float64":
            arr = arr.astype(np.float64)
        elif kind == "shuffled":
            arr = arr[np.random.default_rng(seed).permutation(len(arr))]
        write_dvs_npy(root / "DVSGesture" / folder / user / f"{label}.npy", arr)
    return root


# ------------------------------------------------------------------------------------------
# the framing rules, restated in plain numpy
# ------------------------------------------------------------------------------------------

def reference_denoise(ev: dict[str, np.ndarray], window_us: int) -> np.ndarray:
    """Keep mask: another event at an edge neighbour with t - window < t' <= t (any file order)."""
    x, y, t = ev["x"], ev["y"], ev["t"]
    keep = np.zeros(len(t), dtype=bool)
    for start in range(0, len(t), 256):
        s = slice(start, start + 256)
        neighbour = (np.abs(x[s, None] - x[None]) + np.abs(y[s, None] - y[None])) == 1
        recent = (t[None] <= t[s, None]) & (t[None] > t[s, None] - window_us)
        keep[s] = (neighbour & recent).any(axis=1)
    return keep


def reference_frames(ev, size, *, denoise_us, window_us, bins, factor=1, channels="both", origin_us=None):
    """Binary frames (C, H, W, T) of ``ev`` under the documented rules (see framing.py)."""
    keep = reference_denoise(ev, denoise_us) if denoise_us else np.ones(len(ev["t"]), dtype=bool)
    x, y, t, p = (ev[k][keep] for k in "xytp")
    x, y = x // factor, y // factor
    origin = (int(t.min()) if t.size else 0) if origin_us is None else origin_us
    k = (t - origin) // window_us
    ok = (k >= 0) & (k < bins)
    side = size // factor
    both = np.zeros((2, side, side, bins), dtype=np.uint8)
    both[p[ok], y[ok], x[ok], k[ok]] = 1
    if channels == "both":
        return both
    if channels == "merge":
        return both.max(axis=0, keepdims=True)
    return both[channels:channels + 1]


def nmnist_truth(split: str) -> tuple[list[dict], list[int]]:
    folders = ("Train", "Test") if split == "all" else (NMNIST_FOLDERS[split],)
    rows = sorted((folders.index(f), d, i, s) for f, d, i, s in NMNIST_FILES if f in folders)
    return [nmnist_like(s) for *_, s in rows], [d for _, d, _, _ in rows]


def dvs_truth(split: str) -> tuple[list[dict], list[int]]:
    folders = ("ibmGestureTrain", "ibmGestureTest") if split == "all" else (DVS_FOLDERS[split],)
    rows = sorted((folders.index(f), u, lab, s) for f, u, lab, s, _ in DVS_FILES if f in folders and lab != 10)
    return [dvs_like(s) for *_, s in rows], [lab for _, _, lab, _ in rows]


def digest(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames, dtype=np.uint8).tobytes()).hexdigest()[:16]


# framing -> (keyword arguments of reference_frames, digest of the pre-tonic frames of the split)
NMNIST_CASES = {
    "preset": (nmnist_framing(), "train",
               dict(denoise_us=40_000, window_us=3_000, bins=100, channels=0), "360ac4347e025534"),
    "on-both-pad": (nmnist_framing(time_bins=120, polarity="both"), "all",
                    dict(denoise_us=40_000, window_us=3_000, bins=120, channels="both"), "aca5025b2b92a61d"),
    "on-crop": (nmnist_framing(time_bins=40, polarity=1), "val",
                dict(denoise_us=40_000, window_us=3_000, bins=40, channels=1), "1fbf9c7ba03d69c6"),
    "fixed-origin": (Framing(ToFrames(3_000, 100, origin_us=0), SelectPolarity(1), Clamp(1)), "train",
                     dict(denoise_us=0, window_us=3_000, bins=100, channels=1, origin_us=0), "712093e81253df4d"),
}
DVS_CASES = {
    "preset": (dvs_gesture_framing(), "train",
               dict(denoise_us=100_000, window_us=50_000, bins=30, factor=4, channels="merge"), "c298755c18d01517"),
    "full-res-two-channels": (dvs_gesture_framing(downsample=1, time_bins=60, merge_polarity=False), "all",
                              dict(denoise_us=100_000, window_us=50_000, bins=60, channels="both"),
                              "edef9ab12c7f2ce3"),
    "coarse": (dvs_gesture_framing(downsample=8, time_bins=10), "val",
               dict(denoise_us=100_000, window_us=50_000, bins=10, factor=8, channels="merge"), "6a43a01a316628dd"),
}


@pytest.mark.parametrize("case", sorted(NMNIST_CASES))
def test_nmnist_in_tonic_layout_frames_as_before(save_to, case):
    framing, split, kwargs, frozen = NMNIST_CASES[case]
    ds = load_events("nmnist", save_to, split, framing=framing, use_cache=False)
    events, labels = nmnist_truth(split)
    assert ds.labels.tolist() == labels
    assert str(save_to / "NMNIST") in ds.source
    expected = np.stack([reference_frames(ev, 34, **kwargs) for ev in events])
    assert ds.frames.shape == expected.shape and np.array_equal(ds.frames, expected)
    assert ds.frames.sum() > 40  # the comparison is not between empty arrays
    assert digest(ds.frames) == frozen


@pytest.mark.parametrize("case", sorted(DVS_CASES))
def test_dvs_gesture_in_tonic_layout_frames_as_before(save_to, case):
    framing, split, kwargs, frozen = DVS_CASES[case]
    ds = load_events("dvs-gesture", save_to, split, framing=framing, use_cache=False)
    events, labels = dvs_truth(split)
    assert ds.labels.tolist() == labels
    assert str(save_to / "DVSGesture") in ds.source
    expected = np.stack([reference_frames(ev, 128, **kwargs) for ev in events])
    assert ds.frames.shape == expected.shape and np.array_equal(ds.frames, expected)
    assert ds.frames.sum() > 40
    assert digest(ds.frames) == frozen


def test_tonic_dataset_folders_may_be_given_directly(save_to):
    """``--data-root save_to/NMNIST`` works as well as ``--data-root save_to``."""
    framing = nmnist_framing(time_bins=20)
    a = load_events("nmnist", save_to, "val", framing=framing, use_cache=False)
    b = load_events("nmnist", save_to / "NMNIST", "val", framing=framing, use_cache=False)
    assert np.array_equal(a.frames, b.frames) and a.labels.tolist() == b.labels.tolist()
    c = load_events("dvs-gesture", save_to / "DVSGesture", "val", use_cache=False)
    d = load_events("dvs-gesture", save_to, "val", use_cache=False)
    assert np.array_equal(c.frames, d.frames)


# ------------------------------------------------------------------------------------------
# the same folders through tonic's own dataset classes
# ------------------------------------------------------------------------------------------

@pytest.fixture
def offline_tonic(monkeypatch):
    """tonic's dataset classes on our tiny folders: never download, accept fewer files than the
    real datasets have (tonic wants >= 10,000 N-MNIST / >= 100 DVS Gesture files)."""
    import tonic.datasets

    def no_download(self):
        raise AssertionError("tonic tried to download")

    for cls in (tonic.datasets.NMNIST, tonic.datasets.DVSGesture):
        monkeypatch.setattr(cls, "download", no_download)
        monkeypatch.setattr(cls, "_check_exists", lambda self: True)
    return tonic.datasets


def frames_of(structured: np.ndarray, framing: Framing, size: int) -> np.ndarray:
    ev = Events.from_arrays(structured["x"], structured["y"], structured["t"], structured["p"], size, size)
    return framing(ev)


@pytest.mark.parametrize("split", ["train", "val"])
def test_nmnist_matches_tonics_own_dataset(save_to, offline_tonic, split):
    theirs = offline_tonic.NMNIST(str(save_to), train=split == "train")
    framing = nmnist_framing(time_bins=100, polarity="both")
    ours = load_events("nmnist", save_to, split, framing=framing, use_cache=False)
    assert ours.labels.tolist() == list(theirs.targets)  # same files, same order, same labels
    assert len(theirs) == len(ours) > 0
    for i in range(len(theirs)):
        events, _ = theirs[i]
        np.testing.assert_array_equal(frames_of(events, framing, 34), ours.frames[i])


@pytest.mark.parametrize("split", ["train", "val"])
def test_dvs_gesture_matches_tonics_own_dataset(save_to, offline_tonic, split):
    theirs = offline_tonic.DVSGesture(str(save_to), train=split == "train")
    # tonic lists a user folder's files in directory order and keeps class 10; we sort by class
    # index and leave class 10 out
    order = sorted((Path(p).parent.name, t, i) for i, (p, t) in enumerate(zip(theirs.data, theirs.targets)))
    order = [i for _, t, i in order if t != 10]
    framing = dvs_gesture_framing(downsample=1, time_bins=40, merge_polarity=False)
    ours = load_events("dvs-gesture", save_to, split, framing=framing, use_cache=False)
    assert ours.labels.tolist() == [theirs.targets[i] for i in order]
    for row, i in enumerate(order):
        events, _ = theirs[i]
        np.testing.assert_array_equal(frames_of(events, framing, 128), ours.frames[row])
    assert ours.frames.sum() > 40
