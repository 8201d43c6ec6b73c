"""Bad-input cases for the ``brainleaks`` CLI, shared by ``tests/reliability/test_bad_input.py`` and
``scripts/bad_input_table.py``.

Each case builds its bad file (or argument) in a work directory next to small *valid* files (an
untrained 784-16-10 SNN exported to NetX, a 784-16-10 ANN, a CNN evaluator, BL-v2 and MI-FACE
reconstructions) and returns the command line. Every case must end with exit status 2 and one line on
stderr that names the offending file or field (``Case.names``).

Commands use paths relative to the work directory, so the table in the issue note stays readable.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

STEPS = 12
SIZES = (784, 16, 10)


# ----------------------------------------------------------------------------------------------
# valid base files
# ----------------------------------------------------------------------------------------------

def _seeded(build, seed=0):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(seed)
        return build()


def make_snn(path: Path, sizes=SIZES, steps=STEPS) -> Path:
    from brainleaks_lava.models.files import export_snn
    from brainleaks_lava.models.snn import SNNSpec, SpikingMLP

    return export_snn(_seeded(lambda: SpikingMLP(SNNSpec(sizes=tuple(sizes), steps=steps))), path,
                      {"dataset": "mnist"})


def make_ann(path: Path, sizes=SIZES) -> Path:
    from brainleaks_lava.models.ann import ANNSpec, SigmoidMLP
    from brainleaks_lava.models.files import save_ann

    return save_ann(_seeded(lambda: SigmoidMLP(ANNSpec(sizes=tuple(sizes)))), path, {"dataset": "mnist"})


def make_evaluator(path: Path, input_shape=(28, 28), classes=10) -> Path:
    from brainleaks_lava.evaluation.classifiers import EVALUATOR_FORMAT, CNNEvaluator
    from brainleaks_lava.models.files import save_torch_h5

    model = _seeded(lambda: CNNEvaluator(tuple(input_shape), classes))
    meta = {"format": EVALUATOR_FORMAT, "kind": "ann", "architecture": model.config(),
            "classes": [str(i) for i in range(classes)], "steps": 0}
    return save_torch_h5(model, path, EVALUATOR_FORMAT, meta)


def spike_result(features=SIZES[0], steps=STEPS, classes=(0, 1, 2), seed=0):
    """A BL-v2-like result: Bernoulli probabilities and one binary draw."""
    from brainleaks_lava.attacks.base import AttackResult

    rng = np.random.default_rng(seed)
    r = len(classes)
    prob = (rng.random((r, features, steps)) * 0.4).astype(np.float32)
    samples = (rng.random(prob.shape) < prob).astype(np.uint8)
    return AttackResult(attack="bl2", mode="paper", params={"iterations": 2}, seed=seed,
                        targets=np.asarray(classes, np.int64), samples=samples,
                        confidence=np.full(r, 0.5, np.float32), iterations=np.full(r, 2, np.int64),
                        loss_history=np.full((2, r), 0.5, np.float32), probabilities=prob)


def image_result(features=SIZES[0], classes=(0, 1, 2), seed=0):
    from brainleaks_lava.attacks.base import AttackResult

    rng = np.random.default_rng(seed)
    r = len(classes)
    return AttackResult(attack="miface", mode="paper", params={}, seed=seed,
                        targets=np.asarray(classes, np.int64), samples=rng.random((r, features)).astype(np.float32),
                        confidence=np.full(r, 0.5, np.float32), iterations=np.full(r, 2, np.int64),
                        loss_history=np.full((2, r), 0.5, np.float32))


def save_result(result, path: Path) -> Path:
    from brainleaks_lava.attacks.recon_file import save_recon

    return save_recon(result, path)


GOOD_CONFIG = """\
[experiment]
name = "bad-input"
seed = 0

[dataset]
name = "mnist"

[targets.snn]
arch = "snn"
model = "good.net"

[evaluators.ann]
kind = "ann"
model = "eval.h5"

[[attacks]]
name = "bl2"
method = "bl2"
target = "snn"
evaluator = "ann"
params = { iterations = 2 }
"""


class Workspace:
    """A directory with the valid base files (built on first use, once)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _once(self, name: str, build: Callable[[Path], object]) -> str:
        p = self.root / name
        if not p.exists():
            build(p)
        return name

    @property
    def net(self) -> str:
        return self._once("good.net", make_snn)

    @property
    def other_net(self) -> str:  # a 100-8-10 network: reconstructions of `net` do not fit it
        return self._once("other.net", lambda p: make_snn(p, sizes=(100, 8, 10)))

    @property
    def ann(self) -> str:
        return self._once("ann.h5", make_ann)

    @property
    def evaluator(self) -> str:
        return self._once("eval.h5", make_evaluator)

    @property
    def recon(self) -> str:
        return self._once("recon.h5", lambda p: save_result(spike_result(), p))

    @property
    def image_recon(self) -> str:
        return self._once("image_recon.h5", lambda p: save_result(image_result(), p))

    def copy(self, src: str, dst: str) -> Path:
        p = self.root / dst
        p.write_bytes((self.root / src).read_bytes())
        side = (self.root / src).with_suffix(".json")
        if src.endswith(".net") and side.is_file():
            p.with_suffix(".json").write_bytes(side.read_bytes())
        return p

    def write(self, name: str, data: bytes | str) -> str:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(data, bytes) else p.write_text)(data)
        return name

    def config(self, name: str, text: str) -> str:
        self.evaluator
        self.net
        return self.write(name, text)


# ----------------------------------------------------------------------------------------------
# the cases
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Workspace], tuple[list[str], list[str]]]  # -> (argv, strings the message must name)
    category: str = "bad input"
    signal: int | None = None  # an interruption: this signal is sent to the CLI process once Lava runs
    fsize: int | None = None  # a full disk: files written may not grow beyond this many bytes (RLIMIT_FSIZE)

    @property
    def expected_code(self) -> int:
        return {None: 2, 2: 130, 15: 143}[self.signal]


def _edit_h5(ws: Workspace, src: str, dst: str, edit: Callable[[h5py.File], None]) -> str:
    p = ws.copy(src, dst)
    with h5py.File(p, "a") as f:
        edit(f)
    return dst


def _replace(f: h5py.File, key: str, data) -> None:
    del f[key]
    f.create_dataset(key, data=data)


def truncated_net(ws):
    data = (ws.root / ws.net).read_bytes()
    name = ws.write("truncated.net", data[: len(data) // 2])
    return ["info", name], [name]


def text_net(ws):
    name = ws.write("notes.net", "this is a text file, not HDF5\n")
    return ["attack", "--model", name, "--method", "bl2", "--out", "out.h5"], [name]


def unknown_layer_net(ws):
    name = _edit_h5(ws, ws.net, "conv.net", lambda f: _replace(f, "layer/1/type", np.array([b"conv"])))
    return ["info", name], [name, "layer/1", "conv"]


def inconsistent_shapes_net(ws):
    name = _edit_h5(ws, ws.net, "shapes.net", lambda f: _replace(f, "layer/1/weight", np.zeros((10, 20))))
    return ["replay", "--model", name, "--recon", ws.recon], [name, "layer/1/weight", "(10, 20)"]


def nan_weights_net(ws):
    def edit(f):
        w = f["layer/0/weight"][()].astype(np.float32)
        w[0, 0] = np.nan
        _replace(f, "layer/0/weight", w)

    name = _edit_h5(ws, ws.net, "nan.net", edit)
    return ["attack", "--model", name, "--method", "bl1", "--out", "out.h5"], [name, "layer/0/weight"]


def neuron_params_net(ws):
    name = _edit_h5(ws, ws.net, "decay.net", lambda f: _replace(f, "layer/0/neuron/vDecay", 5000))
    return ["info", name], [name, "layer/0/neuron"]


def bad_sidecar_net(ws):
    p = ws.copy(ws.net, "sidecar.net")
    p.with_suffix(".json").write_text('{"spec": {"steps": "twelve"')
    return ["info", p.name], ["sidecar.json"]


def ann_missing_tensor(ws):
    name = _edit_h5(ws, ws.ann, "ann_missing.h5", lambda f: f["state_dict"].__delitem__("layers.0.weight"))
    return ["attack", "--model", name, "--method", "miface", "--out", "out.h5"], [name, "layers.0.weight"]


def ann_wrong_tensor_shape(ws):
    name = _edit_h5(ws, ws.ann, "ann_shape.h5", lambda f: _replace(f, "state_dict/layers.0.bias", np.zeros(3)))
    return ["info", name], [name, "layers.0.bias"]


def evaluator_bad_metadata(ws):
    name = _edit_h5(ws, ws.evaluator, "eval_meta.h5", lambda f: f.attrs.__setitem__("metadata", "[1, 2"))
    return ["evaluate", "--recon", ws.recon, "--evaluator", name], [name, "metadata"]


def recon_truncated(ws):
    data = (ws.root / ws.recon).read_bytes()
    name = ws.write("recon_trunc.h5", data[: len(data) * 2 // 3])
    return ["evaluate", "--recon", name, "--evaluator", ws.evaluator], [name]


def recon_wrong_shape_for_model(ws):
    return ["replay", "--model", ws.other_net, "--recon", ws.recon], [ws.recon, ws.other_net, "784", "100"]


def recon_wrong_shape_for_evaluator(ws):
    name = "eval14.h5"
    if not (ws.root / name).exists():
        make_evaluator(ws.root / name, input_shape=(14, 14))
    return ["evaluate", "--recon", ws.recon, "--evaluator", name], [ws.recon, name]


def recon_non_binary(ws):
    def edit(f):
        s = f["samples"][()].astype(np.float32)
        s[0, 0, 0] = 0.5
        _replace(f, "samples", s)

    name = _edit_h5(ws, ws.recon, "recon_nonbinary.h5", edit)
    return ["replay", "--model", ws.net, "--recon", name], [name, "samples", "binary"]


def recon_nan(ws):
    def edit(f):
        s = f["samples"][()].astype(np.float32)
        s[1, 2, 3] = np.nan
        _replace(f, "samples", s)

    name = _edit_h5(ws, ws.recon, "recon_nan.h5", edit)
    return ["evaluate", "--recon", name, "--evaluator", ws.evaluator], [name, "samples"]


def recon_probabilities_out_of_range(ws):
    def edit(f):
        p = f["probabilities"][()]
        p[0, 0, 0] = 1.5
        _replace(f, "probabilities", p)

    name = _edit_h5(ws, ws.recon, "recon_prob.h5", edit)
    return ["replay", "--model", ws.net, "--recon", name], [name, "probabilities", "[0, 1]"]


def recon_images_replayed(ws):
    return ["replay", "--model", ws.net, "--recon", ws.image_recon], [ws.image_recon, "spik"]


def _run_config(ws, file: str, text: str, *expected: str):
    """``brainleaks run`` on config ``text`` written as ``file``; the message names the file and ``expected``."""
    name = ws.config(file, text)
    return ["run", name, "--out", "run"], [name, *expected]


def _run_edited_config(ws, file: str, old: str, new: str, *expected: str):
    return _run_config(ws, file, GOOD_CONFIG.replace(old, new), *expected)


def config_unknown_key(ws):
    return _run_edited_config(ws, "unknown_key.toml", 'seed = 0', 'seed = 0\ncolour = "red"', "experiment.colour")


def config_wrong_type(ws):
    return _run_edited_config(ws, "wrong_type.toml", "seed = 0", 'seed = "zero"', "experiment.seed")


def config_unknown_attack_param(ws):
    return _run_edited_config(ws, "param.toml", "iterations = 2", "iteratons = 2", "attacks[0].params", "iteratons")


def config_name_escapes_run_dir(ws):
    text = GOOD_CONFIG.replace('[targets.snn]\narch = "snn"\nmodel = "good.net"',
                               '[targets."../../escaped"]\narch = "snn"\ntrain = { hidden = 8 }')
    text = text.replace('target = "snn"', 'target = "../../escaped"')
    return _run_config(ws, "escape.toml", text, "targets.../../escaped")


def config_attack_name_with_slash(ws):
    return _run_edited_config(ws, "slash.toml", 'name = "bl2"', 'name = "a/../../bl2"', "attacks[0].name")


def config_missing_model(ws):
    return _run_edited_config(ws, "missing_model.toml", 'model = "good.net"', 'model = "gone.net"', "targets.snn.model", "gone.net")


def config_not_toml(ws):
    return _run_edited_config(ws, "broken.toml", "[dataset]", "[dataset")


def missing_dataset_dir(ws):
    return ["dataset", "--dataset", "mnist", "--data-root", "no_such_dir"], ["no_such_dir"]


def empty_dataset_dir(ws):
    (ws.root / "empty_dir").mkdir(exist_ok=True)
    return ["train", "--dataset", "att-faces", "--arch", "ann", "--data-root", "empty_dir", "--out", "m.h5"], ["empty_dir"]


def contrast_bad_value(ws):
    return ["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--contrast", "0.5,2"], ["--contrast"]


def contrast_without_image_stats(ws):
    return (["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--contrast", "standardise"],
            [ws.evaluator, "grey-level statistics"])


def evaluator_bad_image_stats(ws):
    def edit(f):
        meta = json.loads(f.attrs["metadata"])
        f.attrs["metadata"] = json.dumps({**meta, "image_stats": {"mean": 3.0, "std": 0.1}})
    name = _edit_h5(ws, ws.evaluator, "eval_stats.h5", edit)
    return ["evaluate", "--recon", ws.recon, "--evaluator", name, "--contrast", "standardise"], [name, "image_stats"]


def zero_draws(ws):
    return ["replay", "--model", ws.net, "--recon", ws.recon, "--draws", "0"], ["--draws"]


def negative_draws(ws):
    return ["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--draws", "-3"], ["--draws"]


def zero_iterations(ws):
    return ["attack", "--model", ws.net, "--method", "bl2", "--iterations", "0", "--out", "out.h5"], ["--iterations"]


def negative_hidden(ws):
    return ["train", "--dataset", "mnist", "--arch", "snn", "--hidden", "-5", "--out", "m.net"], ["--hidden"]


def unknown_method(ws):
    return ["attack", "--model", ws.net, "--method", "bl3", "--out", "out.h5"], ["--method", "bl3"]


def nan_learning_rate(ws):
    return ["attack", "--model", ws.net, "--method", "bl2", "--lr", "nan", "--out", "out.h5"], ["--lr"]


def class_out_of_range(ws):
    return ["attack", "--model", ws.net, "--method", "bl1", "--classes", "12", "--out", "out.h5"], ["classes", "12"]


def option_for_other_method(ws):
    return ["attack", "--model", ws.net, "--method", "bl1", "--population", "5", "--out", "out.h5"], ["--population", "bl1"]


def missing_model_file(ws):
    return ["info", "absent.net"], ["absent.net"]


# ----------------------------------------------------------------------------------------------
# round 2 (issue 19): files that point elsewhere, outputs over inputs, OS errors, metadata, interruptions
# ----------------------------------------------------------------------------------------------

def _fifo(ws) -> str:
    p = ws.root / "trap.fifo"
    if not p.exists():
        os.mkfifo(p)
    return "trap.fifo"


def redirect(f: h5py.File, key: str, how: str, target: str) -> None:
    """Replace dataset ``key`` of an open file by one whose data is elsewhere: an external link, external
    storage or a virtual dataset pointing at ``target`` (another file), or a soft link inside the file."""
    old = f[key]
    shape, dtype = old.shape, old.dtype
    del f[key]
    if how == "external_link":
        f[key] = h5py.ExternalLink(target, "/data")
    elif how == "external_storage":
        f.create_dataset(key, shape=shape, dtype=dtype, external=[(target, 0, h5py.h5f.UNLIMITED)])
    elif how == "virtual":
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(target, "/data", shape=shape, dtype=dtype)
        f.create_virtual_dataset(key, layout, fillvalue=0)
    elif how == "soft_link":
        f.create_dataset(key + "_real", data=np.zeros(shape, dtype))
        f[key] = h5py.SoftLink("/" + key + "_real")
    else:  # pragma: no cover
        raise ValueError(how)


def _redirect(ws, src: str, dst: str, key: str, how: str, target: str) -> str:
    return _edit_h5(ws, src, dst, lambda f: redirect(f, key, how, target))


def net_external_link(ws):
    name = _redirect(ws, ws.net, "ext_link.net", "layer/0/weight", "external_link", "/etc/passwd")
    return ["info", name], [name, "layer/0/weight", "external link"]


def net_external_storage(ws):
    name = _redirect(ws, ws.net, "ext_storage.net", "layer/0/weight", "external_storage", "/etc/passwd")
    return ["attack", "--model", name, "--method", "bl2", "--out", "out.h5"], [name, "layer/0/weight", "external storage"]


def net_virtual_dataset(ws):
    name = _redirect(ws, ws.net, "virtual.net", "layer/1/weight", "virtual", "/etc/hostname")
    return ["replay", "--model", name, "--recon", ws.recon], [name, "layer/1/weight", "virtual"]


def net_soft_link(ws):
    name = _redirect(ws, ws.net, "soft.net", "layer/0/weight", "soft_link", "")
    return ["info", name], [name, "layer/0/weight", "soft link"]


def recon_samples_in_device(ws):
    name = _redirect(ws, ws.recon, "recon_dev.h5", "samples", "external_storage", "/dev/zero")
    return ["replay", "--model", ws.net, "--recon", name], [name, "samples", "/dev/zero"]


def recon_samples_in_fifo(ws):
    name = _redirect(ws, ws.recon, "recon_fifo.h5", "samples", "external_storage", _fifo(ws))
    return ["evaluate", "--recon", name, "--evaluator", ws.evaluator], [name, "samples"]


def evaluator_external_link(ws):
    import h5py as _h5

    with _h5.File(ws.root / ws.evaluator, "r") as f:
        key = "state_dict/" + sorted(f["state_dict"])[0]
    name = _redirect(ws, ws.evaluator, "eval_link.h5", key, "external_link", "/etc/passwd")
    return ["evaluate", "--recon", ws.recon, "--evaluator", name], [name, "external link"]


def model_is_fifo(ws):
    return ["info", _fifo(ws)], ["trap.fifo", "regular file"]


def attack_out_is_model(ws):
    ws.copy(ws.net, "victim.net")
    return ["attack", "--model", "victim.net", "--method", "bl2", "--out", "victim.net"], ["--out", "victim.net", "input"]


def attack_out_is_sidecar(ws):
    ws.copy(ws.net, "victim2.net")
    return (["attack", "--model", "victim2.net", "--method", "bl2", "--out", "victim2.json"],
            ["--out", "victim2.json", "sidecar"])


def evaluate_json_is_recon(ws):
    return ["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--json", ws.recon], ["--json", ws.recon, "input"]


def replay_json_hard_link_to_model(ws):
    alias = ws.root / "alias.json"
    if not alias.exists():
        os.link(ws.root / ws.net, alias)
    return ["replay", "--model", ws.net, "--recon", ws.recon, "--json", "alias.json"], ["--json", "alias.json", ws.net]


def attack_out_symlink_to_model(ws):
    link = ws.root / "link.h5"
    if not link.is_symlink():
        link.symlink_to(ws.root / ws.net)
    return ["attack", "--model", ws.net, "--method", "bl1", "--out", "link.h5"], ["--out", "link.h5", ws.net]


def out_is_directory(ws):
    (ws.root / "outdir").mkdir(exist_ok=True)
    return ["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--json", "outdir"], ["--json", "outdir", "directory"]


def json_parent_is_file(ws):
    return (["replay", "--model", ws.net, "--recon", ws.recon, "--json", f"{ws.recon}/report.json"],
            ["--json", f"{ws.recon}/report.json", "not a directory"])


def unwritable_location(ws):
    return (["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--json", "/sys/brainleaks.json"],
            ["--json", "/sys/brainleaks.json"])


def disk_full(ws):
    prev = ws.write("previous.json", '{"previous": "report, kept intact"}\n')
    return ["evaluate", "--recon", ws.recon, "--evaluator", ws.evaluator, "--json", prev], [prev, "File too large"]


def run_out_is_file(ws):
    name = ws.config("run_file.toml", GOOD_CONFIG)
    return ["run", name, "--out", ws.recon], ["--out", ws.recon, "existing file"]


def run_state_null(ws):
    name = ws.config("run_state.toml", GOOD_CONFIG)
    ws.write("state_null/state.json", "null\n")
    return ["run", name, "--out", "state_null"], ["state_null/state.json", "null"]


def _sidecar_edit(ws, dst: str, edit) -> str:
    import json

    p = ws.copy(ws.net, dst)
    meta = json.loads(p.with_suffix(".json").read_text())
    edit(meta)
    p.with_suffix(".json").write_text(json.dumps(meta))
    return dst


def sidecar_accuracy_text(ws):
    name = _sidecar_edit(ws, "acc_text.net", lambda m: m.update(validation_accuracy="very high"))
    return ["info", name], ["acc_text.json", "validation_accuracy"]


def sidecar_posterior_scale_huge(ws):
    name = _sidecar_edit(ws, "scale.net", lambda m: m["spec"].update(posterior_scale=1e308))
    return ["attack", "--model", name, "--method", "bl2", "--out", "out.h5"], ["scale.json", "spec.posterior_scale"]


def sidecar_steps_huge(ws):
    name = _sidecar_edit(ws, "steps.net", lambda m: m["spec"].update(steps=2**20))
    return ["attack", "--model", name, "--method", "bl1", "--out", "out.h5"], ["steps.json", "spec.steps"]


def sidecar_of_another_tool(ws):
    p = ws.copy(ws.net, "foreign.net")
    p.with_suffix(".json").write_text('{"tool": "someone else", "version": 3, "spec": {"steps": 999}}\n')
    return ["info", p.name], ["foreign.json", "format"]


def ann_metadata_wrong_type(ws):
    import json

    def edit(f):
        meta = json.loads(f.attrs["metadata"])
        meta["validation_accuracy"] = [0.9]
        f.attrs["metadata"] = json.dumps(meta)
    name = _edit_h5(ws, ws.ann, "ann_meta_type.h5", edit)
    return ["info", name], [name, "validation_accuracy"]


def recon_time_mismatch(ws):
    name = "recon_t7.h5"
    if not (ws.root / name).exists():
        save_result(spike_result(steps=7), ws.root / name)
    return ["replay", "--model", ws.net, "--recon", name], [name, ws.net, "time steps"]


def recon_target_beyond_model(ws):
    name = "recon_class12.h5"
    if not (ws.root / name).exists():
        save_result(spike_result(classes=(0, 12)), ws.root / name)
    return ["replay", "--model", ws.net, "--recon", name], [name, ws.net, "12"]


def recon_target_beyond_evaluator(ws):
    name = "recon_class11.h5"
    if not (ws.root / name).exists():
        save_result(spike_result(classes=(3, 11)), ws.root / name)
    return ["evaluate", "--recon", name, "--evaluator", ws.evaluator], [name, ws.evaluator, "11"]


def config_method_on_wrong_target(ws):
    return _run_edited_config(ws, "wrong_target.toml", 'method = "bl2"', 'method = "miface"', "attacks[0].method",
                              "miface", "snn")


def config_class_beyond_dataset(ws):
    return _run_edited_config(ws, "class_range.toml", "params = { iterations = 2 }",
                              "params = { iterations = 2 }\nclasses = [3, 10]", "attacks[0].classes", "10")


def config_train_steps_huge(ws):
    return _run_edited_config(ws, "huge_steps.toml", 'model = "good.net"', "train = { steps = 1048576 }",
                              "targets.snn.train.steps")


def sigterm_during_replay(ws):
    prev = ws.write("replay_prev.json", '{"previous": "replay report"}\n')
    return ["replay", "--model", ws.net, "--recon", ws.recon, "--draws", "500", "--json", prev], ["terminated"]


def sigint_during_run(ws):
    name = ws.config("interrupt.toml", GOOD_CONFIG + "\n[evaluation]\ndraws = 1\n\n[replay]\ndraws = 400\n")
    return ["run", name, "--out", "interrupted_run"], ["interrupted"]


ROUND2 = [
    Case(f.__name__, f, category) for category, fs in (
        ("file points elsewhere", (net_external_link, net_external_storage, net_virtual_dataset, net_soft_link,
                                   recon_samples_in_device, recon_samples_in_fifo, evaluator_external_link,
                                   model_is_fifo)),
        ("output over input", (attack_out_is_model, attack_out_is_sidecar, evaluate_json_is_recon,
                               replay_json_hard_link_to_model, attack_out_symlink_to_model)),
        ("OS error", (out_is_directory, json_parent_is_file, unwritable_location, run_out_is_file, run_state_null)),
        ("metadata trusted too far", (sidecar_accuracy_text, sidecar_posterior_scale_huge, sidecar_steps_huge,
                                      sidecar_of_another_tool, ann_metadata_wrong_type, recon_time_mismatch,
                                      recon_target_beyond_model, recon_target_beyond_evaluator,
                                      config_method_on_wrong_target, config_class_beyond_dataset,
                                      config_train_steps_huge)),
    ) for f in fs
] + [
    Case("disk_full", disk_full, "OS error", fsize=16),
    Case("sigterm_during_replay", sigterm_during_replay, "interruption", signal=15),
    Case("sigint_during_run", sigint_during_run, "interruption", signal=2),
]

CASES = [Case(f.__name__, f) for f in (
    truncated_net, text_net, unknown_layer_net, inconsistent_shapes_net, nan_weights_net, neuron_params_net,
    bad_sidecar_net, missing_model_file, ann_missing_tensor, ann_wrong_tensor_shape, evaluator_bad_metadata,
    recon_truncated, recon_wrong_shape_for_model, recon_wrong_shape_for_evaluator, recon_non_binary, recon_nan,
    recon_probabilities_out_of_range, recon_images_replayed, config_unknown_key, config_wrong_type,
    config_unknown_attack_param, config_name_escapes_run_dir, config_attack_name_with_slash,
    config_missing_model, config_not_toml, missing_dataset_dir, empty_dataset_dir, zero_draws, negative_draws,
    zero_iterations, negative_hidden, unknown_method, nan_learning_rate, class_out_of_range,
    option_for_other_method, contrast_bad_value, contrast_without_image_stats, evaluator_bad_image_stats,
)] + ROUND2
CASE_BY_NAME = {c.name: c for c in CASES}


# ----------------------------------------------------------------------------------------------
# running the CLI
# ----------------------------------------------------------------------------------------------

# tqdm bars on a terminal, and progress.py's plain lines elsewhere ("desc: 200/4000 sample (5%), 12 s"); its
# status lines: a run's stages ("stage 2/9: train evaluator snn ...", "run demo: 3 stages run, ..."), training
# epochs ("train snn epoch 3/30: loss ...") and training resumed or stopped
_PROGRESS = re.compile(r"\d+%\||\[\d\d:\d\d<|it/s\]|s/it\]|^[^:]+: \d+(/\d+)? \w+( \(\d+%\))?, \d+ s(, |$)"
                       r"|^stage \d+/\d+: |^run [^:]+: \d+ stages? run, | epoch \d+/\d+: loss "
                       r"|: (resuming from|stopped in) epoch \d+/\d+")


@dataclass
class Outcome:
    code: int
    stderr: str
    stdout: str
    leftover: list = field(default_factory=list)  # processes of the command still alive after it exited

    @property
    def lines(self) -> list[str]:
        """The lines on stderr, progress bars left out (tqdm redraws them with carriage returns)."""
        return [ln for ln in self.stderr.replace("\r", "\n").splitlines() if ln.strip() and not _PROGRESS.search(ln)]


def _limit_fsize(nbytes: int | None):
    import resource

    if nbytes is None:
        return None
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old[1]))
    return old


def run_subprocess(argv: list[str], cwd: Path, timeout: float = 300, case: Case | None = None) -> Outcome:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-m", "brainleaks_lava.cli", *argv]
    if case is not None and case.signal is not None:
        return _run_interrupted(cmd, cwd, env, case.signal, timeout)
    fsize = case.fsize if case is not None else None
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
                       preexec_fn=(lambda: _limit_fsize(fsize)) if fsize else None)
    return Outcome(p.returncode, p.stderr, p.stdout)


def _run_interrupted(cmd: list[str], cwd: Path, env: dict, sig: int, timeout: float) -> Outcome:
    """Start ``cmd`` in its own session, send ``sig`` to the CLI process alone once Lava's replay runs."""
    import threading
    import time

    sys.path.insert(0, str(Path(__file__).parent))
    from proctree import session_processes

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and b"Lava replay" not in b"".join(chunks):
        time.sleep(0.2)
    time.sleep(1.0)
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        code = None
    reader.join(timeout=10)
    left = []
    for _ in range(50):  # up to 10 s for the workers to go
        left = session_processes(proc.pid)
        if not left:
            break
        time.sleep(0.2)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
    stdout = proc.stdout.read().decode(errors="replace")
    return Outcome(-1 if code is None else code, b"".join(chunks).decode(errors="replace"), stdout, left)


def run_in_process(argv: list[str], cwd: Path, case: Case | None = None) -> Outcome:
    """``brainleaks.cli.main(argv)`` in this process, in ``cwd``, capturing both streams."""
    import resource

    from brainleaks_lava.cli import main

    err, out = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    limit = _limit_fsize(case.fsize if case is not None else None)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 1
    finally:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        os.chdir(old)
    return Outcome(code, err.getvalue(), out.getvalue())


def problems(outcome: Outcome, names: list[str], expected_code: int = 2) -> list[str]:
    """What is wrong with a bad-input outcome (empty when it is exit ``expected_code`` with one line naming
    ``names`` and no process left behind)."""
    out = []
    if outcome.code != expected_code:
        out.append(f"exit status {outcome.code}, expected {expected_code}")
    if len(outcome.lines) != 1:
        out.append(f"{len(outcome.lines)} lines on stderr, expected 1: {outcome.stderr[-2000:]!r}")
    elif missing := [n for n in names if n not in outcome.lines[0]]:
        out.append(f"message does not name {missing}: {outcome.lines[0]!r}")
    if outcome.leftover:
        out.append(f"processes left running: {outcome.leftover}")
    return out


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (FIFOs and other special files by kind only)."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "symlink:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif not p.is_dir():
            out[rel] = "special"
    return out


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files that appeared, vanished or changed between two snapshots (temporary files included)."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
