"""Checks made before a command starts work: the paths it will write, and the metadata it will trust.

Outputs (:func:`check_outputs`): every path a command writes must not be one of its inputs (same resolved
path or same inode: ``attack --out`` equal to ``--model`` would destroy the model), must not be an existing
directory or a special file, and must lie in a directory this process can create files in (probed by
creating and removing a file, which also sees read-only file systems). Each failure is an ``OutputError``
naming the option and the path, raised before any expensive stage.

Metadata (:func:`check_model_metadata`, :func:`check_memory`): fields read from files get a type and a bound
before they size anything.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

from .errors import ModelFileError, OutputError

log = logging.getLogger(__name__)


def same_file(a: Path, b: Path) -> bool:
    """The same path once resolved, or the same inode (a hard link)."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, ValueError, RuntimeError):
        return False


def _companions(path: Path) -> list[Path]:
    """A ``.net`` file comes with its JSON sidecar (read and written together)."""
    return [path, path.with_suffix(".json")] if path.suffix == ".net" else [path]


def _nearest_existing(path: Path) -> Path:
    p = path
    while True:
        try:
            if p.exists() or p.is_symlink():
                return p
        except (OSError, ValueError):
            pass
        if p.parent == p:
            return p
        p = p.parent


def check_writable_dir(directory: Path, label: str, shown: Path) -> None:
    """``directory`` (or, if it does not exist yet, its nearest existing ancestor) is a directory this process
    can create files in. Probed by creating and removing a file: permission bits say nothing for root, and
    only a write sees a read-only file system."""
    base = _nearest_existing(directory)
    if not base.is_dir():
        raise OutputError(f"{label} {shown}: {base} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".brainleaks-probe.{os.getpid()}.", suffix=".tmp", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{label} {shown}: cannot create files in {base} ({e.strerror or e})") from None


def check_outputs(outputs: list[tuple[str, str | os.PathLike]], inputs: list[tuple[str, str | os.PathLike]]) -> None:
    """Raise ``OutputError`` unless every ``(label, path)`` of ``outputs`` can be written without harm.

    ``inputs`` are the ``(label, path)`` the command reads (a ``.net`` input brings its sidecar).
    """
    ins = [(label, Path(p), q) for label, p in inputs if p is not None for q in _companions(Path(p))]
    for label, p in outputs:
        if p is None:
            continue
        path = Path(p)
        if str(p) == "" or path.name in ("", ".", ".."):
            raise OutputError(f"{label}: {str(p)!r} is not a file name")
        for out in _companions(path):
            for in_label, orig, q in ins:
                if same_file(out, q):
                    mine = "" if out == path else f" (its sidecar {out.name})"
                    theirs = "" if q == orig else f" (its sidecar {q.name})"
                    raise OutputError(f"{label} {path}{mine} is also the input {in_label} {orig}{theirs}: writing "
                                      f"it would destroy the input; choose another output path")
            try:
                is_dir, exists = out.is_dir(), out.exists()
                regular = out.is_file()
            except (OSError, ValueError) as e:
                raise OutputError(f"{label} {out}: unusable path ({e})") from None
            if is_dir:
                raise OutputError(f"{label} {out} is an existing directory; give a file path")
            if exists and not regular:
                raise OutputError(f"{label} {out} exists and is not a regular file (a device, FIFO or socket)")
        check_writable_dir(path.parent, label, path)


def check_output_dir(label: str, directory: str | os.PathLike, inputs: list[tuple[str, str | os.PathLike]] = ()) -> None:
    """A directory a command writes into (``run --out``): not an existing file, creatable, not an input."""
    d = Path(directory)
    try:
        is_file = d.exists() and not d.is_dir()
    except (OSError, ValueError) as e:
        raise OutputError(f"{label} {d}: unusable path ({e})") from None
    if is_file:
        raise OutputError(f"{label} {d} is an existing file, not a directory")
    for in_label, q in inputs:
        if q is not None and same_file(d, Path(q)):
            raise OutputError(f"{label} {d} is also the input {in_label}")
    check_writable_dir(d, label, d)


def inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


# ----------------------------------------------------------------------------------------------
# the paths of each CLI command
# ----------------------------------------------------------------------------------------------

# command -> (options it writes, options it reads); a value None is an option not given
COMMAND_PATHS = {
    "train": (["out"], ["data_root"]),
    "train-evaluator": (["out"], ["data_root"]),
    "attack": (["out"], ["model"]),
    "evaluate": (["json"], ["recon", "evaluator"]),
    "replay": (["json"], ["model", "recon", "twin"]),
}


def check_command_paths(command: str, args) -> None:
    """Before a command starts: its output options are safe to write (:func:`check_outputs`)."""
    if command in ("run", "demo"):
        if getattr(args, "out", None) is not None:
            ins = [("config", getattr(args, "config", None))]
            check_output_dir("--out", args.out, ins)
        return
    if command not in COMMAND_PATHS:
        return
    outs, ins = COMMAND_PATHS[command]
    flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
    check_outputs([(flag(o), getattr(args, o, None)) for o in outs], [(flag(i), getattr(args, i, None)) for i in ins])


# ----------------------------------------------------------------------------------------------
# metadata bounds
# ----------------------------------------------------------------------------------------------

MAX_TIME_STEPS = 10_000  # time steps per sample; the shipped targets and event framings use 25-100
MAX_POSTERIOR_SCALE = 1e6  # softmax scale; beyond it exp() overflows for any voltage of a trained target


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(nbytes: float, what: str) -> None:
    """Refuse (``InputError``) work whose arrays alone would need more than the memory available now."""
    from .errors import InputError

    avail = _available_memory()
    if avail is not None and nbytes > avail:
        raise InputError(f"{what} needs {nbytes / 2**30:.1f} GiB, more than the {avail / 2**30:.1f} GiB of memory "
                         f"available")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


# name -> (check, what it must be) for the metadata fields the toolkit prints or uses
_META_FIELDS = {
    "validation_accuracy": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "validation_images": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**40,
                           "a non-negative integer"),
    "dataset": (lambda v: isinstance(v, str) and len(v) <= 256, "text"),
    "data_source": (lambda v: isinstance(v, str) and len(v) <= 4096, "text"),
}


def check_model_metadata(meta: dict, where) -> None:
    """The metadata fields the toolkit prints or uses have the right type and a sane value (``ModelFileError``
    naming ``where`` and the field)."""
    for key, (ok, want) in _META_FIELDS.items():
        if key in meta and not ok(meta[key]):
            shown = repr(meta[key])
            raise ModelFileError(f"{where}: metadata field '{key}' must be {want}, got "
                                 f"{shown[:60] + '...' if len(shown) > 60 else shown}")



def check_sidecar(meta: dict, where, fmt: str) -> None:
    """A ``.net`` file's JSON sidecar: it must identify itself (``"format"``: the toolkit's), so that a JSON file
    of another tool that happens to sit beside the ``.net`` under that name is refused instead of having its
    fields silently ignored; and its fields have their type and a bound."""
    if not meta:
        return
    if meta.get("format") != fmt:
        shown = repr(meta.get("format"))[:60]
        raise ModelFileError(f"{where}: not a brainleaks sidecar (its 'format' field is {shown}, expected {fmt!r}); "
                             f"move the file away to load the .net with default settings")
    check_model_metadata(meta, where)
    spec = meta.get("spec")
    if isinstance(spec, dict):
        steps = spec.get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                  or not 0 < steps <= MAX_TIME_STEPS):
            raise ModelFileError(f"{where}: 'spec.steps' must be an integer in 1..{MAX_TIME_STEPS}, got {steps!r}")
        scale = spec.get("posterior_scale")
        if scale is not None and (not _number(scale) or not 0 < abs(scale) <= MAX_POSTERIOR_SCALE):
            raise ModelFileError(f"{where}: 'spec.posterior_scale' must be a non-zero number of magnitude at most "
                                 f"{MAX_POSTERIOR_SCALE:g}, got {scale!r}")


def check_recon_for_replay(rec, recon_path, model_paths, draws: int) -> None:
    """Before a Lava replay starts: the reconstructions fit every model file (inputs, time steps, classes) and
    the spike trains of ``draws`` draws fit in memory. Raises ``InputError`` naming both files."""
    from .errors import InputError
    from .models.files import read_sidecar
    from .netx.reader import read_network

    r, f = rec.samples.shape[:2]
    t = rec.samples.shape[2] if rec.samples.ndim == 3 else 0
    for model in model_paths:
        if model is None:
            continue
        net = read_network(model)
        n_in, n_out, settle = net.num_inputs, net.num_outputs, net.settle_steps()
        if f != n_in:
            raise InputError(f"{recon_path} does not fit {model}: {f} features but the model takes {n_in} inputs")
        steps = (read_sidecar(model).get("spec") or {}).get("steps")
        if isinstance(steps, int) and not isinstance(steps, bool) and t != steps:
            raise InputError(f"{recon_path} does not fit {model}: spike trains of {t} time steps but the model runs "
                             f"{steps} (its sidecar's 'spec.steps')")
        if not settle < t <= MAX_TIME_STEPS:
            raise InputError(f"{recon_path}: spike trains of {t} time steps; {model} needs more than its "
                             f"{settle} settle steps and at most {MAX_TIME_STEPS}")
        bad = sorted({int(c) for c in rec.targets if c >= n_out})
        if bad:
            raise InputError(f"{recon_path}: target classes {bad[:5]} do not exist in {model} (it has {n_out} "
                             f"output classes 0..{n_out - 1})")
    n = draws if rec.probabilities is not None else 1
    check_memory(4.0 * n * r * f * t * 3, f"replaying {n} draws of {recon_path}")


def check_recon_for_evaluator(rec, recon_path, ev, ev_path, draws: int) -> None:
    """Before scoring: the evaluator has every target class of the reconstructions, and the draws fit in memory."""
    from .errors import InputError

    n = len(ev.classes)
    bad = sorted({int(c) for c in rec.targets if c >= n})
    if bad:
        raise InputError(f"{recon_path}: target classes {bad[:5]} do not exist for the evaluator {ev_path} (it has "
                         f"{n} classes 0..{n - 1})")
    if ev.kind == "snn" and not 0 < int(ev.steps) <= MAX_TIME_STEPS:
        raise InputError(f"{ev_path}: evaluator time steps {ev.steps} out of range 1..{MAX_TIME_STEPS}")
    k = draws if rec.probabilities is not None else 1
    check_memory(4.0 * k * rec.samples.size * max(1, int(ev.steps) if ev.kind == "snn" else 1) * 2,
                 f"scoring {k} draws of {recon_path}")
