"""`brainleaks info` on every file the toolkit reads or writes: the shipped models and evaluators, a .net's sidecar,
reconstructions, checkpoints, deployment cards; a .net without importing torch or lava; bad files in one line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from bl_testutils import modules_loaded_by
from brainleaks_lava.cli import main
from brainleaks_lava.info import describe_file, file_kind

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "netx_models"
EVALUATORS = sorted(SHIPPED.glob("mnist_eval_*.h5"))


def h5_metadata(path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["metadata"])


def run_info(argv, capsys) -> tuple[int, str, str]:
    code = main(["info", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_shipped_files_are_all_described(capsys):
    kinds = {}
    for path in sorted(SHIPPED.iterdir()):
        code, out, err = run_info([path], capsys)
        assert code == 0 and err == "", (path, err)
        kinds[path.name] = file_kind(path)
        code, js, _ = run_info([path, "--json"], capsys)
        assert code == 0 and json.loads(js)["file_kind"] == kinds[path.name]
    assert sorted(kinds.values()).count("evaluator") == len(EVALUATORS) >= 4
    assert {kinds["mnist_snn.net"], kinds["mnist_snn.json"], kinds["mnist_ann.h5"]} == {"netx", "sidecar", "ann"}


@pytest.mark.parametrize("path", EVALUATORS, ids=lambda p: p.stem)
def test_evaluator_kind_classes_input_and_accuracy(path, capsys):
    meta = h5_metadata(path)
    code, out, _ = run_info([path], capsys)
    assert code == 0
    assert f"kind {meta['kind']}" in out and meta["format"] in out
    real = [c for c in meta["classes"] if c != "reject"]
    assert f"{len(real)} classes ({', '.join(real)})" in out
    assert ("and a 'reject' output" in out) == (meta["kind"] == "reject")
    assert "x".join(map(str, meta["input_shape"])) in out
    assert f"validation: {100 * meta['validation_accuracy']:.2f}% on {meta['validation_images']} images" in out
    data = json.loads(run_info([path, "--json"], capsys)[1])
    assert data["kind"] == meta["kind"] and data["classes"] == meta["classes"] and data["parameters"] > 0
    assert data["metadata"]["validation_accuracy"] == meta["validation_accuracy"]


def test_netx_table_from_the_file_and_its_sidecar(capsys):
    net = SHIPPED / "mnist_snn.net"
    side = json.loads(net.with_suffix(".json").read_text())
    with h5py.File(net, "r") as f:
        layers = len(f["layer"])
    code, out, _ = run_info([net], capsys)
    assert code == 0
    assert f"topology:   {'-'.join(map(str, side['spec']['sizes']))}" in out
    assert f"T={side['spec']['steps']}, encoder {side['encoding']['kind']}" in out
    rows = [line for line in out.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == layers
    assert f"validation: {100 * side['validation_accuracy']:.2f}%" in out
    # the same for its sidecar, which names its network
    code, out2, _ = run_info([net.with_suffix(".json")], capsys)
    assert code == 0 and out2 == f"sidecar:    {net.with_suffix('.json')}  (of {net})\n{out}"
    data = json.loads(run_info([net, "--json"], capsys)[1])
    assert data["network"]["layers"][0]["weight_levels"] == len(np.unique(h5py.File(net, "r")["layer/0/weight"][()]))


def test_netx_info_imports_neither_torch_nor_lava():
    code = ("from brainleaks_lava.cli import main\n"
            "assert main(['info', 'netx_models/mnist_snn.net']) == 0\n")
    assert modules_loaded_by(code, ("torch", "lava", "matplotlib"), ROOT) == []


def test_a_sidecar_without_its_network(tmp_path, capsys):
    side = tmp_path / "alone.json"
    shutil.copy(SHIPPED / "mnist_snn.json", side)
    meta = json.loads(side.read_text())
    code, out, _ = run_info([side], capsys)
    assert code == 0 and "alone.net is not beside it" in out
    assert f"topology:   {'-'.join(map(str, meta['spec']['sizes']))}" in out
    side.write_text(json.dumps({"tool": "other"}))
    code, _, err = run_info([side], capsys)
    assert code == 2 and "alone.json" in err and "not a brainleaks sidecar" in err


def test_reconstruction_file(small_snn_path, tmp_path, capsys):
    from brainleaks_lava.attacks import adapter_for, make_attack
    from brainleaks_lava.attacks.recon_file import save_recon
    from brainleaks_lava.models.files import load_snn

    t = load_snn(small_snn_path)
    res = make_attack("bl2", adapter_for(t), iterations=1, population=2).invert(classes=[3], seed=0, progress=False)
    path = save_recon(res, tmp_path / "r.h5", model_path=str(small_snn_path), model_sha256=t.sha256)
    code, out, _ = run_info([path], capsys)
    assert code == 0
    shape = res.samples.shape
    assert f"1 reconstruction: spike trains of {shape[1]} features x {shape[2]} steps" in out
    assert f"class 3: target confidence {res.confidence[0]:.4f} after 1 iteration" in out
    assert str(small_snn_path) in out and "bl2, paper mode" in out
    data = json.loads(run_info([path, "--json"], capsys)[1])
    assert data["targets"] == [3] and data["samples_shape"] == list(shape) and data["params"] == res.params


def test_checkpoint(tmp_path, capsys):
    import torch

    from brainleaks_lava.models.checkpoint import save_checkpoint

    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    path = tmp_path / "m.net.ckpt.h5"
    save_checkpoint(path, "abc", 2, 5, {"loss": [1.0, 0.5]}, model, opt, torch.Generator().manual_seed(0))
    code, out, _ = run_info([path], capsys)
    assert code == 0 and "2 of 5 epochs finished" in out and "2 tensors, 15 values" in out
    with h5py.File(path, "r+") as f:  # changed after it was written: its checksum says so
        f["state_dict/bias"][0] = 9.0
    code, _, err = run_info([path], capsys)
    assert code == 2 and "does not match its checksum" in err


def test_deployment_card(tmp_path, capsys):
    shutil.copy(SHIPPED / "mnist_snn.net", tmp_path / "m.net")
    card = tmp_path / "m.card.toml"
    card.write_text('steps = 30\nencoding = "rate"\nreadout = "spikes"\n')
    code, out, _ = run_info([card], capsys)
    assert code == 0 and "deployment card of m.net" in out and "steps = 30" in out and 'readout = "spikes"' in out
    code, out, _ = run_info([tmp_path / "m.net"], capsys)  # and the network uses it
    assert code == 0 and "T=30 (card m.card.toml)" in out
    card.write_text("stepz = 3\n")
    code, _, err = run_info([card], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "m.card.toml" in err and "stepz" in err


@pytest.mark.parametrize("name, content, says", [
    ("noise.h5", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4, "noise.h5"),
    ("text.net", b"a text file\n", "not a readable HDF5 file"),
    ("empty.h5", b"", "empty.h5"),
    ("list.json", b"[1, 2]", "must hold a JSON object"),
    ("bad.json", b"{not json", "not valid JSON"),
    ("bad.card.toml", b"steps = [", "not valid TOML"),
])
def test_bad_files_one_line_exit_2(tmp_path, capsys, name, content, says):
    p = tmp_path / name
    p.write_bytes(content)
    code, out, err = run_info([p], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert name in err and says in err


def test_an_hdf5_file_of_someone_else(tmp_path, capsys):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    code, _, err = run_info([p], capsys)
    assert code == 2 and "other.h5: an HDF5 file brainleaks does not know" in err
    assert describe_file(SHIPPED / "mnist_snn.net").kind == "netx"
