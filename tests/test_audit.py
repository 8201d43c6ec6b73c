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
    assert sorted(p.name for p in (out / "recon").iterdir()) == ["bl2.h5", "bl2.png", "blenc-seed1.h5",
                                                                  "blenc-seed1.png", "blenc.h5", "blenc.png"]
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


# ---------------------------------------------------------------------------------------------- issue 28: the panel
# and the member-level evidence

EVAL_ANN = "netx_models/mnist_eval_ann.h5"


@pytest.fixture(scope="module")
def judges_dir(tmp_path_factory):
    """Two more evaluators: a small CNN trained for one epoch on the vendored MNIST subset (it records the grey level
    of its training images), and the same weights with other recorded grey-level statistics (mean 0.2, std 0.25)."""
    import torch

    from brainleaks_lava.evaluation.classifiers import load_evaluator, train_evaluator
    from brainleaks_lava.models.files import save_torch_h5
    from brainleaks_lava.models.training import TrainConfig

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("judges")
    train_evaluator("ann", "mnist", None, d / "small_cnn.h5", TrainConfig(epochs=1, batch_size=50, lr=2e-3, seed=0))
    ev = load_evaluator(d / "small_cnn.h5")
    save_torch_h5(ev.model, d / "other_stats.h5", ev.metadata["format"],
                  {**ev.metadata, "image_stats": {"mean": 0.2, "std": 0.25}})
    return d


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end >= 0 else None]


def test_audit_with_two_judges_reports_both_and_the_agreement(small_snn_path, judges_dir, tmp_path):
    from brainleaks_lava.attacks.recon_file import load_recon
    from brainleaks_lava.audit import gather_posteriors
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    from brainleaks_lava.evaluation.evidence import leak_kind
    from brainleaks_lava.evaluation.score import evaluate_result

    out = tmp_path / "audit"
    judges = [str(judges_dir / "small_cnn.h5"), EVAL]
    rep = run_audit(small_snn_path, EVAL_ANN, out, classes=[0, 1, 7], draws=2, replay=False, portfolio=SMALL[:2],
                    progress=False, judges=judges)
    assert [j["label"] for j in rep.judges] == ["judge 1", "judge 2"] and [j["path"] for j in rep.judges] == judges
    names = [r["name"] for r in rep.attacks]
    winners = [names.index(b["attack"]) for b in rep.best]
    sel_top = [b["top_classes"][0] for b in rep.best]
    recognised = [[b["panel"]["selector"]["recognised"]] for b in rep.best]
    for j, path in zip(rep.judges, judges):
        ev = load_evaluator(path)
        # each judge scores every attack exactly as `brainleaks evaluate` would
        evals = [evaluate_result(load_recon(out / r["recon"]), ev, draws=2, seed=0) for r in rep.attacks]
        for r, e in zip(rep.attacks, evals):
            assert r["judges"][j["label"]] == e.summary
        # ... and sees the selector's winners: its top-1 per class, its agreement with the selector's top-1
        posts = gather_posteriors(evals, winners).mean(0)
        top = [int(np.argmax(p)) for p in posts]
        assert [row["top_classes"][0] for row in j["per_class"]] == top
        assert j["agreement"] == pytest.approx(np.mean([a == b for a, b in zip(top, sel_top)]))
        assert j["classes_recognised"] == sum(t == b["class"] for t, b in zip(top, rep.best))
        assert j["contrast"] is None and j["contrast_text"] == "as they are"
        for i, b in enumerate(rep.best):
            recognised[i].insert(-1, top[i] == b["class"])
    for b, rec in zip(rep.best, recognised):
        assert b["panel_size"] == 3 and b["recognised_by"] == sum(rec)
        assert b["leak_kind"] == leak_kind(rec, None)
    text = (out / "report.md").read_text()
    # the report leads with the independent judges' figures, the selector last as the upper bound
    assert text.index("## Worst case under each judge") < text.index("## Attacks")
    panel = _section(text, "## Worst case under each judge")
    assert panel.index("| judge 1 |") < panel.index("| judge 2 |") < panel.index("| **selector, upper bound** |")
    assert "top-1 = selector's top-1" in panel and "as they are" in panel
    # the one-line overall verdict comes first
    first = text.splitlines()[2]
    assert first.startswith("**Verdict: class-level leak in ") and "panel of 3: 2 independent judges" in first
    n_class = sum(b["leak_kind"].startswith("class-level") for b in rep.best)
    assert f"class-level leak in {n_class} of 3 classes" in first
    assert "record-level: not tested (no member data)" in first
    data = json.loads((out / "audit.json").read_text())
    assert [j["label"] for j in data["judges"]] == ["judge 1", "judge 2"]
    assert data["member_level"]["skipped"].startswith("member-level tests skipped: ")


def test_audit_judges_follow_the_contrast_protocol_with_their_own_statistics(small_snn_path, judges_dir, tmp_path):
    from brainleaks_lava.attacks.recon_file import load_recon
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    from brainleaks_lava.evaluation.score import evaluate_result

    selector, judge = judges_dir / "small_cnn.h5", judges_dir / "other_stats.h5"
    out = tmp_path / "audit"
    rep = run_audit(small_snn_path, selector, out, classes=[3], draws=1, replay=False, portfolio=SMALL[:1],
                    progress=False, judges=[judge], contrast="standardise")
    own = load_evaluator(selector).image_stats
    assert own != (0.2, 0.25)
    assert rep.judges[0]["contrast"] == {"mean": 0.2, "std": 0.25}
    again = evaluate_result(load_recon(out / rep.attacks[0]["recon"]), load_evaluator(judge), draws=1, seed=0,
                            contrast=(0.2, 0.25))
    assert rep.attacks[0]["judges"]["judge 1"] == again.summary
    panel = _section((out / "report.md").read_text(), "## Worst case under each judge")
    assert "standardised to grey mean 0.200, std 0.250 (its own training images)" in panel
    assert f"standardised to grey mean {own[0]:.3f}, std {own[1]:.3f}" in panel
    # a judge that cannot follow the protocol, or is the selector itself, is refused before any attack runs
    with pytest.raises(InputError, match=f"--judge {EVAL}: .*grey-level statistics"):
        run_audit(small_snn_path, selector, tmp_path / "b", classes=[3], draws=1, replay=False, portfolio=SMALL[:1],
                  progress=False, judges=[EVAL], contrast="standardise")
    with pytest.raises(InputError, match="is the same file as the --evaluator"):
        run_audit(small_snn_path, selector, tmp_path / "b", classes=[3], draws=1, replay=False, portfolio=SMALL[:1],
                  progress=False, judges=[str(selector)])
    assert not (tmp_path / "b").exists()


def _member_files(tmp_path):
    from brainleaks_lava.data import load_static

    tr, va = load_static("mnist", None, split="train"), load_static("mnist", None, split="val")
    np.savez(tmp_path / "members.npz", images=np.round(tr.images * 255).astype(np.uint8), labels=tr.labels)
    np.savez(tmp_path / "non_members.npz", images=va.images, labels=va.labels)
    return tmp_path / "members.npz", tmp_path / "non_members.npz", tr, va


def test_audit_member_level_section_with_members_given(small_snn_path, judges_dir, tmp_path):
    from brainleaks_lava.evaluation.evidence import leak_kind

    members, non_members, tr, va = _member_files(tmp_path)
    out = tmp_path / "audit"
    rep = run_audit(small_snn_path, EVAL_ANN, out, classes=[0, 1], draws=2, replay=False, portfolio=SMALL[:2],
                    progress=False, judges=[judges_dir / "small_cnn.h5"], members=members, non_members=non_members,
                    member_limit=60)
    ml = rep.member_level
    # at most 60 of each per class (the vendored subset has about 100 members and 25 non-members per class)
    assert ml["members"] == sum(min(60, int((tr.labels == c).sum())) for c in (0, 1))
    assert ml["non_members"] == sum(min(60, int((va.labels == c).sum())) for c in (0, 1))
    assert [j["label"] for j in ml["judges"]] == ["judge 1", "selector"]
    assert [j["selector"] for j in ml["judges"]] == [False, True]
    for j in ml["judges"]:
        assert j["features"] == 384  # the CNN's flattened 24 x 4 x 4 feature map
        rows = j["winners"]["rows"]
        assert [r["cls"] for r in rows] == [0, 1] and all(r["n"] == 1 for r in rows)
        for r in rows:
            assert 0 < r["p"] <= 1 and 0 < r["p_members"] <= 1 and r["n_member_probes"] == 60
        assert [r["n"] for r in j["all_reconstructions"]["rows"]] == [2, 2]  # every attack's reconstruction
        assert j["fidelity_winners"]["fd"]["mean"] >= 0 and j["fidelity_winners"]["fd_real_baseline"]["mean"] > 0
        assert 0 <= j["fidelity_all"]["precision"]["mean"] <= 1
    for b in rep.best:
        labels = ["judge 1", "selector"]
        assert set(b["record_level"]) == set(labels)
        assert b["leak_kind"] == leak_kind([b["panel"][k]["recognised"] for k in labels],
                                           [b["record_level"][k]["record_level"] for k in labels])
        # the paper's KNN distance of each attack's reconstructions, and of real unseen images as the scale
        assert len(j["knn_distance"]["attacks"]) == 2 and all(d >= 0 for d in j["knn_distance"]["attacks"])
        assert j["knn_distance"]["non_members"] > 0
    text = (out / "report.md").read_text()
    table = _section(text, "## Worst case under each judge")
    assert "/ KNN distance of each attack under each judge" in table
    assert "| real unseen images (KNN distance) |" in table
    knn = {j["label"]: j["knn_distance"] for j in ml["judges"]}
    bl2 = rep.attacks[0]
    assert (f"| bl2 | {100 * bl2['judges']['judge 1']['accuracy']['mean']:.2f} / "
            f"{100 * bl2['judges']['judge 1']['top3_accuracy']['mean']:.2f} / {knn['judge 1']['attacks'][0]:.3g} | "
            f"{100 * bl2['summary']['accuracy']['mean']:.2f} / {100 * bl2['summary']['top3_accuracy']['mean']:.2f} / "
            f"{knn['selector']['attacks'][0]:.3g} |") in table
    assert sorted(p.name for p in (out / "recon").iterdir()) == ["bl2.h5", "bl2.png", "blenc.h5", "blenc.png"]
    section = _section(text, "## Member-level evidence")
    assert f"--members {members} ({len(tr.labels)} images)" in section
    assert "| selector, upper bound |" in section and "| judge 1 |" in section
    assert "member-level tests skipped" not in text
    assert text.splitlines()[2].startswith("**Verdict: record-level leak in ")


def test_audit_refuses_unusable_member_files_before_any_attack(small_snn_path, tmp_path):
    members, non_members, tr, va = _member_files(tmp_path)
    np.savez(tmp_path / "no_labels.npz", images=tr.images)
    np.savez(tmp_path / "pickled.npz", images=np.array([object()]), labels=np.array([0]))
    np.savez(tmp_path / "small.npz", images=tr.images[:, :14, :14], labels=tr.labels)
    np.savez(tmp_path / "bright.npz", images=tr.images * 2, labels=tr.labels)
    np.savez(tmp_path / "label_99.npz", images=tr.images, labels=tr.labels + 90)
    (tmp_path / "text.npz").write_text("not a zip archive")
    cases = [(dict(members=members), "--members and --non-members go together"),
             (dict(members=tmp_path / "no_labels.npz", non_members=non_members), "no array 'labels'"),
             (dict(members=tmp_path / "pickled.npz", non_members=non_members), "pickled Python objects"),
             (dict(members=members, non_members=tmp_path / "small.npz"), "images of 14x14, but the model takes 28x28"),
             (dict(members=tmp_path / "bright.npz", non_members=non_members), "outside \\[0, 1\\]"),
             (dict(members=tmp_path / "label_99.npz", non_members=non_members), "labels must be classes 0..9"),
             (dict(members=tmp_path / "text.npz", non_members=non_members), "not an .npz archive"),
             (dict(members=tmp_path / "missing.npz", non_members=non_members), "not found")]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            run_audit(small_snn_path, EVAL_ANN, tmp_path / "x", classes=[0], draws=1, replay=False,
                      portfolio=SMALL[:1], progress=False, **kwargs)
        assert not (tmp_path / "x").exists()


def _copy_model(src, tmp_path, **sidecar):
    """The fixture's model with its sidecar changed (keys given None are removed)."""
    import shutil

    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    shutil.copy(src, d / src.name)
    meta = json.loads(src.with_suffix(".json").read_text())
    for k, v in sidecar.items():
        meta.pop(k, None) if v is None else meta.__setitem__(k, v)
    (d / src.name).with_suffix(".json").write_text(json.dumps(meta))
    return d / src.name


def test_audit_member_level_skip_note_says_why(small_snn_path, tmp_path):
    from brainleaks_lava.data.mnist import vendored_mnist_root

    root = vendored_mnist_root()

    def notes(model, **kwargs):
        out = tmp_path / f"a{len(list(tmp_path.iterdir()))}"
        rep = run_audit(model, EVAL_ANN, out, classes=[2], draws=1, replay=False, portfolio=SMALL[:1], progress=False,
                        **kwargs)
        text = (out / "report.md").read_text()
        skipped = [line for line in text.splitlines() if "member-level tests skipped" in line]
        return rep, skipped, text

    # the fixture's sidecar names its dataset but not its training-set size
    rep, skipped, text = notes(small_snn_path)
    assert len(skipped) == 1 and "give --data-root with the mnist data" in skipped[0]
    assert rep.member_level == {"skipped": skipped[0][len("Note: "):]}
    _, skipped, _ = notes(small_snn_path, data_root=root)
    assert len(skipped) == 1 and "names its dataset (mnist) but not how many images it was trained on" in skipped[0]
    # --data-root without --dataset on a file that does not say what it was trained on: both notes, never silence
    anonymous = _copy_model(small_snn_path, tmp_path, dataset=None)
    _, skipped, text = notes(anonymous, data_root=root)
    assert len(skipped) == 1 and "the model file does not say what it was trained on" in skipped[0]
    assert "nearest training images: not computed (give --dataset" in text
    # a sidecar that names a training set of another size than split 'train' of --data-root
    wrong = _copy_model(small_snn_path, tmp_path, training={"train_images": 8000})
    _, skipped, _ = notes(wrong, data_root=root)
    assert len(skipped) == 1 and "trained on 8000 mnist images but split 'train'" in skipped[0]
    # the same size: split 'train' are the members, 'val' the non-members
    right = _copy_model(small_snn_path, tmp_path, training={"train_images": 1000})
    rep, skipped, text = notes(right, data_root=root)
    assert not skipped and "members: split 'train' of mnist" in rep.member_level["source"]
    assert "## Member-level evidence" in text
    # and with --dataset the user says so for the fixture itself
    rep, skipped, _ = notes(small_snn_path, data_root=root, dataset="mnist")
    assert not skipped and rep.member_level["judges"][0]["selector"]


def test_audit_cli_judge_and_member_options(small_snn_path, judges_dir, tmp_path, capsys):
    members, non_members, _, _ = _member_files(tmp_path)
    out = tmp_path / "cli"
    assert main(["audit", str(small_snn_path), "--evaluator", EVAL_ANN, "--judge", str(judges_dir / "small_cnn.h5"),
                 "--members", str(members), "--non-members", str(non_members), "--member-limit", "30",
                 "--out", str(out), "--classes", "5", "--draws", "1", "--no-replay", "--budget", "1e-3"]) == 0
    data = json.loads((out / "audit.json").read_text())
    assert [j["label"] for j in data["judges"]] == ["judge 1"]
    assert data["member_level"]["per_class_limit"] == 30
    assert "## Member-level evidence" in capsys.readouterr().out
    assert main(["audit", str(small_snn_path), "--evaluator", EVAL_ANN, "--member-limit", "3",
                 "--out", str(tmp_path / "y")]) == 2
    assert "--member-limit" in capsys.readouterr().err


def test_knn_distances_per_attack_on_constructed_features():
    from brainleaks_lava.audit import _knn_distances

    members = np.array([[0.0, 0.0], [10.0, 1.0], [50.0, 50.0]])
    member_labels = np.array([0, 1, 1])
    # attack 0: class 0 at distance 5 from its member, class 1 at distance 1; attack 1: on the members themselves.
    # The nearest member of another class never counts (class 0's row at (10, 0) is 1 from a class-1 member).
    rec = np.array([[3.0, 4.0], [10.0, 0.0], [0.0, 0.0], [10.0, 1.0]])
    classes = np.array([0, 1, 0, 1])
    non_members = np.array([[0.0, 2.0], [10.0, 5.0]])
    d = _knn_distances(rec, classes, 2, members, member_labels, non_members, np.array([0, 1]))
    assert d == {"attacks": [3.0, 0.0], "non_members": 3.0}
    d = _knn_distances(np.array([[10.0, 0.0]]), np.array([0]), 1, members, member_labels, non_members,
                       np.array([0, 1]))
    assert d["attacks"] == [10.0]


def test_select_attacks_keeps_the_portfolio_order_and_refuses_bad_names():
    from brainleaks_lava.audit import SNN_PORTFOLIO, select_attacks, snn_portfolio

    assert [e.name for e in select_attacks(snn_portfolio(True), "blenc-prob,gen, bl2")] == ["bl2", "gen", "blenc-prob"]
    assert [e.name for e in select_attacks(SNN_PORTFOLIO, ["blenc"])] == ["blenc"]
    for names, words in (("gen", "gen runs with --prior"), ("bl2,bl2", "'bl2' is named twice"),
                         ("", "give 1 to"), ("bl2,", "give 1 to"), ("miface", "choose from bl2, blenc,")):
        with pytest.raises(InputError, match=words):
            select_attacks(SNN_PORTFOLIO, names)


def test_audit_cli_attacks_runs_only_those(small_snn_path, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["audit", str(small_snn_path), "--evaluator", EVAL, "--out", str(out), "--attacks", "nope",
                 "--no-replay"]) == 2
    err = capsys.readouterr().err
    assert "--attacks: 'nope' is not an attack of this audit's portfolio" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".audit-" in p.name]
    rep = run_audit(small_snn_path, EVAL, out, classes=[0, 1], draws=2, replay=False, progress=False,
                    attacks="bl2")
    assert [a["name"] for a in rep.attacks] == ["bl2"] and rep.skipped == []
    assert sorted(p.name for p in (out / "recon").iterdir()) == ["bl2.h5", "bl2.png"]


def test_member_data_of_a_target_trained_on_some_classes(tmp_path):
    """A target trained with --classes (an identity split of faces) names its classes in its sidecar: the audit's
    members and non-members are those subjects' train and val images, labelled as the target labels them."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    from brainleaks_lava.audit import _member_data, model_class_indices
    from brainleaks_lava.data import load_static

    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from test_faces import make_faces

    names = [f"s{k}" for k in range(1, 7)]
    assert model_class_indices({"classes": ["s5", "s2"]}, names) == [4, 1]
    for meta in ({"classes": names}, {}, {"classes": ["s2", "s9"]}, {"classes": ["s2", "s2"]}, {"classes": "s2"}):
        assert model_class_indices(meta, names) is None
    root = make_faces(tmp_path / "faces", subjects=range(1, 7))
    tr_all = load_static("att-faces", root, split="train")
    per = int((tr_all.labels == 0).sum())
    target = SimpleNamespace(metadata={"dataset": "att-faces", "classes": ["s5", "s2"],
                                       "training": {"train_images": 2 * per}})
    data, note = _member_data(target, root, None, None, None, tr_all.images.shape[1:], [0, 1], 2, 200, 0)
    # 2 val images per subject: too few for the member-level tests, enough for the KNN distance to the members
    assert note == data.tests_skipped and "class 0 has 2 non-members" in note and "s5" in data.source
    assert len(data.members) == 2 * per and sorted(set(data.member_labels.tolist())) == [0, 1]
    s5 = np.sort(tr_all.images[tr_all.labels == 4].reshape(per, -1), axis=0)
    got = np.sort(data.members[data.member_labels == 0].reshape(per, -1), axis=0)
    np.testing.assert_array_equal(got, s5)  # class 0 of the target is subject s5
    # a sidecar naming all 6 subjects but trained on fewer images than split 'train' holds: skipped, saying why
    target.metadata["classes"] = names
    data, note = _member_data(target, root, None, None, None, tr_all.images.shape[1:], [0, 1], 6, 200, 0)
    assert data is None and "not its training data" in note


def test_knn_by_judge_reads_both_forms_of_the_member_record():
    from brainleaks_lava.audit import knn_by_judge

    d = {"attacks": [1.0], "non_members": 2.0}
    assert knn_by_judge({"judges": [{"label": "judge 1", "knn_distance": d}, {"label": "selector"}]}) == {"judge 1": d}
    assert knn_by_judge({"skipped": "why", "knn_distance": [{"label": "selector", "knn_distance": d}]}) == {
        "selector": d}
    assert knn_by_judge({"skipped": "why"}) == {} == knn_by_judge(None)


def test_audit_measures_the_knn_distance_when_too_few_non_members_skip_the_tests(small_snn_path, judges_dir,
                                                                                  tmp_path, monkeypatch):
    """As on AT&T faces (2 unseen images per subject): the member-level tests are skipped, saying why, and the KNN
    distance of every attack under every judge is still measured and tabled."""
    import sys

    from brainleaks_lava.audit import knn_by_judge
    from brainleaks_lava.data.mnist import vendored_mnist_root

    monkeypatch.setattr(sys.modules["brainleaks_lava.audit"], "MIN_MEMBERS", 30)  # the vendored subset has about 25 non-members per class
    out = tmp_path / "audit"
    rep = run_audit(small_snn_path, EVAL_ANN, out, classes=[0, 1], draws=2, replay=False, portfolio=SMALL[:2],
                    progress=False, judges=[judges_dir / "small_cnn.h5"], data_root=vendored_mnist_root(),
                    dataset="mnist", member_limit=60)
    ml = rep.member_level
    assert "member-level tests skipped: class 0 has" in ml["skipped"] and "non-members" in ml["skipped"]
    knn = knn_by_judge(ml)
    assert set(knn) == {"judge 1", "selector"}
    assert all(len(d["attacks"]) == 2 and d["non_members"] > 0 for d in knn.values())
    text = (out / "report.md").read_text()
    assert "| real unseen images (KNN distance) |" in text and "## Member-level evidence" not in text
    assert "the KNN distance to the members is measured" in text
    assert "record-level: not tested" in rep.verdict
