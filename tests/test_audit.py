"""brainleaks audit: the per-class worst case, SSIM to the nearest training image, verdicts, the report."""
import json

import numpy as np
import pytest

from brainleaks_lava.audit import PortfolioEntry, combine_best, run_audit, ssim_nearest, verdict
from brainleaks_lava.cli import main
from brainleaks_lava.errors import InputError, OutputError
from brainleaks_lava.evaluation.metrics import per_class_table
from brainleaks_lava.evaluation.score import Evaluation

EVAL = "netx_models/mnist_eval_snn.h5"


def _evaluation(posteriors):
    posts = np.asarray(posteriors, dtype=np.float64)
    targets = np.arange(posts.shape[1])
    return Evaluation(summary={}, per_draw=[], per_class=per_class_table(posts.mean(0), targets),
                      posteriors=posts, targets=targets)


def test_combine_best_keeps_the_most_convincing_reconstruction_per_class():
    # two classes, three attacks; attack 0 has 2 draws, the others are deterministic (1 draw)
    a = _evaluation([[[0.9, 0.1], [0.8, 0.2]], [[0.7, 0.3], [0.6, 0.4]]])  # class 0: 0.8, class 1: 0.3
    b = _evaluation([[[0.2, 0.8], [0.1, 0.9]]])  # class 0: 0.2, class 1: 0.9
    c = _evaluation([[[0.85, 0.15], [0.5, 0.5]]])  # class 0: 0.85 (best), class 1: 0.5
    winners, posts = combine_best([a, b, c], np.array([0, 1]))
    assert winners == [2, 1]
    assert posts.shape == (2, 2, 2)
    # deterministic winners repeat their one draw across the draws of the combination
    np.testing.assert_allclose(posts[:, 0], [[0.85, 0.15], [0.85, 0.15]])
    np.testing.assert_allclose(posts[:, 1], [[0.1, 0.9], [0.1, 0.9]])
    # a tie goes to the earlier attack
    winners, _ = combine_best([b, b], np.array([0, 1]))
    assert winners == [0, 0]
    with pytest.raises(InputError):
        combine_best([], np.array([0]))


def test_ssim_nearest_finds_the_image_itself():
    rng = np.random.default_rng(0)
    imgs = (rng.random((50, 28, 28)) < 0.2).astype(np.float32)
    recon = np.stack([imgs[17], np.roll(imgs[3], 1, axis=1) * 0.9])
    score, idx = ssim_nearest(recon, imgs, batch=16)
    assert idx[0] == 17 and score[0] == pytest.approx(1.0, abs=1e-5)
    assert score[1] < 0.9


def test_verdict_lines():
    row = {"target_class": 3, "top_classes": [3, 5, 8], "top_probs": [0.97, 0.02, 0.01], "target_confidence": 0.97}
    assert verdict("3", row, "blenc") == "class 3: leaks: the evaluator recognises the class with confidence 0.97 (blenc)"
    row = {"target_class": 3, "top_classes": [5, 3, 8], "top_probs": [0.6, 0.3, 0.1], "target_confidence": 0.3}
    assert "partial leak" in verdict("3", row, "bl2")
    row = {"target_class": 3, "top_classes": [5, 8, 1], "top_probs": [0.6, 0.3, 0.1], "target_confidence": 0.01}
    assert "no leak found" in verdict("3", row, "bl2") and "class 5" in verdict("3", row, "bl2")


SMALL = (PortfolioEntry("bl2", "bl2", {"iterations": 5}),
         PortfolioEntry("blenc", "blenc", {"iterations": 20}),
         PortfolioEntry("blenc-seed1", "blenc", {"iterations": 20}, seed_offset=1))


def test_audit_report_without_replay(small_snn_path, tmp_path):
    out = tmp_path / "audit"
    rep = run_audit(small_snn_path, EVAL, out, classes=[0, 1, 7], draws=3, replay=False, portfolio=SMALL,
                    progress=False, data_root=None)
    assert {p.name for p in out.iterdir()} == {"report.md", "audit.json", "best.png", "recon", ".brainleaks-audit"}
    assert sorted(p.name for p in (out / "recon").iterdir()) == ["bl2.h5", "blenc-seed1.h5", "blenc.h5"]
    data = json.loads((out / "audit.json").read_text())
    assert [b["class"] for b in data["best"]] == [0, 1, 7]
    # the winner of each class is the attack whose evaluator confidence for it is highest
    for b in rep.best:
        assert b["verdict"].startswith(f"class {b['name']}:")
    text = (out / "report.md").read_text()
    assert "per-class worst case" in text and "## Verdict" in text
    worst = rep.worst_case["accuracy"]["mean"]
    assert worst >= max(r["summary"]["accuracy"]["mean"] for r in rep.attacks) - 1e-9
    # nothing a user ran before is lost: an existing report is refused unless forced
    with pytest.raises(OutputError, match="exists and is not empty"):
        run_audit(small_snn_path, EVAL, out, classes=[0], draws=1, replay=False, portfolio=SMALL[:1], progress=False)
    assert (out / "audit.json").read_text() == json.dumps(data, indent=2, sort_keys=True) + "\n"


def test_audit_budget_skips_attacks(small_snn_path, tmp_path):
    rep = run_audit(small_snn_path, EVAL, tmp_path / "a", classes=[0], draws=1, replay=False, portfolio=SMALL,
                    progress=False, budget=1e-3)
    assert [r["name"] for r in rep.attacks] == ["bl2"] and rep.skipped == ["blenc", "blenc-seed1"]


def test_audit_with_contrast_scores_standardised_images(small_snn_path, tmp_path):
    """With a contrast setting every attack is scored as `evaluate --contrast` scores it, and the report says
    so; an evaluator without grey-level statistics is refused before any attack runs."""
    from brainleaks_lava.attacks.recon_file import load_recon
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    from brainleaks_lava.evaluation.score import evaluate_result

    out = tmp_path / "audit"
    rep = run_audit(small_snn_path, EVAL, out, classes=[0, 4], draws=2, replay=False, portfolio=SMALL[:2],
                    progress=False, contrast=(0.2, 0.3))
    ev = load_evaluator(EVAL)
    for r in rep.attacks:
        again = evaluate_result(load_recon(out / r["recon"]), ev, draws=2, seed=0, contrast=(0.2, 0.3))
        assert r["summary"] == again.summary
    assert "standardised to grey mean 0.200 and std 0.300" in (out / "report.md").read_text()
    with pytest.raises(InputError, match="grey-level statistics"):
        run_audit(small_snn_path, EVAL, tmp_path / "b", classes=[0], draws=1, replay=False, portfolio=SMALL[:1],
                  progress=False, contrast="standardise")
    assert not (tmp_path / "b").exists()


def test_audit_cli_bad_input_exit_2(small_snn_path, tmp_path, capsys):
    assert main(["audit", str(small_snn_path), "--evaluator", str(tmp_path / "missing.h5"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if ".audit-" in p.name]  # no half-written work directory


@pytest.mark.slow
def test_audit_with_nearest_images_and_lava_replay(small_snn_path, tmp_path, capsys):
    from brainleaks_lava.data.mnist import vendored_mnist_root

    out = tmp_path / "full"
    assert main(["audit", str(small_snn_path), "--evaluator", EVAL, "--out", str(out), "--classes", "0", "1",
                 "--draws", "2", "--replay-draws", "2", "--data-root", str(vendored_mnist_root()),
                 "--dataset", "mnist", "--budget", "600"]) == 0
    data = json.loads((out / "audit.json").read_text())
    assert data["replay"]["agreement"] == 1.0
    for b in data["best"]:
        assert b["lava_identical"] in ("1/1", "2/2")
        assert b["lava_confidence"] == pytest.approx(b["lava_twin_confidence"])
        assert -1.0 <= b["nearest_ssim"] <= 1.0 and 0 <= b["nearest_class"] <= 9
    assert "nearest training image" in (out / "report.md").read_text()
