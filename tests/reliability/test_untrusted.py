"""Untrusted files are read as data: nothing in the package unpickles or evaluates what a file holds, and
a config cannot make a run write outside its run directory."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bad_cases
from brainleaks_lava.errors import ConfigError
from brainleaks_lava.report.config import load_config

PACKAGE = Path(__file__).resolve().parents[2] / "brainleaks_lava"


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            yield node, base, name


def _kw(node, key):
    for kw in node.keywords:
        if kw.arg == key and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def test_no_unpickling_no_eval_in_the_package():
    offenders = []
    for py in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(py.read_text(), filename=str(py))
        where = py.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(m and m.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "marshal", "shelve") for m in mods):
                    offenders.append(f"{where}:{node.lineno}: imports {mods}")
        for node, base, name in _calls(tree):
            if name in ("eval", "exec") and isinstance(node.func, ast.Name):  # not torch's Module.eval()
                offenders.append(f"{where}:{node.lineno}: {name}()")
            if base == "torch" and name == "load" and _kw(node, "weights_only") is not True:
                offenders.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
            if base == "np" and name == "load" and _kw(node, "allow_pickle") is not False:
                offenders.append(f"{where}:{node.lineno}: np.load without allow_pickle=False")
            if name == "load" and base in ("pickle", "yaml"):
                offenders.append(f"{where}:{node.lineno}: {base}.load")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("section,name", [
    ("experiment", "../../outside"),
    ("targets", "../x"), ("targets", "/abs"), ("targets", "a/b"), ("targets", ".."),
    ("evaluators", "../eval"),
    ("attacks", "../../bl2"), ("attacks", "x/../../y"), ("attacks", ""),
])
def test_config_names_cannot_leave_the_run_directory(tmp_path, section, name):
    ws = bad_cases.Workspace(tmp_path)
    text = bad_cases.GOOD_CONFIG
    q = '"' + name + '"'
    if section == "experiment":
        text = text.replace('name = "bad-input"', f"name = {q}")
        key = "experiment.name"
    elif section == "targets":
        text = text.replace("[targets.snn]", f"[targets.{q}]").replace('target = "snn"', f"target = {q}")
        key = f"targets.{name}"
    elif section == "evaluators":
        text = text.replace("[evaluators.ann]", f"[evaluators.{q}]").replace('evaluator = "ann"', f"evaluator = {q}")
        key = f"evaluators.{name}"
    else:
        text = text.replace('name = "bl2"', f"name = {q}")
        key = "attacks[0].name"
    path = tmp_path / ws.config("c.toml", text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert key in str(e.value) and "c.toml" in str(e.value)


def test_config_paths_are_relative_to_the_config(tmp_path):
    ws = bad_cases.Workspace(tmp_path / "cfgdir")
    ws.config("c.toml", bad_cases.GOOD_CONFIG)
    cfg = load_config(ws.root / "c.toml")
    assert cfg.targets["snn"].model == (ws.root / "good.net").resolve()
    assert cfg.evaluators["ann"].model == (ws.root / "eval.h5").resolve()
