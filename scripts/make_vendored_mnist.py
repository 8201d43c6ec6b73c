#!/usr/bin/env python3
"""Regenerate the MNIST subset vendored in ``brainleaks_lava/data/vendored/mnist/``.

Reads the official 10,000-image MNIST test set (``t10k-images-idx3-ubyte[.gz]`` and
``t10k-labels-idx1-ubyte[.gz]``) from SOURCE and writes gzip idx files holding images 0..999
followed by 8000..8249. The loader's "first 80% train" rule then gives 1,000 train images from
the real train half (0..7999) and 250 val images from the real val half (8000..9999).

The output is deterministic (gzip mtime 0, no file name in the gzip header), so re-running the
script on the same source reproduces the files byte for byte.

    .venv/bin/python scripts/make_vendored_mnist.py /work/shared/data/mnist
"""
from __future__ import annotations

import argparse
import gzip
import logging
import struct
import sys
from pathlib import Path

import numpy as np

from brainleaks_lava.data.mnist import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    TEST_IMAGES,
    TEST_LABELS,
    read_idx,
    vendored_mnist_root,
)
from brainleaks_lava.errors import BrainleaksError, DatasetError
from brainleaks_lava.fileio import atomic_path

log = logging.getLogger("make_vendored_mnist")

TRAIN_PART = range(0, 1000)     # from the official test set's train half (0..7999)
VAL_PART = range(8000, 8250)    # from its val half (8000..9999)
SOURCE_SIZE = 10_000


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: {stem}[.gz] not found (the official MNIST test set is needed)")


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """Serialise a uint8 array as an idx file (big-endian header, then the raw bytes)."""
    assert array.dtype == np.uint8 and array.ndim == (magic & 0xFF)
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_gz(path: Path, payload: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
        tmp.chmod(0o644)  # the temporary file is created 0600; package data must be world-readable


def make_subset(source: Path, out: Path) -> None:
    images = read_idx(_find(source, TEST_IMAGES), IMAGES_MAGIC)
    labels = read_idx(_find(source, TEST_LABELS), LABELS_MAGIC)
    if images.shape != (SOURCE_SIZE, 28, 28) or labels.shape != (SOURCE_SIZE,):
        raise DatasetError(f"{source}: expected the official 10,000-image MNIST test set, got "
                           f"images {images.shape} and labels {labels.shape}")
    index = np.r_[np.arange(TRAIN_PART.start, TRAIN_PART.stop), np.arange(VAL_PART.start, VAL_PART.stop)]
    out.mkdir(parents=True, exist_ok=True)
    write_gz(out / f"{TEST_IMAGES}.gz", idx_bytes(np.ascontiguousarray(images[index]), IMAGES_MAGIC))
    write_gz(out / f"{TEST_LABELS}.gz", idx_bytes(np.ascontiguousarray(labels[index]), LABELS_MAGIC))
    log.info("wrote %d images (test-set indices %d..%d and %d..%d) to %s", len(index),
             TRAIN_PART.start, TRAIN_PART.stop - 1, VAL_PART.start, VAL_PART.stop - 1, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="directory with the official MNIST t10k idx files")
    parser.add_argument("--out", type=Path, default=vendored_mnist_root(),
                        help="output directory (default: the package's vendored directory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        make_subset(args.source, args.out)
    except BrainleaksError as e:
        log.error("error: %s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
