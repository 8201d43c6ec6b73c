"""Prior files (HDF5, brainleaks-prior/1): exact round trip, `brainleaks info`, and every damaged or foreign file a
ModelFileError naming the file (and the field)."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from brainleaks_lava.cli import main
from brainleaks_lava.errors import ModelFileError
from brainleaks_lava.fileio import sha256_file
from brainleaks_lava.priors.files import PRIOR_FORMAT, load_prior, save_prior
from brainleaks_lava.priors.vae import train_prior

ARCH = {"kind": "conv-vae", "image_shape": [1, 8, 8], "latent_dim": 3, "work_shape": [8, 8], "channels": [4, 8],
        "hidden": 16}
PROVENANCE = {"public_split": "digits", "dataset": "mnist", "images": 20, "source": "a test",
              "disjoint_from": "everything"}


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory):
    images = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    prior = train_prior(images, epochs=2, batch_size=8, seed=0, threads=1, progress=False, architecture=ARCH,
                        provenance=PROVENANCE)
    path = tmp_path_factory.mktemp("prior") / "p.h5"
    save_prior(prior, path)
    return prior, path


def test_round_trip_gives_identical_decodes(prior_file):
    prior, path = prior_file
    back = load_prior(path)
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        assert torch.equal(back.decode(z), prior.decode(z))
        x = torch.rand(4, 64, generator=torch.Generator().manual_seed(1))
        assert torch.equal(back.encode(x), prior.encode(x))
    assert back.latent_dim == 3 and back.image_shape == (1, 8, 8)
    assert back.provenance == PROVENANCE and back.architecture == ARCH
    assert back.training["history"] == prior.training["history"] and back.training["epochs"] == 2
    assert back.path == str(path) and back.sha256 == sha256_file(path) and len(back.sha256) == 64
    with h5py.File(path, "r") as f:  # the documented layout: JSON attributes, one dataset per tensor, no pickle
        assert f.attrs["brainleaks_format"] == PRIOR_FORMAT
        assert json.loads(f.attrs["architecture"]) == ARCH
        names = set(f["state_dict"].keys())
    assert names == {f"encoder.{k}" for k in prior.encoder.state_dict()} | {f"decoder.{k}" for k in
                                                                             prior.decoder.state_dict()}
    # saving a loaded prior writes the same tensors again
    again = path.parent / "again.h5"
    save_prior(back, again)
    with torch.no_grad():
        assert torch.equal(load_prior(again).decode(z), prior.decode(z))


def test_info_describes_a_prior(prior_file, capsys):
    _, path = prior_file
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "generative prior" in out and "3-dimensional codes -> 1x8x8" in out
    assert "digits for mnist: 20 images" in out and "never read: everything" in out and "2 epochs" in out
    assert main(["info", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["file_kind"] == "prior" and data["latent_dim"] == 3 and data["provenance"] == PROVENANCE


def _copy(path, tmp_path, name="bad.h5"):
    out = tmp_path / name
    shutil.copy(path, out)
    return out


def _edit(path, tmp_path, fn):
    out = _copy(path, tmp_path)
    with h5py.File(out, "r+") as f:
        fn(f)
    return out


def _set_attr(key, value):
    def fn(f):
        f.attrs[key] = value
    return fn


def _arch(**change):
    return _set_attr("architecture", json.dumps({**ARCH, **change}))


def _replace(name, data):
    def fn(f):
        del f["state_dict"][name]
        f["state_dict"].create_dataset(name, data=data)
    return fn


def _nan(f):
    d = f["state_dict"]["decoder.fc.0.weight"]
    a = d[()]
    a[0, 0] = np.nan
    d[...] = a


CASES = {
    "missing tensor": (lambda f: f["state_dict"].__delitem__("decoder.fc.0.bias"), "missing tensor.*decoder.fc.0.bias"),
    "extra tensor": (lambda f: f["state_dict"].create_dataset("decoder.x", data=np.zeros(2)), "unexpected tensor.*decoder.x"),
    "wrong shape": (_replace("decoder.fc.0.weight", np.zeros((16, 4), np.float32)), "decoder.fc.0.weight.*shape"),
    "huge declared shape": (lambda f: (f["state_dict"].__delitem__("encoder.mu.bias"), f["state_dict"].create_dataset(
        "encoder.mu.bias", shape=(1 << 24,), dtype="f4", chunks=(1024,), compression="gzip")),
        "encoder.mu.bias.*shape"),
    "NaN": (_nan, "decoder.fc.0.weight.*NaN"),
    "text tensor": (_replace("decoder.fc.0.bias", np.array([b"x"] * 16)), "decoder.fc.0.bias.*numbers"),
    "bad JSON": (_set_attr("architecture", "{not json"), "'architecture' is not valid JSON"),
    "JSON not an object": (_set_attr("provenance", "[1, 2]"), "'provenance' must be a JSON object"),
    "latent out of bounds": (_arch(latent_dim=10**9), "latent_dim"),
    "channels of text": (_arch(channels=["a"]), "channels"),
    "field missing": (_set_attr("architecture", json.dumps({k: v for k, v in ARCH.items() if k != "hidden"})),
                      "missing field.*hidden"),
    "no provenance": (lambda f: f.attrs.__delitem__("provenance"), "without its 'provenance'"),
    "no state_dict": (lambda f: f.__delitem__("state_dict"), "without its 'state_dict'"),
    "future format": (_set_attr("brainleaks_format", "brainleaks-prior/9"), "format 'brainleaks-prior/9'"),
    "unknown format": (_set_attr("brainleaks_format", "something-else/1"), "not a brainleaks prior file"),
    "an evaluator": (_set_attr("brainleaks_format", "brainleaks-evaluator/2"),
                     "this is a model file \\(an evaluation classifier\\), not a generative prior"),
    "number as format": (_set_attr("brainleaks_format", 3), "not a brainleaks prior file"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_files_are_refused_naming_file_and_field(prior_file, tmp_path, case):
    edit, words = CASES[case]
    bad = _edit(prior_file[1], tmp_path, edit)
    with pytest.raises(ModelFileError, match=words) as e:
        load_prior(bad)
    assert str(bad) in str(e.value)


@pytest.mark.parametrize("cut", [0, 100, 2000, -200])
def test_truncated_files(prior_file, tmp_path, cut):
    data = prior_file[1].read_bytes()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(ModelFileError) as e:
        load_prior(bad)
    assert str(bad) in str(e.value)


def test_missing_text_and_directory(tmp_path):
    for path in (tmp_path / "none.h5", tmp_path):
        with pytest.raises(ModelFileError, match=str(path)):
            load_prior(path)
    text = tmp_path / "t.h5"
    text.write_text("not hdf5")
    with pytest.raises(ModelFileError, match=str(text)):
        load_prior(text)


def test_prior_given_where_a_target_belongs_says_what_it_is(prior_file, capsys):
    from brainleaks_lava.models.files import load_target

    with pytest.raises(ModelFileError, match="this is a generative prior .*, not a target model"):
        load_target(prior_file[1])
    assert main(["attack", "--model", str(prior_file[1]), "--method", "bl1", "--out", "/tmp/never.h5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "generative prior" in err[0]


def test_cli_exit_2_on_a_damaged_prior(prior_file, tmp_path, capsys):
    bad = _edit(prior_file[1], tmp_path, _nan)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "NaN" in err[0]
