"""`brainleaks train-prior` end to end on tiny data, its refusals (exit 2, one line, no file), and `--classes` of the
data options passed through `dataset`, `train` and `train-evaluator`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from brainleaks_lava.cli import main
from brainleaks_lava.priors.files import load_prior

sys.path.insert(0, str(Path(__file__).parent.parent / "data"))
from test_faces import make_faces  # noqa: E402  (AT&T-layout PGM fixtures)


@pytest.fixture(scope="module")
def faces_root(tmp_path_factory):
    return make_faces(tmp_path_factory.mktemp("att") / "faces", subjects=range(1, 5))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_train_prior_on_digits(tmp_path, capsys):
    out = tmp_path / "digits.h5"
    assert main(["-q", "train-prior", "--dataset", "mnist", "--public-split", "digits", "--limit", "40", "--epochs",
                 "2", "--batch-size", "20", "--latent-dim", "4", "--threads", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "public data digits: 40 images" in text and "final loss" in text
    prior = load_prior(out)
    assert prior.latent_dim == 4 and prior.image_shape == (1, 28, 28)
    assert prior.provenance["public_split"] == "digits" and prior.provenance["limit"] == 40
    assert prior.training["epochs"] == 2 and prior.training["images"] == 40
    assert prior.training["shift"] == 1 and prior.training["flip"] is False  # the digits' default augmentation
    assert main(["info", str(out)]) == 0
    assert "digits for mnist: 40 images" in capsys.readouterr().out


def test_train_prior_on_mnist_val_records_what_it_read(tmp_path, capsys):
    out = tmp_path / "val.h5"
    assert main(["-q", "train-prior", "--dataset", "mnist", "--public-split", "mnist-val", "--limit", "30",
                 "--epochs", "1", "--threads", "1", "--out", str(out)]) == 0
    p = load_prior(out).provenance
    assert p["split"] == "val" and p["images"] == 30 and "val split" in p["source"]


def test_train_prior_on_face_identities(tmp_path, faces_root, capsys):
    out = tmp_path / "faces.h5"
    assert main(["-q", "train-prior", "--dataset", "att-faces", "--public-split", "faces-identities:3-4",
                 "--data-root", str(faces_root), "--downsample", "4", "--epochs", "1", "--threads", "1",
                 "--out", str(out)]) == 0
    assert "faces-identities:3-4: 20 images" in capsys.readouterr().out
    prior = load_prior(out)
    assert prior.image_shape == (1, 28, 23) and prior.latent_dim == 16  # 28x23 is MNIST-size: 16 by default
    assert prior.provenance["subjects"] == ["s3", "s4"]
    assert prior.training["flip"] is True and prior.training["shift"] == 2  # the faces' default augmentation


@pytest.mark.parametrize("argv, words", [
    (["--dataset", "mnist", "--public-split", "faces-identities:21-40"], "data for att-faces, not mnist"),
    (["--dataset", "att-faces", "--public-split", "mnist-val"], "data for mnist, not att-faces"),
    (["--dataset", "mnist", "--public-split", "mnist-train"], "unknown public split"),
    (["--dataset", "nmnist", "--public-split", "digits"], "image dataset"),
    (["--dataset", "mnist", "--public-split", "digits", "--latent-dim", "0"], "--latent-dim"),
    (["--dataset", "mnist", "--public-split", "digits", "--latent-dim", "99999"], "--latent-dim"),
    (["--dataset", "mnist", "--public-split", "digits", "--epochs", "0"], "--epochs"),
    (["--dataset", "mnist", "--public-split", "digits", "--classes", "3-1"], "backwards"),
    (["--dataset", "mnist", "--public-split", "digits", "--classes", "x"], "--classes"),
    (["--dataset", "mnist", "--public-split", "digits", "--classes", "12"], "not in the dataset"),
    (["--dataset", "mnist", "--public-split", "digits", "--beta", "-1", "--epochs", "1"], "beta"),
    (["--dataset", "mnist", "--public-split", "digits", "--shift", "99"], "--shift"),
    (["--dataset", "mnist", "--public-split", "digits", "--lr", "nan"], "--lr"),
    (["--dataset", "mnist"], "--public-split"),
])
def test_bad_options_exit_2_with_one_line_and_no_file(tmp_path, capsys, argv, words):
    out = tmp_path / "p.h5"
    assert main(["train-prior", *argv, "--out", str(out)]) == 2
    assert words in _one_error_line(capsys)
    assert not out.exists()


def test_out_must_be_h5_and_not_an_input(tmp_path, capsys):
    assert main(["train-prior", "--dataset", "mnist", "--public-split", "digits", "--out", str(tmp_path / "p.net")]) == 2
    assert "a prior is written as an HDF5 .h5 file" in _one_error_line(capsys)
    assert main(["train-prior", "--dataset", "mnist", "--public-split", "mnist-val", "--data-root", str(tmp_path),
                 "--out", str(tmp_path)]) == 2
    _one_error_line(capsys)


# ------------------------------------------------------------------------------- --classes through the commands

def test_dataset_command_with_classes(faces_root, capsys):
    assert main(["dataset", "--dataset", "att-faces", "--data-root", str(faces_root), "--classes", "1,3"]) == 0
    out = capsys.readouterr().out
    assert "16 images" in out and "2 classes" in out and "s2,s4 only" in out
    assert main(["dataset", "--dataset", "mnist", "--classes", "0-2,x"]) == 2
    assert "--classes" in _one_error_line(capsys)


def test_train_and_train_evaluator_on_a_subset_of_subjects(tmp_path, faces_root, capsys):
    net = tmp_path / "t.net"
    assert main(["-q", "train", "--dataset", "att-faces", "--arch", "snn", "--data-root", str(faces_root),
                 "--downsample", "4", "--classes", "0-1", "--hidden", "8", "--epochs", "1", "--steps", "6",
                 "--batch-size", "8", "--threads", "1", "--out", str(net)]) == 0
    side = json.loads(net.with_suffix(".json").read_text())
    assert side["classes"] == ["s1", "s2"] and "classes 0-1 only" in side["data_source"]
    assert main(["info", str(net)]) == 0
    assert "644-8-2" in capsys.readouterr().out  # 28x23 inputs, 2 subjects
    ev = tmp_path / "ev.h5"
    assert main(["-q", "train-evaluator", "--dataset", "att-faces", "--kind", "ann", "--data-root", str(faces_root),
                 "--downsample", "4", "--classes", "2,3", "--epochs", "1", "--threads", "1", "--out", str(ev)]) == 0
    capsys.readouterr()
    assert main(["info", str(ev), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["classes"] == ["s3", "s4"] and "classes 2-3 only" in data["metadata"]["data_source"]
