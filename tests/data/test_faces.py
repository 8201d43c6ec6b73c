"""AT&T/ORL faces reader: PGM fixtures written here (with header comments), split, downsampling, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brainleaks_lava.data import load_att_faces, load_static
from brainleaks_lava.data.faces import read_pgm
from brainleaks_lava.errors import DatasetError, InputError

W, H = 92, 112

# header variants: comments right after the magic, between tokens, after a token without a
# space, several on a row, and odd whitespace (tabs, CRLF, runs of blanks)
HEADERS = [
    b"P5\n92 112\n255\n",
    b"P5\n# CREATOR: test fixture\n92 112\n255\n",
    b"P5 # magic then comment\n92\t# width\n# a whole comment line\n\n112 #height\n255\n",
    b"P5#glued comment\r\n  92   \r\n112\r\n# before maxval\r\n255\t",
]


def pixels_for(subject: int, image: int) -> np.ndarray:
    """Distinct deterministic 112x92 uint8 pixels per (subject, image)."""
    yy, xx = np.mgrid[0:H, 0:W]
    return ((yy * 3 + xx * 5 + subject * 31 + image * 17) % 256).astype(np.uint8)


def write_pgm(path: Path, pixels: np.ndarray, header: bytes | None = None, maxval: int = 255) -> Path:
    if header is None:
        header = f"P5\n# written by test_faces\n{pixels.shape[1]} {pixels.shape[0]}\n{maxval}\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + pixels.astype(np.uint8).tobytes())
    return path


def make_faces(root: Path, subjects=(1, 2)) -> Path:
    for k in subjects:
        for i in range(1, 11):
            write_pgm(root / f"s{k}" / f"{i}.pgm", pixels_for(k, i), header=HEADERS[(k + i) % len(HEADERS)])
    return root


@pytest.fixture(scope="module")
def faces_root(tmp_path_factory) -> Path:
    root = make_faces(tmp_path_factory.mktemp("att_faces"), subjects=(1, 2))
    (root / "README").write_text("not a subject folder")
    return root


# ------------------------------------------------------------------------------------------
# reading back
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", HEADERS, ids=range(len(HEADERS)))
def test_pgm_header_variants_read_back_exactly(tmp_path, header):
    px = pixels_for(3, 4)
    img = read_pgm(write_pgm(tmp_path / "x.pgm", px, header=header))
    assert img.shape == (H, W) and img.dtype == np.float32
    np.testing.assert_array_equal(img, px.astype(np.float32) / 255)


def test_pgm_raster_starting_with_whitespace_or_hash_bytes(tmp_path):
    px = pixels_for(1, 1)
    px[0, :4] = [ord("\n"), ord("#"), ord(" "), ord("5")]
    img = read_pgm(write_pgm(tmp_path / "x.pgm", px))
    np.testing.assert_array_equal(img, px.astype(np.float32) / 255)


def test_pgm_smaller_maxval_scales_to_unit_range(tmp_path):
    px = (pixels_for(1, 1) % 16).astype(np.uint8)
    img = read_pgm(write_pgm(tmp_path / "x.pgm", px, maxval=15))
    np.testing.assert_array_equal(img, px.astype(np.float32) / 15)
    assert img.max() == 1.0


def test_splits_labels_and_order(faces_root):
    train = load_att_faces(faces_root, "train")
    val = load_att_faces(faces_root, "val")
    everything = load_static("att-faces", faces_root, split="all")
    assert train.images.shape == (16, H, W) and val.images.shape == (4, H, W)
    assert everything.images.shape == (20, H, W)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.labels, [0] * 8 + [1] * 8)
    np.testing.assert_array_equal(val.labels, [0, 0, 1, 1])
    assert train.classes == ("s1", "s2")
    # train = images 1..8 of each subject, val = 9..10, in subject then image order
    for n, (k, i) in enumerate((k, i) for k in (1, 2) for i in range(1, 9)):
        np.testing.assert_array_equal(train.images[n], pixels_for(k, i).astype(np.float32) / 255)
    for n, (k, i) in enumerate((k, i) for k in (1, 2) for i in (9, 10)):
        np.testing.assert_array_equal(val.images[n], pixels_for(k, i).astype(np.float32) / 255)
    assert 0.0 <= everything.images.min() and everything.images.max() <= 1.0


def test_label_is_subject_number_minus_one(tmp_path):
    root = make_faces(tmp_path, subjects=(3, 5))
    ds = load_att_faces(root, "val")
    np.testing.assert_array_equal(ds.labels, [2, 2, 4, 4])
    assert ds.classes == ("s1", "s2", "s3", "s4", "s5")
    assert ds.classes[ds.labels[-1]] == "s5"


def test_downsample_by_two_matches_hand_computed_blocks(faces_root):
    ds = load_att_faces(faces_root, "train", downsample=2)
    assert ds.images.shape == (16, 56, 46) and ds.images.dtype == np.float32
    # image 0 is subject 1, image 1: pixel (y, x) = (3y + 5x + 31 + 17) % 256
    p = lambda y, x: (3 * y + 5 * x + 48) % 256  # noqa: E731
    # block (0, 0): pixels 48, 53, 51, 56 -> mean 52
    assert ds.images[0, 0, 0] == pytest.approx(52 / 255, abs=1e-6)
    # block (row 10, col 20) covers y 20..21, x 40..41: 308%256=52, 57, 55, 60 -> mean 56
    assert [p(20, 40), p(20, 41), p(21, 40), p(21, 41)] == [52, 57, 55, 60]
    assert ds.images[0, 10, 20] == pytest.approx(56 / 255, abs=1e-6)
    # a block straddling the wrap-around: y 0..1, x 42..43 -> 258%256=2, 7, 5, 10 -> mean 6
    assert [p(0, 42), p(0, 43), p(1, 42), p(1, 43)] == [2, 7, 5, 10]
    assert ds.images[0, 0, 21] == pytest.approx(6 / 255, abs=1e-6)
    full = load_att_faces(faces_root, "train")
    np.testing.assert_allclose(ds.images.mean(axis=(1, 2)), full.images.mean(axis=(1, 2)), atol=1e-6)

    ds4 = load_att_faces(faces_root, "val", downsample=4)
    assert ds4.images.shape == (4, 28, 23)


def test_bad_downsample_and_split(faces_root):
    with pytest.raises(InputError, match="downsample"):
        load_att_faces(faces_root, downsample=3)
    with pytest.raises(InputError, match="downsample"):
        load_att_faces(faces_root, downsample=1.5)
    with pytest.raises(InputError, match="split"):
        load_att_faces(faces_root, split="test")
    with pytest.raises(InputError, match="att-faces"):
        load_static("att-faces", None)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------

def test_missing_subject_image_names_folder_and_file(tmp_path):
    root = make_faces(tmp_path, subjects=(1, 2))
    (root / "s2" / "7.pgm").unlink()
    with pytest.raises(DatasetError, match="7.pgm") as e:
        load_att_faces(root, "val")  # reported even though image 7 is not in the val split
    assert str(root / "s2") in str(e.value)


def test_bad_magic_p2_names_the_file(tmp_path):
    root = make_faces(tmp_path, subjects=(1,))
    bad = root / "s1" / "3.pgm"
    bad.write_bytes(b"P2\n92 112\n255\n" + b"0 " * (W * H))
    with pytest.raises(DatasetError, match="3.pgm") as e:
        load_att_faces(root, "train")
    assert "P5" in str(e.value)


def test_truncated_pixel_data_names_the_file(tmp_path):
    root = make_faces(tmp_path, subjects=(1,))
    bad = root / "s1" / "9.pgm"
    bad.write_bytes(bad.read_bytes()[:-1])
    assert len(load_att_faces(root, "train")) == 8  # the train split does not read 9.pgm
    with pytest.raises(DatasetError, match="9.pgm") as e:
        load_att_faces(root, "val")
    assert "truncated" in str(e.value)


@pytest.mark.parametrize("content, words", [
    (b"P5\n92 112\n", "truncated"),
    (b"P5\n92 112\n# only a comment", "truncated"),
    (b"P5\n92 112 255", "truncated"),
    (b"P5\n92 x112\n255\n", "malformed"),
    (b"", "magic"),
])
def test_truncated_or_malformed_header(tmp_path, content, words):
    p = tmp_path / "x.pgm"
    p.write_bytes(content)
    with pytest.raises(DatasetError, match="x.pgm") as e:
        read_pgm(p)
    assert words in str(e.value)


def test_maxval_and_size_validated(tmp_path):
    p = write_pgm(tmp_path / "wide.pgm", np.zeros((H, W), np.uint8),
                  header=b"P5\n92 112\n65535\n")
    with pytest.raises(DatasetError, match="wide.pgm.*maxval"):
        read_pgm(p)
    root = make_faces(tmp_path / "faces", subjects=(1,))
    write_pgm(root / "s1" / "2.pgm", np.zeros((100, 80), np.uint8))
    with pytest.raises(DatasetError, match="2.pgm.*92x112"):
        load_att_faces(root, "all")


@pytest.mark.parametrize("kind", ["empty", "missing", "no-subjects"])
def test_missing_directory_message(tmp_path, kind):
    root = tmp_path / "faces"
    if kind != "missing":
        root.mkdir()
    if kind == "no-subjects":
        (root / "s0").mkdir()
        (root / "subject1").mkdir()
        (root / "s1.pgm").write_bytes(b"P5")
    with pytest.raises(DatasetError) as e:
        load_static("att-faces", root)
    msg = str(e.value)
    assert "\n" not in msg and str(root) in msg
    assert "s1..s40" in msg and "1.pgm..10.pgm" in msg
    assert "ORL/AT&T Database of Faces" in msg and "Cambridge" in msg
