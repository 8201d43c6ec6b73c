"""The ``brainleaks dataset`` subcommand and the installed ``brainleaks`` script."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainleaks_lava import __version__
from brainleaks_lava.cli import main


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("brainleaks dataset: error: ")
    return lines[0]


def test_empty_directory_exits_2_with_one_line(tmp_path, capsys):
    assert main(["dataset", "--dataset", "mnist", "--data-root", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert str(tmp_path) in line
    assert "t10k-images-idx3-ubyte" in line and "yann.lecun.com/exdb/mnist" in line


def test_missing_directory_exits_2_with_one_line(tmp_path, capsys):
    root = tmp_path / "nowhere"
    assert main(["dataset", "--dataset", "mnist", "--data-root", str(root)]) == 2
    assert str(root) in one_error_line(capsys)


@pytest.mark.parametrize("names", [
    ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],  # garbage where gzip is expected
    ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],        # garbage plain idx
    ["readme.txt", "data.bin"],                                  # unrelated files
], ids=["gz", "plain", "unrelated"])
def test_garbage_files_exit_2_with_one_line(tmp_path, capsys, names):
    for name in names:
        (tmp_path / name).write_bytes(b"this is not MNIST\n" * 7 + bytes(range(256)))
    assert main(["dataset", "--dataset", "mnist", "--data-root", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert str(tmp_path) in line


def test_att_faces_without_root_exits_2(capsys):
    assert main(["dataset", "--dataset", "att-faces"]) == 2
    assert "ORL/AT&T Database of Faces" in one_error_line(capsys)


def test_vendored_default_exits_0(capsys):
    assert main(["dataset", "--dataset", "mnist"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("mnist train: 1000 images of 28x28, 10 classes")
    assert out[1].startswith("mnist val: 250 images of 28x28, 10 classes")


def test_att_faces_directory_exits_0(tmp_path, capsys):
    header = b"P5\n# fixture\n92 112\n255\n"
    for k in (1, 2):
        (tmp_path / f"s{k}").mkdir()
        for i in range(1, 11):
            (tmp_path / f"s{k}" / f"{i}.pgm").write_bytes(header + np.full(92 * 112, i, np.uint8).tobytes())
    assert main(["dataset", "--dataset", "att-faces", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("att-faces train: 16 images of 112x92, 2 classes")
    assert out[1].startswith("att-faces val: 4 images of 112x92, 2 classes")


def test_installed_script_version_and_help():
    script = Path(sys.executable).with_name("brainleaks")
    if not script.exists():
        pytest.skip(f"{script} not installed")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    from importlib import metadata

    assert version.stdout.strip() == (f"brainleaks-lava {__version__} (lava-nc {metadata.version('lava-nc')}, "
                                      f"lava-dl {metadata.version('lava-dl')}, torch {metadata.version('torch')})")
    help_ = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0, help_.stderr
    assert "dataset" in help_.stdout and "usage: brainleaks" in help_.stdout
