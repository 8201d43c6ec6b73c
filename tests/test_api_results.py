"""The notebook-facing API: what dir() lists, the docstrings (every attack parameter, checked against the attacks'
own declarations), the result helpers (images, plot, save, to_frame) and a run's results.csv."""
from __future__ import annotations

import ast
import csv
import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import brainleaks_lava
from brainleaks_lava import api
from brainleaks_lava.attacks import ATTACKS
from brainleaks_lava.attacks.base import AttackResult
from brainleaks_lava.attacks.recon_file import load_recon
from brainleaks_lava.errors import InputError
from brainleaks_lava.safety import MAX_COUNTS

ROOT = Path(__file__).resolve().parents[1]
SNN = ROOT / "netx_models" / "mnist_snn.net"
EVAL_ANN = ROOT / "netx_models" / "mnist_eval_ann.h5"
API = ("load_target", "attack", "evaluate", "replay", "audit")


# ---------------------------------------------------------------------------------------------- the package

def test_dir_lists_the_api_and_import_stays_light():
    code = ("import sys, brainleaks_lava as b; names = dir(b); "
            "print(all(n in names for n in %r), 'torch' in sys.modules, 'brainleaks_lava.api' in sys.modules, "
            "sorted(set(b.__all__) - set(names)))" % (API,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False", "[]"]


def test_api_names_resolve_to_the_api_functions():
    for name in API:
        assert getattr(brainleaks_lava, name) is getattr(api, name)
        assert name in brainleaks_lava.__all__
    with pytest.raises(AttributeError, match="no attribute 'atack'"):
        brainleaks_lava.atack


@pytest.mark.parametrize("name", API)
def test_public_functions_have_numpy_docstrings(name):
    doc = getattr(api, name).__doc__
    for section in ("Parameters", "Returns", "Raises", "Examples"):
        assert re.search(rf"^    {section}\n    -+\n", doc, re.M), f"{name}: no {section} section"
    # every parameter of the signature is documented
    import inspect

    for p in inspect.signature(getattr(api, name)).parameters.values():
        label = ("**" if p.kind is p.VAR_KEYWORD else "") + p.name
        assert re.search(rf"^    {re.escape(label)}( :|\n)", doc, re.M), f"{name}: parameter {label} undocumented"


# ---------------------------------------------------------------------------------------------- attack params

ENTRY = re.compile(r"^    (\w+) : (.+)$")
HEADER = re.compile(r"^    method '(\w+)': ")


def documented_params() -> dict[str, dict[str, str]]:
    """method -> name -> the spec text after ' : ', from attack()'s 'Other Parameters' section."""
    doc = api.attack.__doc__
    section = doc.split("    Other Parameters\n    ----------------\n", 1)[1].split("\n    Returns\n", 1)[0]
    out, method = {}, None
    for line in section.splitlines():
        h = HEADER.match(line)
        if h:
            method = h.group(1)
            out[method] = {}
            continue
        m = ENTRY.match(line)
        if m and method is not None:
            assert m.group(1) not in out[method], f"{method}.{m.group(1)} documented twice"
            out[method][m.group(1)] = m.group(2)
    return out


def parse_spec(spec: str) -> dict:
    """'float or None, default 0.99 (reference None), in (0, 1]' -> its parts."""
    m = re.fullmatch(r"(?P<type>.+?), default (?P<default>[^,(]+?)(?: \(reference (?P<ref>[^)]+)\))?"
                     r"(?:, in (?P<lo>[\[(])(?P<a>[^,]+), (?P<b>[^\])]+)(?P<hi>[\])]))?", spec)
    assert m, f"unparsable parameter spec: {spec!r}"
    d = m.groupdict()

    def num(text):
        return float(text) if text.strip() in ("inf", "-inf") else ast.literal_eval(text.strip())

    return {"type": d["type"], "default": ast.literal_eval(d["default"]),
            "reference": None if d["ref"] is None else ast.literal_eval(d["ref"]),
            "has_reference": d["ref"] is not None,
            "interval": None if d["lo"] is None else (d["lo"] == "(", num(d["a"]), num(d["b"]), d["hi"] == ")")}


def test_every_registered_method_is_documented_with_exactly_its_parameters():
    docs = documented_params()
    assert sorted(docs) == sorted(ATTACKS)
    for method, cls in ATTACKS.items():
        fields = {f.name for f in dataclasses.fields(cls.params_class)} - {"mode"}
        assert set(docs[method]) == fields, method


def _accepts(pc, name, value) -> bool:
    try:
        pc(**{name: value})
    except InputError:
        return False
    return True


@pytest.mark.parametrize("method", sorted(ATTACKS))
def test_documented_defaults_bounds_and_choices_are_the_attacks_own(method):
    pc = ATTACKS[method].params_class
    defaults = pc()
    try:
        reference = pc.reference()
    except InputError:  # BL-enc has no reference mode
        reference = None
    for name, spec in documented_params()[method].items():
        s = parse_spec(spec)
        assert s["default"] == getattr(defaults, name), f"{method}.{name}: default"
        if reference is not None:
            want = s["reference"] if s["has_reference"] else s["default"]
            assert want == getattr(reference, name), f"{method}.{name}: reference default"
        else:
            assert not s["has_reference"], f"{method}.{name}: a reference default for a method without that mode"
        choices = re.fullmatch(r"\{(.+)\}", s["type"])
        if choices:
            for value in ast.literal_eval(f"[{choices.group(1)}]"):
                assert _accepts(pc, name, value), f"{method}.{name}={value!r} refused"
            assert not _accepts(pc, name, "no-such-choice")
            continue
        assert s["interval"] is not None, f"{method}.{name}: numeric parameter without its range"
        lo_open, a, b, hi_open = s["interval"]
        integer = s["type"] == "int"
        if integer:
            assert not lo_open and not hi_open
            assert b == MAX_COUNTS[name][0] and a == 1, f"{method}.{name}: bounds"
            assert _accepts(pc, name, int(a)) and _accepts(pc, name, int(b))
            assert not _accepts(pc, name, int(a) - 1) and not _accepts(pc, name, int(b) + 1)
            assert not _accepts(pc, name, 2.0)  # an integer, not a float
            continue
        assert s["type"] in ("float", "float or None"), f"{method}.{name}: type {s['type']}"
        assert _accepts(pc, name, None) == (s["type"] == "float or None")
        for end, is_open, outside in ((a, lo_open, -1), (b, hi_open, 1)):
            if math.isinf(end):
                assert is_open
                assert _accepts(pc, name, 1e30 * outside)  # unbounded on that side
                continue
            assert _accepts(pc, name, end) != is_open, f"{method}.{name}={end} (end {'open' if is_open else 'closed'})"
            assert not _accepts(pc, name, end + outside * 1e-6), f"{method}.{name} just outside {end}"


def test_unknown_attack_parameter_is_refused_naming_it():
    with pytest.raises(InputError, match="bl2 has no parameter max_iterations"):
        api.attack(SNN, "bl2", classes=[0], max_iterations=3)


# ---------------------------------------------------------------------------------------------- AttackResult

def bl2_result(classes=(0, 1, 7), features=784, steps=5, seed=0, **kw) -> AttackResult:
    rng = np.random.default_rng(seed)
    r = len(classes)
    prob = rng.random((r, features, steps)).astype(np.float32)
    hist = np.array([[0.9] * r, [0.5] * r, [np.nan] + [0.2] * (r - 1)], dtype=np.float32)
    return AttackResult(attack="bl2", mode="paper", params={"iterations": 3}, seed=seed,
                        targets=np.asarray(classes), samples=(prob > 0.5).astype(np.uint8),
                        confidence=np.linspace(0.5, 0.9, r).astype(np.float32),
                        iterations=np.array([2] + [3] * (r - 1)), loss_history=hist, probabilities=prob,
                        extra={"population_confidence": [0.4] * r}, **kw)


def test_images_are_the_rate_decoded_reconstructions():
    res = bl2_result()
    img = res.images()
    assert img.shape == (3, 28, 28)
    np.testing.assert_allclose(img, res.probabilities.mean(-1).reshape(3, 28, 28), rtol=1e-6)
    # an explicit layout; event frames (C, H, W) are shown as the mean of their channels
    frames = bl2_result(features=2 * 4 * 6).images(input_shape=(2, 4, 6))
    assert frames.shape == (3, 4, 6)


def test_images_without_a_layout_and_with_a_wrong_one_are_clear_errors():
    with pytest.raises(InputError, match=r"image layout of 50 features: give input_shape=\(H, W\)"):
        bl2_result(features=50).images()
    assert bl2_result(features=50).images(input_shape=(5, 10)).shape == (3, 5, 10)
    assert bl2_result(features=50, input_shape=(10, 5)).images().shape == (3, 10, 5)
    with pytest.raises(InputError, match=r"784 values .* got \(27, 28\)"):
        bl2_result().images(input_shape=(27, 28))


def test_plot_draws_one_labelled_panel_per_class_and_saves_png(tmp_path):
    from matplotlib.figure import Figure

    res = bl2_result(class_names=tuple("abcdefghij"))
    fig = res.plot(tmp_path / "grid.png", title="three")
    assert isinstance(fig, Figure) and fig.get_suptitle() == "three"
    assert [ax.get_title() for ax in fig.axes] == ["class a\nmodel 0.50", "class b\nmodel 0.70", "class h\nmodel 0.90"]
    np.testing.assert_allclose(fig.axes[2].images[0].get_array(), res.images()[2], rtol=1e-6)
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # more classes than columns wrap; there is still one axes per reconstruction
    many = bl2_result(classes=tuple(range(7)))
    assert len(many.plot(columns=3).axes) == 7
    with pytest.raises(InputError, match="columns"):
        many.plot(columns=0)


def test_plot_does_not_touch_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    bl2_result().plot()
    assert plt.get_fignums() == before


def test_to_frame_one_row_per_class():
    df = bl2_result(class_names=tuple(str(i) for i in range(10))).to_frame()
    assert list(df["class"]) == [0, 1, 7] and list(df["name"]) == ["0", "1", "7"]
    np.testing.assert_allclose(df["confidence"], [0.5, 0.7, 0.9], rtol=1e-6)
    assert list(df["iterations"]) == [2, 3, 3]
    np.testing.assert_allclose(df["loss"], [0.5, 0.2, 0.2], rtol=1e-6)  # the last loss each row recorded
    assert list(df["population_confidence"]) == [0.4] * 3 and set(df["attack"]) == {"bl2"}


def test_save_writes_the_reconstruction_file_with_its_model(tmp_path):
    res = bl2_result(model_path="m.net", model_sha256="ab" * 32)
    path = res.save(tmp_path / "r.h5")
    back = load_recon(path)
    np.testing.assert_array_equal(back.probabilities, res.probabilities)
    np.testing.assert_array_equal(back.targets, res.targets)
    assert back.extra["model_path"] == "m.net" and back.extra["model_sha256"] == "ab" * 32
    # a result read back from a file is saved with the model it names
    again = load_recon(back.save(tmp_path / "again.h5"))
    assert again.extra["model_sha256"] == "ab" * 32


def test_missing_pandas_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(InputError, match="needs pandas: pip install pandas"):
        bl2_result().to_frame()


# ---------------------------------------------------------------------------------------------- Evaluation, audit

def test_evaluation_frames():
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    from brainleaks_lava.evaluation.score import evaluate_result

    res = bl2_result()
    ev = api.evaluate(res, EVAL_ANN, draws=3, seed=1)
    assert ev.class_names == tuple(str(i) for i in range(10))
    df = ev.to_frame()
    assert list(df["class"]) == [0, 1, 7] and list(df["name"]) == ["0", "1", "7"]
    np.testing.assert_allclose(df["confidence"], [r["target_confidence"] for r in ev.per_class])
    mean_post = ev.posteriors.mean(0)
    assert list(df["predicted"]) == mean_post.argmax(1).tolist()
    assert list(df["correct"]) == [p == c for p, c in zip(df["predicted"], df["class"])]
    summary = ev.to_frame(summary=True)
    assert list(summary.index) == ["accuracy", "top3_accuracy", "avg_confidence", "daa"]
    assert summary.loc["accuracy", "mean"] == ev.summary["accuracy"]["mean"] and set(summary["draws"]) == {3}
    # the evaluator's figure: plot titles carry its confidences
    titles = [ax.get_title() for ax in res.plot(evaluation=ev).axes]
    assert titles == [f"class {c}\neval {r['target_confidence']:.2f}" for c, r in zip([0, 1, 7], ev.per_class)]
    other = evaluate_result(bl2_result(classes=(2, 3, 4)), load_evaluator(EVAL_ANN), draws=1)
    with pytest.raises(InputError, match="evaluation of this result"):
        res.plot(evaluation=other)


def test_audit_report_frames():
    from brainleaks_lava.audit import AuditReport

    summary = {m: {"mean": v, "std": 0.0} for m, v in
               (("accuracy", 0.5), ("top3_accuracy", 1.0), ("avg_confidence", 0.4), ("daa", 0.5))}
    best = [{"class": c, "name": str(c), "attack": "bl2", "evaluator_confidence": 0.1 * c, "top_classes": [c, 1],
             "top_probs": [0.6, 0.4], "twin_confidence": 0.9, "panel": {"selector": {"recognised": True}}}
            for c in (3, 5)]
    rep = AuditReport(model="m.net", evaluator="e.h5", best=best, skipped=[], worst_case=summary, replay=None,
                      seconds=1.0, attacks=[{"name": "bl2", "label": "BL-v2 (paper)", "method": "bl2",
                                             "summary": summary, "seconds": 2.5}])
    df = rep.to_frame()
    assert list(df["class"]) == [3, 5] and "panel" not in df.columns
    np.testing.assert_allclose(df["evaluator_confidence"], [0.3, 0.5])
    att = rep.to_frame("attacks")
    assert att.loc[0, "attack"] == "bl2" and att.loc[0, "accuracy"] == 0.5 and att.loc[0, "seconds"] == 2.5
    with pytest.raises(InputError, match="'classes' or 'attacks'"):
        rep.to_frame("judges")


# ---------------------------------------------------------------------------------------------- the API end to end

def test_attack_records_the_targets_layout_classes_and_file(tmp_path):
    import torch

    torch.set_num_threads(1)
    target = api.load_target(SNN)
    res = api.attack(target, "bl2", classes=[4], iterations=1, population=2, progress=False)
    assert res.input_shape == (28, 28) and res.class_names == tuple(str(i) for i in range(10))
    assert res.model_path == str(SNN) and res.model_sha256 == target.sha256
    assert res.images().shape == (1, 28, 28)
    back = load_recon(res.save(tmp_path / "r.h5"))
    assert back.extra["model_sha256"] == target.sha256


# ---------------------------------------------------------------------------------------------- run: results.csv

RUN = """
[experiment]
name = "csv"
seed = 0
threads = 1

[dataset]
name = "mnist"

[targets.snn]
arch = "snn"
model = "{snn}"

[evaluators.ann]
kind = "ann"
model = "{ev}"

[[attacks]]
name = "bl2"
method = "bl2"
target = "snn"
evaluator = "ann"
classes = [0, 1]
params = {{ iterations = 2, population = 2 }}

[[attacks]]
name = "bl1_noeval"
method = "bl1"
target = "snn"
classes = [3]
params = {{ iterations = 1 }}

[evaluation]
draws = 2

[replay]
enabled = true
draws = 1
"""


@pytest.mark.slow
def test_run_writes_results_csv_with_the_metrics_table(tmp_path):
    from brainleaks_lava.report.runner import RESULT_COLUMNS, run_experiment

    cfg = tmp_path / "csv.toml"
    cfg.write_text(RUN.format(snn=SNN, ev=EVAL_ANN))
    out = tmp_path / "run"
    report = run_experiment(cfg, out)
    path = out / "results.csv"
    assert path.parent == report.parent
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == RESULT_COLUMNS and [r["attack"] for r in rows] == ["bl2", "bl1_noeval"]
    metrics = json.loads((out / "metrics.json").read_text())["attacks"]
    ev = metrics["bl2"]["evaluation"]
    for m in ("accuracy", "top3_accuracy", "avg_confidence", "daa"):
        assert float(rows[0][m]) == ev[m]["mean"] and float(rows[0][f"{m}_std"]) == ev[m]["std"]
    assert int(rows[0]["draws"]) == 2 and rows[0]["evaluator"] == "ann"
    assert int(rows[0]["replay_samples"]) == metrics["bl2"]["replay"]["samples"] == 2
    assert float(rows[0]["lava_agreement"]) == metrics["bl2"]["replay"]["agreement"]
    # the attack without an evaluator: no metrics, its replay only
    assert rows[1]["accuracy"] == rows[1]["evaluator"] == "" and int(rows[1]["replay_samples"]) == 1
    assert f"{100 * ev['accuracy']['mean']:.2f}" in report.read_text()  # the same numbers as report.md's table
    assert not list(out.glob(".*.tmp"))
    # a run directory that lost its results.csv gets it back from the report stage alone
    path.unlink()
    run_experiment(cfg, out)
    assert json.loads((out / "last_run.json").read_text())["ran"] == ["report"]
    with path.open(newline="") as f:
        assert list(csv.DictReader(f)) == rows


def test_api_audit_stays_the_function_after_its_module_is_imported():
    """``brainleaks_lava.audit`` is the API function even once ``brainleaks_lava.audit`` (the module) is imported,
    as the function itself does: a second call must not find a module."""
    import importlib

    importlib.import_module("brainleaks_lava.audit")
    assert callable(brainleaks_lava.audit) and brainleaks_lava.audit is api.audit
    from brainleaks_lava.audit import run_audit  # the module's contents stay importable

    assert callable(run_audit)
