"""Public data of the priors: mnist-val never asks for the member split, digits look like MNIST, faces-identities
opens only the named subjects' folders; `load_dataset(classes=...)` and the `--classes` notation."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import brainleaks_lava.data as data_mod
from brainleaks_lava.data import faces as faces_mod
from brainleaks_lava.data import (format_class_list, load_att_faces, load_dataset, load_static, parse_class_list,
                                  select_classes)
from brainleaks_lava.errors import DatasetError, InputError
from brainleaks_lava.priors.public import check_public_split, digits_images, load_public, parse_public_split

sys.path.insert(0, str(Path(__file__).parent.parent / "data"))
from test_faces import make_faces  # noqa: E402  (AT&T-layout PGM fixtures)


# --------------------------------------------------------------------------------------------- mnist-val

def _recording(monkeypatch, module, name, calls):
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        split = kwargs.get("split", args[2] if len(args) > 2 else "train")  # every loader's default is "train"
        calls.append((name, split))
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)


def test_mnist_val_never_asks_for_the_member_split(monkeypatch):
    from brainleaks_lava.data import mnist as mnist_mod

    expected = load_static("mnist", None, split="val")
    calls: list = []
    for module, name in ((data_mod, "load_dataset"), (data_mod, "load_static"), (data_mod, "load_mnist"),
                         (mnist_mod, "load_mnist")):
        _recording(monkeypatch, module, name, calls)
    pub = load_public("mnist-val", "mnist", None)
    assert calls and {name for name, _ in calls} >= {"load_dataset", "load_mnist"}
    assert all(split == "val" for _, split in calls), calls
    np.testing.assert_array_equal(pub.images[:, 0], expected.images)
    assert pub.images.shape == (250, 1, 28, 28) and pub.images.dtype == np.float32
    p = pub.provenance
    assert p["split"] == "val" and p["images"] == 250 and p["source"] == expected.source
    assert "'train'" in p["disjoint_from"] and len(p["images_sha256"]) == 64


def test_mnist_val_shares_no_image_with_the_train_split():
    pub = load_public("mnist-val", "mnist", None)
    train = load_static("mnist", None, split="train").images.reshape(-1, 784)
    seen = {row.tobytes() for row in train}
    assert not any(row.tobytes() in seen for row in pub.images.reshape(-1, 784))


# --------------------------------------------------------------------------------------------- digits

def test_digits_look_like_mnist():
    x = digits_images()
    assert x.shape == (1797, 28, 28) and x.dtype == np.float32 and x.min() == 0 and x.max() == 1
    assert np.all(x[:, 0] == 0) and np.all(x[:, -1] == 0) and np.all(x[:, :, 0] == 0) and np.all(x[:, :, -1] == 0)
    border = np.concatenate([x[:, :2].reshape(1797, -1), x[:, -2:].reshape(1797, -1),
                             x[:, :, :2].reshape(1797, -1), x[:, :, -2:].reshape(1797, -1)], 1)
    assert (border.max(1) > 0).mean() < 0.05  # the digit in the centre (measured: 1.4 %; MNIST val: 12.9 %)
    mnist = load_static("mnist", None, split="val").images
    assert abs(x.mean() - mnist.mean()) < 0.03  # white strokes on black, as much ink as MNIST
    grid = np.arange(28)
    cy = (x.sum(2) * grid).sum(1) / x.sum((1, 2))
    cx = (x.sum(1) * grid).sum(1) / x.sum((1, 2))
    assert np.abs(cy - 13.5).max() <= 1 and np.abs(cx - 13.5).max() <= 1  # centre of mass centred
    rows = (x > 0.1).any(2).sum(1)
    assert 14 <= np.median(rows) <= 22  # about MNIST's 20-pixel height


def test_digits_source_and_its_options():
    pub = load_public("digits", "mnist")
    assert pub.images.shape == (1797, 1, 28, 28) and pub.provenance["images"] == 1797
    assert "load_digits" in pub.provenance["source"] and "MNIST" in pub.provenance["disjoint_from"]
    small = load_public("digits", "mnist", downsample=2, limit=20, classes=[7, 1])
    assert small.images.shape == (20, 1, 14, 14)
    assert small.provenance["classes"] == [7, 1] and small.provenance["limit"] == 20


def test_digits_without_sklearn_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    with pytest.raises(InputError, match="scikit-learn"):
        load_public("digits", "mnist")


# --------------------------------------------------------------------------------------------- faces

@pytest.fixture(scope="module")
def faces_root(tmp_path_factory):
    return make_faces(tmp_path_factory.mktemp("att") / "faces", subjects=range(1, 7))


def test_faces_identities_read_only_the_named_subjects(faces_root, monkeypatch):
    everything = load_att_faces(faces_root, split="all")
    opened: list[Path] = []
    real = faces_mod.read_pgm

    def spy(path):
        opened.append(Path(path))
        return real(path)
    monkeypatch.setattr(faces_mod, "read_pgm", spy)
    pub = load_public("faces-identities:4-6", "att-faces", faces_root)
    assert sorted({p.parent.name for p in opened}) == ["s4", "s5", "s6"]
    assert len(opened) == 30  # every image (both splits) of each, once
    keep = everything.labels >= 3
    np.testing.assert_array_equal(pub.images[:, 0], everything.images[keep])
    p = pub.provenance
    assert p["subjects"] == ["s4", "s5", "s6"] and p["images"] == 30 and p["split"] == "all"
    assert "s4..s6" in p["source"] and "outside s4..s6" in p["disjoint_from"]


def test_faces_identities_missing_subject_and_no_root(faces_root):
    with pytest.raises(DatasetError, match="s7"):
        load_public("faces-identities:5-7", "att-faces", faces_root)
    with pytest.raises(InputError, match="data-root"):
        load_public("faces-identities:1-2", "att-faces", None)
    with pytest.raises(InputError, match="no --classes"):
        load_public("faces-identities:1-2", "att-faces", faces_root, classes=[0])


@pytest.mark.parametrize("text, dataset, words", [
    ("mnist-train", "mnist", "unknown public split"), ("faces-identities:3-1", "att-faces", "1 <= A <= B"),
    ("faces-identities:0-4", "att-faces", "1 <= A <= B"), ("faces-identities:1-99999", "att-faces", "up to"),
    ("faces-identities:21-40", "mnist", "data for att-faces, not mnist"),
    ("mnist-val", "att-faces", "data for mnist, not att-faces.*faces-identities"),
    ("digits", "att-faces", "not att-faces"), ("faces-identities:1", "att-faces", "unknown public split"),
])
def test_public_split_names_are_checked(text, dataset, words):
    with pytest.raises(InputError, match=words):
        check_public_split(dataset, text)


def test_public_split_parse():
    assert parse_public_split("faces-identities:21-40") == ("faces-identities", (21, 40))
    assert parse_public_split("mnist-val") == ("mnist-val", None)


# --------------------------------------------------------------------------------------------- classes

def test_load_dataset_classes_relabels_in_the_given_order():
    full = load_dataset("mnist", None, split="train")
    ds = load_dataset("mnist", None, split="train", classes=[7, 2])
    assert ds.classes == ("7", "2")
    np.testing.assert_array_equal(ds.images, full.images[np.isin(full.labels, [7, 2])])
    np.testing.assert_array_equal(ds.labels, np.where(full.labels[np.isin(full.labels, [7, 2])] == 7, 0, 1))
    assert "classes 7,2 only" in ds.source
    limited = load_dataset("mnist", None, split="train", classes=[7, 2], limit=10)  # limit after the selection
    assert len(limited) == 10 and set(limited.labels.tolist()) == {0, 1}


def test_faces_classes_open_only_those_subjects(faces_root, monkeypatch):
    opened: list[Path] = []
    real = faces_mod.read_pgm
    monkeypatch.setattr(faces_mod, "read_pgm", lambda p: (opened.append(Path(p)), real(p))[1])
    ds = load_dataset("att-faces", faces_root, split="train", classes=list(range(0, 3)))
    assert {p.parent.name for p in opened} == {"s1", "s2", "s3"} and len(opened) == 24
    assert ds.classes == ("s1", "s2", "s3") and sorted(set(ds.labels.tolist())) == [0, 1, 2]


def test_select_classes_of_event_data():
    from brainleaks_lava.data.events import synthetic_events

    ev = synthetic_events(3, n_classes=4, size=(8, 8), time_bins=4, seed=0)
    sel = select_classes(ev, [3, 0])
    assert sel.classes == (ev.classes[3], ev.classes[0]) and len(sel) == 6
    np.testing.assert_array_equal(sel.frames, ev.frames[np.isin(ev.labels, [0, 3])])


@pytest.mark.parametrize("classes, words", [([], "1 to"), ([1, 1], "twice"), ([-1], "not a class index"),
                                            ([10], "not in the dataset"), ("0-3", "list of class indices"),
                                            ([1.5], "not a class index")])
def test_bad_class_lists(classes, words):
    with pytest.raises(InputError, match=words):
        load_dataset("mnist", None, split="val", classes=classes)


def test_class_list_notation():
    assert parse_class_list("0-19") == tuple(range(20))
    assert parse_class_list("0,3,5") == (0, 3, 5)
    assert parse_class_list(" 4-6 , 1") == (4, 5, 6, 1)
    assert format_class_list(parse_class_list("0-4,7,9,10")) == "0-4,7,9-10"
    for bad in ("", "a", "5-3", "1,,2", "0-10000", "2,2", "-1", "1-2-3"):
        with pytest.raises(InputError):
            parse_class_list(bad)
