"""Checks made before a command starts work: the paths it will write, and the metadata it will trust.

Outputs (:func:`check_outputs`): every path a command writes must not be one of its inputs (same resolved
path or same inode: ``attack --out`` equal to ``--model`` would destroy the model), must not be an existing
directory or a special file, and must lie in a directory this process can create files in (probed by
creating and removing a file, which also sees read-only file systems). Each failure is an ``OutputError``
naming the option and the path, raised before any expensive stage. Output directories (``audit``, ``run``,
``sweep``: :func:`claim_output_dir`) carry a marker of the command that wrote them; only such a directory, holding
nothing else, is ever replaced.

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


def inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


# ----------------------------------------------------------------------------------------------
# output directories: which one a command may write into, and what --force may replace
# ----------------------------------------------------------------------------------------------

# command -> (what its output directory holds: patterns of paths relative to it, where ``*`` also crosses folders;
# the files that identify a directory it wrote before markers existed; whether --force replaces the directory)
OUTPUT_DIRS = {
    "audit": (("report.md", "audit.json", "best.png", "recon", "recon/*.h5", "recon/*.png"), ("audit.json", "report.md"), True),
    "run": (("state.json", "last_run.json", "report.md", "metrics.json", "results.csv", "*.png", "*.gif", "models",
             "models/*", "attacks", "attacks/*", "evaluation", "evaluation/*", "replay", "replay/*"), ("state.json",),
            False),
    "sweep": (("evaluator", "evaluator/*", "targets", "targets/*", "cells", "cells/*", "superseded", "superseded/*",
               "results.csv", "results.json", "report.md", "leakage_*.png", "mia_auc.png", "last_sweep.json"),
              ("cells", "targets"), False),
    # membership inference: the report (mia.json written last), the shadow models it reuses, the report's staging
    # directory while it is written (``.report-<pid>.tmp``)
    "mia": (("report.md", "mia.json", "scores.csv", "roc.png", "shadows", "shadows/*", ".*.tmp/*"),
            ("mia.json", "shadows"), False),
}


def marker_path(directory: str | os.PathLike, command: str) -> Path:
    """The file that says ``directory`` was written by ``brainleaks <command>`` (``.brainleaks-<command>``)."""
    return Path(directory) / f".brainleaks-{command}"


def write_marker(directory: str | os.PathLike, command: str) -> None:
    """Mark ``directory`` as written by ``brainleaks <command>`` (small JSON: command and toolkit version)."""
    from . import __version__
    from .fileio import write_json_atomic

    write_json_atomic(marker_path(directory, command), {"format": "brainleaks-output/1", "command": command,
                                                        "version": __version__})


def _special_dir(d: Path) -> str | None:
    """What makes ``d`` a directory no command may take as its own: the root, the home directory, the current
    directory or one of its parents."""
    r = d.resolve()
    if r == Path(r.anchor):
        return "the root directory"
    try:
        if r == Path.home().resolve():
            return "the home directory"
    except (RuntimeError, KeyError, OSError):  # no home directory known
        pass
    cwd = Path.cwd().resolve()
    if r == cwd:
        return "the current directory"
    if inside(cwd, r):
        return "a parent of the current directory"
    return None


def _foreign_entry(d: Path, command: str) -> str | None:
    """The first path under ``d`` (relative) that ``brainleaks <command>`` does not write, or None. Temporary files
    of atomic writes (``.<name>.<pid>.<random>.tmp``) count as the command's."""
    import fnmatch

    patterns = OUTPUT_DIRS[command][0]
    marker = marker_path(d, command).name
    for top, dirs, files in os.walk(d):
        dirs.sort()
        for name in sorted(dirs + files):
            rel = (Path(top) / name).relative_to(d).as_posix()
            if not (rel == marker or fnmatch.fnmatchcase(name, ".*.tmp")
                    or any(fnmatch.fnmatchcase(rel, p) for p in patterns)):
                return rel
    return None


def claim_output_dir(path: str | os.PathLike, command: str, inputs: list[tuple[str, str | os.PathLike]] = (),
                     force: bool = False, label: str = "--out") -> str:
    """Check, before any work, that ``brainleaks <command>`` may write the directory ``path``; raise ``OutputError``
    (one line naming ``label`` and the reason) otherwise. Returns ``"new"`` (it does not exist), ``"empty"`` or
    ``"ours"`` (written by an earlier run of the same command).

    - never the root, the home directory, the current directory or a parent of it; never an input (``inputs``:
      ``(label, path)``), a directory holding an input, or a directory inside an input directory;
    - an existing, non-empty directory must carry the command's marker (:func:`write_marker`, written when the
      command creates the directory). A directory written before markers existed is recognised by the files that
      identify it (``OUTPUT_DIRS``: a run directory by its ``state.json``, a sweep directory by ``cells`` and
      ``targets``, an audit report by ``audit.json`` and ``report.md``) if it holds nothing but what the command
      writes; the caller then writes the marker;
    - a command that replaces its directory (``audit``) does so only with ``force``, and only when everything in
      it is something the command writes: anything else is named and nothing is removed. ``run`` and ``sweep``
      resume in their own directory (their ``--force`` reruns stages, it removes nothing).
    """
    import stat

    patterns, signature, replaces = OUTPUT_DIRS[command]
    d = Path(path)
    what = _special_dir(d)
    if what is not None:
        raise OutputError(f"{label} {path} is {what}; brainleaks {command} needs a directory of its own: give a new "
                          f"one")
    for in_label, q in inputs:
        if q is None:
            continue
        q = Path(q)
        if same_file(d, q):
            raise OutputError(f"{label} {path} is also the input {in_label} {q}; give another {label}")
        if inside(q, d):
            raise OutputError(f"{label} {path} contains the input {in_label} {q}; give another {label}")
        if q.is_dir() and inside(d, q):
            raise OutputError(f"{label} {path} lies inside the input {in_label} {q}; give another {label}")
    try:
        mode = os.lstat(d).st_mode
    except FileNotFoundError:
        mode = None
    except (OSError, ValueError) as e:
        raise OutputError(f"{label} {path}: unusable path ({getattr(e, 'strerror', None) or e})") from None
    if mode is not None and stat.S_ISLNK(mode):
        raise OutputError(f"{label} {path} is a symbolic link; give the directory itself")
    if mode is not None and not stat.S_ISDIR(mode):
        raise OutputError(f"{label} {path} is an existing file, not a directory; give another {label}")
    check_writable_dir(d.parent if replaces else d, label, d)
    if mode is None:
        return "new"
    if not any(os.scandir(d)):
        return "empty"
    try:
        marked = stat.S_ISREG(os.lstat(marker_path(d, command)).st_mode)
    except OSError:
        marked = False
    if not marked and not all((d / s).exists() for s in signature):
        raise OutputError(f"{label} {path} holds other files: not a directory written by brainleaks {command}; give "
                          f"another {label}")
    if replaces or not marked:
        foreign = _foreign_entry(d, command)
        if foreign is not None:
            raise OutputError(f"{label} {path} holds {foreign!r}, which brainleaks {command} does not write; nothing "
                              f"was changed (move it away or give another {label})")
    if replaces and not force:
        raise OutputError(f"{label} {path} exists and is not empty (an earlier brainleaks {command}): give another "
                          f"{label} or --force to replace it")
    return "ours"


# ----------------------------------------------------------------------------------------------
# the paths of each CLI command
# ----------------------------------------------------------------------------------------------

# command -> (options it writes, options it reads); a value None is an option not given
COMMAND_PATHS = {
    "train": (["out"], ["data_root"]),
    "train-evaluator": (["out"], ["data_root"]),
    "train-prior": (["out"], ["data_root"]),
    "attack": (["out"], ["model", "prior"]),
    "evaluate": (["json"], ["recon", "evaluator"]),
    "replay": (["json"], ["model", "recon", "twin"]),
}


# commands that write a directory -> the (label, option) of what they read
OUTPUT_DIR_INPUTS = {
    "audit": [("model", "model"), ("--evaluator", "evaluator"), ("--card", "card"), ("--data-root", "data_root"),
              ("--members", "members"), ("--non-members", "non_members"), ("--prior", "prior")],
    "run": [("config", "config")],
    "demo": [],
    "sweep": [("study", "study")],
}


def check_command_paths(command: str, args) -> None:
    """Before a command starts: its output options are safe to write (:func:`check_outputs`)."""
    if command in OUTPUT_DIR_INPUTS:
        if getattr(args, "out", None) is not None:  # else the command's default, claimed where it is chosen
            ins = [(label, getattr(args, name, None)) for label, name in OUTPUT_DIR_INPUTS[command]]
            claim_output_dir(args.out, "run" if command == "demo" else command, ins, getattr(args, "force", False))
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
MAX_INPUTS = 1 << 20  # values of one sample (features; the product of an input shape): the datasets use 784-32768
MAX_CLASSES = 10_000  # output classes of a model, class names of a deployment (the datasets have 10-40)
THREADS_PER_CPU = 4  # see max_threads()


# ----------------------------------------------------------------------------------------------
# counts: every count a user or a file sets is an integer within a stated bound before work starts
# ----------------------------------------------------------------------------------------------

def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; at least 1)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


def max_threads() -> int:
    """The most torch threads, or parallel workers, that an option (``--threads``, ``replay --workers``, ``sweep
    --workers``) or a config key (``experiment.threads``, ``study.threads``) may ask for: ``THREADS_PER_CPU`` (4)
    per CPU this process may run on.

    Why a bound relative to the CPUs: the work is CPU-bound, so threads beyond the CPUs only queue behind each
    other; up to 4 per CPU leaves room for an affinity mask that understates the machine (containers) and for
    deliberate oversubscription in experiments. Far beyond that every thread or process costs memory and
    start-up time and gains nothing, and torch creates its OpenMP threads in native code, where Python cannot
    act on SIGTERM: ``--threads 1000000`` kept a command creating threads (30,000 seen) and deaf to SIGTERM.
    A fixed number would either refuse what a large machine can use or allow thousands of threads on a laptop."""
    return THREADS_PER_CPU * usable_cpus()


def count_problem(value, maximum: int, minimum: int = 0, why: str = "") -> str | None:
    """Why ``value`` is not an integer in ``minimum..maximum`` (None if it is), naming the bound; ``why`` is
    appended to the bound (e.g. what decides it)."""
    import numbers

    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and minimum <= value <= maximum:
        return None
    shown = repr(value)
    shown = shown[:40] + "..." if len(shown) > 40 else shown
    return f"must be an integer in {minimum}..{maximum}{why}, got {shown}"


def check_count(value, name: str, maximum: int, minimum: int = 0, why: str = "", error=None) -> int:
    """``value`` as an int if it is an integer in ``minimum..maximum``; else ``error`` (default ``InputError``)
    saying "``name`` must be an integer in minimum..maximum, got ...". The one check behind every bounded count:
    time steps (``MAX_TIME_STEPS``), threads and workers (:func:`check_threads`), cells of a study, ..."""
    problem = count_problem(value, maximum, minimum, why)
    if problem is not None:
        from .errors import InputError

        raise (error or InputError)(f"{name} {problem}")
    return int(value)


def threads_bound() -> tuple[int, str]:
    """(:func:`max_threads`, the text saying where it comes from)."""
    cpus = usable_cpus()
    return THREADS_PER_CPU * cpus, f" ({THREADS_PER_CPU} per CPU; this process may use {cpus})"


def check_threads(value, name: str, minimum: int = 0, error=None) -> int:
    """A thread or worker count: an integer in ``minimum``..:func:`max_threads` (``error`` naming ``name``)."""
    top, why = threads_bound()
    return check_count(value, name, top, minimum, why, error)


def check_time_steps(value, name: str, error=None) -> int:
    """Time steps per sample, wherever they come from (option, deployment card, sidecar, config, file): an
    integer in 1..``MAX_TIME_STEPS``."""
    return check_count(value, name, MAX_TIME_STEPS, 1, "", error)


# The largest value of every other count a user sets, by the option's name (``--hidden``, ``--draws``, ...; run and
# study config keys of the same name use the same bound). Each is far above what the toolkit or the paper runs
# (shipped: 3,000 hidden neurons, 10 epochs, batch 100, 20 draws, population 100) and small enough that nothing it
# sizes alone can exhaust the machine before the work starts; products of counts (population x inputs x steps)
# are checked against the memory available where they are allocated (:func:`check_memory`).
MAX_COUNTS = {
    "hidden": (16_384, " (neurons of a hidden layer)"),
    "epochs": (10_000, ""),
    "batch_size": (65_536, ""),
    "iterations": (1_000_000, ""),
    "max_iterations": (1_000_000, ""),
    "queries": (10_000_000, " (queries)"),
    "clip_counts": (1_000_000, " (output spike counts)"),
    "patience": (1_000_000, ""),
    "restarts": (1_000, ""),
    "starts": (1_000, " (latent-search starts per class)"),
    "select_shifts": (64, " (shifted copies of a latent-search start)"),
    "shift_pixels": (16, " (pixels)"),
    "population": (4_096, " (BL-v2 population)"),
    "random": (100_000, " (random samples)"),
    "draws": (10_000, ""),
    "replay_draws": (10_000, ""),
    "limit": (10_000_000, " (samples per split)"),
    "downsample": (64, ""),
    "classes": (MAX_CLASSES - 1, " (class indices)"),
    "seed": (2**63 - 1, ""),
    "shadows": (1_024, " (shadow models)"),
    "eval_samples": (100_000, " (evaluation examples per side)"),
}


def count_bound(name: str) -> tuple[int, str]:
    """(maximum, why) of the count ``name`` (a key of ``MAX_COUNTS``)."""
    return MAX_COUNTS[name]


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
        if spec.get("steps") is not None:
            check_time_steps(spec["steps"], f"{where}: 'spec.steps'", ModelFileError)
        scale = spec.get("posterior_scale")
        if scale is not None and (not _number(scale) or not 0 < abs(scale) <= MAX_POSTERIOR_SCALE):
            raise ModelFileError(f"{where}: 'spec.posterior_scale' must be a non-zero number of magnitude at most "
                                 f"{MAX_POSTERIOR_SCALE:g}, got {scale!r}")


def check_recon_for_replay(rec, recon_path, model_paths, draws: int, options: dict | None = None, card=None) -> None:
    """Before a Lava replay starts: the reconstructions fit every model file (inputs, time steps, classes) and
    the spike trains of ``draws`` draws fit in memory. Raises ``InputError`` naming both files. ``options`` /
    ``card``: the deployment, which may declare an input shape the file does not say."""
    from .errors import InputError
    from .models.files import read_deployed_network, read_sidecar

    r, f = rec.samples.shape[:2]
    t = rec.samples.shape[2] if rec.samples.ndim == 3 else 0
    for model in model_paths:
        if model is None:
            continue
        net = read_deployed_network(model, options, card)[0]
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

    n = int(getattr(ev, "target_classes", len(ev.classes)))  # a rejecting judge's extra class is no target
    bad = sorted({int(c) for c in rec.targets if c >= n})
    if bad:
        raise InputError(f"{recon_path}: target classes {bad[:5]} do not exist for the evaluator {ev_path} (it has "
                         f"{n} classes 0..{n - 1})")
    if ev.kind == "snn" and not 0 < int(ev.steps) <= MAX_TIME_STEPS:
        raise InputError(f"{ev_path}: evaluator time steps {ev.steps} out of range 1..{MAX_TIME_STEPS}")
    k = draws if rec.probabilities is not None else 1
    check_memory(4.0 * k * rec.samples.size * max(1, int(ev.steps) if ev.kind == "snn" else 1) * 2,
                 f"scoring {k} draws of {recon_path}")
