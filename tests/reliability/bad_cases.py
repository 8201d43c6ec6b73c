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
import os
import subprocess
import sys
from dataclasses import dataclass
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


CASES = [Case(f.__name__, f) for f in (
    truncated_net, text_net, unknown_layer_net, inconsistent_shapes_net, nan_weights_net, neuron_params_net,
    bad_sidecar_net, missing_model_file, ann_missing_tensor, ann_wrong_tensor_shape, evaluator_bad_metadata,
    recon_truncated, recon_wrong_shape_for_model, recon_wrong_shape_for_evaluator, recon_non_binary, recon_nan,
    recon_probabilities_out_of_range, recon_images_replayed, config_unknown_key, config_wrong_type,
    config_unknown_attack_param, config_name_escapes_run_dir, config_attack_name_with_slash,
    config_missing_model, config_not_toml, missing_dataset_dir, empty_dataset_dir, zero_draws, negative_draws,
    zero_iterations, negative_hidden, unknown_method, nan_learning_rate, class_out_of_range,
    option_for_other_method,
)]
CASE_BY_NAME = {c.name: c for c in CASES}


# ----------------------------------------------------------------------------------------------
# running the CLI
# ----------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    code: int
    stderr: str
    stdout: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def run_subprocess(argv: list[str], cwd: Path, timeout: float = 300) -> Outcome:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    p = subprocess.run([sys.executable, "-m", "brainleaks_lava.cli", *argv], cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, env=env)
    return Outcome(p.returncode, p.stderr, p.stdout)


def run_in_process(argv: list[str], cwd: Path) -> Outcome:
    """``brainleaks.cli.main(argv)`` in this process, in ``cwd``, capturing both streams."""
    from brainleaks_lava.cli import main

    err, out = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(old)
    return Outcome(code, err.getvalue(), out.getvalue())


def problems(outcome: Outcome, names: list[str]) -> list[str]:
    """What is wrong with a bad-input outcome (empty when it is exit 2 with one line naming ``names``)."""
    out = []
    if outcome.code != 2:
        out.append(f"exit status {outcome.code}, expected 2")
    if len(outcome.lines) != 1:
        out.append(f"{len(outcome.lines)} lines on stderr, expected 1: {outcome.stderr[-2000:]!r}")
    elif missing := [n for n in names if n not in outcome.lines[0]]:
        out.append(f"message does not name {missing}: {outcome.lines[0]!r}")
    return out
