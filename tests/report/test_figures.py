"""Figures of many classes wrap into rows of at most 10 (the AT&T faces' 40 subjects: 4 rows of 10), in the
still grids of `brainleaks run` / `brainleaks plot` and in the event animations: one layout for all."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from brainleaks_lava.report.figures import frames_gif, grid_layout, recon_figure


@pytest.mark.parametrize("n, layout", [(40, (4, 10)), (10, (1, 10)), (7, (1, 7)), (11, (2, 10)), (1, (1, 1))])
def test_grid_layout_wraps_after_ten(n, layout):
    assert grid_layout(n) == layout


def _faces(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 112 * 92, 4)).astype(np.float32)  # spike probabilities of 112x92 faces, T=4


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def test_forty_faces_figure_is_four_pairs_of_rows_of_ten():
    rng = np.random.default_rng(1)
    real = rng.random((40, 112, 92)).astype(np.float32)
    fig = recon_figure(_faces(40), np.arange(40), (112, 92), "faces", confidences=np.full(40, 0.5),
                       real_examples=real)
    try:
        axes = _image_axes(fig)
        assert len(axes) == 80
        xs = sorted({round(ax.get_position().x0, 3) for ax in axes})
        ys = sorted({round(ax.get_position().y0, 3) for ax in axes}, reverse=True)
        assert len(xs) == 10 and len(ys) == 8  # 10 columns; 4 blocks of a real row over a reconstruction row
        where = {ax.get_title().split("\n")[0]: (xs.index(round(ax.get_position().x0, 3)),
                                                 ys.index(round(ax.get_position().y0, 3))) for ax in axes}
        assert where["target 0"] == (0, 1) and where["real 0"] == (0, 0)
        assert where["target 13"] == (3, 3) and where["real 13"] == (3, 2)
        assert where["target 39"] == (9, 7)
    finally:
        plt.close(fig)


def test_event_animation_of_many_classes_wraps_like_the_grid(tmp_path):
    c, h, w, t, n, scale = 2, 6, 5, 3, 23, 2
    recon = np.zeros((n, c * h * w, t), np.float32)
    real = np.zeros((n, c * h * w, t), np.float32)
    for i in range(n):
        recon[i] = (i + 1) / 100
        real[i] = 0.5 + (i + 1) / 100
    gif = Image.open(frames_gif(tmp_path / "e.gif", recon, (c, h, w), real_examples=real, scale=scale))
    blocks, cols = grid_layout(n)
    assert (blocks, cols) == (3, 10)
    assert gif.size == ((cols * (w + 2) - 2) * scale, (blocks * 2 * (h + 2) - 2) * scale)
    frame = np.asarray(gif.convert("L"), dtype=np.float32) / 255
    for i in (0, 13, 22):
        b, col = divmod(i, cols)
        x = (col * (w + 2) + w // 2) * scale
        y_real, y_rec = ((2 * b) * (h + 2) + h // 2) * scale, ((2 * b + 1) * (h + 2) + h // 2) * scale
        assert frame[y_real, x] == pytest.approx(0.5 + (i + 1) / 100, abs=0.01)
        assert frame[y_rec, x] == pytest.approx((i + 1) / 100, abs=0.01)
