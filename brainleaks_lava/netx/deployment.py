"""How a NetX network is deployed: what NetX files do not say.

A ``Deployment`` gives the number of time steps per sample, the input encoder, the input shape, the read-out
the owner uses to classify, the class names, and the softmax scale of the posterior the attacks use. It is
taken, field by field, from the first of:

1. options given by the caller (the CLI's ``--steps``, ``--encoding``, ``--input-shape``, ``--readout``);
2. a deployment card: a small TOML file beside the model (``<model stem>.card.toml``) or given explicitly;
3. the JSON sidecar the toolkit writes beside the networks it trains;
4. defaults, which are logged as such (``Deployment.sources`` says where each field came from).

Read-outs: ``spikes`` (softmax of output spike counts), ``membrane`` (time-averaged softmax of the output
potential before the reset: the paper's), ``voltage`` (the same after the reset) and ``integrator``
(softmax of the mean voltage of a last layer that has no neuron group). Encoders: ``rate`` (Bernoulli of
the intensity per step), ``if`` (deterministic integrate-and-fire: v += x, a spike and v -= 1 when v >= 1),
``graded`` (the value drives an input layer directly, within ``input_range``; default [0, 1], the intensity
range of images) and ``events`` (event frames, already spikes).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ModelFileError
from ..fileio import read_bytes_guarded
from ..safety import MAX_CLASSES, MAX_INPUTS, check_time_steps
from .spec import NetSpec

log = logging.getLogger(__name__)

ENCODINGS = ("rate", "if", "graded", "events")
READOUTS = ("spikes", "membrane", "voltage", "integrator")
CARD_KEYS = {"steps", "encoding", "input_shape", "readout", "classes", "posterior_scale", "tau_grad",
             "scale_grad", "input_range"}
MAX_CARD_BYTES = 64 << 10  # a card holds a few lines (class names included); a larger file is not read
DEFAULT_STEPS = 25


@dataclass(frozen=True)
class Deployment:
    steps: int = DEFAULT_STEPS
    encoding: str = "rate"
    input_shape: tuple[int, ...] | None = None
    readout: str = "spikes"
    classes: tuple[str, ...] | None = None
    posterior_scale: float = 1.0
    tau_grad: float = 0.03  # surrogate gradient of the twin (not a deployment setting; used by attacks)
    scale_grad: float = 3.0
    input_range: tuple[float, float] = (0.0, 1.0)  # valid values of a graded drive
    sources: dict = field(default_factory=dict, compare=False)

    def check(self, where: str) -> "Deployment":
        check_fields({k: getattr(self, k) for k in CARD_KEYS}, where)
        return self

    def describe(self) -> str:
        def src(key):
            s = self.sources.get(key, "default")
            return "" if s in ("option", "sidecar") else f" ({s})"
        shape = "x".join(map(str, self.input_shape)) if self.input_shape else "?"
        return (f"T={self.steps}{src('steps')}, encoder {self.encoding}{src('encoding')}, input {shape}, "
                f"read-out {self.readout}{src('readout')} (posterior scale {self.posterior_scale:g})")


def check_fields(d: dict, where: str) -> None:
    """The deployment fields present in ``d`` (normalised: lists as tuples) have their type and a bound on
    everything that sizes work: time steps (``safety.MAX_TIME_STEPS``), the input shape's values
    (``safety.MAX_INPUTS``), the number of class names (``safety.MAX_CLASSES``). ``ModelFileError`` naming
    ``where`` (the source: a card, a sidecar, an option) and the key."""
    def bad(key, msg):
        shown = repr(d[key])
        raise ModelFileError(f"{where}: '{key}' {msg}, got {shown[:60] + '...' if len(shown) > 60 else shown}")

    def number(v):
        return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)

    if "steps" in d:
        check_time_steps(d["steps"], f"{where}: 'steps'", ModelFileError)
    if "encoding" in d and d["encoding"] not in ENCODINGS:
        bad("encoding", f"must be one of {', '.join(ENCODINGS)}")
    if "readout" in d and d["readout"] not in READOUTS:
        bad("readout", f"must be one of {', '.join(READOUTS)}")
    shape = d.get("input_shape")
    if shape is not None:
        if (not isinstance(shape, tuple) or len(shape) not in (1, 3)
                or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in shape)):
            bad("input_shape", "must be (n,) or (C, H, W) of positive integers")
        if math.prod(shape) > MAX_INPUTS:
            bad("input_shape", f"must hold at most {MAX_INPUTS} values per sample (its product is "
                               f"{math.prod(shape)})")
    classes = d.get("classes")
    if classes is not None:
        if not isinstance(classes, tuple) or any(not isinstance(c, str) or len(c) > 200 for c in classes):
            bad("classes", "must be a list of class names (text of at most 200 characters)")
        if not 0 < len(classes) <= MAX_CLASSES:
            bad("classes", f"must list 1..{MAX_CLASSES} class names (it lists {len(classes)})")
    if "input_range" in d:
        r = d["input_range"]
        if (not isinstance(r, tuple) or len(r) != 2 or not all(number(v) and abs(v) <= 1e6 for v in r)
                or not r[0] < r[1]):
            bad("input_range", "must be [low, high] with finite low < high (|value| <= 1e6)")
    for key in ("posterior_scale", "tau_grad", "scale_grad"):
        if key in d and not (number(d[key]) and 0 < d[key] < 1e6):
            bad(key, "must be a positive number below 1e6")


def card_path(net_path: str | Path) -> Path:
    p = Path(net_path)
    return p.with_name(p.stem + ".card.toml")


def read_card(path: str | Path) -> dict:
    """A deployment card (TOML) as a dict of checked keys (:func:`check_fields`, naming the card); unknown keys
    are refused naming the key; a file larger than ``MAX_CARD_BYTES`` is not read."""
    import tomli

    path = Path(path)
    raw = read_bytes_guarded(path, "deployment card", MAX_CARD_BYTES, ModelFileError)  # cards are a few lines
    try:
        data = tomli.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{path}: cannot read the deployment card ({e})") from None
    except (tomli.TOMLDecodeError, RecursionError, ValueError) as e:
        raise ModelFileError(f"{path}: deployment card is not valid TOML ({e})") from None
    unknown = sorted(set(data) - CARD_KEYS)
    if unknown:
        raise ModelFileError(f"{path}: unknown key '{unknown[0]}' in the deployment card (keys: "
                             f"{', '.join(sorted(CARD_KEYS))})")
    check_fields(_normalise(data), f"deployment card {path}")
    return data


def _normalise(d: dict) -> dict:
    out = dict(d)
    if "input_shape" in out and isinstance(out["input_shape"], list):
        out["input_shape"] = tuple(out["input_shape"])
    if "input_range" in out and isinstance(out["input_range"], list):
        out["input_range"] = tuple(out["input_range"])
    if "classes" in out and isinstance(out["classes"], list):
        out["classes"] = tuple(str(c) if isinstance(c, int) and not isinstance(c, bool) else c
                               for c in out["classes"])
    return out


def from_sidecar(meta: dict) -> dict:
    """The deployment fields a toolkit sidecar holds (files it trained)."""
    if not meta:
        return {}
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    out = {}
    for key in ("steps", "readout", "posterior_scale"):
        if key in spec:
            out[key] = spec[key]
    if "readout" not in out:
        out["readout"] = "spikes"  # sidecars written before read-outs existed meant spike counts
    neuron = spec.get("neuron") if isinstance(spec.get("neuron"), dict) else {}
    for key in ("tau_grad", "scale_grad"):
        if key in neuron:
            out[key] = neuron[key]
    enc = meta.get("encoding")
    if isinstance(enc, dict) and enc.get("kind") in ENCODINGS:
        out["encoding"] = enc["kind"]
    if isinstance(meta.get("input_shape"), list) and meta.get("encoding", {}).get("kind") == "events":
        out["input_shape"] = meta["input_shape"]
    if isinstance(meta.get("classes"), list):
        out["classes"] = meta["classes"]
    return _normalise(out)


def resolve(spec: NetSpec | None, net_path: str | Path, meta: dict, options: dict | None = None,
            card: str | Path | None = None) -> Deployment:
    """The deployment of ``net_path`` (see the module docstring for the order of sources)."""
    layers = {}
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - CARD_KEYS)
    if unknown:
        raise ModelFileError(f"unknown deployment option '{unknown[0]}'")
    card_file = Path(card) if card is not None else card_path(net_path)
    if card is not None and not card_file.is_file():
        raise ModelFileError(f"deployment card not found: {card_file}")
    card_d = _normalise(read_card(card_file)) if card_file.is_file() else {}
    side_d, opt_d = from_sidecar(meta), _normalise(options)
    check_fields(side_d, f"{Path(net_path).with_suffix('.json')} (the sidecar)")
    check_fields(opt_d, f"{net_path}: deployment option")
    for name, d in (("sidecar", side_d), (f"card {card_file.name}", card_d), ("option", opt_d)):
        for k, v in d.items():
            layers[k] = (v, name)
    values = {k: v for k, (v, _) in layers.items()}
    sources = {k: s for k, (_, s) in layers.items()}
    if spec is not None:
        values.setdefault("input_shape", tuple(spec.input_shape))
        sources.setdefault("input_shape", "file")
        if "readout" not in values:
            values["readout"] = "integrator" if spec.integrator_output else "spikes"
        if "encoding" not in values and spec.has_input_layer:
            values["encoding"] = "graded"
        if "posterior_scale" not in values and values["readout"] in ("membrane", "voltage"):
            values["posterior_scale"] = 1.0 / spec.output_layer.neuron.threshold
    if "classes" in values and isinstance(values["classes"], (list, tuple)):
        values["classes"] = tuple(values["classes"])
    try:
        dep = Deployment(**values, sources=sources)
    except TypeError as e:
        raise ModelFileError(f"{net_path}: invalid deployment ({e})") from None
    where = " / ".join(sorted(set(sources.values()) - {"file"})) or str(net_path)
    dep.check(f"{net_path} deployment ({where})")
    if spec is not None:
        _check_against(dep, spec, net_path)
    defaults = sorted(k for k in ("steps", "encoding", "readout") if k not in sources)
    if defaults and not meta:
        log.warning("%s: no %s given (no sidecar, card or option): using %s", net_path, ", ".join(defaults),
                    ", ".join(f"{k}={getattr(dep, k)}" for k in defaults))
    return dep


def _check_against(dep: Deployment, spec: NetSpec, where) -> None:
    import numpy as np

    if dep.input_shape is not None and int(np.prod(dep.input_shape)) != spec.num_inputs:
        raise ModelFileError(f"{where}: deployment input_shape {dep.input_shape} has {int(np.prod(dep.input_shape))} "
                             f"values but the network takes {spec.num_inputs}")
    if dep.readout == "integrator" and not spec.integrator_output:
        raise ModelFileError(f"{where}: read-out 'integrator' needs a last layer without a neuron group")
    if dep.readout in ("spikes", "membrane", "voltage") and spec.integrator_output:
        raise ModelFileError(f"{where}: the last layer has no neuron group (it never spikes): use read-out "
                             f"'integrator', not {dep.readout!r}")
    if dep.readout != "spikes" and spec.layers[-1].kind == "average":
        raise ModelFileError(f"{where}: an 'average' read-out layer is read by its spike rates: use read-out "
                             f"'spikes', not {dep.readout!r}")
    if dep.encoding == "graded" and not spec.has_input_layer:
        raise ModelFileError(f"{where}: encoding 'graded' drives an input layer, and this network has none")
    if dep.classes is not None and len(dep.classes) != spec.num_outputs:
        raise ModelFileError(f"{where}: {len(dep.classes)} class names for {spec.num_outputs} outputs")
    if dep.steps <= spec.settle_steps():
        raise ModelFileError(f"{where}: T={dep.steps} steps, but the network needs more than its "
                             f"{spec.settle_steps()} settle steps (layers plus delays)")


def with_options(dep: Deployment, **kw) -> Deployment:
    return replace(dep, **kw)
