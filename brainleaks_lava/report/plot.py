"""``brainleaks plot``: figures from a reconstruction file alone.

A still grid (PNG) of the rate-decoded reconstructions (BL-v2: the Bernoulli probabilities' time average,
the expected rate of its draws; graded drives normalised by their range; MI-FACE images min-max scaled, as
evaluators score them), with a real training example of each class above it when data is given; and an
animated GIF of the spike frames over the time steps (event reconstructions, and any spiking one).

The sample layout comes from ``--input-shape``, else from the sidecar of the model the file names
(``input_shape``), else a flat input of a square number of values is drawn as a square image.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError


def recon_shape(rec, input_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """(H, W) or (C, H, W) of one sample of ``rec`` (see the module docstring)."""
    features = int(rec.samples.shape[1]) if rec.samples.ndim >= 2 else 0
    if input_shape is None:
        model = rec.extra.get("model_path")
        if model:
            from ..models.files import read_sidecar

            try:
                shape = read_sidecar(model).get("input_shape")
            except Exception:  # an unreadable or absent sidecar only loses the hint
                shape = None
            if isinstance(shape, list) and shape and math.prod(shape) == features:
                input_shape = tuple(int(v) for v in shape)
    if input_shape is None:
        side = math.isqrt(features)
        if side * side != features:
            raise InputError(f"cannot tell the image layout of {features} features: give --input-shape H,W or C,H,W")
        input_shape = (side, side)
    if math.prod(input_shape) != features:
        raise InputError(f"--input-shape {input_shape} has {math.prod(input_shape)} values; the reconstructions "
                         f"have {features} features")
    if len(input_shape) == 1:
        raise InputError("--input-shape must be H,W or C,H,W for a figure")
    return tuple(input_shape)


def plot_recon(recon_path, out: str | Path | None = None, data_root=None, dataset: str | None = None,
               input_shape: tuple[int, ...] | None = None) -> list[Path]:
    """Write the figure(s) of ``recon_path``; ``out`` ending in .png or .gif picks one (default: the PNG
    beside the file, and for spiking reconstructions also the GIF). Returns the paths written."""
    from ..attacks.recon_file import load_recon
    from ..evaluation.score import METHOD_LABELS
    from .figures import frames_gif, recon_grid

    recon_path = Path(recon_path)
    rec = load_recon(recon_path)
    shape = recon_shape(rec, input_shape)
    if out is not None and Path(out).suffix.lower() not in (".png", ".gif"):
        raise InputError(f"--out must end in .png or .gif, got {out}")
    if out is not None and Path(out).suffix.lower() == ".gif" and rec.input_kind == "image":
        raise InputError(f"{recon_path} holds images ({rec.attack}); an animation needs spike trains")
    real = None
    if data_root is not None:
        real = _real_examples(rec, shape, data_root, dataset)
    view = rec.view()
    title = f"{METHOD_LABELS.get(rec.attack, rec.attack)} ({rec.mode}) from {recon_path.name}"
    written = []
    want_png = out is None or Path(out).suffix.lower() == ".png"
    want_gif = (out is None and rec.input_kind != "image") or (out is not None and Path(out).suffix.lower() == ".gif")
    if want_png:
        png = Path(out) if out is not None else recon_path.with_suffix(".png")
        written.append(recon_grid(png, view, rec.targets, shape, title, confidences=rec.confidence,
                                  real_examples=real, conf_label="twin"))
    if want_gif:
        gif = Path(out) if out is not None and Path(out).suffix.lower() == ".gif" else recon_path.with_suffix(".gif")
        frames_shape = shape if len(shape) == 3 else (1, *shape)
        timed_real = real if real is not None and real.ndim == 5 else None  # event frames (R, C, H, W, T)
        written.append(frames_gif(gif, view, frames_shape, real_examples=timed_real))
    return written


def _real_examples(rec, shape, data_root, dataset):
    """One training example per target class, shaped like the reconstructions (images or event frames)."""
    from ..data import STATIC_DATASETS, load_dataset
    from ..data.encoding import dataset_inputs

    name = dataset
    if name is None:
        from ..models.files import read_sidecar

        model = rec.extra.get("model_path")
        name = read_sidecar(model).get("dataset") if model else None
    if name is None:
        raise InputError("give --dataset: the reconstruction's model does not name its dataset")
    events = name not in STATIC_DATASETS
    train = load_dataset(name, data_root, split="train", time_bins=int(rec.samples.shape[-1]) if events else None)
    inputs = dataset_inputs(train)
    if int(np.prod(inputs.shape[1:len(shape) + 1])) != int(np.prod(shape)):
        raise InputError(f"{name} samples have shape {inputs.shape[1:]}, the reconstructions {shape}")
    from .figures import class_examples

    return class_examples(inputs, train.labels, rec.targets)
