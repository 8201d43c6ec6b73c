"""Every command that takes a file: a truncated or non-HDF5 file gives exit status 2 and one line."""
import sys
from pathlib import Path

import numpy as np
import pytest

from brainleaks_lava.cli import main

sys.path.insert(0, str(Path(__file__).parent / "data"))
from test_faces import make_faces  # noqa: E402


@pytest.fixture()
def bad_files(tmp_path, small_snn_path):
    good = Path(small_snn_path).read_bytes()
    trunc = tmp_path / "truncated.h5"
    trunc.write_bytes(good[: len(good) // 2])
    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n")
    return {"truncated": trunc, "text": text}


def commands(bad, good_net, tmp):
    return [
        ["info", str(bad)],
        ["attack", "--model", str(bad), "--method", "bl1", "--out", str(tmp / "o.h5")],
        ["evaluate", "--recon", str(bad), "--evaluator", str(bad)],
        ["replay", "--model", str(good_net), "--recon", str(bad)],
        ["replay", "--model", str(bad), "--recon", str(bad)],
    ]


@pytest.mark.parametrize("kind", ["truncated", "text"])
def test_bad_files_exit_2_with_one_line(bad_files, small_snn_path, tmp_path, capsys, kind):
    bad = bad_files[kind]
    for argv in commands(bad, small_snn_path, tmp_path):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad.name in err[0], (argv, err)
    assert not (tmp_path / "o.h5").exists()


def test_train_att_faces_from_pgm_fixtures(tmp_path, capsys):
    root = make_faces(tmp_path / "faces", subjects=(1, 2, 3))
    out = tmp_path / "faces_snn.net"
    assert main(["train", "--dataset", "att-faces", "--arch", "snn", "--data-root", str(root), "--downsample", "4",
                 "--hidden", "8", "--epochs", "1", "--steps", "6", "--batch-size", "8", "--out", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "644-8-3" in text  # 28x23 after downsampling by 4, 3 subjects


def test_train_missing_dataset_exit_2(tmp_path, capsys):
    assert main(["train", "--dataset", "att-faces", "--arch", "ann", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "m.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0]
    assert not (tmp_path / "m.h5").exists()
