"""Small file helpers shared by every writer: atomic writes, hashing, safe HDF5 opening."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

import h5py

from .errors import BrainleaksError, InputError, ModelFileError, OutputError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------------
# the one way the toolkit opens a file it reads
# ------------------------------------------------------------------------------------------------------------

def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _inside(real: str, directory: str | os.PathLike) -> bool:
    base = os.path.realpath(directory)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


@contextlib.contextmanager
def _checked(path: str | os.PathLike, what: str, error: type[BrainleaksError], max_bytes: int | None = None,
             within: str | os.PathLike | None = None) -> Iterator[str]:
    """Check ``path`` and yield a name that opens exactly the file checked, for the duration of the block.

    The file is opened with ``O_PATH`` (Linux): that follows symbolic links but opens nothing (no FIFO blocks,
    no device driver is called) and pins the inode; its type, real location and size come from ``fstat`` of
    that descriptor, and ``/proc/self/fd/N`` (the name yielded) reopens that very inode. There is no window
    between the check and the open for another file to take the name's place. Without ``O_PATH`` the file is
    opened non-blocking instead (a FIFO opens at once) and the same checks are made on that descriptor.
    """
    shown = os.fspath(path)
    proc = hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd")
    flags = (os.O_PATH if proc else os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{what} not found: {shown}") from None
    except (OSError, ValueError) as e:  # no permission, a name too long or with a NUL byte, a link loop
        raise error(f"{shown}: cannot read the {what} ({getattr(e, 'strerror', None) or e})") from None
    try:
        st = os.fstat(fd)
        real = os.readlink(f"/proc/self/fd/{fd}") if proc else os.path.realpath(path)
        at = f": {real}" if real != os.path.abspath(shown) else ""
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{shown}: the {what} is not a regular file ({_kind(st.st_mode)}{at})")
        if within is not None and not _inside(real, within):
            raise error(f"{shown}: the {what} is a link to {real}, outside {within}")
        if max_bytes is not None and st.st_size > max_bytes:
            raise error(f"{shown}: the {what} is larger than the {max_bytes:,}-byte limit ({st.st_size:,} bytes)")
        yield f"/proc/self/fd/{fd}" if proc else shown
    finally:
        os.close(fd)


def open_guarded(path: str | os.PathLike, what: str, error: type[BrainleaksError], *, max_bytes: int | None = None,
                 within: str | os.PathLike | None = None):
    """Open ``path`` for reading (binary), as every reader of the toolkit does; raise ``error`` naming the file
    (``what`` says what it is meant to be) unless it is a regular file (after symbolic links: no FIFO, which
    blocks a reader forever, no device such as ``/dev/zero``, which never ends, no directory or socket), of at
    most ``max_bytes`` bytes when given, and, when ``within`` is given, inside that directory once its links are
    resolved (a run or sweep directory's own files). The checks are made on the file actually opened
    (:func:`_checked`). A reader that reads to the end must still stop at ``max_bytes`` + 1 bytes (a file can
    grow, and /proc files report size 0): :func:`read_bytes_guarded` does."""
    with _checked(path, what, error, max_bytes, within) as name:
        try:
            return open(name, "rb")
        except OSError as e:
            raise error(f"{os.fspath(path)}: cannot read the {what} ({e.strerror or e})") from None


def read_bytes_guarded(path: str | os.PathLike, what: str, max_bytes: int, error: type[BrainleaksError],
                       within: str | os.PathLike | None = None) -> bytes:
    """The content of ``path``, read through :func:`open_guarded`: at most ``max_bytes`` bytes, else ``error``
    ("larger than the N-byte limit") naming the file."""
    with open_guarded(path, what, error, max_bytes=max_bytes, within=within) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"{os.fspath(path)}: cannot read the {what} ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise error(f"{os.fspath(path)}: the {what} is larger than the {max_bytes:,}-byte limit")
    return data


def check_regular_file(path: str | os.PathLike, error: type[BrainleaksError], what: str = "file") -> None:
    """Raise ``error`` naming ``path`` unless it is a regular file (after symlinks). Only a check: a reader
    opens the file with :func:`open_guarded`, which makes this check on the file it opens."""
    with _checked(path, what, error):
        pass


def sha256_file(path: str | os.PathLike, what: str = "file", error: type[BrainleaksError] = InputError) -> str:
    """Hex sha256 of a file's bytes (opened with :func:`open_guarded`: a FIFO or device is ``error``)."""
    h = hashlib.sha256()
    with open_guarded(path, what, error) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp")
_LEGACY_TEMP_AGE = 3600  # temporary files of older versions carry no pid: removed when this old


def sweep_stale_temps(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files that writers killed mid-save left in ``directory`` (only those of
    ``name`` if given); returns what was removed.

    :func:`atomic_path` names its temporary file ``.<name>.<pid>.<random>.tmp``: one whose writer no longer
    runs is stale. (Older versions wrote ``.<name>.<random>.tmp``; those are removed once an hour old.)
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for e in entries:
        if not (e.name.startswith(".") and e.name.endswith(".tmp")):
            continue
        if name is not None and not e.name.startswith(f".{name}."):
            continue
        m = _TEMP.fullmatch(e.name)
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            if m and (name is None or m["name"] == name):
                stale = not _pid_alive(int(m["pid"]))
            else:
                stale = time.time() - e.stat(follow_symlinks=False).st_mtime > _LEGACY_TEMP_AGE
            if stale:
                os.unlink(e.path)
                removed.append(Path(e.path))
                log.info("removed a stale temporary file of a killed run: %s", e.path)
        except (OSError, ValueError):
            continue
    return removed


def _write_error(path: Path, e: BaseException) -> OutputError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    m = re.search(r"errno = (\d+)", reason)
    if m:  # h5py's message about the write libhdf5 failed: the OS's reason is all that matters
        reason = os.strerror(int(m.group(1)))
    return OutputError(f"cannot write {path}: {reason} (nothing was written; a previous file there is unchanged)")


def _is_io_error(e: BaseException) -> bool:
    """An OS refusal while writing: OSError, or h5py's RuntimeError wrapping one (``errno = 28`` etc.)."""
    return isinstance(e, OSError) or (isinstance(e, RuntimeError) and "errno =" in str(e))


# temporary files of writes in progress in this process (removed by interrupts.finish when an interrupted
# process has to end without unwinding its stack)
_ACTIVE_TEMPS: set[Path] = set()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and an existing
    file at ``path`` is left untouched. What the OS refuses (no such directory, not writable, disk full,
    read-only file system) becomes ``OutputError`` naming ``path``. Temporary files that killed writers
    left beside ``path`` are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _write_error(path, e) from None
    tmp = Path(tmp)
    _ACTIVE_TEMPS.add(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory", str(path))
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _is_io_error(e) and not isinstance(e, BrainleaksError):
            raise _write_error(path, e) from None
        raise
    finally:
        _ACTIVE_TEMPS.discard(tmp)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """A new HDF5 file, built in memory and written to ``path`` atomically (:func:`atomic_path`) when the block
    ends without error.

    Building the file in memory keeps libhdf5 away from the disk: a disk that fills up (or a size limit)
    makes a plain ``write`` fail with an ``OSError`` naming ``path``, where libhdf5 would fail inside its
    finalizers (tracebacks nobody can catch, then a crash at exit).
    """
    import io

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        yield f
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# What h5py and numpy raise on corrupt files: damaged B-trees and heaps (RuntimeError, OSError), objects
# of the wrong kind or dtype (KeyError, TypeError, ValueError, IndexError), absurd sizes (OverflowError,
# MemoryError).
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, OverflowError, MemoryError)


MASK64 = (1 << 64) - 1


def _hdf5_trap(path: Path) -> str | None:
    """Find corruption on which libhdf5 itself never returns, before handing it the file.

    A global heap collection (``GCOL``: where variable-length strings such as our JSON attributes live)
    whose free-space object has size 0 makes libhdf5 (2.0.0) loop forever in its heap parser when an
    attribute stored there is read (found by tests/reliability/test_fuzz.py: one zeroed run of bytes).
    This walks every collection as libhdf5 does and reports the ones it would not get through. It
    only rejects what would hang; any other damage is left to libhdf5's own checks.
    """
    import mmap
    import struct

    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return None
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
                n = len(m)
                at = m.find(b"GCOL")
                while at >= 0:
                    if at + 16 <= n and m[at + 4] == 1:  # version 1, then 3 reserved bytes and the size
                        size = struct.unpack_from("<Q", m, at + 8)[0]
                        p, end = at + 16, min(at + size, n)
                        while p + 16 <= end:  # object headers: index, refcount, reserved, size
                            idx, _, _, osize = struct.unpack_from("<HHIQ", m, p)
                            # libhdf5's step, in its 64-bit unsigned arithmetic (a huge size wraps around)
                            need = (16 + ((osize + 7) & ~7 & MASK64)) & MASK64 if idx > 0 else osize
                            if need == 0 or need >= 1 << 63:
                                return (f"global heap collection at byte {at}: object size {osize} at byte {p} "
                                        f"stops the heap parser")
                            p += need
                    at = m.find(b"GCOL", at + 4)
    except (OSError, ValueError, OverflowError):
        return None  # unreadable: h5py reports it
    return None


# names under which open_h5 has files open ("/proc/self/fd/N") -> the path the user gave, for messages
_SHOWN: dict[str, str] = {}


def shown_name(f: h5py.File) -> str:
    """The path a file opened by :func:`open_h5` was given as (h5py knows only the name it was opened by)."""
    return _SHOWN.get(f.filename, f.filename)


def _h5_open_problem(path: Path, e: BaseException) -> str:
    text = " ".join(str(e).split())
    if "unable to lock file" in text or getattr(e, "errno", None) == 11 or "errno = 11" in text:
        return (f"{path} is locked by another process (HDF5 file locking); wait for it to finish or set "
                f"HDF5_USE_FILE_LOCKING=FALSE")
    return f"{path}: not a readable HDF5 file (truncated or corrupt?): {text}"


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, what: str = "HDF5 file") -> Iterator[h5py.File]:
    """Open an HDF5 file read-only, turning every low-level failure into ``ModelFileError``.

    The file passes the checks of :func:`open_guarded` (a regular file, made on the file libhdf5 then opens);
    a file another process holds open for writing is reported as locked. Before any data is read,
    :func:`check_self_contained` refuses links and storage outside the file and a file whose datasets declare
    more than :data:`MAX_FILE_DATA_BYTES` in total. Failures while the file is read inside the ``with`` block
    (a corrupt B-tree met while looking a key up, a dataset of the wrong kind, ...) become ``ModelFileError``
    naming the file too; the toolkit's own ``BrainleaksError`` pass through unchanged.
    """
    path = Path(path)
    with _checked(path, what, ModelFileError) as name:
        problem = _hdf5_trap(name)
        if problem:
            raise ModelFileError(f"{path}: corrupt HDF5 file ({problem})")
        try:
            f = h5py.File(name, "r")
        except (OSError, RuntimeError, ValueError) as e:
            raise ModelFileError(_h5_open_problem(path, e)) from None
        _SHOWN[name] = str(path)
        try:
            check_self_contained(f, path)
            yield f
        except BrainleaksError:
            raise
        except H5_ERRORS as e:
            raise ModelFileError(f"{path}: corrupt {what} ({type(e).__name__}: {e})") from None
        finally:
            _SHOWN.pop(name, None)
            try:
                f.close()
            except H5_ERRORS:  # closing a damaged file can fail too; there is nothing left to save
                pass


MAX_LINKS = 100_000  # far beyond any file the toolkit writes (a NetX file holds ~20 links per layer)
# Data all the datasets of one HDF5 file may declare (shape x item size, summed before any is read). Each dataset
# is capped at MAX_ARRAY_BYTES, but a small file of many compressed datasets can declare many times that. The
# shipped files hold < 40 MB; the largest file the toolkit writes, a training checkpoint (weights and two Adam
# moments) of a 784-100,000-10 target (the largest 'hidden' a config allows), holds ~1 GB.
MAX_FILE_DATA_BYTES = 2 << 30


def check_self_contained(f: h5py.File, path: str | os.PathLike) -> None:
    """Refuse an HDF5 file that points at anything outside itself, before any data is read.

    HDF5 can make a name in a file stand for data elsewhere: an *external link* (another file's object),
    a dataset with *external storage* (its bytes live in raw files, e.g. ``/etc/shadow`` or a FIFO that
    blocks the reader forever) or a *virtual dataset* (mapped from other files). libhdf5 follows all of
    them when the data is read. The toolkit reads only the file it was given: every link must be a hard
    link (soft links, which the toolkit never writes, are refused too: one could route through an
    external link) and every dataset must be stored inside the file. Only link and creation-property
    metadata is looked at here; opening a dataset does not open its external files (checked with a FIFO
    in tests/reliability/test_self_contained.py).
    """
    found: list = []

    def visit(name: bytes, info):
        found.append((name, info.type))
        return True if len(found) > MAX_LINKS else None  # a non-None value stops the walk

    f.id.links.visit(visit, info=True)
    if len(found) > MAX_LINKS:
        raise ModelFileError(f"{path}: more than {MAX_LINKS} links; not a file the toolkit writes")
    kinds = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link (to another file)"}
    total = 0
    for name, kind in found:
        shown = name.decode("utf-8", "replace")
        if kind != h5py.h5l.TYPE_HARD:
            raise ModelFileError(f"{path}: '{shown}' is {kinds.get(kind, f'a link of type {kind}')}; the toolkit "
                                 f"reads only objects stored in the file it is given")
        oid = h5py.h5o.open(f.id, name)  # the object header only: no data, no other file
        if isinstance(oid, h5py.h5d.DatasetID):
            dcpl = oid.get_create_plist()
            if dcpl.get_layout() == h5py.h5d.VIRTUAL:
                raise ModelFileError(f"{path}: dataset '{shown}' is a virtual dataset (its data is mapped from "
                                     f"other files); the toolkit reads only data stored in the file it is given")
            if dcpl.get_external_count() > 0:
                target = dcpl.get_external(0)[0]
                target = target.decode("utf-8", "replace") if isinstance(target, bytes) else str(target)
                raise ModelFileError(f"{path}: dataset '{shown}' has external storage (its data lives in "
                                     f"'{target}'); the toolkit reads only data stored in the file it is given")
            total += max(oid.get_space().get_simple_extent_npoints(), 0) * oid.get_type().get_size()
    if total > MAX_FILE_DATA_BYTES:
        raise ModelFileError(f"{path}: its datasets declare {total:,} bytes of data in total, more than the "
                             f"{MAX_FILE_DATA_BYTES:,}-byte limit of a file the toolkit reads")


# Largest array a reader loads from an untrusted file. A few bytes of a corrupt (or hostile) file can
# declare a compressed dataset of terabytes; the shipped models hold ~2.4 M weights (19 MB).
MAX_ARRAY_ELEMENTS = 1 << 27
MAX_ARRAY_BYTES = 1 << 30
# Memory a single attribute or variable-length read may take beyond what the process already has.
VLEN_HEADROOM = 256 << 20


@contextlib.contextmanager
def bounded_memory(headroom: int = VLEN_HEADROOM) -> Iterator[None]:
    """Cap the address space at its current size + ``headroom`` for the duration of the block.

    HDF5 allocates the buffer of a variable-length string (or of an attribute) from a length stored in
    the file *before* it reads the data: one corrupt length field in a 16 kB file makes it allocate and
    touch 4 GB (measured: ~10 s, 4.6 GB RSS) before failing. Under this cap the allocation fails at once
    and the read raises, which the readers turn into ``ModelFileError``. Only used around small reads of
    untrusted files; a no-op where ``resource`` or /proc is unavailable.
    """
    try:
        import resource

        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = vm + headroom
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft != resource.RLIM_INFINITY and soft <= cap:
            cap = None  # already at least as strict
    except (ImportError, OSError, ValueError):
        cap = None
    if cap is None:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# The HDF5 type classes the toolkit writes (and reads). A corrupt datatype message can turn a string
# into, say, a variable-length sequence whose conversion crashes libhdf5 (segmentation fault, found by
# tests/reliability/test_fuzz.py), so anything else is refused before its data is converted.
_ATTR_CLASSES = (h5py.h5t.INTEGER, h5py.h5t.FLOAT, h5py.h5t.STRING)
_DATASET_CLASSES = _ATTR_CLASSES + (h5py.h5t.ENUM,)  # h5py stores numpy booleans as an enum


def read_attr(obj, key: str, default=None):
    """``obj.attrs.get(key, default)`` of an untrusted file: a number or text, with the allocation bounded."""
    if key not in obj.attrs:
        return default
    cls = obj.attrs.get_id(key).get_type().get_class()
    if cls not in _ATTR_CLASSES:
        raise ModelFileError(f"{shown_name(obj.file)}: attribute '{key}' of {obj.name} is of HDF5 type class "
                             f"{cls}, not a number or text")
    with bounded_memory():
        return obj.attrs[key]


def read_dataset(obj, where: str, max_elements: int = MAX_ARRAY_ELEMENTS):
    """The content of an HDF5 dataset as a numpy array, checked to be a dataset of sane size first.

    ``where`` names the dataset in error messages (``ModelFileError``).
    """
    import numpy as np

    check_dataset(obj, where, max_elements)
    vlen = obj.dtype.kind == "O" or h5py.check_vlen_dtype(obj.dtype) is not None
    # variable-length elements: their lengths come from the file, so the allocation is bounded
    with bounded_memory() if vlen else contextlib.nullcontext():
        return np.asarray(obj[()])


def check_dataset(obj, where: str, max_elements: int = MAX_ARRAY_ELEMENTS) -> None:
    """Raise ``ModelFileError`` unless ``obj`` is a dataset of numbers or text of sane size (metadata only)."""
    if not isinstance(obj, h5py.Dataset):
        raise ModelFileError(f"{where}: expected a dataset, found a {type(obj).__name__}")
    cls = obj.id.get_type().get_class()
    if cls not in _DATASET_CLASSES:
        raise ModelFileError(f"{where}: dataset of HDF5 type class {cls} ({obj.dtype}), expected numbers or text")
    if cls == h5py.h5t.ENUM and obj.id.get_type().get_super().get_class() != h5py.h5t.INTEGER:
        raise ModelFileError(f"{where}: enum dataset of a non-integer base type")
    size = obj.size
    if size is None or size > max_elements or size * obj.dtype.itemsize > MAX_ARRAY_BYTES:
        raise ModelFileError(f"{where}: dataset of shape {obj.shape} and dtype {obj.dtype} is larger than any "
                             f"file the toolkit writes (limit {max_elements} elements)")
