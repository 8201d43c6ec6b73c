"""Experiment configs (TOML): a strict schema; unknown keys and wrong types are errors naming the key.

Paths in a config are resolved relative to the config file. A config never names an output path:
everything a run writes goes into its run directory. The names of the experiment, targets, evaluators
and attacks become file names inside the run directory, so they are restricted to letters, digits,
``-`` and ``_`` (no ``/``, no ``..``): a config cannot make the toolkit write outside its run directory.
Every error is a ``ConfigError`` naming the config file and the key.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import DATASETS, EVENT_NAMES
from ..errors import ConfigError, InputError
from ..safety import MAX_COUNTS, MAX_POSTERIOR_SCALE, MAX_TIME_STEPS, check_threads

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class TargetCfg:
    name: str
    arch: str
    model: Path | None = None  # an existing model file ...
    train: dict = field(default_factory=dict)  # ... or training settings


@dataclass(frozen=True)
class EvaluatorCfg:
    name: str
    kind: str
    model: Path | None = None
    train: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AttackCfg:
    name: str
    method: str
    mode: str
    target: str
    evaluator: str
    params: dict  # the parameters of the method's params class
    classes: tuple[int, ...] | None
    prior: Path | None = None  # gen: the generative prior file (``params.prior`` in the config)

    def settings(self) -> dict:
        """What the attack stage's fingerprint reads of this entry: every field but the prior file. The stage reads
        that file's *content* as an input, as it reads a target's model file; an entry without a prior gives the
        settings it gave before gen could be configured (earlier runs' stages stay done)."""
        d = dict(self.__dict__)
        d.pop("prior", None)
        return d


@dataclass(frozen=True)
class ExperimentConfig:
    path: Path
    name: str
    seed: int
    threads: int
    dataset: str
    data_root: Path | None
    downsample: int | None  # None: the dataset's default (1; DVS Gesture 4)
    targets: dict[str, TargetCfg]
    evaluators: dict[str, EvaluatorCfg]
    attacks: tuple[AttackCfg, ...]
    draws: int
    replay: bool
    replay_draws: int
    paper: dict
    time_bins: int | None = None  # event data: frames per sample (None: the framing preset's)
    limit: int | None = None  # event data: at most this many samples per split
    contrast: str | tuple[float, float] = "none"  # [evaluation] contrast: none, standardise or (mean, std)

    def data_options(self) -> dict:
        """Keyword arguments of :func:`brainleaks_lava.data.load_dataset` for this experiment."""
        opts = {"downsample": self.downsample}
        if self.dataset in ("nmnist", "dvs-gesture"):
            opts.update(time_bins=self.time_bins, limit=self.limit)
        return opts


_TYPES = {int: "an integer", str: "a string", bool: "true/false", dict: "a table", list: "a list", float: "a number"}


def _check_keys(table: dict, allowed: dict[str, type | tuple], where: str, required=()) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key '{where}.{key}' (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if key not in table:
            raise ConfigError(f"missing key '{where}.{key}'")
    for key, typ in allowed.items():
        if key in table:
            v = table[key]
            types = typ if isinstance(typ, tuple) else (typ,)
            ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
            if float in types and isinstance(v, int) and not isinstance(v, bool):
                ok = True
            if not ok:
                raise ConfigError(f"'{where}.{key}' must be {_TYPES.get(types[0], types[0].__name__)}, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"'{where}.{key}' must be a finite number, got {v!r}")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _check_name(name, where: str) -> None:
    """Names become file names in the run directory: letters, digits, - and _ only (no '/', no '..')."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"'{where}' must be a name of 1-64 letters, digits, - and _ starting with a letter or "
                          f"digit (it becomes a file name in the run directory), got {name!r}")


def _check_positive(table: dict, where: str, positive=(), nonnegative=()) -> None:
    for key in positive:
        if key in table and not table[key] > 0:
            raise ConfigError(f"'{where}.{key}' must be positive, got {table[key]!r}")
    for key in nonnegative:
        if key in table and not table[key] >= 0:
            raise ConfigError(f"'{where}.{key}' must be >= 0, got {table[key]!r}")


def _current_names(method: str, params: dict, where: str) -> dict:
    """``params`` with the old name of a parameter replaced by its name (the ``renamed`` table of the attack's
    parameter class: MI-FACE's ``max_iterations`` is ``iterations``, as the CLI's ``--iterations``), with a warning
    naming the key; both names at once are an error."""
    from ..attacks import ATTACKS

    out = dict(params)
    for old, new in getattr(ATTACKS[method].params_class, "renamed", {}).items():
        if old in out:
            if new in out:
                raise ConfigError(f"'{where}.params' gives both '{new}' and its old name '{old}'")
            logging.getLogger(__name__).warning("'%s.params.%s' is the old name of '%s' (as the CLI's --%s): please "
                                                "rename it", where, old, new, new.replace("_", "-"))
            out[new] = out.pop(old)
    return out


def _check_attack_params(method: str, mode: str, params: dict, where: str) -> None:
    """``params`` must be parameters of ``method`` with valid values (checked by its params class); the keys of the
    method's ``resources`` (gen: ``prior``) are allowed too and checked by the caller."""
    from ..attacks import ATTACKS

    pc = ATTACKS[method].params_class
    resources = set(getattr(ATTACKS[method], "resources", ()))
    allowed = sorted(({f.name for f in dataclasses.fields(pc)} - {"mode"}) | resources)
    for key in params:
        if key not in allowed:
            raise ConfigError(f"unknown key '{where}.params.{key}' (allowed for {method}: {', '.join(allowed)})")
    values = {k: v for k, v in params.items() if k not in resources}
    try:
        pc.reference(**values) if mode == "reference" else pc(mode=mode, **values)
    except (InputError, TypeError, ValueError) as e:
        raise ConfigError(f"'{where}.params': {e}") from None


def _attack_prior(method: str, params: dict, base: Path, where: str) -> Path | None:
    """The generative prior file of attack ``where`` (``params.prior``, relative to the config file), or None.

    Only gen takes one, and gen needs one: a prior file written by ``brainleaks train-prior``. The file must exist
    here; it is read (and checked) when the run starts, and its content is an input of the attack stage."""
    key = f"{where}.params.prior"
    if method != "gen":
        if "prior" in params:
            raise ConfigError(f"'{key}': only method gen (the latent search of a generative prior) takes a prior, "
                              f"this attack is {method}")
        return None
    if "prior" not in params:
        raise ConfigError(f"missing key '{key}': gen searches the latent space of a generative prior; give the "
                          f"prior file (.h5, from 'brainleaks train-prior'), relative to the config file")
    value = params["prior"]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"'{key}' must be the path of a prior file (a string), got {value!r}")
    p = _path(base, value, key)
    if not p.is_file():
        raise ConfigError(f"'{key}': {p} is not a file (give a prior file, .h5, from 'brainleaks train-prior')")
    return p


def _path(base: Path, value: str, key: str, must_exist: bool = True) -> Path:
    try:
        p = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
        exists = p.exists()
    except (OSError, ValueError) as e:  # embedded NUL byte, name too long, ...
        raise ConfigError(f"'{key}': unusable path {value!r} ({e})") from None
    if must_exist and not exists:
        raise ConfigError(f"'{key}': {p} does not exist")
    return p


# what each attack method can invert
METHOD_ARCH = {"bl1": "snn", "bl2": "snn", "blenc": "snn", "nes": "snn", "label": "snn", "gen": "snn",
               "miface": "ann"}
DATASET_CLASSES = {"mnist": 10, "att-faces": 40, "nmnist": 10, "dvs-gesture": 10}

_MAX_INT = {"experiment.seed": 2**32 - 1, "evaluation.draws": MAX_COUNTS["draws"][0],
            "replay.draws": MAX_COUNTS["replay_draws"][0], "dataset.downsample": MAX_COUNTS["downsample"][0], "dataset.time_bins": MAX_TIME_STEPS,
            "dataset.limit": 10_000_000}

TRAIN_KEYS = {"hidden": int, "epochs": int, "steps": int, "lr": float, "batch_size": int, "seed": int,
              "posterior_scale": float, "threshold": float, "tau_grad": float, "scale_grad": float,
              "weight_decay": float}
# upper bounds of training settings (they size the model and its tensors before any training starts)
TRAIN_MAX = {"hidden": MAX_COUNTS["hidden"][0], "epochs": MAX_COUNTS["epochs"][0], "steps": MAX_TIME_STEPS,
             "batch_size": MAX_COUNTS["batch_size"][0],
             "posterior_scale": MAX_POSTERIOR_SCALE, "threshold": 1e6, "lr": 1e3, "tau_grad": 1e6, "scale_grad": 1e6,
             "weight_decay": 1e3}
EVAL_TRAIN_KEYS = {"epochs": int, "steps": int, "lr": float, "batch_size": int, "seed": int, "weight_decay": float}


def read_toml(path: Path, what: str, max_bytes: int) -> dict:
    """The TOML table of the config file ``path`` (``what``: "config", "study config"); ConfigError naming
    the file when it is missing, larger than ``max_bytes``, unreadable or not TOML."""
    from ..fileio import read_bytes_guarded

    # a regular file (a FIFO would block, /dev/zero never end) of at most max_bytes: configs are a few kB
    data = read_bytes_guarded(path, "config file" if what == "config" else what, max_bytes, ConfigError)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except (RecursionError, ValueError) as e:  # absurdly nested
        raise ConfigError(f"{path}: cannot read the config ({type(e).__name__}: {e})") from None


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    raw = read_toml(path, "config", 16 << 20)
    try:
        return parse_config(raw, path)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_config(raw: dict[str, Any], path: Path) -> ExperimentConfig:
    base = path.resolve().parent
    _check_keys(raw, {"experiment": dict, "dataset": dict, "targets": dict, "evaluators": dict, "attacks": list,
                      "evaluation": dict, "replay": dict, "paper": dict}, "config",
                required=("experiment", "dataset", "targets", "attacks"))
    exp = raw["experiment"]
    _check_keys(exp, {"name": str, "seed": int, "threads": int}, "experiment", required=("name",))
    _check_name(exp["name"], "experiment.name")  # the default run directory is runs/<name>
    ds = raw["dataset"]
    _check_keys(ds, {"name": str, "root": str, "downsample": int, "time_bins": int, "limit": int}, "dataset",
                required=("name",))
    if ds["name"] not in DATASETS:
        raise ConfigError(f"'dataset.name' must be one of {', '.join(DATASETS)}, got {ds['name']!r}")
    for key in ("time_bins", "limit"):
        if key in ds and ds["name"] not in EVENT_NAMES:
            raise ConfigError(f"'dataset.{key}' applies to event datasets ({', '.join(EVENT_NAMES)}) only")
    root = _path(base, ds["root"], "dataset.root") if ds.get("root") else None

    def model_entries(section: str, kind_key: str, train_keys: dict, cls, kinds: tuple[str, ...]):
        """[targets.*] / [evaluators.*]: a kind, and exactly one of an existing model file or train settings."""
        entries = {}
        for name, t in raw.get(section, {}).items():
            where = f"{section}.{name}"
            _check_name(name, where)  # models/<name>.net, models/eval_<name>.h5 in the run directory
            _check_keys(t, {kind_key: str, "model": str, "train": dict}, where, required=(kind_key,))
            if t[kind_key] not in kinds:
                raise ConfigError(f"'{where}.{kind_key}' must be one of {', '.join(kinds)}, got {t[kind_key]!r}")
            if ("model" in t) == ("train" in t):
                raise ConfigError(f"'{where}' needs exactly one of 'model' (a file) or 'train' (settings)")
            if "train" in t:
                _check_keys(t["train"], train_keys, f"{where}.train")
                _check_positive(t["train"], f"{where}.train",
                                positive=("hidden", "epochs", "steps", "lr", "batch_size", "posterior_scale",
                                          "threshold", "tau_grad", "scale_grad"),
                                nonnegative=("seed", "weight_decay"))
                if t["train"].get("seed", 0) > _MAX_INT["experiment.seed"]:
                    raise ConfigError(f"'{where}.train.seed' must be at most {_MAX_INT['experiment.seed']}")
                for key, top in TRAIN_MAX.items():
                    if key in t["train"] and t["train"][key] > top:
                        raise ConfigError(f"'{where}.train.{key}' must be at most {top:g}, got {t['train'][key]!r}")
            model = _path(base, t["model"], f"{where}.model") if "model" in t else None
            entries[name] = cls(name, t[kind_key], model, dict(t.get("train", {})))
        return entries

    from ..evaluation.classifiers import KINDS as EVALUATOR_KINDS

    targets = model_entries("targets", "arch", TRAIN_KEYS, TargetCfg, ("snn", "ann"))
    evaluators = model_entries("evaluators", "kind", EVAL_TRAIN_KEYS, EvaluatorCfg, EVALUATOR_KINDS)
    attacks = []
    seen = set()
    for i, a in enumerate(raw["attacks"]):
        where = f"attacks[{i}]"
        _check_keys(a, {"name": str, "method": str, "mode": str, "target": str, "evaluator": str, "params": dict,
                        "classes": list}, where, required=("name", "method", "target"))
        _check_name(a["name"], f"{where}.name")  # attacks/<name>.h5, <name>.png, ... in the run directory
        if a["name"] in seen:
            raise ConfigError(f"'{where}.name' must be unique, got {a['name']!r} twice")
        seen.add(a["name"])
        if a["method"] not in METHOD_ARCH:
            raise ConfigError(f"'{where}.method' must be one of {', '.join(METHOD_ARCH)}, got {a['method']!r}")
        if a.get("mode", "paper") not in ("paper", "reference"):
            raise ConfigError(f"'{where}.mode' must be 'paper' or 'reference', got {a['mode']!r}")
        if a["method"] == "gen" and a.get("mode", "paper") != "paper":
            raise ConfigError(f"'{where}.mode': gen has one mode, 'paper' (it is not in the published code), got "
                              f"{a['mode']!r}")
        if a["target"] not in targets:
            raise ConfigError(f"'{where}.target' names no entry of [targets]: {a['target']!r}")
        if "evaluator" in a and a["evaluator"] not in evaluators:
            raise ConfigError(f"'{where}.evaluator' names no entry of [evaluators]: {a['evaluator']!r}")
        arch = targets[a["target"]].arch
        if arch != METHOD_ARCH[a["method"]]:
            raise ConfigError(f"'{where}.method' {a['method']} attacks {METHOD_ARCH[a['method']].upper()} targets, but "
                              f"'{where}.target' {a['target']!r} is an {arch.upper()}")
        params = _current_names(a["method"], a.get("params", {}), where)
        prior = _attack_prior(a["method"], params, base, where)
        _check_attack_params(a["method"], a.get("mode", "paper"), params, where)
        params.pop("prior", None)
        classes = a.get("classes")
        if classes is not None and (not classes or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in classes)):
            raise ConfigError(f"'{where}.classes' must be a non-empty list of class indices")
        n_classes = DATASET_CLASSES.get(ds["name"])
        if classes is not None and n_classes is not None and max(classes) >= n_classes:
            raise ConfigError(f"'{where}.classes': {ds['name']} has classes 0..{n_classes - 1}, got {max(classes)}")
        attacks.append(AttackCfg(a["name"], a["method"], a.get("mode", "paper"), a["target"], a.get("evaluator", ""),
                                 params, tuple(classes) if classes else None, prior))
    ev = raw.get("evaluation", {})
    _check_keys(ev, {"draws": int, "contrast": (str, list)}, "evaluation")
    contrast = _contrast(ev.get("contrast", "none"))
    if contrast != "none" and ds["name"] in EVENT_NAMES:
        raise ConfigError(f"'evaluation.contrast' applies to image datasets, not to {ds['name']} event frames")
    rp = raw.get("replay", {})
    _check_keys(rp, {"enabled": bool, "draws": int}, "replay")
    paper = raw.get("paper", {})
    for col, vals in paper.items():
        _check_keys(vals, {"accuracy": float, "top3_accuracy": float, "avg_confidence": float, "daa": float,
                           "target_accuracy": float, "evaluator_accuracy": float}, f"paper.{col}")
    check_threads(exp.get("threads", 0), "'experiment.threads'", error=ConfigError)
    for key, v in (("experiment.seed", exp.get("seed", 0)), ("evaluation.draws", ev.get("draws", 20)),
                   ("replay.draws", rp.get("draws", 20)), ("dataset.downsample", ds.get("downsample", 1)),
                   ("dataset.time_bins", ds.get("time_bins", 2)), ("dataset.limit", ds.get("limit", 1))):
        positive = key.endswith(("draws", "downsample", "time_bins", "limit"))
        if v < (1 if positive else 0):
            raise ConfigError(f"'{key}' must be {'positive' if positive else '>= 0'}, got {v}")
        if v > _MAX_INT[key]:
            raise ConfigError(f"'{key}' must be at most {_MAX_INT[key]}, got {v}")
    return ExperimentConfig(
        path=path.resolve(), name=exp["name"], seed=exp.get("seed", 0), threads=exp.get("threads", 0),
        dataset=ds["name"], data_root=root, downsample=ds.get("downsample"), targets=targets,
        evaluators=evaluators, attacks=tuple(attacks), draws=ev.get("draws", 20),
        replay=rp.get("enabled", True), replay_draws=rp.get("draws", 20), paper=paper,
        time_bins=ds.get("time_bins"), limit=ds.get("limit"), contrast=contrast)


def _contrast(value) -> str | tuple[float, float]:
    """[evaluation] contrast: "none", "standardise" ("standardize") or [mean, std] (0 <= mean <= 1, 0 < std <= 1)."""
    if isinstance(value, str):
        if value not in ("none", "standardise", "standardize"):
            raise ConfigError(f"'evaluation.contrast' must be \"none\", \"standardise\" or [mean, std], got {value!r}")
        return "standardise" if value == "standardize" else value
    from ..evaluation.score import contrast_pair

    if not all(isinstance(v, (int, float)) for v in value):  # TOML strings would parse as numbers
        raise ConfigError(f"'evaluation.contrast' as [mean, std] takes two numbers, got {value!r}")
    try:
        return contrast_pair(value)
    except InputError as e:
        raise ConfigError(f"'evaluation.contrast': {e}") from None
