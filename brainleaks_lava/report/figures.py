"""Figures: grids of rate-decoded reconstructions beside a real example of each class."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import atomic_path


def decode_for_view(samples: np.ndarray) -> np.ndarray:
    """(R, features, T) spikes -> (R, features) rates; images pass through."""
    return samples.mean(axis=-1) if samples.ndim == 3 else samples


def recon_grid(path: str | Path, recon: np.ndarray, targets: np.ndarray, image_shape: tuple[int, int],
               title: str, class_names=None, confidences=None, real_examples: np.ndarray | None = None) -> Path:
    """Write a PNG: top row real training examples (optional), bottom row rate-decoded reconstructions
    labelled with target class and evaluator confidence."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = decode_for_view(np.asarray(recon, dtype=np.float32))
    n = len(views)
    rows = 2 if real_examples is not None else 1
    fig, axes = plt.subplots(rows, n, figsize=(1.3 * n, 1.55 * rows + 0.5), squeeze=False)
    name = (lambda c: class_names[c]) if class_names is not None else str
    for i in range(n):
        if real_examples is not None:
            ax = axes[0, i]
            ax.imshow(real_examples[i].reshape(image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"real {name(int(targets[i]))}", fontsize=8)
            ax.axis("off")
        ax = axes[rows - 1, i]
        ax.imshow(views[i].reshape(image_shape), cmap="gray", vmin=0, vmax=1)  # rates and images are in [0, 1]
        label = f"target {name(int(targets[i]))}"
        if confidences is not None:
            label += f"\neval {confidences[i]:.2f}"
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def class_examples(images: np.ndarray, labels: np.ndarray, classes) -> np.ndarray:
    """The first training image of each class in ``classes``."""
    out = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        out.append(images[idx[0]] if len(idx) else np.zeros(images.shape[1:], images.dtype))
    return np.stack(out)
