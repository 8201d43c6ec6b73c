"""The one reader of user-given labelled examples: an ``.npz`` file with arrays ``images`` and ``labels``.

``brainleaks audit --members/--non-members`` and ``brainleaks mia --members/--non-members`` both read their
member and non-member sets with :func:`read_labelled_npz`. The file is never unpickled, its size on disk is
bounded before it is opened, and each array's header (dtype, shape) is checked before its data is read, so a
hostile file cannot make the reader allocate more than its limits.
"""
from __future__ import annotations

import math
import zipfile

import numpy as np

from ..errors import InputError

EXPECTED = ("expected an .npz file with arrays 'images' (N, ...; uint8 grey levels, or intensities in [0, 1]) and "
            "'labels' (N,; class indices)")


def _header(z, key: str, where: str, max_elements: int) -> tuple[tuple, np.dtype]:
    """Shape and dtype of array ``key`` of an open ``.npz``, read from its header alone, after the checks."""
    fmt = np.lib.format
    if f"{key}.npy" not in z.zip.namelist():
        raise InputError(f"{where}: no array '{key}' (it has {', '.join(repr(k) for k in z.files[:10]) or 'none'}); "
                         f"{EXPECTED}")
    with z.zip.open(f"{key}.npy") as fp:
        try:
            version = fmt.read_magic(fp)
            shape, _, dtype = fmt.read_array_header_1_0(fp) if version == (1, 0) else fmt.read_array_header_2_0(fp)
        except (ValueError, OSError, EOFError) as e:
            raise InputError(f"{where}: array '{key}' is unreadable ({e}); {EXPECTED}") from None
    if dtype.hasobject:
        raise InputError(f"{where}: array '{key}' holds pickled Python objects (dtype {dtype}), which are never "
                         f"loaded; it must hold numbers")
    if dtype.names is not None or dtype.kind not in "biuf":
        raise InputError(f"{where}: array '{key}' must hold numbers, got dtype {dtype}")
    if math.prod(shape) > max_elements:
        raise InputError(f"{where}: array '{key}' of shape {shape} is larger than the {max_elements:,} values allowed")
    return shape, dtype


def read_labelled_npz(path, option: str, *, max_bytes: int, max_images: int, max_values_per_image: int,
                      max_values: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, ...) as float32 in [0, 1] and labels (N,) as int64 from ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.npz`` archive with ``images`` (N, ...): uint8 grey levels (divided by 255) or numbers in [0, 1],
        and ``labels`` (N,): integers (or floats with integral values).
    option : str
        How the user named the file (e.g. ``"--members"``); every error message starts with it and the path.
    max_bytes : int
        The largest file accepted on disk.
    max_images, max_values_per_image, max_values : int
        Bounds on N, on the values of one image and on the values of all images, checked on the arrays' headers
        before they are read.

    Raises
    ------
    InputError
        For anything else: not a zip archive, a missing array, pickled objects, non-numbers, NaN, values
        outside [0, 1], a shape that does not match, too many images or values.
    """
    from ..fileio import open_guarded
    from ..safety import check_memory

    where = f"{option} {path}"
    with open_guarded(path, f"{option} file", InputError, max_bytes=max_bytes) as f:
        if f.read(4) != b"PK\x03\x04":  # what np.load cannot read as .npz it would take for a pickle
            raise InputError(f"{where}: not an .npz archive (a zip file of .npy arrays); {EXPECTED}")
        f.seek(0)
        try:
            z = np.load(f, allow_pickle=False)
            with z:
                lshape, _ = _header(z, "labels", where, max_images)
                if len(lshape) != 1 or lshape[0] == 0:
                    raise InputError(f"{where}: 'labels' must be a non-empty vector, got shape {lshape}; {EXPECTED}")
                ishape, _ = _header(z, "images", where, min(lshape[0] * max_values_per_image, max_values))
                if len(ishape) < 2 or ishape[0] != lshape[0] or min(ishape[1:]) < 1:
                    raise InputError(f"{where}: 'images' has shape {ishape} for {lshape[0]} labels; {EXPECTED}, "
                                     "one label per image")
                check_memory(4.0 * math.prod(ishape), f"the images of {where}")
                labels, images = np.asarray(z["labels"]), np.asarray(z["images"])
        except InputError:
            raise
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, MemoryError) as e:
            if "pickle" in str(e):
                raise InputError(f"{where}: holds pickled Python objects, which are never loaded; {EXPECTED}") from None
            raise InputError(f"{where}: not a readable .npz file ({type(e).__name__}: {e}); {EXPECTED}") from None
    if labels.dtype.kind == "f" and not (np.isfinite(labels).all() and np.all(labels == np.round(labels))):
        raise InputError(f"{where}: 'labels' must be integer class indices")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / np.float32(255.0)
    else:
        images = images.astype(np.float32)
        if not np.isfinite(images).all():
            raise InputError(f"{where}: 'images' hold NaN or infinite values")
        lo, hi = float(images.min()), float(images.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(f"{where}: 'images' holds values outside [0, 1] (from {lo:g} to {hi:g}); expected "
                             "intensities in [0, 1] (uint8 grey levels, or 8-bit values divided by 255)")
    return images, labels.astype(np.int64)
