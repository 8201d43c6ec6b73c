"""Reconstruction files (HDF5): what an attack produced, readable without trusting the file.

Layout: attrs ``format`` (``brainleaks-recon/1``), ``attack``, ``mode``, ``params`` (JSON), ``seed``,
``model_path``, ``model_sha256``, ``input_kind`` (``spikes`` | ``image`` | ``drive``), ``seconds``, ``extra``
(JSON), for drives ``drive_range`` (JSON [low, high]); datasets ``targets`` (R,), ``samples`` (R, features, T)
uint8 spikes, (R, features, T) float32 graded drives or (R, features) float32 images,
``confidence`` (R,), ``iterations`` (R,), ``loss_history`` (I, R), optional ``probabilities`` (R, features, T);
from query-only attacks, optionally, a sample of the oracle's queries: ``query_inputs`` (k, features, T) as the
twin saw them (uint8 spikes or float32 drives), ``query_outputs`` (k, C) counts or posteriors or (k,) labels, and
``query_index`` (k,) the queries' numbers, increasing.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np

from ..errors import ModelFileError
from ..fileio import atomic_h5, open_h5, read_attr, read_dataset
from ..safety import MAX_INPUTS, check_count, check_time_steps
from .base import AttackResult

RECON_FORMAT = "brainleaks-recon/1"
DATASETS = ("targets", "samples", "confidence", "iterations", "loss_history", "probabilities")
QUERY_DATASETS = ("query_inputs", "query_outputs", "query_index")
MAX_QUERY_CLASSES = 100_000  # columns of 'query_outputs' (safety.MAX_INPUTS bounds the features)
# Sizes a reader accepts (check_sizes), from the datasets' shapes before anything is read, so that a small file of
# compressed zeros cannot make evaluate, plot, replay or run allocate gigabytes: time steps at most
# safety.MAX_TIME_STEPS, features at most safety.MAX_INPUTS, and these:
MAX_RECONSTRUCTIONS = 10_000  # reconstructions in one file (an attack writes one per class: 10-40)
MAX_RECON_VALUES = 1 << 25  # values of one dataset: 33.5 M (40 BL-v2 faces of 10,304 pixels x 25 steps: 10.3 M)


def save_recon(result: AttackResult, path: str | Path, model_path: str = "", model_sha256: str = "") -> Path:
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs.update({
            "format": RECON_FORMAT, "attack": result.attack, "mode": result.mode,
            "params": json.dumps(result.params, sort_keys=True), "seed": int(result.seed),
            "model_path": str(model_path), "model_sha256": model_sha256,
            "input_kind": result.input_kind, "seconds": float(result.seconds),
            "extra": json.dumps(result.extra, sort_keys=True),
        })
        if result.drive_range is not None:
            f.attrs["drive_range"] = json.dumps([float(v) for v in result.drive_range])
        f.create_dataset("targets", data=np.asarray(result.targets, dtype=np.int64))
        f.create_dataset("samples", data=result.samples, compression="gzip")
        f.create_dataset("confidence", data=np.asarray(result.confidence, dtype=np.float32))
        f.create_dataset("iterations", data=np.asarray(result.iterations, dtype=np.int64))
        f.create_dataset("loss_history", data=np.asarray(result.loss_history, dtype=np.float32))
        if result.probabilities is not None:
            f.create_dataset("probabilities", data=result.probabilities, compression="gzip")
        if result.query_sample is not None:
            q = result.query_sample
            f.create_dataset("query_inputs", data=q["inputs"], compression="gzip")
            f.create_dataset("query_outputs", data=q["outputs"])
            f.create_dataset("query_index", data=np.asarray(q["index"], dtype=np.int64))
    return path


def _attr_str(f, key: str, path: Path) -> str:
    v = read_attr(f, key)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        raise ModelFileError(f"{path}: attribute '{key}' missing or not text")
    return v


def _attr_json(f, key: str, path: Path):
    text = _attr_str(f, key, path)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ModelFileError(f"{path}: attribute '{key}' is not valid JSON ({type(e).__name__}: {e})") from None


def _attr_number(f, key: str, default, path: Path, kinds: str):
    v = np.asarray(read_attr(f, key, default))
    if v.size != 1 or v.dtype.kind not in kinds:
        raise ModelFileError(f"{path}: attribute '{key}' must be one {'integer' if kinds == 'iu' else 'number'}, "
                             f"got {v.dtype} of shape {v.shape}")
    return v.reshape(-1)[0].item()


def load_recon(path: str | Path) -> AttackResult:
    """Read and validate a reconstruction file; every problem is a ``ModelFileError`` naming the field."""
    path = Path(path)
    with open_h5(path, "reconstruction file") as f:
        try:
            from ..info import wrong_kind

            other = wrong_kind(f, path, "recon")  # a model given where a reconstruction belongs
            if other:
                raise ModelFileError(f"{other} (one written by 'brainleaks attack' or 'brainleaks audit')")
            if _attr_str(f, "format", path) != RECON_FORMAT:
                raise ModelFileError(f"{path}: not a brainleaks reconstruction file (format {read_attr(f, 'format')!r})")
            for key in DATASETS:
                if key in f:
                    if not isinstance(f[key], h5py.Dataset):
                        raise ModelFileError(f"{path}: '{key}' is not a dataset")
                elif key != "probabilities":
                    raise ModelFileError(f"{path}: missing dataset '{key}'")
            present = [key for key in QUERY_DATASETS if key in f]
            if present and len(present) != len(QUERY_DATASETS):
                raise ModelFileError(f"{path}: a query sample needs all of {', '.join(QUERY_DATASETS)}; found only "
                                     f"{', '.join(present)}")
            for key in present:
                if not isinstance(f[key], h5py.Dataset):
                    raise ModelFileError(f"{path}: '{key}' is not a dataset")
            check_sizes({key: f[key].shape for key in DATASETS + QUERY_DATASETS if key in f}, path)
            data = {key: read_dataset(f[key], f"{path}: '{key}'", MAX_RECON_VALUES)
                    for key in DATASETS + QUERY_DATASETS if key in f}
            params = _attr_json(f, "params", path)
            extra = _attr_json(f, "extra", path) if "extra" in f.attrs else {}
            attrs = {k: _attr_str(f, k, path) for k in ("attack", "mode", "input_kind")}
            model_path = str(read_attr(f, "model_path", ""))
            model_sha = str(read_attr(f, "model_sha256", ""))
            seed = _attr_number(f, "seed", 0, path, "iu")
            seconds = _attr_number(f, "seconds", 0.0, path, "iuf")
            drive_range = _attr_json(f, "drive_range", path) if attrs["input_kind"] == "drive" else None
        except ModelFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError) as e:
            raise ModelFileError(f"{path}: corrupt reconstruction file ({type(e).__name__}: {e})") from None
    if not isinstance(params, dict) or not isinstance(extra, dict):
        raise ModelFileError(f"{path}: attributes 'params' and 'extra' must be JSON objects")
    t, s = data["targets"], data["samples"]
    r = len(t) if t.ndim == 1 else -1
    if r <= 0 or t.dtype.kind not in "iu" or t.min() < 0 or t.max() >= 2**31:
        raise ModelFileError(f"{path}: 'targets' must be a non-empty 1-D array of class indices")
    kind = attrs["input_kind"]
    if kind not in ("spikes", "image", "drive"):
        raise ModelFileError(f"{path}: input_kind must be 'spikes', 'image' or 'drive', got {kind!r}")
    if kind == "drive":
        ok = isinstance(drive_range, list) and len(drive_range) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and -1e12 <= v <= 1e12 for v in drive_range)
        if not ok or not drive_range[0] < drive_range[1]:
            raise ModelFileError(f"{path}: attribute 'drive_range' must be [low, high] with low < high, "
                                 f"got {drive_range!r}")
        drive_range = (float(drive_range[0]), float(drive_range[1]))
    want_ndim = 2 if kind == "image" else 3
    if s.ndim != want_ndim or s.shape[0] != r or 0 in s.shape:
        raise ModelFileError(f"{path}: 'samples' must have shape ({r}, features{', T' if want_ndim == 3 else ''}) "
                             f"with features{' and T' if want_ndim == 3 else ''} > 0, got {s.shape}")
    _check_inputs(s, "samples", kind, drive_range, path)
    for key in ("confidence", "iterations"):
        if data[key].shape != (r,):
            raise ModelFileError(f"{path}: '{key}' must have shape ({r},), got {data[key].shape}")
    conf, iters, hist = data["confidence"], data["iterations"], data["loss_history"]
    if conf.dtype.kind not in "iuf":
        raise ModelFileError(f"{path}: 'confidence' must hold numbers, got dtype {conf.dtype}")
    if iters.dtype.kind not in "iu" or iters.min() < 0 or iters.max() >= 2**62:
        raise ModelFileError(f"{path}: 'iterations' must hold non-negative integers")
    if hist.dtype.kind not in "iuf" or hist.ndim != 2 or hist.shape[1] != r:
        raise ModelFileError(f"{path}: 'loss_history' must be an (iterations, {r}) array of numbers, "
                             f"got shape {hist.shape} dtype {hist.dtype}")
    prob = data.get("probabilities")
    if prob is not None:
        if kind != "spikes":
            raise ModelFileError(f"{path}: 'probabilities' (Bernoulli parameters of spike trains) in a file of images")
        if prob.shape != s.shape or prob.dtype.kind != "f" or not np.all(np.isfinite(prob)) or prob.min() < 0 or prob.max() > 1:
            raise ModelFileError(f"{path}: 'probabilities' must match 'samples' in shape and lie in [0, 1]")
    query_sample = _query_sample(data, s, kind, drive_range, path) if "query_inputs" in data else None
    return AttackResult(
        attack=attrs["attack"], mode=attrs["mode"], params=params, seed=seed, targets=t.astype(np.int64),
        samples=s.astype(np.uint8) if kind == "spikes" else s.astype(np.float32), drive_range=drive_range,
        confidence=conf.astype(np.float32), iterations=iters.astype(np.int64),
        loss_history=hist.astype(np.float32), probabilities=None if prob is None else prob.astype(np.float32),
        seconds=seconds, extra={**extra, "model_path": model_path, "model_sha256": model_sha},
        query_sample=query_sample)


def _check_inputs(a: np.ndarray, name: str, kind: str, drive_range, path: Path) -> None:
    """Values of network inputs of ``kind``: finite numbers; 0/1 spikes; images in [0, 1]; drives in the range."""
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.all(np.isfinite(a))):
        raise ModelFileError(f"{path}: '{name}' must be finite numbers")
    if kind == "spikes" and not np.all((a == 0) | (a == 1)):
        raise ModelFileError(f"{path}: '{name}' must hold binary spikes (0/1)")
    if kind == "image" and (a.min() < 0 or a.max() > 1):
        raise ModelFileError(f"{path}: image '{name}' must lie in [0, 1]")
    if kind == "drive" and (a.min() < drive_range[0] or a.max() > drive_range[1]):
        raise ModelFileError(f"{path}: graded '{name}' must lie in the drive range {list(drive_range)}")


def _query_sample(data: dict, samples: np.ndarray, kind: str, drive_range, path: Path) -> dict:
    """The validated query sample of a file (see the module docstring): inputs of the reconstructions' kind and
    shape per sample, one answer per input (finite numbers; integers for counts and labels), increasing indices."""
    x, out, idx = data["query_inputs"], data["query_outputs"], data["query_index"]
    if kind == "image":
        raise ModelFileError(f"{path}: a query sample in a file of images (query-only attacks write spike trains "
                             f"or drives)")
    k = len(x) if x.ndim == 3 else -1
    if k <= 0 or x.shape[1:] != samples.shape[1:]:
        raise ModelFileError(f"{path}: 'query_inputs' must have shape (k, {samples.shape[1]}, {samples.shape[2]}) "
                             f"like 'samples', got {x.shape}")
    _check_inputs(x, "query_inputs", kind, drive_range, path)
    if out.shape[:1] != (k,) or out.ndim not in (1, 2) or (out.ndim == 2 and not 0 < out.shape[1] <= MAX_QUERY_CLASSES):
        raise ModelFileError(f"{path}: 'query_outputs' must have shape ({k},) labels or ({k}, classes), "
                             f"got {out.shape}")
    if out.dtype.kind not in "iuf" or (out.dtype.kind == "f" and not np.all(np.isfinite(out))):
        raise ModelFileError(f"{path}: 'query_outputs' must be finite numbers")
    if out.ndim == 1 and out.dtype.kind == "f":
        raise ModelFileError(f"{path}: 'query_outputs' of shape ({k},) must hold integer labels")
    if idx.shape != (k,) or idx.dtype.kind not in "iu" or idx.min() < 0 or np.any(np.diff(idx) <= 0):
        raise ModelFileError(f"{path}: 'query_index' must be {k} increasing non-negative integers")
    inputs = x.astype(np.uint8) if kind == "spikes" else x.astype(np.float32)
    return {"inputs": inputs, "outputs": out, "index": idx.astype(np.int64)}


def check_sizes(shapes: dict, path) -> None:
    """The sizes of a reconstruction file's datasets (``shapes``: name -> shape, from metadata alone) within the
    bounds every consumer relies on: reconstructions (``MAX_RECONSTRUCTIONS``), features (``safety.MAX_INPUTS``),
    time steps (``safety.MAX_TIME_STEPS``) and values per dataset (``MAX_RECON_VALUES``). ``ModelFileError``
    naming the file, the dataset and the bound."""
    s = shapes.get("samples")
    if s is not None and len(s) in (2, 3):
        check_count(s[0], f"{path}: the number of reconstructions ('samples' of shape {s})", MAX_RECONSTRUCTIONS,
                    0, "", ModelFileError)
        check_count(s[1], f"{path}: the features of 'samples' (shape {s})", MAX_INPUTS, 0, "", ModelFileError)
        if len(s) == 3:
            check_time_steps(s[2], f"{path}: the time steps of 'samples' (shape {s})", ModelFileError)
    for key, shape in shapes.items():
        n = math.prod(shape)
        if n > MAX_RECON_VALUES:
            raise ModelFileError(f"{path}: '{key}' of shape {shape} holds {n} values; a reconstruction file holds at "
                                 f"most {MAX_RECON_VALUES} per dataset")


def check_draws(draws) -> int:
    """``draws`` if it is a positive integer, else InputError."""
    from ..errors import InputError

    if isinstance(draws, bool) or not isinstance(draws, int) or draws <= 0:
        raise InputError(f"draws must be a positive integer, got {draws!r}")
    return draws


def recon_draws(result: AttackResult, draws: int, seed: int = 0) -> np.ndarray:
    """The reconstructions as (draws, R, ...) arrays.

    With Bernoulli probabilities (BL-v2) these are ``draws`` independent seeded spike-train draws; without
    them (BL-v1 spikes, MI-FACE images) the reconstruction is deterministic and is returned once.
    """
    import torch

    from .brainleaks_v2 import draw_samples

    check_draws(draws)
    if result.probabilities is None:
        return result.samples[None]
    d = draw_samples(result.probabilities, draws, torch.Generator().manual_seed(int(seed)))
    return d.transpose(1, 0, 2, 3)
