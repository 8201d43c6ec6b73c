"""Experiment configs (TOML): a strict schema; unknown keys and wrong types are errors naming the key.

Paths in a config are resolved relative to the config file. A config never names an output path:
everything a run writes goes into its run directory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

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
    params: dict
    classes: tuple[int, ...] | None


@dataclass(frozen=True)
class ExperimentConfig:
    path: Path
    name: str
    seed: int
    threads: int
    dataset: str
    data_root: Path | None
    downsample: int
    targets: dict[str, TargetCfg]
    evaluators: dict[str, EvaluatorCfg]
    attacks: tuple[AttackCfg, ...]
    draws: int
    replay: bool
    replay_draws: int
    paper: dict


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


def _path(base: Path, value: str, key: str, must_exist: bool = True) -> Path:
    p = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
    if must_exist and not p.exists():
        raise ConfigError(f"'{key}': {p} does not exist")
    return p


TRAIN_KEYS = {"hidden": int, "epochs": int, "steps": int, "lr": float, "batch_size": int, "seed": int,
              "posterior_scale": float}
EVAL_TRAIN_KEYS = {"epochs": int, "steps": int, "lr": float, "batch_size": int, "seed": int}


def load_config(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> ExperimentConfig:
    base = path.resolve().parent
    _check_keys(raw, {"experiment": dict, "dataset": dict, "targets": dict, "evaluators": dict, "attacks": list,
                      "evaluation": dict, "replay": dict, "paper": dict}, "config",
                required=("experiment", "dataset", "targets", "attacks"))
    exp = raw["experiment"]
    _check_keys(exp, {"name": str, "seed": int, "threads": int}, "experiment", required=("name",))
    ds = raw["dataset"]
    _check_keys(ds, {"name": str, "root": str, "downsample": int}, "dataset", required=("name",))
    if ds["name"] not in ("mnist", "att-faces"):
        raise ConfigError(f"'dataset.name' must be 'mnist' or 'att-faces', got {ds['name']!r}")
    root = _path(base, ds["root"], "dataset.root") if ds.get("root") else None

    def model_entries(section: str, kind_key: str, train_keys: dict, cls):
        """[targets.*] / [evaluators.*]: a kind, and exactly one of an existing model file or train settings."""
        entries = {}
        for name, t in raw.get(section, {}).items():
            where = f"{section}.{name}"
            _check_keys(t, {kind_key: str, "model": str, "train": dict}, where, required=(kind_key,))
            if t[kind_key] not in ("snn", "ann"):
                raise ConfigError(f"'{where}.{kind_key}' must be 'snn' or 'ann', got {t[kind_key]!r}")
            if ("model" in t) == ("train" in t):
                raise ConfigError(f"'{where}' needs exactly one of 'model' (a file) or 'train' (settings)")
            if "train" in t:
                _check_keys(t["train"], train_keys, f"{where}.train")
            model = _path(base, t["model"], f"{where}.model") if "model" in t else None
            entries[name] = cls(name, t[kind_key], model, dict(t.get("train", {})))
        return entries

    targets = model_entries("targets", "arch", TRAIN_KEYS, TargetCfg)
    evaluators = model_entries("evaluators", "kind", EVAL_TRAIN_KEYS, EvaluatorCfg)
    attacks = []
    seen = set()
    for i, a in enumerate(raw["attacks"]):
        where = f"attacks[{i}]"
        _check_keys(a, {"name": str, "method": str, "mode": str, "target": str, "evaluator": str, "params": dict,
                        "classes": list}, where, required=("name", "method", "target"))
        if a["name"] in seen or not a["name"].replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"'{where}.name' must be unique and alphanumeric (- and _ allowed), got {a['name']!r}")
        seen.add(a["name"])
        if a["method"] not in ("bl1", "bl2", "miface"):
            raise ConfigError(f"'{where}.method' must be bl1, bl2 or miface, got {a['method']!r}")
        if a.get("mode", "paper") not in ("paper", "reference"):
            raise ConfigError(f"'{where}.mode' must be 'paper' or 'reference', got {a['mode']!r}")
        if a["target"] not in targets:
            raise ConfigError(f"'{where}.target' names no entry of [targets]: {a['target']!r}")
        if "evaluator" in a and a["evaluator"] not in evaluators:
            raise ConfigError(f"'{where}.evaluator' names no entry of [evaluators]: {a['evaluator']!r}")
        classes = a.get("classes")
        if classes is not None and (not classes or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in classes)):
            raise ConfigError(f"'{where}.classes' must be a non-empty list of class indices")
        attacks.append(AttackCfg(a["name"], a["method"], a.get("mode", "paper"), a["target"], a.get("evaluator", ""),
                                 dict(a.get("params", {})), tuple(classes) if classes else None))
    ev = raw.get("evaluation", {})
    _check_keys(ev, {"draws": int}, "evaluation")
    rp = raw.get("replay", {})
    _check_keys(rp, {"enabled": bool, "draws": int}, "replay")
    paper = raw.get("paper", {})
    for col, vals in paper.items():
        _check_keys(vals, {"accuracy": float, "top3_accuracy": float, "avg_confidence": float, "daa": float,
                           "target_accuracy": float, "evaluator_accuracy": float}, f"paper.{col}")
    for key, v in (("experiment.seed", exp.get("seed", 0)), ("experiment.threads", exp.get("threads", 0)),
                   ("evaluation.draws", ev.get("draws", 20)), ("replay.draws", rp.get("draws", 20)),
                   ("dataset.downsample", ds.get("downsample", 1))):
        if v < (1 if key.endswith(("draws", "downsample")) else 0):
            raise ConfigError(f"'{key}' must be {'positive' if key.endswith(('draws', 'downsample')) else '>= 0'}, got {v}")
    return ExperimentConfig(
        path=path.resolve(), name=exp["name"], seed=exp.get("seed", 0), threads=exp.get("threads", 0),
        dataset=ds["name"], data_root=root, downsample=ds.get("downsample", 1), targets=targets,
        evaluators=evaluators, attacks=tuple(attacks), draws=ev.get("draws", 20),
        replay=rp.get("enabled", True), replay_draws=rp.get("draws", 20), paper=paper)
