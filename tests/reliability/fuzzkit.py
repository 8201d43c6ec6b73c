"""Mutation strategies for fuzzing the readers (used by ``test_fuzz.py``).

A *plan* is plain data drawn by hypothesis (so it prints and shrinks well); ``apply_*`` turns a valid
file's bytes plus a plan into the bytes of the mutated file. Three kinds of plans:

- byte plans: flips, overwrites, truncation, inserted/deleted/zeroed runs on the raw bytes;
- HDF5 plans: delete a dataset/group/attribute, replace one by a value of another dtype or shape
  (NaN, inf, huge, negative, strings, empty, complex, ...), change one element, turn a dataset into a
  group, add extra keys, or make an object's data live elsewhere (an external or soft link, external
  storage, a virtual dataset: the other file is a FIFO, see ``trap()``); applied with h5py on a temporary
  copy;
- JSON plans (sidecars, JSON-valued HDF5 attributes, the TOML config as a tree): replace the value at
  a path by a random value of any type, delete a key, add a key.

Positions and choices are drawn as large integers and taken modulo the size of what they index, so
the strategies do not depend on the base files (which are built lazily, once).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import signal
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

BIG = 2**24


# ----------------------------------------------------------------------------------------------
# byte-level mutations
# ----------------------------------------------------------------------------------------------

byte_op = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, BIG), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, BIG), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, BIG)),
    st.tuples(st.just("insert"), st.integers(0, BIG), st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), st.integers(0, BIG), st.integers(1, 64)),
    st.tuples(st.just("zero"), st.integers(0, BIG), st.integers(1, 512)),
    st.tuples(st.just("ff"), st.integers(0, BIG), st.integers(1, 16)),
)
byte_plan = st.lists(byte_op, min_size=1, max_size=4).map(lambda ops: ("bytes", ops))


def apply_bytes(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op in ops:
        kind, pos = op[0], op[1]
        n = len(b)
        if kind == "insert":
            p = pos % (n + 1)
            b[p:p] = op[2]
            continue
        if n == 0:
            continue
        p = pos % n
        if kind == "flip":
            b[p] ^= 1 << op[2]
        elif kind == "set":
            b[p] = op[2]
        elif kind == "truncate":
            del b[p:]
        elif kind == "delete":
            del b[p:p + op[2]]
        elif kind == "zero":
            b[p:p + op[2]] = bytes(len(b[p:p + op[2]]))
        elif kind == "ff":
            b[p:p + op[2]] = b"\xff" * len(b[p:p + op[2]])
    return bytes(b)


# ----------------------------------------------------------------------------------------------
# values of the wrong kind
# ----------------------------------------------------------------------------------------------

SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 0.5, 1.5, -1.0, 1e30, -1e30, 1e-300, 255.0, 4097.0]
SPECIAL_INTS = [0, 1, -1, 2, 3, 7, 10, 255, 256, 4096, 4097, 2**31 - 1, -(2**31), 2**62, -(2**63)]

H5_DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64, np.float16, np.float32, np.float64,
             np.bool_, np.complex64, np.dtype("S4")]

h5_arrays = hnp.arrays(
    dtype=st.sampled_from(H5_DTYPES),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    elements=None,
)

h5_scalars = st.one_of(
    st.sampled_from(SPECIAL_INTS), st.sampled_from(SPECIAL_FLOATS), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.binary(max_size=12), st.text(max_size=12).filter(lambda s: "\x00" not in s),
)

# how to replace a dataset's / attribute's value
value_edit = st.one_of(
    st.tuples(st.just("scalar"), h5_scalars),
    st.tuples(st.just("array"), h5_arrays),
    st.tuples(st.just("cast"), st.sampled_from(H5_DTYPES)),  # same data, other dtype
    st.tuples(st.just("element"), st.integers(0, BIG), st.one_of(st.sampled_from(SPECIAL_FLOATS),
                                                                 st.sampled_from(SPECIAL_INTS))),
    st.tuples(st.just("reshape"), st.sampled_from(["flat", "transpose", "add_axis", "drop_last", "extend", "empty"])),
)

h5_op = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, BIG)),
    st.tuples(st.just("replace"), st.integers(0, BIG), value_edit),
    st.tuples(st.just("to_group"), st.integers(0, BIG)),
    st.tuples(st.just("extra_dataset"), st.integers(0, BIG), st.text("abcxyz0123_/", min_size=1, max_size=6), value_edit),
    st.tuples(st.just("extra_group"), st.integers(0, BIG), st.text("abcxyz0123_", min_size=1, max_size=6)),
    st.tuples(st.just("attr_delete"), st.integers(0, BIG)),
    st.tuples(st.just("attr_replace"), st.integers(0, BIG), value_edit),
    st.tuples(st.just("attr_extra"), st.integers(0, BIG), st.text("abcxyz_", min_size=1, max_size=6), value_edit),
    # structure: the object's data elsewhere (another file: the FIFO of ``trap()``, or inside via a soft link)
    st.tuples(st.sampled_from(["external_link", "soft_link", "external_storage", "virtual"]), st.integers(0, BIG)),
)
h5_plan = st.lists(h5_op, min_size=1, max_size=3).map(lambda ops: ("h5", ops))


def _edited_value(old, edit):
    """The new value for ``edit`` given the ``old`` one (a numpy value or array)."""
    kind = edit[0]
    if kind == "scalar":
        v = edit[1]
        return np.bytes_(v) if isinstance(v, bytes) else v
    if kind == "array":
        return edit[1]
    a = np.asarray(old)
    if kind == "cast":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # complex -> real, overflow: exactly the damage wanted
                return a.astype(edit[1])
        except (TypeError, ValueError, OverflowError):
            return np.zeros(a.shape, edit[1])
    if kind == "element":
        if a.size == 0:
            return a
        if a.dtype.kind in "SUOV":
            return a
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = a.astype(np.float64).copy() if isinstance(edit[2], float) or a.dtype.kind == "b" else a.copy()
        flat = out.reshape(-1)
        try:
            flat[edit[1] % flat.size] = edit[2]
        except (OverflowError, ValueError):
            out = a.astype(np.float64)
            out.reshape(-1)[edit[1] % a.size] = float(edit[2])
        return out
    # reshape
    how = edit[1]
    if how == "flat":
        return a.reshape(-1)
    if how == "transpose":
        return a.T
    if how == "add_axis":
        return a[None]
    if how == "drop_last":
        return a[:-1] if a.ndim else a
    if how == "extend":
        return np.concatenate([a, a[:1]]) if a.ndim and a.size else a
    return a.reshape(-1)[:0]


def _h5_index(f: h5py.File):
    objs = []
    f.visititems(lambda name, obj: objs.append(name))
    return sorted(objs)


def _h5_attr_index(f: h5py.File):
    out = [("/", k) for k in f.attrs]
    f.visititems(lambda name, obj: out.extend((name, k) for k in obj.attrs))
    return sorted(out)


def _write_value(group, key, value):
    try:
        group.create_dataset(key, data=value)
    except (TypeError, ValueError):
        group.create_dataset(key, data=np.bytes_(repr(value)[:50].encode()))


def apply_h5(path: Path, ops) -> None:
    """Apply h5 ops in place on the HDF5 file ``path``."""
    with h5py.File(path, "a") as f:
        for op in ops:
            try:
                _apply_h5_op(f, op)
            except (KeyError, ValueError, TypeError, OSError, RuntimeError):
                pass  # the op does not apply to this file (e.g. its object was deleted by an earlier op)


_TRAP: list[Path] = []


def trap() -> Path:
    """A FIFO with no writer: a reader that opens it blocks forever (the watchdog then reports a hang). The
    structural mutations point HDF5 links, external storage and virtual datasets at it."""
    if not _TRAP or not _TRAP[0].exists():
        d = Path(tempfile.mkdtemp(prefix="brainleaks-fuzz-trap-"))
        os.mkfifo(d / "trap.fifo")
        _TRAP[:] = [d / "trap.fifo"]
    return _TRAP[0]


STRUCTURAL = ("external_link", "soft_link", "external_storage", "virtual")


def _apply_structural(f: h5py.File, kind: str, name: str) -> None:
    obj = f[name]
    is_ds = isinstance(obj, h5py.Dataset)
    shape, dtype = (obj.shape, obj.dtype) if is_ds else ((2,), np.dtype("f4"))
    if dtype.kind not in "biuf":
        shape, dtype = (2,), np.dtype("f4")
    if kind == "soft_link":
        del f[name]
        f.create_dataset(name + "_target", data=np.zeros(shape or (), dtype))
        f[name] = h5py.SoftLink("/" + name + "_target")
        return
    target = str(trap())
    del f[name]
    if kind == "external_link":
        f[name] = h5py.ExternalLink(target, "/" + name)
    elif kind == "external_storage":
        f.create_dataset(name, shape=shape, dtype=dtype, external=[(target, 0, h5py.h5f.UNLIMITED)])
    else:
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(target, "/" + name, shape=shape, dtype=dtype)
        f.create_virtual_dataset(name, layout)


def points_elsewhere(path: Path) -> bool:
    """Whether the HDF5 file at ``path`` has a soft or external link, external storage or a virtual dataset
    (looked up through link and property metadata only: no data read, no other file opened)."""
    try:
        with h5py.File(path, "r") as f:
            found = []
            f.id.links.visit(lambda name, info: found.append((name, info.type)) and None, info=True)
            for name, kind in found:
                if kind != h5py.h5l.TYPE_HARD:
                    return True
                oid = h5py.h5o.open(f.id, name)
                if isinstance(oid, h5py.h5d.DatasetID):
                    dcpl = oid.get_create_plist()
                    if dcpl.get_layout() == h5py.h5d.VIRTUAL or dcpl.get_external_count() > 0:
                        return True
    except Exception:  # an unreadable file points nowhere (and is refused anyway)
        return False
    return False


def _apply_h5_op(f: h5py.File, op) -> None:
    kind, idx = op[0], op[1]
    if kind in STRUCTURAL:
        names = _h5_index(f)
        if names:
            _apply_structural(f, kind, names[idx % len(names)])
        return
    if kind.startswith("attr"):
        attrs = _h5_attr_index(f)
        holders = ["/"] + _h5_index(f)
        if kind == "attr_extra":
            holder = f[holders[idx % len(holders)]]
            _set_attr(holder.attrs, op[2], _edited_value(np.zeros(3), op[3]))
            return
        if not attrs:
            return
        obj_name, key = attrs[idx % len(attrs)]
        holder = f[obj_name]
        if kind == "attr_delete":
            del holder.attrs[key]
        else:
            _set_attr(holder.attrs, key, _edited_value(holder.attrs[key], op[2]))
        return
    names = _h5_index(f)
    if kind == "extra_group":
        groups = ["/"] + [n for n in names if isinstance(f[n], h5py.Group)]
        g = f[groups[idx % len(groups)]]
        if op[2] not in g:
            g.create_group(op[2])
        return
    if kind == "extra_dataset":
        groups = ["/"] + [n for n in names if isinstance(f[n], h5py.Group)]
        g = f[groups[idx % len(groups)]]
        key = op[2].strip("/") or "x"
        if key not in g:
            try:
                _write_value(g, key, _edited_value(np.zeros(3), op[3]))
            except (ValueError, KeyError):  # e.g. an intermediate name that is a dataset
                pass
        return
    if not names:
        return
    name = names[idx % len(names)]
    if kind == "delete":
        del f[name]
    elif kind == "to_group":
        del f[name]
        f.create_group(name)
    elif kind == "replace":
        obj = f[name]
        old = _stored_value(obj)
        new = _edited_value(old, op[2])
        del f[name]
        _write_value(f, name, new)


def _stored_value(obj):
    """A dataset's value, or zeros of its shape when its data lives in another file (the trap FIFO: reading it
    would block the fuzzer itself); zeros(2) for a group."""
    if not isinstance(obj, h5py.Dataset):
        return np.zeros(2)
    dcpl = obj.id.get_create_plist()
    if dcpl.get_layout() == h5py.h5d.VIRTUAL or dcpl.get_external_count() > 0:
        return np.zeros(obj.shape, obj.dtype)
    return obj[()]


def _set_attr(attrs, key, value):
    try:
        attrs[key] = value
    except (TypeError, ValueError):
        attrs[key] = np.bytes_(repr(value)[:50].encode())


# ----------------------------------------------------------------------------------------------
# JSON / TOML trees
# ----------------------------------------------------------------------------------------------

KNOWN_KEYS = ["spec", "neuron", "steps", "sizes", "posterior_scale", "readout", "threshold", "current_decay",
              "voltage_decay", "tau_grad", "scale_grad", "architecture", "kind", "classes", "input_shape",
              "name", "seed", "threads", "root", "downsample", "arch", "model", "train", "hidden", "epochs",
              "lr", "batch_size", "method", "mode", "target", "evaluator", "params", "iterations", "population",
              "draws", "enabled", "accuracy", "stop_confidence", "eta", "xi", "format", "net_sha256"]

json_leaves = st.one_of(
    st.none(), st.booleans(), st.sampled_from(SPECIAL_INTS), st.integers(), st.sampled_from(SPECIAL_FLOATS),
    st.floats(), st.text(max_size=10), st.sampled_from(["spikes", "voltage", "membrane", "snn", "ann", "bl1", "bl2", "miface",
                                                        "paper", "reference", "mnist", "att-faces", "..", "../x",
                                                        "/etc/passwd", "", "a/b", "CUBA", "dense", "\x00"]),
)
json_values = st.recursive(
    json_leaves,
    lambda c: st.one_of(st.lists(c, max_size=4),
                        st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6)), c, max_size=4)),
    max_leaves=8,
)

toml_leaves = st.one_of(
    st.booleans(), st.sampled_from(SPECIAL_INTS), st.integers(-(2**63), 2**63 - 1), st.sampled_from(SPECIAL_FLOATS),
    st.floats(), st.text(max_size=10),
    st.sampled_from(["spikes", "snn", "ann", "bl1", "bl2", "miface", "paper", "reference", "mnist", "att-faces",
                     "..", "../x", "../../escaped", "/etc", "/nonexistent/x", "", "a/b", "good.net", "eval.h5",
                     "x" * 300, "a\x00b"]),
    st.datetimes(min_value=_dt.datetime(1, 1, 1), max_value=_dt.datetime(9999, 12, 31)), st.dates(), st.times(),
)
toml_values = st.recursive(
    toml_leaves,
    lambda c: st.one_of(st.lists(c, max_size=4),
                        st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6)), c, max_size=4)),
    max_leaves=8,
)


def tree_paths(tree, prefix=()):
    """Every path (tuple of keys / indices) into a JSON-like tree, the root included."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += tree_paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += tree_paths(v, prefix + (i,))
    return out


def tree_plan(values):
    op = st.one_of(
        st.tuples(st.just("replace"), st.integers(0, BIG), values),
        st.tuples(st.just("delete"), st.integers(0, BIG)),
        st.tuples(st.just("add"), st.integers(0, BIG), st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6)), values),
    )
    return st.lists(op, min_size=1, max_size=3)


def apply_tree(tree, ops):
    """A mutated deep copy of ``tree``."""
    tree = json.loads(json.dumps(tree, default=str)) if not _has_dates(tree) else _copy(tree)
    for op in ops:
        paths = tree_paths(tree)
        path = paths[op[1] % len(paths)]
        if op[0] == "replace":
            if not path:
                tree = op[2]
                continue
            _parent(tree, path)[path[-1]] = op[2]
        elif op[0] == "delete":
            if path:
                parent = _parent(tree, path)
                del parent[path[-1]]
        else:
            node = tree
            for k in path:
                node = node[k]
            if isinstance(node, dict):
                node[op[2]] = op[3]
            elif isinstance(node, list):
                node.append(op[3])
    return tree


def _has_dates(tree):
    if isinstance(tree, dict):
        return any(_has_dates(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_has_dates(v) for v in tree)
    return isinstance(tree, (_dt.date, _dt.time))


def _copy(tree):
    if isinstance(tree, dict):
        return {k: _copy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_copy(v) for v in tree]
    return tree


def _parent(tree, path):
    node = tree
    for k in path[:-1]:
        node = node[k]
    return node


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_str(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    return _toml_str(str(v))


def to_toml(tree) -> str:
    """A TOML document for a dict tree (every table inline; a non-dict root becomes ``value = ...``)."""
    if not isinstance(tree, dict):
        tree = {"value": tree}
    return "".join(f"{_toml_str(str(k))} = {toml_value(v)}\n" for k, v in tree.items())


# ----------------------------------------------------------------------------------------------
# running one example
# ----------------------------------------------------------------------------------------------

class ExampleHang(BaseException):
    """Raised by the watchdog: a reader took far longer than any example should (a hang)."""


@contextlib.contextmanager
def watchdog(seconds: float):
    """Raise ``ExampleHang`` in the main thread if the block runs longer than ``seconds``."""
    def fire(signum, frame):
        raise ExampleHang(f"example still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Scratch:
    """A private temporary directory for the examples (``tmp_path`` cannot be used with ``@given``)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="brainleaks-fuzz-"))

    def path(self, name: str) -> Path:
        return self.dir / name

    def put(self, name: str, data: bytes) -> Path:
        p = self.dir / name
        with open(p, "wb") as f:
            f.write(data)
        return p

    def cleanup(self):
        for p in sorted(self.dir.rglob("*"), reverse=True):
            (p.rmdir if p.is_dir() else p.unlink)()
        os.rmdir(self.dir)
