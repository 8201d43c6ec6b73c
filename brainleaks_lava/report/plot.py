"""``brainleaks plot``: figures from a reconstruction file alone.

A still grid (PNG) of the rate-decoded reconstructions (BL-v2: the Bernoulli probabilities' time average,
the expected rate of its draws; graded drives normalised by their range; MI-FACE images min-max scaled, as
evaluators score them), with a real training example of each class above it when data is given; and an
animated GIF of the spike frames over the time steps (event reconstructions, and any spiking one).

The sample layout comes from ``--input-shape``, else from the sidecar of the model the file names
(``input_shape``), else a flat input of a square number of values is drawn as a square image.

Sizes are bounded before anything is drawn (the reader bounds the file's time steps and features): a figure
shows at most ``MAX_PLOT_PANELS`` reconstructions; an animation has at most ``MAX_GIF_FRAMES`` frames and
``MAX_GIF_PIXELS`` pixels in all (longer spike trains are shown averaged over bins of consecutive time steps,
which is logged), and a frame larger than a GIF may be is refused.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

MAX_PLOT_PANELS = 200  # reconstructions in one figure (an attack writes one per class: 10-40)
MAX_GIF_FRAMES = 500  # frames of an animation: a minute at 120 ms per frame
MAX_GIF_PIXELS = 1 << 28  # pixels of all its frames together: 256 MB of 8-bit grey, held until the GIF is written
GIF_MAX_SIDE = 65535  # the GIF format's limit on a frame's width and height


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
    if len(rec.targets) > MAX_PLOT_PANELS:
        raise InputError(f"{recon_path} holds {len(rec.targets)} reconstructions; a figure shows at most "
                         f"{MAX_PLOT_PANELS}")
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
    if want_gif:  # sized before anything is written
        frames_shape = shape if len(shape) == 3 else (1, *shape)
        timed_real = real if real is not None and real.ndim == 5 else None  # event frames (R, C, H, W, T)
        k = gif_time_bin(len(rec.targets), 1 if timed_real is None else 2, frames_shape, view.shape[-1], recon_path)
        if k > 1:
            log.warning("%s: %d time steps drawn as %d frames, each the mean of %d steps (at most %d frames and %d "
                        "pixels in an animation)", recon_path, view.shape[-1], -(-view.shape[-1] // k), k,
                        MAX_GIF_FRAMES, MAX_GIF_PIXELS)
    if want_png:
        png = Path(out) if out is not None else recon_path.with_suffix(".png")
        written.append(recon_grid(png, view, rec.targets, shape, title, confidences=rec.confidence,
                                  real_examples=real, conf_label="twin"))
    if want_gif:
        gif = Path(out) if out is not None and Path(out).suffix.lower() == ".gif" else recon_path.with_suffix(".gif")
        written.append(frames_gif(gif, time_bins(view, k), frames_shape,
                                  real_examples=None if timed_real is None else time_bins(timed_real, k)))
    return written


def gif_time_bin(panels: int, rows: int, shape: tuple[int, int, int], steps: int, where) -> int:
    """Time steps per frame of the animation of ``panels`` samples of ``shape`` (C, H, W) in ``rows`` rows
    (reconstructions, and real event frames above them): 1, or more when ``steps`` frames would exceed
    ``MAX_GIF_FRAMES`` frames or ``MAX_GIF_PIXELS`` pixels. ``InputError`` naming ``where`` when one frame alone
    is larger than a GIF may be."""
    from .figures import COLUMNS, grid_layout

    blocks, cols = grid_layout(panels, COLUMNS)
    h, w = shape[1:]
    height, width = 4 * blocks * rows * (h + 2), 4 * cols * (w + 2)  # frames_gif: 4x scale, panels 2 pixels apart
    if max(height, width) > GIF_MAX_SIDE or height * width > MAX_GIF_PIXELS:
        raise InputError(f"{where}: an animation frame of {width} x {height} pixels would be larger than a GIF may "
                         f"be (at most {GIF_MAX_SIDE} pixels a side, {MAX_GIF_PIXELS} in all); write the still grid "
                         f"only (--out FILE.png)")
    frames = min(MAX_GIF_FRAMES, MAX_GIF_PIXELS // (height * width))
    return -(-steps // frames)


def time_bins(a: np.ndarray, k: int) -> np.ndarray:
    """(..., T) -> (..., ceil(T / k)): the mean of every ``k`` consecutive time steps (the last bin may hold
    fewer); ``a`` itself when ``k`` is 1."""
    if k == 1:
        return a
    starts = np.arange(0, a.shape[-1], k)
    return np.add.reduceat(np.asarray(a, np.float32), starts, axis=-1) / np.diff(np.append(starts, a.shape[-1]))


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
