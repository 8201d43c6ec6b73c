"""Neuromorphic (event-camera) datasets: N-MNIST and IBM DVS Gesture, read from disk and framed.

:func:`load_events` reads one split of a dataset from a directory the user provides (nothing is
ever downloaded), turns every recording into binary frames with a :class:`~.framing.Framing`
(the paper's preset by default) and returns an :class:`EventDataset`. Framed samples are cached
on disk, so later loads skip the raw files.

On-disk layouts accepted: the folders ``tonic.datasets.NMNIST(save_to)`` and
``tonic.datasets.DVSGesture(save_to)`` leave after downloading (``root`` = ``save_to``, or the
dataset's own folder ``save_to/NMNIST`` / ``save_to/DVSGesture``), which are also the official
releases unpacked anywhere (``root`` = the folder holding the split folders, or one level above
it). The archives tonic keeps beside the extracted folders are ignored.

- **N-MNIST** (34x34, 10 digits): ``[save_to/NMNIST/]Train/<digit>/<id>.bin`` and
  ``Test/<digit>/<id>.bin``. Each ``.bin`` file is a sequence of 5-byte events: byte 0 = x,
  byte 1 = y, bit 7 of byte 2 = polarity (1 = ON), the remaining 23 bits of bytes 2..4 (big
  endian) = timestamp in microseconds. An event with y = 240 is a timestamp-overflow marker, not
  a spike: it adds 2**13 us to its own and all later timestamps. Decoded by
  ``tonic.io.read_mnist_file`` (tonic's N-MNIST reader); the file size and the coordinates are
  checked here.
- **DVS Gesture** (128x128, 11 classes): the pre-processed release tonic downloads,
  ``[save_to/DVSGesture/]ibmGestureTrain/<user>_<lighting>/<label>.npy`` and
  ``ibmGestureTest/...``, each ``.npy`` a numeric (N, 4) array with columns x, y, p, t and t in
  milliseconds (converted to microseconds, as tonic does). ``<label>`` is the class index 0..10.
  Class 10 ("other gestures") is dropped, as in the paper, leaving 10 classes. Read here
  (:func:`read_dvs_npy`): tonic has no reader function for these files, only
  ``DVSGesture.__getitem__``. Files are loaded with ``allow_pickle=False``: a pickled file is
  refused, never unpickled.

tonic's dataset classes themselves are not used to find or read the files: constructing one
downloads the dataset when its archive is missing or its folder holds fewer files than the full
release (10,000 ``.bin`` / 100 ``.npy``), and nothing here is ever downloaded. The folder and
label rules used here are theirs (``tests/data/test_events_tonic.py`` checks that both list the
same files with the same labels and events); the order differs only for DVS Gesture, where tonic
lists a user's files in directory order and we sort them by class index.

Splits: ``"train"`` is the dataset's own training folder, ``"val"`` its test folder, ``"all"``
both (train first). Within a split, samples are ordered by folder, then by file name (N-MNIST)
or class index (DVS Gesture).

Cache: one ``.npy`` file per framed sample under ``<cache_dir>/<dataset>/`` (default
``cache_dir`` = ``<root>/.brainleaks_cache``), keyed by a hash of the raw file's absolute path,
size and modification time (ns) and the framing's parameters. Entries are written atomically; an
unreadable or inconsistent entry is logged and recomputed; an unwritable cache directory is
logged once and the load goes on without caching. (tonic's ``DiskCachedDataset`` is not used: it
wraps a tonic dataset object, keys entries by sample index only, so a changed file or framing
would be served stale, and stores them as HDF5.)

Memory: frames are held in memory as uint8, (N, C, H, W, T); all 60,000 N-MNIST training
samples at T = 100 take 6.9 GB, so use ``limit`` on small machines.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DatasetError, InputError
from ..fileio import atomic_path, open_guarded, read_bytes_guarded
from .base import check_split
from .framing import EVENT_DTYPE, Events, Framing, dvs_gesture_framing, nmnist_framing

log = logging.getLogger(__name__)

EVENT_DATASETS = ("nmnist", "dvs-gesture")

NMNIST_SENSOR = 34
NMNIST_URL = "https://www.garrickorchard.com/datasets/n-mnist"
NMNIST_FOLDERS = {"train": "Train", "val": "Test"}
NMNIST_CLASSES = tuple(str(d) for d in range(10))

DVS_SENSOR = 128
DVS_FOLDERS = {"train": "ibmGestureTrain", "val": "ibmGestureTest"}
#: the 11 labels of the raw data; label 10 ("other gestures") is excluded from every split
DVS_RAW_CLASSES = (
    "hand clap", "right hand wave", "left hand wave", "right arm clockwise",
    "right arm counter-clockwise", "left arm clockwise", "left arm counter-clockwise",
    "arm roll", "air drums", "air guitar", "other gestures",
)
DVS_OTHER_LABEL = 10
DVS_CLASSES = DVS_RAW_CLASSES[:DVS_OTHER_LABEL]
DVS_MS_TO_US = 1000

CACHE_DIRNAME = ".brainleaks_cache"
CACHE_VERSION = 1


def nmnist_hint(directory: Path) -> str:
    return f"put N-MNIST's Train/ and Test/ folders (from {NMNIST_URL}) in {directory}"


def dvs_hint(directory: Path) -> str:
    return (f"put the extracted ibmGestureTrain/ and ibmGestureTest/ folders (ibmGestureTrain.tar.gz and "
            f"ibmGestureTest.tar.gz, the pre-processed DVS Gesture release that tonic.datasets.DVSGesture "
            f"downloads) in {directory}")


# ------------------------------------------------------------------------------------------
# the in-memory result
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class EventDataset:
    """A labelled set of framed event recordings.

    - ``frames``: uint8, shape (N, C, H, W, T), values in {0, 1}; ``frames[n, c, y, x, k]``.
    - ``labels``: int64, shape (N,); ``classes[label]`` is the class name.
    - ``classes``: class names, indexed by label.
    - ``source``: one human-readable line saying where the data came from.
    - ``framing``: JSON-able record of how the frames were made (``Framing.describe()`` for
      real data; the generator's parameters for synthetic data).
    """

    frames: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    framing: dict

    def __post_init__(self) -> None:
        if not isinstance(self.frames, np.ndarray) or self.frames.ndim != 5 or self.frames.dtype != np.uint8:
            raise InputError("EventDataset.frames must be a uint8 array of shape (N, C, H, W, T), got "
                             f"{getattr(self.frames, 'dtype', type(self.frames))} {getattr(self.frames, 'shape', '')}")
        n = self.frames.shape[0]
        if not isinstance(self.labels, np.ndarray) or self.labels.shape != (n,) or self.labels.dtype != np.int64:
            raise InputError(f"EventDataset.labels must be int64 of shape ({n},), got "
                             f"{getattr(self.labels, 'dtype', type(self.labels))} {getattr(self.labels, 'shape', '')}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise InputError(f"EventDataset.labels must lie in 0..{len(self.classes) - 1}")
        if n and self.frames.max() > 1:
            raise InputError("EventDataset.frames must be binary (values 0 or 1)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def sample_shape(self) -> tuple[int, int, int, int]:
        """(C, H, W, T) of one sample."""
        return tuple(self.frames.shape[1:])  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------
# readers of one recording
# ------------------------------------------------------------------------------------------

# Largest event file read: an N-MNIST sample is ~4,000 events of 5 bytes (20 kB); a DVS Gesture recording
# (N x 4 numbers, 6 s of a 128 x 128 sensor) a few million events.
MAX_NMNIST_BYTES = 16 << 20
MAX_DVS_BYTES = 1 << 30


def read_nmnist_bin(path: str | Path) -> Events:
    """Read one N-MNIST ``.bin`` file (format in the module docstring) as 34x34 :class:`Events`.

    The decoding is ``tonic.io.read_mnist_file``'s; around it, a size that is not a multiple of 5
    bytes (which tonic reads silently or fails on with an IndexError) and an event outside the
    34x34 sensor raise ``DatasetError`` naming the file.
    """
    from tonic.io import read_mnist_file

    path = Path(path)
    data = read_bytes_guarded(path, "N-MNIST event file", MAX_NMNIST_BYTES, DatasetError)
    if len(data) % 5:
        raise DatasetError(f"{path}: {len(data)} bytes is not a multiple of 5; an N-MNIST .bin file holds "
                           "5-byte events (truncated or not an N-MNIST file?)")
    raw = read_mnist_file(io.BytesIO(data), dtype=EVENT_DTYPE, is_stream=True)
    bad = np.flatnonzero((raw["x"] >= NMNIST_SENSOR) | (raw["y"] >= NMNIST_SENSOR))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(f"{path}: event at x={int(raw['x'][i])}, y={int(raw['y'][i])} lies outside the "
                           f"{NMNIST_SENSOR}x{NMNIST_SENSOR} N-MNIST sensor ({bad.size} such events; "
                           "not an N-MNIST file?)")
    return Events.from_structured(raw, NMNIST_SENSOR, NMNIST_SENSOR)


def read_dvs_npy(path: str | Path) -> Events:
    """Read one DVS Gesture ``.npy`` recording (columns x, y, p, t[ms]) as 128x128 :class:`Events`.

    Loaded with ``allow_pickle=False``. Pickled content, a non-numeric or structured array, a
    shape other than (N, 4), non-integer or non-finite values, coordinates outside 128x128 or
    polarities other than 0/1 raise ``DatasetError`` naming the file.
    """
    path = Path(path)
    expected = "expected a numeric (N, 4) array of events with columns x, y, p, t (t in ms)"
    try:
        with open_guarded(path, "DVS Gesture recording", DatasetError, max_bytes=MAX_DVS_BYTES) as f:
            arr = np.load(f, allow_pickle=False)
    except (ValueError, MemoryError) as e:  # a header declaring more than the machine holds: MemoryError
        if "pickle" in str(e):
            raise DatasetError(f"{path}: contains pickled Python objects, which are never loaded; {expected}") from None
        raise DatasetError(f"{path}: not a readable .npy file ({e}); {expected}") from None
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read .npy file ({e}); {expected}") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
        getattr(arr, "close", lambda: None)()
        raise DatasetError(f"{path}: is an .npz archive, not a .npy array; {expected}")
    if arr.dtype.names is not None or arr.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: array of dtype {arr.dtype}; {expected}")
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DatasetError(f"{path}: array of shape {arr.shape}; {expected}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DatasetError(f"{path}: contains NaN or infinite values; {expected}")
        if (arr[:, :3] != np.round(arr[:, :3])).any():
            raise DatasetError(f"{path}: non-integer x, y or p values; {expected}")
        t = np.rint(arr[:, 3].astype(np.float64) * DVS_MS_TO_US).astype(np.int64)
    else:
        t = arr[:, 3].astype(np.int64) * DVS_MS_TO_US
    x, y, p = (arr[:, i].astype(np.int64) for i in range(3))
    bad = np.flatnonzero((x < 0) | (x >= DVS_SENSOR) | (y < 0) | (y >= DVS_SENSOR))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(f"{path}: event at x={int(x[i])}, y={int(y[i])} lies outside the "
                           f"{DVS_SENSOR}x{DVS_SENSOR} DVS sensor ({bad.size} such events); {expected}")
    if x.size and not np.isin(p, (0, 1)).all():
        raise DatasetError(f"{path}: polarity column (3rd) has values other than 0 and 1; {expected}")
    return Events(x, y, t, p.astype(np.uint8), DVS_SENSOR, DVS_SENSOR)


# ------------------------------------------------------------------------------------------
# finding the files of a split
# ------------------------------------------------------------------------------------------

def _visible_dirs(directory: Path) -> list[Path]:
    return sorted(d for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))


def _locate(root: Path, folders: dict[str, str], preferred: tuple[str, ...], title: str,
            hint: Callable[[Path], str]) -> Path:
    """The directory holding the split folders: ``root`` itself or one of its subdirectories."""
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise DatasetError(f"{title} directory {root} {what}; {hint(root)}")

    def holds(d: Path) -> bool:
        return any((d / name).is_dir() for name in folders.values())

    if holds(root):
        return root
    children = _visible_dirs(root)
    children.sort(key=lambda d: d.name not in preferred)  # stable: preferred names first
    for child in children:
        if holds(child):
            return child
    names = " or ".join(f"{n}/" for n in folders.values())
    raise DatasetError(f"no {names} folder in {root} (nor one level below it); {hint(root)}")


def _split_dirs(data_dir: Path, split: str, folders: dict[str, str], title: str,
                hint: Callable[[Path], str]) -> list[Path]:
    wanted = ("train", "val") if split == "all" else (split,)
    dirs = []
    for s in wanted:
        d = data_dir / folders[s]
        if not d.is_dir():
            role = "training" if s == "train" else "test"
            raise DatasetError(f"{data_dir}: the {title} {split} split needs the {role} folder {folders[s]}/, "
                               f"which is missing; {hint(data_dir)}")
        dirs.append(d)
    return dirs


def _nmnist_items(data_dir: Path, split: str) -> tuple[list[tuple[Path, int]], str]:
    items: list[tuple[Path, int]] = []
    for split_dir in _split_dirs(data_dir, split, NMNIST_FOLDERS, "N-MNIST", nmnist_hint):
        found = [
            (f, label)
            for label in range(len(NMNIST_CLASSES))
            if (split_dir / str(label)).is_dir()
            for f in sorted((split_dir / str(label)).glob("*.bin"))
            if f.is_file() and not f.name.startswith(".")
        ]
        if not found:
            raise DatasetError(f"{split_dir}: no .bin event files in digit folders 0..9; {nmnist_hint(data_dir)}")
        items += found
    return items, ""


def _dvs_items(data_dir: Path, split: str) -> tuple[list[tuple[Path, int]], str]:
    items: list[tuple[Path, int]] = []
    n_other = 0
    for split_dir in _split_dirs(data_dir, split, DVS_FOLDERS, "DVS Gesture", dvs_hint):
        n_files = 0
        for user_dir in _visible_dirs(split_dir):
            labelled = []
            for f in user_dir.glob("*.npy"):
                if f.name.startswith(".") or not f.is_file():
                    continue
                n_files += 1
                try:
                    label = int(f.stem)
                except ValueError:
                    label = -1
                if not 0 <= label < len(DVS_RAW_CLASSES):
                    raise DatasetError(f"{f}: DVS Gesture files must be named <class index>.npy with index "
                                       f"0..{len(DVS_RAW_CLASSES) - 1}; {dvs_hint(data_dir)}")
                if label == DVS_OTHER_LABEL:
                    n_other += 1
                else:
                    labelled.append((f, label))
            items += sorted(labelled, key=lambda item: item[1])
        if n_files == 0:
            raise DatasetError(f"{split_dir}: no <user>_<lighting>/<label>.npy files; {dvs_hint(data_dir)}")
    note = f"; {n_other} samples of class {DVS_OTHER_LABEL} 'other gestures' excluded" if n_other else ""
    return items, note


def _round_robin(items: list[tuple[Path, int]], limit: int) -> list[tuple[Path, int]]:
    """At most ``limit`` items, taking each class's first files in turn; original order kept."""
    rank: dict[int, int] = {}
    keyed = []
    for i, (_, label) in enumerate(items):
        keyed.append((rank.get(label, 0), label, i))
        rank[label] = rank.get(label, 0) + 1
    chosen = sorted(i for _, _, i in sorted(keyed)[:limit])
    return [items[i] for i in chosen]


# ------------------------------------------------------------------------------------------
# the disk cache of framed samples
# ------------------------------------------------------------------------------------------

class _FrameCache:
    """One ``.npy`` file per framed sample; see the module docstring."""

    def __init__(self, directory: Path, framing: Framing, shape: tuple[int, ...]):
        self.directory = directory
        self.framing = framing.describe()
        self.shape = tuple(shape)
        self.writable = True

    def key(self, source: Path) -> str:
        try:
            st = source.stat()
        except OSError as e:
            raise DatasetError(f"{source}: cannot read: {e}") from None
        record = {"cache": CACHE_VERSION, "file": str(source.resolve()), "size": st.st_size,
                  "mtime_ns": st.st_mtime_ns, "framing": self.framing, "shape": list(self.shape)}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with open_guarded(path, "frame cache entry", DatasetError,
                              max_bytes=int(np.prod(self.shape)) + (64 << 10), within=self.directory) as f:
                frames = np.load(f, allow_pickle=False)
            if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.shape != self.shape:
                raise ValueError(f"holds {getattr(frames, 'dtype', '?')} {getattr(frames, 'shape', '?')}, "
                                 f"expected uint8 {self.shape}")
            if frames.size and frames.max() > 1:
                raise ValueError("holds values above 1")
        except (DatasetError, OSError, ValueError, EOFError, MemoryError) as e:
            log.warning("frame cache entry %s is unusable (%s); recomputing it", path, e)
            return None
        return frames

    def store(self, key: str, frames: np.ndarray) -> None:
        if not self.writable:
            return
        try:
            with atomic_path(self.path(key)) as tmp, open(tmp, "wb") as f:
                np.save(f, frames, allow_pickle=False)
        except OSError as e:
            log.warning("cannot write the frame cache in %s (%s); continuing without caching", self.directory, e)
            self.writable = False


# ------------------------------------------------------------------------------------------
# the public loader
# ------------------------------------------------------------------------------------------

def load_events(name: str, root: str | Path, split: str = "train", *, framing: Framing | None = None,
                cache_dir: str | Path | None = None, limit: int | None = None,
                use_cache: bool = True) -> EventDataset:
    """Load split ``split`` ("train", "val" = the dataset's test set, or "all") of an event dataset.

    ``name`` is ``"nmnist"`` or ``"dvs-gesture"``; ``root`` is the directory holding the files
    (layouts in the module docstring). ``framing`` defaults to :func:`~.framing.nmnist_framing`
    or :func:`~.framing.dvs_gesture_framing` ``()``. ``cache_dir`` defaults to
    ``<root>/.brainleaks_cache``; ``use_cache=False`` neither reads nor writes it. ``limit`` keeps
    at most that many samples, taken round-robin over the classes (the first files of each class
    in folder order), so a small limit still covers every class.

    Raises ``DatasetError`` for a missing, incomplete or malformed directory or file and
    ``InputError`` for bad arguments.
    """
    if name not in EVENT_DATASETS:
        raise InputError(f"unknown event dataset {name!r}; choose one of {', '.join(EVENT_DATASETS)}")
    check_split(split)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise InputError(f"limit must be a positive integer or None, got {limit!r}")
    if framing is None:
        framing = nmnist_framing() if name == "nmnist" else dvs_gesture_framing()
    elif not isinstance(framing, Framing):
        raise InputError(f"framing must be a Framing (see nmnist_framing / dvs_gesture_framing), got {framing!r}")
    nmnist = name == "nmnist"
    title, hint = ("N-MNIST", nmnist_hint) if nmnist else ("DVS Gesture", dvs_hint)
    if root is None:
        raise InputError(f"{name} needs a data root: {hint(Path('<root>'))} and pass that directory")
    root = Path(root).expanduser()

    if nmnist:
        data_dir = _locate(root, NMNIST_FOLDERS, ("NMNIST", "N-MNIST", "nmnist"), title, hint)
        items, note = _nmnist_items(data_dir, split)
        sensor, classes = NMNIST_SENSOR, NMNIST_CLASSES
    else:
        data_dir = _locate(root, DVS_FOLDERS, ("DVSGesture",), title, hint)
        items, note = _dvs_items(data_dir, split)
        sensor, classes = DVS_SENSOR, DVS_CLASSES
    total = len(items)
    if limit is not None:
        items = _round_robin(items, int(limit))

    shape = framing.output_shape(sensor, sensor)
    cache = None
    if use_cache:
        base = Path(cache_dir).expanduser() if cache_dir is not None else root / CACHE_DIRNAME
        cache = _FrameCache(base / name, framing, shape)
    reader = read_nmnist_bin if nmnist else read_dvs_npy  # looked up per call (tests patch them)

    from ..progress import progress_bar

    frames = np.empty((len(items), *shape), dtype=np.uint8)
    hits = 0
    bar = progress_bar(items, desc=f"framing {name} {split}", unit="file")
    for i, (path, _) in enumerate(bar):
        key = cache.key(path) if cache is not None else ""
        sample = cache.load(key) if cache is not None else None
        if sample is None:
            sample = framing(reader(path))
            if cache is not None:
                cache.store(key, sample)
        else:
            hits += 1
        frames[i] = sample
    labels = np.fromiter((label for _, label in items), dtype=np.int64, count=len(items))

    split_folders = NMNIST_FOLDERS if nmnist else DVS_FOLDERS
    folders = " + ".join(f"{split_folders[s]}/" for s in (("train", "val") if split == "all" else (split,)))
    kept = f"{len(items)} of {total} samples (round-robin over classes)" if len(items) < total else f"{total} samples"
    source = (f"{title} {split} split from {data_dir} ({folders}: {kept}{note}); "
              f"frames {'x'.join(map(str, shape))} (C x H x W x T) by {framing!r}")
    log.info("loaded %s (%d of %d framed samples from the cache)", source, hits, len(items))
    return EventDataset(frames=frames, labels=labels, classes=classes, source=source, framing=framing.describe())


# ------------------------------------------------------------------------------------------
# synthetic, learnable event data for end-to-end tests
# ------------------------------------------------------------------------------------------

def synthetic_events(n_per_class: int, n_classes: int = 4, size: tuple[int, int] = (16, 16),
                     time_bins: int = 16, seed: int = 0) -> EventDataset:
    """Binary frames of a short bar sweeping across the centre, one orientation per class.

    Class ``c`` is a bar of orientation ``180 * c / n_classes`` degrees (length ~0.6 of the
    smaller side, ~1.5 px thick) moving once along its normal over the ``time_bins`` bins, from
    -size/5 to +size/5 around the centre. Per sample, drawn from ``numpy.random.default_rng(seed)``:
    the angle (+-5 degrees), the centre (+-1 px), 10% of the bar's spikes dropped and 1% background
    noise spikes. Both the summed image (orientation) and the timing (direction) carry the class,
    so a tiny SNN learns it in a few epochs. Output: frames (n_classes * n_per_class, 1, H, W, T),
    samples ordered class-interleaved (sample i has label i % n_classes); same seed -> same data.
    """
    n_per_class = _check_int(n_per_class, "n_per_class", 1)
    n_classes = _check_int(n_classes, "n_classes", 2)
    time_bins = _check_int(time_bins, "time_bins", 2)
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise InputError(f"size must be (height, width), got {size!r}")
    height, width = (_check_int(s, "size", 4) for s in size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")

    rng = np.random.default_rng(int(seed))
    n = n_classes * n_per_class
    labels = np.tile(np.arange(n_classes, dtype=np.int64), n_per_class)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    side = min(height, width)
    half_len, half_thick, sweep = 0.3 * side, 0.75, side / 5
    offsets = np.linspace(-sweep, sweep, time_bins)  # bar position along its normal, per bin
    frames = np.zeros((n, 1, height, width, time_bins), dtype=np.uint8)
    for i, label in enumerate(labels):
        angle = np.pi * label / n_classes + rng.uniform(-1, 1) * np.deg2rad(5)
        cx = (width - 1) / 2 + rng.uniform(-1, 1)
        cy = (height - 1) / 2 + rng.uniform(-1, 1)
        along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)  # along the normal
        across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)  # along the bar
        bar = (np.abs(along[..., None] - offsets) <= half_thick) & (np.abs(across)[..., None] <= half_len)
        spikes = (bar & (rng.random(bar.shape) >= 0.10)) | (rng.random(bar.shape) < 0.01)
        frames[i, 0] = spikes
    classes = tuple(f"bar {180 * c / n_classes:g} deg" for c in range(n_classes))
    params: dict[str, Any] = {"synthetic": "moving bars", "n_per_class": n_per_class, "n_classes": n_classes,
                              "size": [height, width], "time_bins": time_bins, "seed": int(seed)}
    source = (f"synthetic moving bars: {n_classes} classes x {n_per_class}, {height}x{width}, "
              f"T={time_bins}, seed {int(seed)}")
    return EventDataset(frames=frames, labels=labels, classes=classes, source=source, framing=params)


def _check_int(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise InputError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


__all__ = [
    "EventDataset", "load_events", "synthetic_events", "read_nmnist_bin", "read_dvs_npy",
    "EVENT_DATASETS", "NMNIST_CLASSES", "DVS_CLASSES",
]
