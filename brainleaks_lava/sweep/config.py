"""Study configs of ``brainleaks sweep`` (strict TOML; every error a ``ConfigError`` naming the file and key).

A study is a base (dataset, evaluator, target training settings) and a grid: every combination of the listed
knob values, defenses and seeds is one *cell*; every cell is attacked by every listed attack. Paths are relative
to the config file. Example (``experiments/sweep_ci.toml``)::

    [study]
    name = "sweep_ci"
    seeds = [0]
    [dataset]
    name = "mnist"                    # no root: the vendored MNIST subset
    [evaluator]
    kind = "ann"
    model = "../netx_models/mnist_eval_ann.h5"   # or train = { epochs = 1 }
    [target]                          # base training settings of every cell
    hidden = 32
    epochs = 1
    [grid]                            # lists; every combination is a cell
    steps = [8, 16]
    weight_step = [1, 4]
    defense = ["none"]
    [defenses.round]                  # named defenses for grid.defense
    round_posterior = 0.1
    [attacks]
    names = ["bl2"]
    [attacks.params.bl2]
    iterations = 5

An optional ``[mia]`` section adds membership inference to every cell (``sweep.mia``)::

    [mia]
    shadows = 8                       # shadow models per trained target (0: the shadow-free attacks only)
    eval_samples = 250                # non-members evaluated (all up to this many) and as many members
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..report.config import TRAIN_MAX, _check_attack_params, _check_keys, _check_name, _path, read_toml
from ..safety import MAX_COUNTS, check_count, check_threads

# base training settings of a target ([target]) and the knobs a grid may vary ([grid], lists of the same types)
TARGET_KEYS = {"hidden": int, "epochs": int, "steps": int, "lr": float, "batch_size": int, "threshold": float,
               "tau_grad": float, "scale_grad": float, "posterior_scale": float, "weight_decay": float,
               "readout": str, "encoding": str, "weight_step": int}
TARGET_DEFAULTS = {"hidden": 3000, "epochs": 10, "steps": 25, "lr": 1e-3, "batch_size": 100, "threshold": 1.0,
                   "tau_grad": 0.03, "scale_grad": 3.0, "posterior_scale": None, "weight_decay": 0.0,
                   "readout": "membrane", "encoding": "rate", "weight_step": 1}
GRID_KNOBS = ("steps", "weight_step", "threshold", "hidden", "readout")
READOUTS = ("membrane", "voltage", "spikes")
DEFENSE_KEYS = {"clip_counts": int, "round_posterior": float, "straight_through": bool, "input_flip": float,
                "dp": dict}
DP_KEYS = {"noise_multiplier": float, "max_grad_norm": float, "delta": float}
EVAL_TRAIN_KEYS = {"epochs": int, "steps": int, "lr": float, "batch_size": int, "seed": int}
# A study's size is bounded before anything is expanded: the largest shipped study has 72 cells, and each cell
# trains (or reuses) a target and runs every attack, minutes each; the number of cells is the product of the axes'
# lengths, so a config of a few kB can describe 10**12 of them.
MAX_CELLS = 10_000
MAX_AXIS_VALUES = 1_000  # values of one axis: study.seeds, each grid knob, grid.defense
MIA_KEYS = {"shadows": int, "eval_samples": int}
MIA_DEFAULTS = {"shadows": 8, "eval_samples": 2000}  # as brainleaks mia


@dataclass(frozen=True)
class AttackSpec:
    name: str  # as listed in the study: a method or an audit portfolio entry
    method: str
    mode: str
    params: dict
    seed_offset: int = 0


@dataclass(frozen=True)
class StudyConfig:
    path: Path
    name: str
    threads: int
    seeds: tuple[int, ...]
    dataset: str
    data_root: Path | None
    evaluator_kind: str
    evaluator_model: Path | None
    evaluator_train: dict
    target: dict  # base training settings (defaults filled in)
    grid: dict  # knob -> tuple of values (every knob present; one value when not varied)
    defenses: dict  # name -> settings ("none" always present, empty)
    defense_axis: tuple[str, ...]
    attacks: tuple[AttackSpec, ...]
    classes: tuple[int, ...] | None
    draws: int
    replay: bool
    replay_draws: int
    accuracy_limit: int | None  # validation images for the target accuracy (None: all)
    mia: dict | None = None  # [mia]: {"shadows", "eval_samples"} (defaults filled in), None without the section
    raw: dict = field(default_factory=dict, compare=False)

    def cells(self) -> list[dict]:
        """Every cell of the grid, in a fixed order (seed outermost, then the knobs, then the defense)."""
        out = []
        for seed in self.seeds:
            for values in itertools.product(*(self.grid[k] for k in GRID_KNOBS), self.defense_axis):
                knobs = dict(zip(GRID_KNOBS, values[:-1]))
                out.append({"seed": seed, **knobs, "defense": values[-1]})
        return out


def count_cells(seeds, grid: dict) -> int:
    """The number of cells of a study (seeds x every grid axis), from the lengths of its lists alone: refused
    (``ConfigError`` naming the axis or the product and the bound) above ``MAX_AXIS_VALUES`` values per axis or
    ``MAX_CELLS`` cells, before any list is expanded or its values checked. Axes that are not lists yet are left
    to the checks of their type."""
    axes = [("study.seeds", seeds)] + [(f"grid.{k}", grid[k]) for k in (*GRID_KNOBS, "defense") if k in grid]
    axes = [(where, len(v)) for where, v in axes if isinstance(v, list)]
    for where, n in axes:
        if n > MAX_AXIS_VALUES:
            raise ConfigError(f"'{where}' lists {n} values; a study axis may have at most {MAX_AXIS_VALUES}")
    cells = math.prod(n for _, n in axes)
    if cells > MAX_CELLS:
        sizes = " x ".join(f"{n} {where}" for where, n in axes if n > 1)
        raise ConfigError(f"the grid has {cells:,} cells ({sizes}); a study may have at most {MAX_CELLS:,} cells "
                          f"(split it into several studies)")
    return cells


SWEEP_METHODS = ("bl1", "bl2", "blenc", "nes", "label")


def resolve_attack(name: str, where: str) -> tuple[str, dict, int]:
    """(method, params, seed offset) of an attack name: a method (bl1, bl2, blenc; the query-only nes and label,
    which query the cell's deployment through its defense) or an SNN portfolio entry."""
    from ..audit import SNN_PORTFOLIO

    if name in SWEEP_METHODS:
        return name, {}, 0
    for entry in SNN_PORTFOLIO:
        if entry.name == name:
            return entry.method, dict(entry.params), entry.seed_offset
    allowed = sorted(set(SWEEP_METHODS) | {e.name for e in SNN_PORTFOLIO})
    raise ConfigError(f"'{where}' names no attack: {name!r} (allowed: {', '.join(allowed)})")


def load_study(path: str | Path) -> StudyConfig:
    path = Path(path)
    raw = read_toml(path, "study config", 1 << 20)
    try:
        return parse_study(raw, path)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _int_list(v, where: str, minimum: int = 0, maximum: int | None = None) -> tuple[int, ...]:
    if not isinstance(v, list) or not v:
        raise ConfigError(f"'{where}' must be a non-empty list")
    for x in v:
        if isinstance(x, bool) or not isinstance(x, int) or x < minimum or (maximum is not None and x > maximum):
            bound = f" in [{minimum}, {maximum}]" if maximum is not None else f" >= {minimum}"
            raise ConfigError(f"'{where}' must hold integers{bound}, got {x!r}")
    if len(set(v)) != len(v):
        raise ConfigError(f"'{where}' lists a value twice")
    return tuple(v)


def _check_target_value(key: str, v, where: str) -> None:
    """One value of a target setting or grid knob: type, range."""
    typ = TARGET_KEYS[key]
    ok = isinstance(v, typ) and not isinstance(v, bool)
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        ok = True
    if not ok:
        what = {float: "a number", int: "an integer"}.get(typ, "a string")
        raise ConfigError(f"'{where}' must be {what}, got {v!r}")
    if typ is float and not math.isfinite(v):
        raise ConfigError(f"'{where}' must be a finite number, got {v!r}")
    if key == "readout" and v not in READOUTS:
        raise ConfigError(f"'{where}' must be one of {', '.join(READOUTS)}, got {v!r}")
    if key == "encoding" and v not in ("rate", "if"):
        raise ConfigError(f"'{where}' must be 'rate' or 'if', got {v!r}")
    if key == "weight_step" and not 1 <= v <= 64:
        raise ConfigError(f"'{where}' must be a multiple of lava-dl's weight step in [1, 64], got {v!r}")
    if typ in (int, float) and key not in ("weight_decay",) and not v > 0:
        raise ConfigError(f"'{where}' must be positive, got {v!r}")
    if key == "weight_decay" and v < 0:
        raise ConfigError(f"'{where}' must be >= 0, got {v!r}")
    if key in TRAIN_MAX and v > TRAIN_MAX[key]:
        raise ConfigError(f"'{where}' must be at most {TRAIN_MAX[key]:g}, got {v!r}")


def parse_study(raw: dict, path: Path) -> StudyConfig:
    from ..data import DATASETS

    base = path.resolve().parent
    _check_keys(raw, {"study": dict, "dataset": dict, "evaluator": dict, "target": dict, "grid": dict,
                      "defenses": dict, "attacks": dict, "evaluation": dict, "replay": dict, "mia": dict}, "config",
                required=("study", "dataset", "evaluator", "attacks"))
    st = raw["study"]
    _check_keys(st, {"name": str, "threads": int, "seeds": list, "accuracy_limit": int}, "study", required=("name",))
    _check_name(st["name"], "study.name")
    gr = raw.get("grid", {})
    _check_keys(gr, {**{k: list for k in GRID_KNOBS}, "defense": list}, "grid")
    count_cells(st.get("seeds", [0]), gr)  # before any list is expanded or its values checked
    threads = check_threads(st.get("threads", 1), "'study.threads'", error=ConfigError)
    seeds = _int_list(st.get("seeds", [0]), "study.seeds", 0, 2**32 - 1)
    if "accuracy_limit" in st and st["accuracy_limit"] <= 0:
        raise ConfigError(f"'study.accuracy_limit' must be positive, got {st['accuracy_limit']}")

    ds = raw["dataset"]
    _check_keys(ds, {"name": str, "root": str}, "dataset", required=("name",))
    if ds["name"] not in DATASETS or ds["name"] in ("nmnist", "dvs-gesture"):
        raise ConfigError(f"'dataset.name' must be a static image dataset (mnist, att-faces), got {ds['name']!r}")
    root = _path(base, ds["root"], "dataset.root") if ds.get("root") else None

    ev = raw["evaluator"]
    _check_keys(ev, {"kind": str, "model": str, "train": dict}, "evaluator", required=("kind",))
    from ..evaluation.classifiers import KINDS as EVALUATOR_KINDS

    if ev["kind"] not in EVALUATOR_KINDS:
        raise ConfigError(f"'evaluator.kind' must be one of {', '.join(EVALUATOR_KINDS)}, got {ev['kind']!r}")
    if ("model" in ev) == ("train" in ev):
        raise ConfigError("'evaluator' needs exactly one of 'model' (a file) or 'train' (settings)")
    if "train" in ev:
        _check_keys(ev["train"], EVAL_TRAIN_KEYS, "evaluator.train")
        for k, v in ev["train"].items():
            top = 2**32 - 1 if k == "seed" else TRAIN_MAX[k]
            if not (v >= 0 if k == "seed" else v > 0) or v > top:
                raise ConfigError(f"'evaluator.train.{k}' must be {'>= 0' if k == 'seed' else 'positive'} and at "
                                  f"most {top:g}, got {v!r}")
    ev_model = _path(base, ev["model"], "evaluator.model") if "model" in ev else None

    tg = raw.get("target", {})
    _check_keys(tg, {**TARGET_KEYS, "arch": str}, "target")
    if tg.get("arch", "snn") != "snn":
        raise ConfigError(f"'target.arch' must be 'snn' (the sweep's knobs are SNN deployment choices), got "
                          f"{tg['arch']!r}")
    target = dict(TARGET_DEFAULTS)
    for k, v in tg.items():
        if k != "arch":
            _check_target_value(k, v, f"target.{k}")
            target[k] = v

    grid = {}
    for k in GRID_KNOBS:
        values = gr.get(k, [target[k]])
        if not values:
            raise ConfigError(f"'grid.{k}' must be a non-empty list")
        for i, v in enumerate(values):
            _check_target_value(k, v, f"grid.{k}[{i}]")
        if len(set(values)) != len(values):
            raise ConfigError(f"'grid.{k}' lists a value twice")
        grid[k] = tuple(values)

    defenses = {"none": {}}
    for name, d in raw.get("defenses", {}).items():
        where = f"defenses.{name}"
        _check_name(name, where)
        if name == "none":
            raise ConfigError(f"'{where}': 'none' is the name of no defense; choose another name")
        _check_keys(d, DEFENSE_KEYS, where)
        if not d:
            raise ConfigError(f"'{where}' sets no defense (keys: {', '.join(sorted(DEFENSE_KEYS))})")
        if "clip_counts" in d and d["clip_counts"] <= 0:
            raise ConfigError(f"'{where}.clip_counts' must be a positive integer, got {d['clip_counts']}")
        if "round_posterior" in d and not 0 < d["round_posterior"] <= 1:
            raise ConfigError(f"'{where}.round_posterior' must be in (0, 1], got {d['round_posterior']}")
        if "input_flip" in d and not 0 <= d["input_flip"] < 0.5:
            raise ConfigError(f"'{where}.input_flip' must be a probability in [0, 0.5), got {d['input_flip']}")
        if "dp" in d:
            _check_keys(d["dp"], DP_KEYS, f"{where}.dp")
            for k in ("noise_multiplier", "max_grad_norm"):
                if k in d["dp"] and not d["dp"][k] >= 0:
                    raise ConfigError(f"'{where}.dp.{k}' must be >= 0, got {d['dp'][k]}")
            if "max_grad_norm" in d["dp"] and not d["dp"]["max_grad_norm"] > 0:
                raise ConfigError(f"'{where}.dp.max_grad_norm' must be positive, got {d['dp']['max_grad_norm']}")
            if "delta" in d["dp"] and not 0 < d["dp"]["delta"] < 1:
                raise ConfigError(f"'{where}.dp.delta' must be in (0, 1), got {d['dp']['delta']}")
        defenses[name] = dict(d)
    axis = gr.get("defense", ["none"])
    if not axis:
        raise ConfigError("'grid.defense' must be a non-empty list")
    for i, name in enumerate(axis):
        if not isinstance(name, str) or name not in defenses:
            raise ConfigError(f"'grid.defense[{i}]' names no entry of [defenses]: {name!r} (defined: "
                              f"{', '.join(sorted(defenses))})")
        if "clip_counts" in defenses[name] and any(r != "spikes" for r in grid["readout"]):
            raise ConfigError(f"'defenses.{name}.clip_counts' caps output spike counts: it needs the 'spikes' "
                              f"read-out, but 'grid.readout' / 'target.readout' is {list(grid['readout'])}")
    if len(set(axis)) != len(axis):
        raise ConfigError("'grid.defense' lists a defense twice")

    at = raw["attacks"]
    _check_keys(at, {"names": list, "mode": str, "classes": list, "params": dict}, "attacks", required=("names",))
    if not at["names"] or len(set(map(str, at["names"]))) != len(at["names"]):
        raise ConfigError("'attacks.names' must be a non-empty list without repeats")
    mode = at.get("mode", "paper")
    if mode not in ("paper", "reference"):
        raise ConfigError(f"'attacks.mode' must be 'paper' or 'reference', got {mode!r}")
    params_tab = at.get("params", {})
    for k in params_tab:
        if k not in at["names"]:
            raise ConfigError(f"'attacks.params.{k}' is for an attack that 'attacks.names' does not list")
    attacks = []
    for i, name in enumerate(at["names"]):
        if not isinstance(name, str):
            raise ConfigError(f"'attacks.names[{i}]' must be a string, got {name!r}")
        method, params, offset = resolve_attack(name, f"attacks.names[{i}]")
        extra = params_tab.get(name, {})
        if not isinstance(extra, dict):
            raise ConfigError(f"'attacks.params.{name}' must be a table")
        params = {**params, **extra}
        import dataclasses

        from ..attacks import ATTACKS

        allowed = sorted({f.name for f in dataclasses.fields(ATTACKS[method].params_class)} - {"mode"})
        for key in extra:
            if key not in allowed:
                raise ConfigError(f"unknown key 'attacks.params.{name}.{key}' (allowed for {method}: "
                                  f"{', '.join(allowed)})")
        _check_attack_params(method, mode, params, f"attacks.params.{name}")
        attacks.append(AttackSpec(name, method, mode, params, offset))
    classes = None
    if "classes" in at:
        classes = _int_list(at["classes"], "attacks.classes", 0, 9 if ds["name"] == "mnist" else 39)

    evs = raw.get("evaluation", {})
    _check_keys(evs, {"draws": int}, "evaluation")
    rp = raw.get("replay", {})
    _check_keys(rp, {"enabled": bool, "draws": int}, "replay")
    for key, v in (("evaluation.draws", evs.get("draws", 20)), ("replay.draws", rp.get("draws", 1))):
        if not 1 <= v <= 100_000:
            raise ConfigError(f"'{key}' must be in [1, 100000], got {v}")
    mia = None
    if "mia" in raw:
        _check_keys(raw["mia"], MIA_KEYS, "mia")
        mia = {**MIA_DEFAULTS, **raw["mia"]}
        for key, low in (("shadows", 0), ("eval_samples", 1)):
            mia[key] = check_count(mia[key], f"'mia.{key}'", MAX_COUNTS[key][0], low, MAX_COUNTS[key][1],
                                   ConfigError)
    return StudyConfig(path=path.resolve(), name=st["name"], threads=threads, seeds=seeds, dataset=ds["name"],
                       data_root=root, evaluator_kind=ev["kind"], evaluator_model=ev_model,
                       evaluator_train=dict(ev.get("train", {})), target=target, grid=grid, defenses=defenses,
                       defense_axis=tuple(axis), attacks=tuple(attacks), classes=classes,
                       draws=evs.get("draws", 20), replay=rp.get("enabled", True), replay_draws=rp.get("draws", 1),
                       accuracy_limit=st.get("accuracy_limit"), mia=mia, raw=raw)
