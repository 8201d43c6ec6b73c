"""Reader of the AT&T (ORL) Database of Faces.

Expected layout: a directory holding subject folders ``s1`` .. ``s40``, each with ten images
``1.pgm`` .. ``10.pgm``: 92x112 (width x height) 8-bit binary PGM (``P5``). Any number (at least
one) of subject folders ``s<k>`` may be present; each present folder must have all ten images.
Other entries of the directory are ignored.

Labels are subjects: label = k - 1 for folder ``s<k>``; ``classes`` is ``("s1", ..., "s<K>")``
with K the highest subject number present, so ``classes[label]`` is always the folder name.

Per-subject split: images 1..8 of every subject are ``"train"``, images 9..10 ``"val"``;
``"all"`` is all ten. Images are ordered by subject, then image number.

Images are float32 in [0, 1] (pixel / maxval), shape (N, 112, 92), or (N, 112/f, 92/f) with an
integer ``downsample`` factor f (block average; f must divide 112 and 92, so 1, 2 or 4).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetError
from ..fileio import read_bytes_guarded
from .base import StaticDataset, block_average, check_downsample, check_split

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 92, 112
IMAGES_PER_SUBJECT = 10
TRAIN_IMAGES = range(1, 9)   # 1..8
VAL_IMAGES = range(9, 11)    # 9..10
FACES_SOURCE_HINT = 'the "ORL/AT&T Database of Faces" archive from AT&T Laboratories Cambridge (att_faces)'

_SUBJECT_DIR = re.compile(r"s([1-9][0-9]*)")
_WHITESPACE = b" \t\n\r\x0b\x0c"
_DIGITS = b"0123456789"
_HASH = ord("#")


def _expected_files_hint(root: Path) -> str:
    return (f"expected subject folders s1..s40 each with 1.pgm..10.pgm (92x112 binary PGM) in {root}; "
            f"get them from {FACES_SOURCE_HINT}")


def _parse_pgm_header(data: bytes, path: Path) -> tuple[list[int], int]:
    """Parse a binary-PGM header: returns ([width, height, maxval], offset of the raster).

    The header is ``P5``, then width, height and maxval as ASCII decimals separated by any
    whitespace, with ``#`` comments (to the end of the line) allowed anywhere between the magic
    and maxval; exactly one whitespace byte separates maxval from the raster (so a comment cannot
    follow maxval: the raster may itself start with the byte ``#``).
    """
    if data[:2] != b"P5":
        found = data[:2].decode("latin-1") if data[:2] else "nothing"
        raise DatasetError(f"{path}: not a binary 8-bit PGM file (magic {found!r}, expected 'P5')")
    pos, n = 2, len(data)
    values: list[int] = []
    while len(values) < 3:
        separated = False
        while pos < n:  # whitespace and comments before the next token
            if data[pos] in _WHITESPACE:
                pos += 1
            elif data[pos] == _HASH:
                while pos < n and data[pos] not in b"\r\n":
                    pos += 1
            else:
                break
            separated = True
        if pos >= n:
            raise DatasetError(f"{path}: truncated PGM header (ends before width, height and maxval)")
        start = pos
        while pos < n and data[pos] in _DIGITS:
            pos += 1
        if pos == start or not separated:
            raise DatasetError(f"{path}: malformed PGM header: unexpected byte {data[pos:pos + 1]!r} "
                               f"at offset {pos}")
        values.append(int(data[start:pos]))
    if pos >= n:
        raise DatasetError(f"{path}: truncated PGM file (no pixel data after the header)")
    if data[pos] not in _WHITESPACE:
        raise DatasetError(f"{path}: malformed PGM header: unexpected byte {data[pos:pos + 1]!r} "
                           f"after maxval at offset {pos}")
    return values, pos + 1


MAX_PGM_BYTES = 16 << 20  # an 8-bit image of 4096 x 4096; the AT&T faces are 92 x 112 (10 kB)


def read_pgm(path: str | Path) -> np.ndarray:
    """Read one 8-bit binary PGM (P5) file; returns its pixels as float32 in [0, 1], shape (H, W).

    Raises ``DatasetError`` naming the file on a bad magic, a malformed header, maxval outside
    1..255 (16-bit PGM is not supported) or truncated pixel data.
    """
    path = Path(path)
    data = read_bytes_guarded(path, "PGM image", MAX_PGM_BYTES, DatasetError)
    (width, height, maxval), offset = _parse_pgm_header(data, path)
    if not 1 <= maxval <= 255:
        raise DatasetError(f"{path}: PGM maxval {maxval} not supported (need 1..255, 8-bit)")
    if width == 0 or height == 0:
        raise DatasetError(f"{path}: empty PGM image ({width}x{height})")
    n = width * height
    if len(data) - offset < n:
        raise DatasetError(f"{path}: truncated PGM pixel data: {len(data) - offset} bytes, "
                           f"{width}x{height} needs {n}")
    pixels = np.frombuffer(data, dtype=np.uint8, count=n, offset=offset).reshape(height, width)
    if int(pixels.max()) > maxval:
        raise DatasetError(f"{path}: pixel value {int(pixels.max())} exceeds the PGM maxval {maxval}")
    return pixels.astype(np.float32) / np.float32(maxval)


def _subjects(root: Path) -> list[tuple[int, Path]]:
    """The subject folders ``s<k>`` in ``root``, sorted by k."""
    found = []
    for entry in root.iterdir():
        m = _SUBJECT_DIR.fullmatch(entry.name)
        if m and entry.is_dir():
            found.append((int(m.group(1)), entry))
    return sorted(found)


def load_att_faces(root: str | Path, split: str = "train", downsample: int = 1,
                   subjects: Sequence[int] | None = None) -> StaticDataset:
    """Load one split of the AT&T/ORL faces from ``root`` (see the module docstring).

    ``subjects``: read only the folders ``s<k>`` of these subject numbers (k >= 1; each must be present and
    complete), no other file; labels stay k - 1 and ``classes`` runs to the highest subject number read."""
    check_split(split)
    factor = check_downsample(downsample, HEIGHT, WIDTH)
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise DatasetError(f"AT&T faces directory {root} {what}; {_expected_files_hint(root)}")
    chosen = ""
    if subjects is None:
        subjects = _subjects(root)
        if not subjects:
            raise DatasetError(f"no subject folders found; {_expected_files_hint(root)}")
    else:
        wanted = sorted(set(int(k) for k in subjects))
        if not wanted or wanted[0] < 1:
            raise DatasetError(f"subjects must be subject numbers >= 1, got {list(subjects)!r}")
        absent = [f"s{k}" for k in wanted if not (root / f"s{k}").is_dir()]
        if absent:
            raise DatasetError(f"{root}: no subject folder {', '.join(absent[:10])}"
                               f"{' ...' if len(absent) > 10 else ''}; {_expected_files_hint(root)}")
        subjects = [(k, root / f"s{k}") for k in wanted]
        chosen = (f" s{wanted[0]}..s{wanted[-1]}" if wanted == list(range(wanted[0], wanted[-1] + 1))
                  else " " + ",".join(f"s{k}" for k in wanted[:20]) + (",..." if len(wanted) > 20 else ""))
        chosen += " only"

    # check completeness first, so a missing file is reported before any slow parsing
    for _k, folder in subjects:
        missing = [f"{i}.pgm" for i in range(1, IMAGES_PER_SUBJECT + 1) if not (folder / f"{i}.pgm").exists()]
        if missing:
            raise DatasetError(f"{folder}: missing {', '.join(missing)}; every subject folder needs "
                               f"1.pgm..10.pgm; get them from {FACES_SOURCE_HINT}")

    numbers = {"train": TRAIN_IMAGES, "val": VAL_IMAGES, "all": range(1, IMAGES_PER_SUBJECT + 1)}[split]
    images, labels = [], []
    for k, folder in subjects:
        for i in numbers:
            path = folder / f"{i}.pgm"
            img = read_pgm(path)
            if img.shape != (HEIGHT, WIDTH):
                raise DatasetError(f"{path}: image is {img.shape[1]}x{img.shape[0]}, "
                                   f"AT&T faces are {WIDTH}x{HEIGHT}")
            images.append(img)
            labels.append(k - 1)
    stack = block_average(np.stack(images), factor)
    max_k = subjects[-1][0]
    source = (f"AT&T faces {split} split from {root} ({len(subjects)} subjects{chosen}, images "
              f"{numbers.start}..{numbers.stop - 1} of each)")
    log.debug("loaded %d AT&T face images: %s", stack.shape[0], source)
    return StaticDataset(images=stack, labels=np.asarray(labels, dtype=np.int64),
                         classes=tuple(f"s{k}" for k in range(1, max_k + 1)), source=source)
