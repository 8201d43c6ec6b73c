"""Figures: grids of rate-decoded reconstructions beside a real example of each class, and for event
data an animated GIF of the frames.

``input_shape`` is a sample's shape without time: (H, W) for images and rate-coded images,
(C, H, W) for event frames (channels are averaged in the still images and OR-ed in the animation).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import atomic_path


def decode_for_view(samples: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Spike trains or probabilities (R, features, T) -> rates as images (R, H, W) in [0, 1];
    images (R, features) or (R, H, W) are reshaped only."""
    samples = np.asarray(samples, dtype=np.float32)
    timed = samples.ndim == len(input_shape) + 2 or (samples.ndim == 3 and samples.shape[1] == int(np.prod(input_shape)))
    rates = samples.mean(axis=-1) if timed else samples  # (R, C, H, W, T) frames or (R, features, T) trains
    rates = rates.reshape(len(rates), *input_shape)
    return rates.mean(axis=1) if len(input_shape) == 3 else rates


#: classes per row of a figure; more wrap into further rows (40 faces: 4 rows of 10)
COLUMNS = 10


def grid_layout(n: int, columns: int = COLUMNS) -> tuple[int, int]:
    """(blocks, columns) of a figure of ``n`` panels wrapped after ``columns``: block ``b`` shows panels
    ``b * columns ...``; the one layout of the still grids and the animations."""
    cols = max(1, min(int(n), int(columns)))
    return -(-int(n) // cols), cols


def recon_grid(path: str | Path, recon: np.ndarray, targets: np.ndarray, input_shape: tuple[int, ...],
               title: str, class_names=None, confidences=None, real_examples: np.ndarray | None = None,
               real_label: str = "real", columns: int = COLUMNS, conf_label: str = "eval") -> Path:
    """Write a PNG: reconstructions rate-decoded (labelled with target class and evaluator confidence),
    each under a real training example of its class when given. More than ``columns`` classes wrap into
    further rows (a real-example row above each reconstruction row)."""
    fig = recon_figure(recon, targets, input_shape, title, class_names, confidences, real_examples, real_label,
                       columns, conf_label)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def recon_figure(recon: np.ndarray, targets: np.ndarray, input_shape: tuple[int, ...], title: str,
                 class_names=None, confidences=None, real_examples: np.ndarray | None = None,
                 real_label: str = "real", columns: int = COLUMNS, conf_label: str = "eval",
                 target_label: str = "target"):
    """The matplotlib figure :func:`recon_grid` writes. Built without pyplot: it switches no backend and closes
    no open figure (a notebook shows it as a cell's value); one axes per panel, none for empty grid cells."""
    from matplotlib.figure import Figure

    views = decode_for_view(recon, input_shape)
    reals = decode_for_view(real_examples, input_shape) if real_examples is not None else None
    n = len(views)
    blocks, cols = grid_layout(n, columns)
    per = 2 if real_examples is not None else 1
    fig = Figure(figsize=(1.3 * cols, (1.55 * per) * blocks + 0.5))
    axes = fig.subplots(blocks * per, cols, squeeze=False)
    name = (lambda c: class_names[c] if c < len(class_names) else str(c)) if class_names else str
    used = set()
    for i in range(n):
        b, col = divmod(i, cols)
        if reals is not None:
            ax = axes[b * per, col]
            ax.imshow(reals[i], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{real_label} {name(int(targets[i]))}", fontsize=8)
            used.add(id(ax))
        ax = axes[b * per + per - 1, col]
        ax.imshow(views[i], cmap="gray", vmin=0, vmax=1)  # rates and images are in [0, 1]
        label = f"{target_label} {name(int(targets[i]))}"
        if confidences is not None:
            label += f"\n{conf_label} {float(confidences[i]):.2f}"
        ax.set_title(label, fontsize=8)
        used.add(id(ax))
    for ax in axes.flat:
        ax.axis("off")
        if id(ax) not in used:
            fig.delaxes(ax)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def frames_gif(path: str | Path, recon: np.ndarray, input_shape: tuple[int, int, int], real_examples=None,
               scale: int = 4, frame_ms: int = 120, columns: int = COLUMNS) -> Path:
    """Write an animated GIF of event frames: one panel per reconstruction (bottom row) and, if given,
    the real example of its class (top row), stepping through the T time bins. More than ``columns``
    classes wrap into further rows, as in :func:`recon_grid`.

    ``recon``: spike trains or probabilities (R, C*H*W, T); ``real_examples``: (R, C, H, W, T) or
    (R, C*H*W, T). Channels are merged (max); values are shown as grey levels in [0, 1].
    """
    from PIL import Image

    if len(input_shape) != 3:
        raise ValueError(f"frames_gif needs a (C, H, W) input shape, got {input_shape}")
    c, h, w = (int(v) for v in input_shape)

    def panels(a):
        a = np.asarray(a, dtype=np.float32)
        a = a.reshape(len(a), c, h, w, a.shape[-1]).max(axis=1)  # (R, H, W, T)
        return np.clip(a, 0.0, 1.0)

    rows = [panels(recon)] + ([panels(real_examples)] if real_examples is not None else [])
    rows = rows[::-1]  # real examples on top
    r, t = rows[0].shape[0], rows[0].shape[-1]
    blocks, cols = grid_layout(r, columns)
    gap = 2
    height = blocks * len(rows) * (h + gap) - gap
    width = cols * (w + gap) - gap
    images = []
    for k in range(t):
        canvas = np.full((height, width), 0.35, dtype=np.float32)  # grey gaps between panels
        for j, row in enumerate(rows):
            for i in range(r):
                b, col = divmod(i, cols)
                y, x = (b * len(rows) + j) * (h + gap), col * (w + gap)
                canvas[y:y + h, x:x + w] = row[i, :, :, k]
        big = np.kron(canvas, np.ones((scale, scale), dtype=np.float32))
        images.append(Image.fromarray((255 * big).astype(np.uint8), mode="L"))
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path


def class_examples(images: np.ndarray, labels: np.ndarray, classes) -> np.ndarray:
    """The first training image of each class in ``classes``."""
    out = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        out.append(images[idx[0]] if len(idx) else np.zeros(images.shape[1:], images.dtype))
    return np.stack(out)
