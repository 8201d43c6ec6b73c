"""The files shipped with brainleaks_lava: the MNIST targets and evaluators of the repository's ``netx_models/``
and the experiment configs of its ``experiments/``, found the same way in a checkout and in an installed wheel.

In a wheel (any non-editable install) the two directories are package data, ``brainleaks_lava/_shipped/netx_models``
and ``brainleaks_lava/_shipped/experiments`` (``pyproject.toml`` maps them there at build time); in a checkout
(``pip install -e .``) they are the top-level directories themselves. Both layouts keep the two side by side, so a
config's ``../netx_models/...`` (``experiments/demo.toml``) names the same files in each.

>>> from brainleaks_lava.resources import shipped_model, shipped_models, demo_config
>>> shipped_models()[:2]
['mnist_ann.h5', 'mnist_eval_ann.h5']
>>> shipped_model("mnist_snn").name           # a file name, or its stem
'mnist_snn.net'
>>> demo_config().name
'demo.toml'
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

from .errors import ConfigError, InputError, ModelFileError

MODELS = "netx_models"
EXPERIMENTS = "experiments"
MODEL_SUFFIXES = (".net", ".h5")  # a .net's JSON sidecar is shipped beside it, and not listed as a model


def _checkout_root() -> Path | None:
    """The repository this module runs from (an editable install), or None (an installed copy)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _shipped_dir(name: str, error: type[Exception]) -> Path:
    """The directory ``name`` (netx_models or experiments): the package data of an installed copy, else the
    checkout's own; ``error`` naming both places when neither exists."""
    packaged = Path(str(importlib.resources.files("brainleaks_lava._shipped"))) / name
    if packaged.is_dir():
        return packaged
    root = _checkout_root()
    if root is not None and (root / name).is_dir():
        return root / name
    where = f"{packaged}" + (f" or {root / name}" if root is not None else "")
    raise error(f"the shipped {name} directory is missing from this installation of brainleaks_lava (looked in "
                f"{where}); reinstall the package from its wheel, or run from a complete checkout")


def models_dir() -> Path:
    """The directory of the shipped models (``netx_models/``)."""
    return _shipped_dir(MODELS, ModelFileError)


def experiments_dir() -> Path:
    """The directory of the shipped experiment configs (``experiments/``)."""
    return _shipped_dir(EXPERIMENTS, ConfigError)


def shipped_models() -> list[str]:
    """File names of the shipped models (``.net`` NetX SNNs and ``.h5`` ANNs and evaluators), sorted."""
    return sorted(p.name for p in models_dir().iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())


def experiment_configs() -> list[str]:
    """Names of the shipped experiment configs (``demo``, ``mnist``, ...), sorted."""
    return sorted(p.stem for p in experiments_dir().glob("*.toml") if p.is_file())


def _pick(name: str, names: list[str], stems: dict[str, str], what: str) -> str:
    if not isinstance(name, str):
        raise InputError(f"{what} name must be a string, got {type(name).__name__}")
    if name in names:
        return name
    if name in stems:
        return stems[name]
    raise InputError(f"no shipped {what} {name!r}; shipped: {', '.join(names)}")


def shipped_model(name: str) -> Path:
    """Path of the shipped model ``name``: a file name from :func:`shipped_models` (``"mnist_snn.net"``) or its
    stem (``"mnist_snn"``). InputError listing the shipped models for any other name."""
    names = shipped_models()
    return models_dir() / _pick(name, names, {Path(n).stem: n for n in names}, "model")


def experiment_config(name: str) -> Path:
    """Path of the shipped experiment config ``name`` (``"demo"`` or ``"demo.toml"``). InputError listing the
    shipped configs for any other name."""
    names = experiment_configs()
    return experiments_dir() / (_pick(name, names, {f"{n}.toml": n for n in names}, "experiment config") + ".toml")


def demo_config() -> Path:
    """Path of the demo's config (``experiments/demo.toml``): the shipped MNIST targets and evaluators, attacked
    offline on the vendored MNIST subset (``brainleaks demo``)."""
    return experiment_config("demo")
