"""Issue 31, round 3: output directories, ``--force``, and output names under an ASCII locale.

- A command that writes a directory (``audit``, ``run``/``demo``, ``sweep``) claims it before any work
  (``safety.claim_output_dir``): never the current directory, a parent of it, ``/`` or the home directory; never
  an input or a directory holding one; a non-empty directory only if it carries the command's marker
  (``.brainleaks-<command>``, written when the command creates the directory). ``audit --force`` replaces only a
  report an earlier audit wrote, and only if it holds nothing else (anything else is named, nothing removed).
- The CLI's stdout and stderr never fail on a character: under ``LC_ALL=C`` a non-ASCII output name is written
  and printed, exit 0.

Every CLI case runs as a real ``brainleaks`` subprocess, measured (issue 31: under 1 GB and 30 s).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import bad_cases
from bad_cases import Workspace, changes, snapshot
from measure import run_measured

AUDIT = ["audit", "good.net", "--evaluator", "eval.h5"]
FAST_AUDIT = ["--budget", "0.001", "--no-replay", "--classes", "0", "--draws", "1"]
ASCII = {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "", "PYTHONUTF8": "0"}
HOME = str(Path.home())

# (case, the command a user types, what the toolkit does now)
TABLE = [
    ("audit into the current directory holding other files",
     "brainleaks audit good.net --evaluator eval.h5 --out . --force",
     "exit 2: '--out . is the current directory; brainleaks audit needs a directory of its own: give a new one'; "
     "every file survives byte for byte"),
    ("audit report over the model it audits", "brainleaks audit good.net --evaluator eval.h5 --out good.net --force",
     "exit 2: '--out good.net is also the input model good.net; give another --out'; the model intact"),
    ("audit report over the evaluator", "brainleaks audit good.net --evaluator eval.h5 --out eval.h5 --force",
     "exit 2: '--out eval.h5 is also the input --evaluator eval.h5; give another --out'"),
    ("audit into the directory holding the model", "brainleaks audit models/good.net --evaluator eval.h5 "
     "--out models --force", "exit 2: '--out models contains the input model models/good.net; give another --out'"),
    ("audit into a parent of the current directory", "brainleaks audit good.net --evaluator eval.h5 --out .. --force",
     "exit 2: '--out .. is a parent of the current directory; ...'"),
    ("audit into /", "brainleaks audit good.net --evaluator eval.h5 --out / --force",
     "exit 2: '--out / is the root directory; ...'"),
    ("audit into the home directory", "brainleaks audit good.net --evaluator eval.h5 --out ~ --force",
     "exit 2: '--out /root is the home directory; ...'"),
    ("audit into someone else's directory", "brainleaks audit good.net --evaluator eval.h5 --out notes --force",
     "exit 2: '--out notes holds other files: not a directory written by brainleaks audit; give another --out'; "
     "nothing removed"),
    ("audit --force on an earlier report holding a foreign file",
     "brainleaks audit good.net --evaluator eval.h5 --out audit-good --force",
     "exit 2: \"--out audit-good holds 'notes.txt', which brainleaks audit does not write; nothing was changed "
     "(move it away or give another --out)\"; the report and the file survive"),
    ("audit --force on an earlier report with a foreign file in recon/",
     "brainleaks audit good.net --evaluator eval.h5 --out audit-good --force",
     "exit 2: \"--out audit-good holds 'recon/keep.txt', ...\"; nothing removed"),
    ("audit without --force on an earlier report", "brainleaks audit good.net --evaluator eval.h5 --out audit-good",
     "exit 2: '--out audit-good exists and is not empty (an earlier brainleaks audit): give another --out or --force "
     "to replace it'"),
    ("audit --force on a report an earlier audit wrote",
     "brainleaks audit good.net --evaluator eval.h5 --out audit-good --force --budget 0.001 --no-replay --classes 0 "
     "--draws 1",
     "exit 0: the earlier report replaced by the new one (marker .brainleaks-audit), nothing left beside it"),
    ("run into someone else's directory", "brainleaks run exp.toml --out notes",
     "exit 2: '--out notes holds other files: not a directory written by brainleaks run; give another --out'"),
    ("run --force into the current directory", "brainleaks run exp.toml --out . --force",
     "exit 2: '--out . is the current directory; brainleaks run needs a directory of its own: give a new one'"),
    ("sweep into someone else's directory", "brainleaks sweep study.toml --out notes",
     "exit 2: '--out notes holds other files: not a directory written by brainleaks sweep; give another --out'"),
    ("non-ASCII output name under LC_ALL=C (attack)",
     "LC_ALL=C brainleaks attack --model good.net --method bl1 --iterations 1 --classes 0 --out réconstruction.h5",
     "exit 0: the file written, 'wrote réconstruction.h5: ...' (the name's bytes as on disk)"),
    ("non-ASCII output name under LC_ALL=C (evaluate, ± in the table)",
     "LC_ALL=C brainleaks evaluate --recon recon.h5 --evaluator eval.h5 --draws 3 --json é.json",
     "exit 0 (was: exit 1, internal error UnicodeEncodeError, é.json not written): é.json written, '±' printed as "
     "'\\xb1'"),
    ("non-ASCII output name under LC_ALL=C (plot)", "LC_ALL=C brainleaks plot recon.h5 --out é.png",
     "exit 0: 'wrote é.png'"),
    ("non-ASCII name in an error under LC_ALL=C", "LC_ALL=C brainleaks info nothère.net",
     "exit 2: 'brainleaks info: error: model file not found: nothère.net'"),
]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    w = Workspace(tmp_path_factory.mktemp("outputs"))
    w.net, w.evaluator, w.recon  # noqa: B018 - build them once
    return w


def _scratch(ws, tmp_path: Path) -> Path:
    """A directory holding the model, its sidecar, the evaluator and files that are nobody's business."""
    d = tmp_path / "work"
    d.mkdir()
    for name in ("good.net", "good.json", "eval.h5", "recon.h5"):
        shutil.copy(ws.root / name, d / name)
    (d / "notes.txt").write_text("my notes\n")
    (d / "sub").mkdir()
    (d / "sub" / "f.txt").write_text("keep me\n")
    (d / "exp.toml").write_text(bad_cases.GOOD_CONFIG)
    (d / "study.toml").write_text((Path(__file__).resolve().parents[2] / "experiments" / "sweep_ci.toml").read_text())
    return d


def _refused(argv, cwd, expected: str, env=None):
    """``brainleaks <argv>`` in ``cwd`` ends with exit 2 and the one line ``expected``, within the budget, and
    changes nothing under ``cwd``."""
    before = snapshot(cwd)
    m = run_measured(argv, cwd, env=env)
    assert m.code == 2, (argv, m.code, m.stderr[-2000:])
    assert m.lines == [f"brainleaks {argv[0]}: error: {expected}"], m.stderr[-2000:]
    assert m.budget_problems() == [], m.budget_problems()
    assert changes(before, snapshot(cwd)) == []
    print(f"{' '.join(argv)}: exit {m.code}, {m.peak_mb:.0f} MB, {m.seconds:.1f} s: {m.lines[0]}")
    return m


def _earlier_report(d: Path, *extra: str) -> Path:
    """A report directory as an earlier ``brainleaks audit`` leaves it, plus the files ``extra``."""
    from brainleaks_lava.safety import write_marker

    out = d / "audit-good"
    (out / "recon").mkdir(parents=True)
    write_marker(out, "audit")
    for name in ("report.md", "audit.json", "best.png", "recon/bl2.h5", *extra):
        (out / name).write_text(f"earlier {name}\n")
    return out


# ---------------------------------------------------------------------------------------------- the cases of the brief

def test_audit_out_dot_force_refuses_and_every_file_survives(ws, tmp_path):
    d = _scratch(ws, tmp_path)
    _refused([*AUDIT, "--out", ".", "--force"], d,
             "--out . is the current directory; brainleaks audit needs a directory of its own: give a new one")
    assert (d / "notes.txt").read_text() == "my notes\n" and (d / "sub" / "f.txt").read_text() == "keep me\n"


def test_audit_out_equal_to_the_model_refuses_and_keeps_the_model(ws, tmp_path):
    d = _scratch(ws, tmp_path)
    _refused([*AUDIT, "--out", "good.net", "--force"], d, "--out good.net is also the input model good.net; give "
                                                           "another --out")
    assert (d / "good.net").read_bytes() == (ws.root / "good.net").read_bytes()


@pytest.mark.parametrize("out,what", [
    ("eval.h5", "is also the input --evaluator eval.h5; give another --out"),
    ("models", "contains the input model models/good.net; give another --out"),
    ("..", "is a parent of the current directory; brainleaks audit needs a directory of its own: give a new one"),
    ("/", "is the root directory; brainleaks audit needs a directory of its own: give a new one"),
    (HOME, "is the home directory; brainleaks audit needs a directory of its own: give a new one"),
], ids=["evaluator", "holds-model", "parent", "root", "home"])
def test_audit_out_that_is_or_holds_an_input_or_a_shared_directory_is_refused(ws, tmp_path, out, what):
    d = _scratch(ws, tmp_path)
    (d / "models").mkdir()
    shutil.copy(d / "good.net", d / "models" / "good.net")
    model = "models/good.net" if out == "models" else "good.net"
    _refused(["audit", model, "--evaluator", "eval.h5", "--out", out, "--force"], d, f"--out {out} {what}")


def test_audit_force_on_a_directory_without_the_marker_is_refused(ws, tmp_path):
    d = _scratch(ws, tmp_path)
    (d / "notes").mkdir()
    (d / "notes" / "a.txt").write_text("a\n")
    _refused([*AUDIT, "--out", "notes", "--force"], d,
             "--out notes holds other files: not a directory written by brainleaks audit; give another --out")


@pytest.mark.parametrize("foreign", ["notes.txt", "recon/keep.txt"])
def test_audit_force_on_an_earlier_report_holding_a_foreign_file_is_refused(ws, tmp_path, foreign):
    d = _scratch(ws, tmp_path)
    _earlier_report(d, foreign)
    _refused([*AUDIT, "--out", "audit-good", "--force"], d,
             f"--out audit-good holds '{foreign}', which brainleaks audit does not write; nothing was changed (move "
             f"it away or give another --out)")


def test_audit_without_force_keeps_an_earlier_report(ws, tmp_path):
    d = _scratch(ws, tmp_path)
    _earlier_report(d)
    _refused([*AUDIT, "--out", "audit-good"], d, "--out audit-good exists and is not empty (an earlier brainleaks "
                                                 "audit): give another --out or --force to replace it")


def test_audit_force_replaces_the_report_an_earlier_audit_wrote(ws, tmp_path):
    d = _scratch(ws, tmp_path)
    out = _earlier_report(d)
    keep = snapshot(d)
    m = run_measured(["-q", *AUDIT, "--out", "audit-good", "--force", *FAST_AUDIT], d, timeout=300)
    assert m.code == 0, m.stderr[-3000:]
    # the budget is for bad input; a real audit imports torch and Lava and runs an attack (time printed in -rA)
    assert m.budget_problems(max_s=300) == [], m.budget_problems(max_s=300)
    print(f"audit --force: {m.peak_mb:.0f} MB, {m.seconds:.1f} s")
    assert json.loads((out / ".brainleaks-audit").read_text())["command"] == "audit"
    report = json.loads((out / "audit.json").read_text())
    assert report["model"] == "good.net" and [b["class"] for b in report["best"]] == [0]
    assert (out / "recon" / "bl2.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # the new reconstruction
    assert "earlier" not in (out / "report.md").read_text()
    # nothing else changed, and nothing was left beside the report (no work or old directory)
    assert [k for k in changes(keep, snapshot(d)) if not k.startswith("audit-good/")] == []
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == []


def test_run_and_sweep_refuse_a_directory_they_did_not_write(ws, tmp_path):
    d = _scratch(ws, tmp_path)
    (d / "notes").mkdir()
    (d / "notes" / "a.txt").write_text("a\n")
    for command, config in (("run", "exp.toml"), ("sweep", "study.toml")):
        _refused([command, config, "--out", "notes"], d, f"--out notes holds other files: not a directory written "
                                                         f"by brainleaks {command}; give another --out")
    _refused(["run", "exp.toml", "--out", ".", "--force"], d,
             "--out . is the current directory; brainleaks run needs a directory of its own: give a new one")


# ---------------------------------------------------------------------------------------------- the shared rule

def test_claim_output_dir_rules(tmp_path, monkeypatch):
    """One function decides for every command: new, empty, its own (marker, or an older directory recognised by
    its files when it holds nothing else), or refused naming the reason."""
    from brainleaks_lava.errors import OutputError
    from brainleaks_lava.safety import claim_output_dir, write_marker

    monkeypatch.chdir(tmp_path)
    assert claim_output_dir(tmp_path / "new", "audit") == "new"
    (tmp_path / "empty").mkdir()
    assert claim_output_dir(tmp_path / "empty", "run") == "empty"
    # a run directory of an earlier version: no marker, recognised by its state.json
    old = tmp_path / "old_run"
    (old / "models").mkdir(parents=True)
    (old / "state.json").write_text("{}")
    (old / "models" / "snn.net").write_text("x")
    (old / "bl2.png").write_text("x")
    assert claim_output_dir(old, "run") == "ours"
    (old / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds 'notes.txt', which brainleaks run does not write"):
        claim_output_dir(old, "run")
    write_marker(old, "run")  # a marked run directory: run writes only its own names into it
    assert claim_output_dir(old, "run", force=True) == "ours"
    # another command's directory is not this one's
    with pytest.raises(OutputError, match="not a directory written by brainleaks audit"):
        claim_output_dir(old, "audit", force=True)
    # a link is never replaced
    (tmp_path / "link").symlink_to(old)
    with pytest.raises(OutputError, match="is a symbolic link"):
        claim_output_dir(tmp_path / "link", "run")
    # an output inside an input directory
    with pytest.raises(OutputError, match="lies inside the input --data-root"):
        claim_output_dir(old / "models" / "x", "audit", [("--data-root", old / "models")])


# ---------------------------------------------------------------------------------------------- ASCII locale

@pytest.mark.parametrize("argv,written,printed", [
    (["attack", "--model", "good.net", "--method", "bl1", "--iterations", "1", "--classes", "0",
      "--out", "réconstruction.h5"], "réconstruction.h5", "wrote réconstruction.h5: "),
    (["evaluate", "--recon", "recon.h5", "--evaluator", "eval.h5", "--draws", "3", "--json", "é.json"], "é.json",
     "\\xb1"),
    (["plot", "recon.h5", "--out", "é.png"], "é.png", "wrote é.png"),
], ids=["attack", "evaluate", "plot"])
def test_non_ascii_output_name_under_an_ascii_locale(ws, tmp_path, argv, written, printed):
    d = _scratch(ws, tmp_path)
    m = run_measured(argv, d, env=ASCII, timeout=120)
    assert m.code == 0, m.stderr[-3000:]
    assert (d / written).is_file()
    assert printed in m.stdout
    assert "internal error" not in m.stderr
    assert m.budget_problems() == [], m.budget_problems()
    print(f"{' '.join(argv)}: exit {m.code}, {m.peak_mb:.0f} MB, {m.seconds:.1f} s")


def test_non_ascii_name_in_an_error_line_under_an_ascii_locale(ws, tmp_path):
    d = _scratch(ws, tmp_path)
    _refused(["info", "nothère.net"], d, "model file not found: nothère.net", env=ASCII)


def test_table_has_a_row_per_case():
    assert len(TABLE) >= 15 and all(len(row) == 3 and all(row) for row in TABLE)
    assert all(os.path.basename(row[1].split()[0]) in ("brainleaks", "LC_ALL=C") for row in TABLE)
