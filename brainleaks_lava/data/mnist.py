"""Reader of the standard MNIST idx files, from any directory.

Files looked for in the directory (each either plain or gzip-compressed with a ``.gz`` suffix;
when both exist the plain file is used):

- ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte`` (the 60,000-image training set)
- ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (the 10,000-image test set)

Images and labels come in pairs: an images file without its labels file (or the reverse) is an
error. Any non-empty set of complete pairs is accepted.

Split rule:

- If the train pair exists: split ``"train"`` is the train files and ``"val"`` is the t10k files
  (``"val"`` then needs the t10k pair).
- If only the t10k pair exists (as on machines without the training set), the first 80% of its
  images (``n_train = floor(0.8 * N)``) are ``"train"`` and the rest ``"val"``. For the official
  10,000-image test set that is images 0..7999 train and 8000..9999 val.
- ``"all"`` is every image present (train files first, then t10k).

Images are returned as float32 in [0, 1] (pixel / 255), shape (N, 28, 28); labels as int64.

The idx format: a big-endian 32-bit magic ``0x0000TTDD`` (TT = element type, 0x08 for unsigned
bytes; DD = number of dimensions), then DD big-endian 32-bit dimension sizes, then the elements.
Images use magic 0x00000803 (N, rows, cols), labels 0x00000801 (N,).
"""
from __future__ import annotations

import gzip
import logging
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..fileio import open_guarded, read_bytes_guarded
from .base import StaticDataset, block_average, check_downsample, check_split

log = logging.getLogger(__name__)

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
ROWS = COLS = 28
NUM_CLASSES = 10
TRAIN_FRACTION_NUM, TRAIN_FRACTION_DEN = 8, 10  # 80% of a lone t10k set is "train"

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
CLASSES = tuple(str(d) for d in range(NUM_CLASSES))


def vendored_mnist_root() -> Path:
    """Directory of the MNIST subset shipped inside the package.

    It holds ``t10k-images-idx3-ubyte.gz`` / ``t10k-labels-idx1-ubyte.gz`` with 1,250 images of
    the official test set (indices 0..999 then 8000..8249), so the 80% rule gives 1,000 train
    images from the real train half and 250 val images from the real val half.
    """
    return Path(__file__).resolve().parent / "vendored" / "mnist"


def _expected_files_hint(root: Path) -> str:
    return (
        f"expected {TEST_IMAGES}[.gz] and {TEST_LABELS}[.gz] (and optionally {TRAIN_IMAGES}[.gz] "
        f"and {TRAIN_LABELS}[.gz]) in {root}; get them from {MNIST_URL} or any MNIST mirror"
    )


def _find(root: Path, stem: str) -> Path | None:
    """The path of ``stem`` or ``stem.gz`` in ``root`` (plain preferred), or None. Whatever is there under that
    name counts (a FIFO or a device too): the reader refuses it naming it, rather than calling it missing."""
    for name in (stem, stem + ".gz"):
        p = root / name
        if p.exists() or p.is_symlink():
            return p
    return None


# Largest idx file read (decompressed): the full MNIST training images are 60,000 x 28 x 28 + 16 = 47 MB.
MAX_IDX_BYTES = 64 << 20


def _read_bytes(path: Path) -> bytes:
    """The (decompressed, for ``.gz``) content of ``path``, at most ``MAX_IDX_BYTES``; the file is opened with
    ``fileio.open_guarded`` (a regular file: no FIFO, no device); I/O and gzip errors -> DatasetError."""
    if path.suffix != ".gz":
        return read_bytes_guarded(path, "MNIST idx file", MAX_IDX_BYTES, DatasetError)
    try:
        with open_guarded(path, "MNIST idx file", DatasetError, max_bytes=MAX_IDX_BYTES) as raw, \
                gzip.GzipFile(fileobj=raw, mode="rb") as f:
            data = f.read(MAX_IDX_BYTES + 1)  # a small .gz can hold gigabytes
        if len(data) > MAX_IDX_BYTES:
            raise DatasetError(f"{path}: the MNIST idx file decompresses to more than the {MAX_IDX_BYTES:,}-byte "
                               f"limit")
        return data
    except (OSError, EOFError, zlib.error) as e:
        # gzip.BadGzipFile is an OSError; a truncated gzip stream raises EOFError.
        raise DatasetError(f"{path}: cannot read (corrupt or truncated gzip file?): {e}") from None


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Parse one unsigned-byte idx file (plain or .gz) and return its uint8 array.

    ``magic`` is the expected magic number (:data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`); its
    low byte fixes the number of dimensions. A wrong magic, a short header, or a body whose size
    does not match the header (truncated file or trailing bytes) raises ``DatasetError`` naming
    the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated idx file ({len(data)} bytes, no complete header)")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DatasetError(
            f"{path}: not an MNIST idx file of the expected kind: magic 0x{found:08x}, expected 0x{magic:08x}"
        )
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(f"{path}: truncated idx header ({len(data)} bytes, need {header_len})")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = header_len + math.prod(dims)  # Python ints: no overflow on absurd headers
    if len(data) < expected:
        raise DatasetError(
            f"{path}: truncated idx file: header says {'x'.join(map(str, dims))} bytes of data "
            f"({expected} bytes in all), file has {len(data)}"
        )
    if len(data) > expected:
        raise DatasetError(
            f"{path}: {len(data) - expected} unexpected bytes after the "
            f"{'x'.join(map(str, dims))} idx data (wrong or corrupt file?)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check one images/labels pair; returns (uint8 (N,28,28), uint8 (N,))."""
    images = read_idx(images_path, IMAGES_MAGIC)
    if images.shape[1:] != (ROWS, COLS):
        raise DatasetError(
            f"{images_path}: images are {images.shape[2]}x{images.shape[1]}, MNIST images are {COLS}x{ROWS}"
        )
    labels = read_idx(labels_path, LABELS_MAGIC)
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{labels_path}: {labels.shape[0]} labels but {images_path.name} has {images.shape[0]} images"
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise DatasetError(f"{labels_path}: label {int(labels.max())} out of range 0..{NUM_CLASSES - 1}")
    return images, labels


def _locate_pair(root: Path, images_stem: str, labels_stem: str) -> tuple[Path, Path] | None:
    images, labels = _find(root, images_stem), _find(root, labels_stem)
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        missing = images_stem if images is None else labels_stem
        present = (labels or images).name
        raise DatasetError(
            f"{root}: {present} is present but {missing}[.gz] is missing; "
            f"{_expected_files_hint(root)}"
        )
    return images, labels


def load_mnist(root: str | Path | None = None, split: str = "train", downsample: int = 1) -> StaticDataset:
    """Load one split of MNIST from the idx files in ``root`` (the vendored subset when None).

    See the module docstring for the split rule. ``downsample`` block-averages the 28x28 images
    by an integer factor dividing 28 (1, 2, 4, 7, 14, 28).
    """
    check_split(split)
    factor = check_downsample(downsample, ROWS, COLS)
    vendored = root is None
    root = vendored_mnist_root() if vendored else Path(root).expanduser()
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise DatasetError(f"MNIST directory {root} {what}; {_expected_files_hint(root)}")

    train_pair = _locate_pair(root, TRAIN_IMAGES, TRAIN_LABELS)
    test_pair = _locate_pair(root, TEST_IMAGES, TEST_LABELS)
    if train_pair is None and test_pair is None:
        raise DatasetError(f"no MNIST idx files found; {_expected_files_hint(root)}")

    origin = "vendored MNIST subset" if vendored else "MNIST"
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if train_pair is not None:
        if split in ("train", "all"):
            parts.append(_read_pair(*train_pair))
        if split in ("val", "all"):
            if test_pair is None:
                raise DatasetError(
                    f"{root}: the val split of MNIST is the t10k set, but {TEST_IMAGES}[.gz] and "
                    f"{TEST_LABELS}[.gz] are missing; get them from {MNIST_URL} or any MNIST mirror"
                )
            parts.append(_read_pair(*test_pair))
        used = {"train": [train_pair], "val": [test_pair], "all": [train_pair, test_pair]}[split]
        source = (f"{origin} {split} split from {root} "
                  f"({' + '.join(p[0].name for p in used if p is not None)})")
    else:
        images, labels = _read_pair(*test_pair)
        n_train = images.shape[0] * TRAIN_FRACTION_NUM // TRAIN_FRACTION_DEN
        sl = {"train": slice(0, n_train), "val": slice(n_train, None), "all": slice(None)}[split]
        parts.append((images[sl], labels[sl]))
        start, stop, _ = sl.indices(images.shape[0])
        source = (f"{origin} {split} split from {root} ({test_pair[0].name} images {start}..{stop - 1} "
                  f"of {images.shape[0]}; no train files, so first 80% train / rest val)")

    images_u8 = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels_u8 = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    images_f = images_u8.astype(np.float32) / np.float32(255.0)
    if factor > 1:
        images_f = block_average(images_f, factor)
    log.debug("loaded %d MNIST images: %s", images_f.shape[0], source)
    return StaticDataset(images=images_f, labels=labels_u8.astype(np.int64), classes=CLASSES, source=source)
