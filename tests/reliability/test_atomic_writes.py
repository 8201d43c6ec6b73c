"""Nothing lost: every file the package writes goes through ``fileio.atomic_path`` (write to a temporary
file beside the target, then rename), so an exception or Ctrl-C never leaves a half file in place of a
good one."""
from __future__ import annotations

import ast
from pathlib import Path

import h5py
import pytest

import bad_cases
from brainleaks_lava.attacks.recon_file import load_recon, save_recon
from brainleaks_lava.fileio import write_json_atomic

PACKAGE = Path(__file__).resolve().parents[2] / "brainleaks_lava"
WRITE_METHODS = {"write_text", "write_bytes", "savefig", "save", "savez", "savez_compressed", "tofile"}


def _writes(tree: ast.AST):
    """(line, what, target expression) of every call in ``tree`` that can create or change a file."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        mode = None
        if name in ("open", "File") and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
            mode = node.args[1].value
        for kw in node.keywords:
            if kw.arg == "mode" and isinstance(kw.value, ast.Constant):
                mode = kw.value.value
        if name in ("open", "File") and mode and any(c in mode for c in "wax+"):
            yield node.lineno, name, node.args[0]
        elif name in WRITE_METHODS and isinstance(f, ast.Attribute):
            target = node.args[0] if name in ("savefig", "save", "savez", "savez_compressed", "tofile") and node.args else f.value
            yield node.lineno, name, target


def _atomic_names(tree: ast.AST) -> set[str]:
    """Names bound by ``with atomic_path(...) as NAME`` or to an ``io.BytesIO()``, and by ``with open(NAME, ...) as F`` /
    ``h5py.File(NAME, ...) as F`` on such a name (the file object of the temporary file)."""
    out: set[str] = set()
    for node in ast.walk(tree):  # an in-memory buffer (fileio.atomic_h5 builds HDF5 files in one) is no file
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "attr", "") == "BytesIO"):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if not isinstance(node, ast.With):
                continue
            for item in node.items:
                call, var = item.context_expr, item.optional_vars
                if not (isinstance(call, ast.Call) and isinstance(var, ast.Name)) or var.id in out:
                    continue
                fname = getattr(call.func, "id", getattr(call.func, "attr", ""))
                on_tmp = (fname in ("open", "File") and call.args and isinstance(call.args[0], ast.Name)
                          and call.args[0].id in out)
                if fname == "atomic_path" or on_tmp:
                    out.add(var.id)
                    changed = True
    return out


def test_every_writer_in_the_package_writes_through_atomic_path():
    offenders = []
    checked = 0
    for py in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(py.read_text(), filename=str(py))
        atomic = _atomic_names(tree)
        for line, what, target in _writes(tree):
            checked += 1
            if not (isinstance(target, ast.Name) and target.id in atomic):
                offenders.append(f"{py.relative_to(PACKAGE.parent)}:{line}: {what}({ast.unparse(target)})")
    assert checked >= 6  # the scan does see the writers (h5py.File, savefig, write_text, ...)
    assert not offenders, "writes that bypass fileio.atomic_path:\n" + "\n".join(offenders)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch, exc):
    path = save_recon(bad_cases.spike_result(features=20, steps=6), tmp_path / "r.h5")
    good = path.read_bytes()
    calls = {"n": 0}
    real = h5py.Group.create_dataset

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # half-way through the file
            raise exc("interrupted while writing")
        return real(self, *a, **k)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(exc):
        save_recon(bad_cases.spike_result(features=20, steps=6, seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]
    load_recon(path)


def test_interrupted_json_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    write_json_atomic(path, {"a": 1})
    good = path.read_bytes()
    real = Path.write_text

    def half_then_ctrl_c(self, text, *a, **k):
        real(self, text[: len(text) // 2], *a, **k)  # half of the file is on disk ...
        raise KeyboardInterrupt  # ... when Ctrl-C arrives

    monkeypatch.setattr(Path, "write_text", half_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"a": list(range(100))})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
