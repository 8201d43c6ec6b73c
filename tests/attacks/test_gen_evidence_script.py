"""experiments/gen_evidence.py on a constructed audit.json: which BL-enc is 'best' (the selector's choice, never a
judge's), the cells (acc. / top-3 / KNN distance), the goal line, and the note when no member-level tests ran."""
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("gen_evidence", REPO / "experiments" / "gen_evidence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _s(acc, top3, conf=0.5):
    return {"accuracy": {"mean": acc}, "top3_accuracy": {"mean": top3}, "avg_confidence": {"mean": conf}}


def _audit(knn=True):
    attacks = [  # name, method, selector summary, judge 1's
        {"name": "bl2", "method": "bl2", "summary": _s(1.0, 1.0), "judges": {"judge 1": _s(0.1, 0.4)}, "seconds": 14},
        {"name": "gen", "method": "gen", "summary": _s(1.0, 1.0), "judges": {"judge 1": _s(0.9, 1.0)}, "seconds": 80},
        # judge 1 prefers blenc, the selector blenc-prob: the table shows the selector's choice
        {"name": "blenc", "method": "blenc", "summary": _s(0.8, 1.0), "judges": {"judge 1": _s(0.7, 0.9)},
         "seconds": 5},
        {"name": "blenc-prob", "method": "blenc", "summary": _s(0.9, 1.0), "judges": {"judge 1": _s(0.2, 0.5)},
         "seconds": 6}]
    ml = {"judges": [{"label": "judge 1", "selector": False, "knn_distance": {"attacks": [9.5, 4.25, 8, 7],
                                                                            "non_members": 4.0}},
                     {"label": "selector", "selector": True, "knn_distance": {"attacks": [1, 2, 3, 4],
                                                                             "non_members": 2.5}}]} if knn else \
        {"skipped": "member-level tests skipped: the model file does not say what it was trained on"}
    return {"model": "/x/target.net", "evaluator": "/x/eval_snn.h5", "attacks": attacks,
            "judges": [{"label": "judge 1", "path": "/x/eval_resnet.h5"}], "member_level": ml,
            "replay": {"agreement": 1.0, "samples": 20}, "prior": None}


def test_table_cells_best_blenc_and_goal(tmp_path, capsys):
    ge = _script()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "audit.json").write_text(json.dumps(_audit()))
    (tmp_path / "b.json").write_text(json.dumps(_audit(knn=False)))
    assert ge.main([f"T1={tmp_path / 'a'}", f"T2={tmp_path / 'b.json'}", "--out", str(tmp_path / "t.md")]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "t.md").read_text() == text
    assert "| attack | eval_resnet, real unseen: 4 | eval_snn (selector), real unseen: 2.5 | time (s) |" in text
    assert "| BL-v2 paper | 10 / 40 / 9.5 | 100 / 100 / 1 | 14 |" in text
    assert "| best BL-enc (blenc-prob) | 20 / 50 / 7 | 90 / 100 / 4 | 6 |" in text
    assert "| gen | 90 / 100 / 4.25 | 100 / 100 / 2 | 80 |" in text
    assert "| gen | 90 / 100 | 100 / 100 | 80 |" in text  # T2: no KNN distance
    assert "KNN distance: not measured (member-level tests skipped: the model file does not say" in text
    assert "Lava replay of the per-class winners: 100.00 % identical (20 inputs)." in text
    assert text.rstrip().endswith("gen >= 90 % attack accuracy from every independent judge: T1: yes; T2: yes")


def test_goal_missed_and_gen_not_run(tmp_path, capsys):
    ge = _script()
    low = _audit()
    low["attacks"][1]["judges"]["judge 1"] = _s(0.8, 1.0)
    none = _audit()
    del none["attacks"][1]
    for name, a in (("low.json", low), ("none.json", none)):
        (tmp_path / name).write_text(json.dumps(a))
    assert ge.main([str(tmp_path / "low.json"), f"N={tmp_path / 'none.json'}"]) == 0
    text = capsys.readouterr().out
    assert "| gen | not run | not run | |" in text
    assert text.rstrip().endswith("low.json: no; N: not run")
