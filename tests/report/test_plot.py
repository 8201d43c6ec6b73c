"""brainleaks plot: PNG grids and GIF animations from reconstruction files alone."""
import json

import numpy as np
import pytest
from PIL import Image

from brainleaks_lava.attacks import adapter_for, make_attack
from brainleaks_lava.attacks.base import AttackResult
from brainleaks_lava.attacks.recon_file import save_recon
from brainleaks_lava.cli import main
from brainleaks_lava.data.mnist import vendored_mnist_root
from brainleaks_lava.models.files import load_target


@pytest.fixture(scope="module")
def bl2_file(small_snn_path, tmp_path_factory):
    res = make_attack("bl2", adapter_for(load_target(small_snn_path)), iterations=3).invert(
        classes=[0, 1, 2], seed=0, progress=False)
    return save_recon(res, tmp_path_factory.mktemp("plot") / "bl2.h5", model_path=str(small_snn_path))


def _event_file(tmp_path, r=3, shape=(2, 8, 6), t=5):
    """An event reconstruction of a (C, H, W) = (2, 8, 6) target whose sidecar names its input shape."""
    model = tmp_path / "ev.net"
    model.with_suffix(".json").write_text(json.dumps({"input_shape": list(shape), "dataset": "nmnist"}))
    rng = np.random.default_rng(0)
    p = rng.random((r, int(np.prod(shape)), t)).astype(np.float32)
    res = AttackResult(attack="bl2", mode="paper", params={}, seed=0, targets=np.arange(r), samples=(p > 0.5).astype(np.uint8),
                       confidence=np.full(r, 0.5, np.float32), iterations=np.ones(r, np.int64),
                       loss_history=np.zeros((1, r), np.float32), probabilities=p)
    return save_recon(res, tmp_path / "ev_bl2.h5", model_path=str(model)), p


def test_plot_bl2_png_with_real_examples_and_gif(bl2_file, tmp_path, capsys):
    png, gif = tmp_path / "grid.png", tmp_path / "anim.gif"
    assert main(["plot", str(bl2_file), "--out", str(png), "--data-root", str(vendored_mnist_root()),
                 "--dataset", "mnist"]) == 0
    assert main(["plot", str(bl2_file), "--out", str(gif)]) == 0
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]  # one row of 3 under their real examples
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 12  # one frame per time step (T = 12)
    # default: both, beside the file
    assert main(["plot", str(bl2_file)]) == 0
    assert bl2_file.with_suffix(".png").is_file() and bl2_file.with_suffix(".gif").is_file()


def test_plot_event_reconstruction_uses_the_sidecar_shape(tmp_path):
    path, p = _event_file(tmp_path)
    assert main(["plot", str(path)]) == 0
    with Image.open(path.with_suffix(".gif")) as im:
        assert im.n_frames == 5
        frame0 = np.asarray(im.convert("L"), dtype=np.float32)
    # the first frame shows the probabilities of step 0, channels merged (max), 4x enlarged, 3 panels
    expected = p[..., 0].reshape(3, 2, 8, 6).max(1)
    panel = frame0[:8 * 4, :6 * 4][::4, ::4] / 255.0
    np.testing.assert_allclose(panel, expected[0], atol=1 / 255 + 1e-6)


def test_plot_bad_input_exit_2(bl2_file, tmp_path, capsys):
    assert main(["plot", str(bl2_file), "--out", str(tmp_path / "x.jpg")]) == 2
    assert "--out must end in .png or .gif" in capsys.readouterr().err
    assert main(["plot", str(bl2_file), "--input-shape", "7,7"]) == 2
    assert "49 values" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    img = AttackResult(attack="miface", mode="paper", params={}, seed=0, targets=np.arange(2),
                       samples=np.zeros((2, 10), np.float32), confidence=np.zeros(2, np.float32),
                       iterations=np.ones(2, np.int64), loss_history=np.zeros((1, 2), np.float32))
    path = save_recon(img, tmp_path / "img.h5")
    assert main(["plot", str(path)]) == 2  # 10 features: no square layout, no sidecar
    assert "--input-shape" in capsys.readouterr().err
    assert main(["plot", str(path), "--input-shape", "2,5", "--out", str(tmp_path / "a.gif")]) == 2
    assert "animation needs spike trains" in capsys.readouterr().err
    assert main(["plot", str(path), "--input-shape", "2,5"]) == 0
    assert not (tmp_path / "img.gif").exists() and (tmp_path / "img.png").is_file()
