"""MNIST idx reader: the vendored subset, idx files written here, split rule, malformed files."""
from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

from brainleaks_lava.data import StaticDataset, load_mnist, load_static, vendored_mnist_root
from brainleaks_lava.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from brainleaks_lava.errors import DatasetError, InputError

# the real MNIST test set, in ../shared beside the repository (as on our machines and in CI)
SHARED_MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    data = idx_bytes(array, magic)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def fake_images(n: int, offset: int = 0) -> np.ndarray:
    """n distinct, deterministic 28x28 uint8 images."""
    base = np.arange(28 * 28, dtype=np.int64).reshape(28, 28)
    return np.stack([(base * (i + 1 + offset) + 7 * i) % 256 for i in range(n)]).astype(np.uint8)


def write_pair(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    ext = ".gz" if gz else ""
    write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images, IMAGES_MAGIC)
    write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels, LABELS_MAGIC)


def shared_idx(name: str) -> bytes:
    return gzip.decompress((SHARED_MNIST / name).read_bytes())


needs_shared = pytest.mark.skipif(not (SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(),
                                  reason="real MNIST test set not on this machine")


# ------------------------------------------------------------------------------------------
# the vendored subset
# ------------------------------------------------------------------------------------------

def test_vendored_subset_is_real_mnist_with_80_20_split():
    root = vendored_mnist_root()
    assert (root / "t10k-images-idx3-ubyte.gz").is_file()
    assert (root / "t10k-labels-idx1-ubyte.gz").is_file()
    assert (root / "README.md").is_file()

    train = load_static("mnist", None, split="train")
    val = load_static("mnist", None, split="val")
    assert isinstance(train, StaticDataset)
    assert train.images.shape == (1000, 28, 28) and val.images.shape == (250, 28, 28)
    assert train.labels.shape == (1000,) and val.labels.shape == (250,)
    for ds in (train, val):
        assert ds.images.dtype == np.float32 and ds.labels.dtype == np.int64
        assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
        assert ds.images.max() == 1.0  # 8-bit 255 maps to exactly 1
        assert set(ds.labels.tolist()) == set(range(10))
        assert ds.classes == tuple(str(d) for d in range(10))
        assert "vendored" in ds.source
    # plausible balance: no digit below 5% or above 20% of the train split
    counts = np.bincount(train.labels, minlength=10)
    assert counts.min() >= 50 and counts.max() <= 200
    # a real digit, not noise: mostly background with some ink
    assert 0.05 < float((train.images > 0.5).mean()) < 0.4

    everything = load_mnist(None, split="all")
    assert everything.images.shape == (1250, 28, 28)
    np.testing.assert_array_equal(everything.images[:1000], train.images)
    np.testing.assert_array_equal(everything.images[1000:], val.images)


@needs_shared
def test_vendored_subset_matches_official_indices():
    images = shared_idx("t10k-images-idx3-ubyte.gz")
    labels = shared_idx("t10k-labels-idx1-ubyte.gz")
    official_labels = np.frombuffer(labels, dtype=np.uint8, offset=8)
    official_images = np.frombuffer(images, dtype=np.uint8, offset=16).reshape(-1, 28, 28)

    train = load_mnist(split="train")
    val = load_mnist(split="val")
    assert train.labels[0] == official_labels[0]
    np.testing.assert_array_equal(train.labels, official_labels[:1000])
    np.testing.assert_array_equal(val.labels, official_labels[8000:8250])
    np.testing.assert_array_equal(train.images, official_images[:1000].astype(np.float32) / 255)
    np.testing.assert_array_equal(val.images, official_images[8000:8250].astype(np.float32) / 255)


@needs_shared
def test_official_test_set_split_is_8000_2000():
    train = load_static("mnist", SHARED_MNIST, split="train")
    val = load_static("mnist", str(SHARED_MNIST), split="val")
    assert len(train) == 8000 and len(val) == 2000
    official_labels = np.frombuffer(shared_idx("t10k-labels-idx1-ubyte.gz"), dtype=np.uint8, offset=8)
    np.testing.assert_array_equal(val.labels, official_labels[8000:])


@needs_shared
def test_regeneration_script_reproduces_vendored_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_vendored_mnist", REPO / "scripts" / "make_vendored_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(SHARED_MNIST), "--out", str(tmp_path)]) == 0
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (tmp_path / name).read_bytes() == (vendored_mnist_root() / name).read_bytes()


# ------------------------------------------------------------------------------------------
# idx files written here
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_tiny_idx_reads_back_exactly_with_80_20_split(tmp_path, gz):
    images = fake_images(10)
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3], dtype=np.uint8)
    write_pair(tmp_path, "t10k", images, labels, gz)

    train = load_mnist(tmp_path, split="train")
    val = load_mnist(tmp_path, split="val")
    everything = load_mnist(tmp_path, split="all")
    assert train.images.shape == (8, 28, 28) and val.images.shape == (2, 28, 28)
    np.testing.assert_array_equal(train.images, images[:8].astype(np.float32) / 255)
    np.testing.assert_array_equal(val.images, images[8:].astype(np.float32) / 255)
    np.testing.assert_array_equal(train.labels, labels[:8].astype(np.int64))
    np.testing.assert_array_equal(val.labels, labels[8:].astype(np.int64))
    np.testing.assert_array_equal(everything.labels, labels.astype(np.int64))
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert str(tmp_path) in train.source


def test_read_idx_returns_raw_uint8(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    p = write_idx(tmp_path / "l.idx", labels, LABELS_MAGIC)
    out = read_idx(p, LABELS_MAGIC)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels)


def test_train_files_give_train_and_t10k_gives_val(tmp_path):
    train_images, test_images = fake_images(6), fake_images(3, offset=50)
    write_pair(tmp_path, "train", train_images, np.full(6, 3, np.uint8), gz=True)
    write_pair(tmp_path, "t10k", test_images, np.full(3, 7, np.uint8), gz=False)

    train = load_mnist(tmp_path, "train")
    val = load_mnist(tmp_path, "val")
    everything = load_mnist(tmp_path, "all")
    assert len(train) == 6 and len(val) == 3 and len(everything) == 9
    assert set(train.labels.tolist()) == {3} and set(val.labels.tolist()) == {7}
    np.testing.assert_array_equal(train.images, train_images.astype(np.float32) / 255)
    np.testing.assert_array_equal(val.images, test_images.astype(np.float32) / 255)
    np.testing.assert_array_equal(everything.labels, [3] * 6 + [7] * 3)


def test_only_train_files_have_no_val_split(tmp_path):
    write_pair(tmp_path, "train", fake_images(4), np.zeros(4, np.uint8), gz=False)
    assert len(load_mnist(tmp_path, "train")) == 4
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "val")


def test_plain_file_preferred_over_gz(tmp_path):
    write_pair(tmp_path, "t10k", fake_images(5), np.full(5, 1, np.uint8), gz=False)
    write_pair(tmp_path, "t10k", fake_images(5), np.full(5, 2, np.uint8), gz=True)
    assert set(load_mnist(tmp_path, "all").labels.tolist()) == {1}


def test_downsample_block_average(tmp_path):
    images = fake_images(5)
    write_pair(tmp_path, "t10k", images, np.zeros(5, np.uint8), gz=False)
    ds = load_mnist(tmp_path, "all", downsample=2)
    assert ds.images.shape == (5, 14, 14)
    x = images[2].astype(np.float64) / 255
    expected = (x[4, 6] + x[4, 7] + x[5, 6] + x[5, 7]) / 4
    assert ds.images[2, 2, 3] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(InputError, match="downsample"):
        load_mnist(tmp_path, "all", downsample=3)


# ------------------------------------------------------------------------------------------
# malformed files and directories
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_truncated_images_file_names_the_file(tmp_path, gz):
    write_pair(tmp_path, "t10k", fake_images(4), np.zeros(4, np.uint8), gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    data = p.read_bytes()[:-100]
    if gz:
        p.unlink()
        p = tmp_path / "t10k-images-idx3-ubyte.gz"
        p.write_bytes(gzip.compress(data))
    else:
        p.write_bytes(data)
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte") as e:
        load_mnist(tmp_path)
    assert "truncated" in str(e.value)


def test_truncated_gzip_stream_names_the_file(tmp_path):
    write_pair(tmp_path, "t10k", fake_images(4), np.zeros(4, np.uint8), gz=True)
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)


def test_truncated_header_names_the_file(tmp_path):
    write_pair(tmp_path, "t10k", fake_images(4), np.zeros(4, np.uint8), gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">I", LABELS_MAGIC))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*truncated"):
        load_mnist(tmp_path)


def test_wrong_magic_names_the_file(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", fake_images(4), IMAGES_MAGIC)
    # a labels file carrying the images magic
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros((4, 28, 28), np.uint8), IMAGES_MAGIC)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte") as e:
        load_mnist(tmp_path)
    assert "magic" in str(e.value)


def test_trailing_bytes_rejected(tmp_path):
    write_pair(tmp_path, "t10k", fake_images(4), np.zeros(4, np.uint8), gz=False)
    p = tmp_path / "t10k-labels-idx1-ubyte"
    p.write_bytes(p.read_bytes() + b"\0\0")
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_image_label_count_mismatch_names_the_file(tmp_path):
    write_pair(tmp_path, "t10k", fake_images(4), np.zeros(5, np.uint8), gz=False)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte") as e:
        load_mnist(tmp_path)
    assert "5 labels" in str(e.value) and "4 images" in str(e.value)


def test_wrong_image_size_and_label_range(tmp_path):
    write_pair(tmp_path, "t10k", np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.uint8), gz=False)
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.*28x28"):
        load_mnist(tmp_path)
    write_pair(tmp_path, "t10k", fake_images(4), np.array([0, 1, 10, 2], np.uint8), gz=False)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*label 10"):
        load_mnist(tmp_path)


def test_images_without_labels(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", fake_images(2), IMAGES_MAGIC)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*missing"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("kind", ["empty", "missing", "unrelated-files"])
def test_missing_files_message_says_what_where_and_how(tmp_path, kind):
    root = tmp_path / "mnist"
    if kind != "missing":
        root.mkdir()
    if kind == "unrelated-files":
        (root / "notes.txt").write_text("hello")
        (root / "train-images.bin").write_bytes(b"\0" * 100)
    with pytest.raises(DatasetError) as e:
        load_static("mnist", root)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(root) in msg
    assert "t10k-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert "yann.lecun.com/exdb/mnist" in msg and "mirror" in msg


def test_bad_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="split"):
        load_mnist(None, split="test")
    with pytest.raises(InputError, match="cifar"):
        load_static("cifar", tmp_path)
    with pytest.raises(InputError, match="downsample"):
        load_static("mnist", None, downsample=0)
