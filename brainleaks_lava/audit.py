"""``brainleaks audit``: does this deployed model leak its training data? The worst case over a portfolio.

The audit runs a portfolio of attacks on one target within a time budget (the paper's BL-v2 and the
encoder-aware BL-enc variants for SNNs, MI-FACE for ANNs), scores every attack with an independent
evaluator (the paper's four metrics over ``draws`` Bernoulli draws), and keeps **for each class** the
reconstruction the evaluator finds most convincing (highest mean target confidence). That per-class
worst case is what an owner must assume an attacker gets; its metrics are reported beside each attack's.
The winners are replayed on Lava (SNN targets) so the leak is shown on the deployed fixed-point network,
and with real training data the nearest training image of each winner is found by SSIM.

Note on the selection: the per-class choice uses the same evaluator that scores it, so the worst-case
row is an upper bound of what the portfolio leaks (an attacker with a different judge may pick others);
each attack's own row is unselected.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortfolioEntry:
    name: str
    method: str
    params: dict = field(default_factory=dict)
    mode: str = "paper"
    seed_offset: int = 0  # added to the audit's seed: the same settings from another start


# In order of what they found on lava-dl's tutorial classifier (README, "brainleaks audit"): single BL-enc
# runs differ from class to class, so the portfolio varies the loss, the priors, the start and the seed.
SNN_PORTFOLIO = (
    PortfolioEntry("bl2", "bl2"),
    PortfolioEntry("blenc", "blenc"),
    PortfolioEntry("blenc-prob", "blenc", {"loss": "prob"}),
    PortfolioEntry("blenc-tv0.3", "blenc", {"tv": 0.3}),
    PortfolioEntry("blenc-init0.3", "blenc", {"init_rate": 0.3}),
    PortfolioEntry("blenc-sparsity0", "blenc", {"sparsity": 0.0}),
    PortfolioEntry("blenc-seed1", "blenc", seed_offset=1),
    PortfolioEntry("blenc-prob-seed1", "blenc", {"loss": "prob"}, seed_offset=1),
)
ANN_PORTFOLIO = (PortfolioEntry("miface", "miface"),)


@dataclass
class AuditReport:
    model: str
    evaluator: str
    attacks: list[dict]  # per attack: name, label, summary, seconds, recon path
    skipped: list[str]
    best: list[dict]  # per class: the winning reconstruction and what was measured on it
    worst_case: dict  # summarize_draws of the per-class winners
    replay: dict | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------- pieces

def combine_best(evaluations: list, targets: np.ndarray) -> tuple[list[int], np.ndarray]:
    """For each reconstruction row (class), the index of the evaluation whose mean target confidence is
    highest (ties: the earlier attack), and the combined posteriors (D, R, C) of the winners, where D is
    the largest number of draws (deterministic reconstructions repeat their one draw)."""
    if not evaluations:
        raise InputError("no attack results to combine")
    r = len(targets)
    conf = np.stack([[row["target_confidence"] for row in ev.per_class] for ev in evaluations])  # (A, R)
    winners = [int(np.argmax(conf[:, i])) for i in range(r)]
    d = max(ev.posteriors.shape[0] for ev in evaluations)
    c = evaluations[0].posteriors.shape[-1]
    posts = np.zeros((d, r, c))
    for i, a in enumerate(winners):
        p = evaluations[a].posteriors
        for k in range(d):
            posts[k, i] = p[min(k, p.shape[0] - 1), i]
    return winners, posts


def ssim_nearest(recons: np.ndarray, images: np.ndarray, batch: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """For each reconstruction (R, H, W) in [0, 1], the highest SSIM to any of ``images`` (N, H, W) and the
    index of that image. SSIM with a Gaussian window (7x7, sigma 1.5) and the usual constants for a
    dynamic range of 1, averaged over the valid window positions."""
    x = torch.as_tensor(np.asarray(recons, dtype=np.float32))[:, None]
    y_all = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    g = torch.exp(-((torch.arange(7) - 3.0) ** 2) / (2 * 1.5 ** 2))
    w = (g[:, None] * g[None, :])
    w = (w / w.sum())[None, None]
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def blur(a):
        return torch.nn.functional.conv2d(a, w)

    mx, mxx = blur(x), blur(x * x)
    best = np.full(len(x), -np.inf)
    where = np.zeros(len(x), dtype=np.int64)
    for s in range(0, len(y_all), batch):
        y = y_all[s:s + batch]
        my, myy = blur(y), blur(y * y)
        for i in range(len(x)):
            mxy = blur(x[i:i + 1] * y)
            vx, vy, cov = mxx[i] - mx[i] ** 2, myy - my ** 2, mxy - mx[i] * my
            ssim = ((2 * mx[i] * my + c1) * (2 * cov + c2)) / ((mx[i] ** 2 + my ** 2 + c1) * (vx + vy + c2))
            score = ssim.flatten(1).mean(1).numpy()
            j = int(np.argmax(score))
            if score[j] > best[i]:
                best[i], where[i] = float(score[j]), s + j
    return best, where


def verdict(cls_name: str, row: dict, attack: str) -> str:
    """One plain-language line for a class, from the evaluator's view of the winning reconstruction."""
    conf = row["target_confidence"]
    top = row["top_classes"]
    if top and top[0] == row["target_class"]:
        strength = "leaks" if conf >= 0.5 else "leaks weakly"
        return (f"class {cls_name}: {strength}: the evaluator recognises the class with confidence {conf:.2f} "
                f"({attack})")
    if row["target_class"] in top:
        return (f"class {cls_name}: partial leak: the class is in the evaluator's top 3 (confidence {conf:.2f}, "
                f"{attack})")
    return (f"class {cls_name}: no leak found by this portfolio: evaluator confidence {conf:.2f}; the best "
            f"reconstruction looks like class {top[0] if top else '?'} to it")


# ---------------------------------------------------------------------------------------------- the audit

def run_audit(model_path, evaluator_path, out, *, options: dict | None = None, card=None, data_root=None,
              dataset: str | None = None, budget: float = 600.0, draws: int = 20, seed: int = 0,
              replay_draws: int = 2, replay: bool = True, classes=None, portfolio=None,
              progress: bool = True, force: bool = False, contrast=None) -> AuditReport:
    """Audit ``model_path`` (see the module docstring) and write the report into the directory ``out``
    (``report.md``, ``audit.json``, ``best.png``, ``recon/<attack>.h5`` and the marker ``.brainleaks-audit``).
    ``out`` must not exist or be empty unless ``force``, which replaces only a report an earlier audit wrote
    (``safety.claim_output_dir``: checked before any work and again just before the replacement); it is written
    complete or not at all. ``contrast``: how the evaluator sees the reconstructions
    (``evaluation.score.resolve_contrast``; default: as they are)."""
    from .attacks import adapter_for, make_attack
    from .attacks.recon_file import save_recon
    from .evaluation.classifiers import load_evaluator
    from .evaluation.metrics import summarize_draws, attack_metrics, per_class_table
    from .evaluation.score import evaluate_result, resolve_contrast
    from .models.files import load_target
    from .safety import check_recon_for_evaluator, claim_output_dir, write_marker

    out = Path(out)
    inputs = [("model", model_path), ("--evaluator", evaluator_path), ("--data-root", data_root)]
    inputs += [("--card", card)] if isinstance(card, (str, os.PathLike)) else []
    claim_output_dir(out, "audit", inputs, force)
    if not (isinstance(budget, (int, float)) and budget > 0):
        raise InputError(f"budget must be a positive number of seconds, got {budget!r}")
    t_start = time.time()
    target = load_target(model_path, options=options, card=card)
    ev = load_evaluator(evaluator_path)
    spiking = target.arch == "snn"
    if spiking and replay:  # before any attack: a file Lava cannot run as it is would fail only at the end
        from .hardware.replay import check_replayable

        check_replayable(target.net, " (give --no-replay to audit the twin alone)")
    portfolio = tuple(portfolio) if portfolio is not None else (SNN_PORTFOLIO if spiking else ANN_PORTFOLIO)
    adapter = adapter_for(target)
    n_cls = adapter.num_classes
    if n_cls != ev.num_classes:
        raise InputError(f"{model_path} has {n_cls} classes but the evaluator {evaluator_path} has {ev.num_classes}")
    stats = resolve_contrast(contrast, ev)  # before any attack runs: a bad setting fails at once
    classes = list(range(n_cls)) if classes is None else list(classes)
    names = getattr(getattr(target, "model", None), "deployment", None)
    class_names = list(names.classes) if names is not None and names.classes else list(ev.classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.audit-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        work.chmod(0o777 & ~umask)  # mkdtemp's 0700 is for the work in progress, not for the report
        write_marker(work, "audit")
        (work / "recon").mkdir()
        rows, evaluations, results, skipped = [], [], [], []
        spent: list[float] = []  # seconds per attack, scoring included
        for entry in portfolio:
            # start an attack only if it is expected to end within the budget (expected: the mean of the
            # attacks run so far; the first always runs)
            expected = float(np.mean(spent)) if spent else 0.0
            if spent and time.time() - t_start + expected > budget:
                skipped.append(entry.name)
                log.warning("audit: %s not run (budget %.0f s; %.0f s spent, about %.0f s per attack)",
                            entry.name, budget, time.time() - t_start, expected)
                continue
            t_attack = time.time()
            attack = make_attack(entry.method, adapter, mode=entry.mode, **entry.params)
            if progress:
                log.info("audit: %s ...", entry.name)
            res = attack.invert(classes=classes, seed=seed + entry.seed_offset, progress=progress)
            path = save_recon(res, work / "recon" / f"{entry.name}.h5", model_path=str(model_path),
                              model_sha256=target.sha256)
            check_recon_for_evaluator(res, path, ev, evaluator_path, draws)
            e = evaluate_result(res, ev, draws=draws, seed=seed, contrast=stats)
            settings = ", ".join([f"{k} {v}" for k, v in entry.params.items()]
                                 + ([f"seed +{entry.seed_offset}"] if entry.seed_offset else []))
            rows.append({"name": entry.name, "label": e.label + (f" [{settings}]" if settings else ""),
                         "method": entry.method, "params": entry.params, "summary": e.summary,
                         "seconds": round(res.seconds, 1), "recon": f"recon/{entry.name}.h5",
                         "flags": {k: res.extra[k] for k in ("worse_than_start", "stuck_at_start") if res.extra.get(k)}})
            evaluations.append(e)
            results.append(res)
            spent.append(time.time() - t_attack)
            if progress:
                s = e.summary
                log.info("audit: %s: attack acc. %.1f %%, top-3 %.1f %%, DAA %.1f %% (%.0f s)", entry.name,
                         100 * s["accuracy"]["mean"], 100 * s["top3_accuracy"]["mean"], 100 * s["daa"]["mean"],
                         res.seconds)
        targets = results[0].targets
        winners, posts = combine_best(evaluations, targets)
        per_draw = [attack_metrics(p, targets, ev.num_classes) for p in posts]
        worst = summarize_draws(per_draw)
        table = per_class_table(posts.mean(0), targets)
        best = []
        for i, (a, row) in enumerate(zip(winners, table)):
            c = int(targets[i])
            best.append({"class": c, "name": class_names[c] if c < len(class_names) else str(c),
                         "attack": rows[a]["name"], "evaluator_confidence": row["target_confidence"],
                         "top_classes": row["top_classes"], "top_probs": row["top_probs"],
                         "twin_confidence": float(results[a].confidence[i])})
        views = _views(results, winners, target, stats)
        notes, nearest = [], None
        if stats is not None:
            notes.append(f"the evaluator scored each reconstruction's image standardised to grey mean {stats[0]:.3f} "
                         f"and std {stats[1]:.3f} (README, 'Scoring what a reconstruction shows'); the figure "
                         "shows them so")
        if data_root is not None and views is not None:
            nearest = _nearest(best, views, target, data_root, dataset, notes)
        rep = None
        if replay and spiking:
            rep = _replay(model_path, target, results, winners, best, options, card, replay_draws, seed, progress)
        for b, row in zip(best, table):
            b["verdict"] = verdict(b["name"], row, b["attack"])
        report = AuditReport(model=str(model_path), evaluator=str(evaluator_path), attacks=rows, skipped=skipped,
                             best=best, worst_case=worst, replay=rep, seconds=round(time.time() - t_start, 1),
                             notes=notes)
        _write(work, report, target, ev, views, nearest, budget, draws)
        _put_in_place(work, out, inputs, force)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _put_in_place(work: Path, out: Path, inputs, force: bool) -> None:
    """Rename the finished report ``work`` to ``out``. An earlier report there (checked again now: nothing but
    what an audit writes) is moved aside first and removed only once the new one is in place."""
    from .safety import claim_output_dir

    if claim_output_dir(out, "audit", inputs, force) == "new":
        work.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    try:
        os.replace(out, old / "report")
        try:
            work.rename(out)
        except BaseException:
            os.replace(old / "report", out)
            raise
    finally:
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:  # neither report in place (the rename back failed too): keep the earlier one
            log.error("audit: the earlier report is kept in %s", old / "report")


def _image_shape(target) -> tuple[int, ...] | None:
    from .attacks.encoder_aware import image_shape

    shape = target.metadata.get("input_shape")
    if isinstance(shape, list) and shape:
        return tuple(int(v) for v in shape)
    dep = getattr(target.model, "deployment", None)
    n = target.model.num_inputs
    return image_shape(tuple(dep.input_shape) if dep is not None and dep.input_shape else (n,))


def _views(results, winners, target, stats=None) -> np.ndarray | None:
    """The winners as images (R, H, W) in [0, 1] (rate-decoded spikes, normalised drives, MI-FACE images;
    with contrast ``stats`` (mean, std) the standardised images the evaluator scored)."""
    from .evaluation.score import contrast_images
    from .report.figures import decode_for_view

    shape = _image_shape(target)
    if shape is None:
        return None
    if stats is not None:
        rows = [contrast_images(results[a], *stats)[i] for i, a in enumerate(winners)]
    else:
        rows = [results[a].view()[i] for i, a in enumerate(winners)]
    return decode_for_view(np.stack(rows), shape)


def _nearest(best, views, target, data_root, dataset, notes) -> np.ndarray | None:
    """Add each winner's nearest training image (by SSIM) to ``best``; return those images (R, H, W)."""
    from .data import STATIC_DATASETS, load_static

    name = dataset or target.metadata.get("dataset")
    if name is None:
        notes.append("nearest training images: not computed (give --dataset: the model file does not name it)")
        return None
    if name not in STATIC_DATASETS:
        notes.append(f"nearest training images: not computed for {name} (event data has no still images)")
        return None
    train = load_static(name, data_root, split="train")
    imgs = np.asarray(train.images, dtype=np.float32)
    if imgs.shape[1:] != views.shape[1:]:
        notes.append(f"nearest training images: not computed ({name} images are {imgs.shape[1:]}, the "
                     f"reconstructions {views.shape[1:]})")
        return None
    score, idx = ssim_nearest(views, imgs)
    for i, (b, s, j) in enumerate(zip(best, score, idx)):
        b["nearest_ssim"] = round(float(s), 4)
        b["nearest_index"] = int(j)
        b["nearest_class"] = int(train.labels[j])
        b["nearest_l2"] = round(float(np.sqrt(((views[i] - imgs[j]) ** 2).sum())), 3)
    notes.append(f"nearest training images: searched by SSIM among the {len(imgs)} {name} training images "
                 f"({train.source})")
    return imgs[idx]


def _replay(model_path, target, results, winners, best, options, card, replay_draws, seed, progress) -> dict:
    from .attacks.recon_file import recon_draws
    from .hardware.equivalence import check_equivalence

    trains, rows = [], []
    for i, a in enumerate(winners):
        d = recon_draws(results[a], replay_draws, seed)  # (D, R, ...)
        for k in range(d.shape[0]):
            trains.append(d[k, i])
            rows.append(i)
    rows = np.array(rows)
    targets = np.array([best[i]["class"] for i in rows])
    report = check_equivalence(model_path, np.stack(trains), targets, options=options, card=card,
                               twin=target, progress=progress)
    for i, b in enumerate(best):
        sel = [s for s, r in zip(report.samples, rows) if r == i]
        b["lava_confidence"] = float(np.mean([s.lava_confidence for s in sel]))
        b["lava_twin_confidence"] = float(np.mean([s.twin_confidence for s in sel]))
        b["lava_identical"] = f"{sum(s.equal for s in sel)}/{len(sel)}"
    return {"samples": len(trains), "agreement": report.agreement, "mode": report.mode,
            "seconds": round(report.seconds, 1)}


def _pct(s: dict, key: str) -> str:
    m = s[key]
    return f"{100 * m['mean']:.2f} ± {100 * m['std']:.2f}" if m["std"] > 0 else f"{100 * m['mean']:.2f}"


def _write(work: Path, report: AuditReport, target, ev, views, nearest, budget, draws) -> None:
    from .fileio import atomic_path, write_json_atomic
    from .report.figures import recon_grid

    best = report.best
    lines = [f"# Privacy audit of {Path(report.model).name}", "",
             f"- model: `{report.model}` (sha256 {target.sha256[:16]}...)"]
    dep = getattr(target.model, "deployment", None)
    if dep is not None:
        lines.append(f"- deployment: {dep.describe()}")
    lines += [f"- evaluator: `{report.evaluator}` ({ev.kind}, {draws} draws per Bernoulli reconstruction)",
              f"- budget {budget:g} s; audit took {report.seconds:.0f} s"
              + (f"; not run (budget spent): {', '.join(report.skipped)}" if report.skipped else ""), "",
              "## Attacks", "",
              "| attack | Attack Acc. (%) | Top-3 Acc. (%) | Avg. Conf. (%) | DAA (%) | time (s) | flags |",
              "|---|---|---|---|---|---|---|"]
    for r in report.attacks:
        s = r["summary"]
        flags = "; ".join(f"{k}: {v}" for k, v in r["flags"].items()) or ""
        lines.append(f"| {r['label']} | {_pct(s, 'accuracy')} | {_pct(s, 'top3_accuracy')} | "
                     f"{_pct(s, 'avg_confidence')} | {_pct(s, 'daa')} | {r['seconds']} | {flags} |")
    w = report.worst_case
    lines.append(f"| **per-class worst case** | **{_pct(w, 'accuracy')}** | **{_pct(w, 'top3_accuracy')}** | "
                 f"**{_pct(w, 'avg_confidence')}** | **{_pct(w, 'daa')}** | | |")
    lines += ["", "The worst case keeps, for each class, the reconstruction the evaluator finds most convincing "
              "(selected with the same evaluator: an upper bound of what this portfolio leaks). Twin conf.: the "
              "deployed read-out's confidence of the attack's returned input; the Lava column replays seeded "
              "draws of the winner (Bernoulli reconstructions) and gives the twin's confidence on the same draws.", "",
              "## Per class (worst case)", "",
              "| class | attack | evaluator top-3 (probability) | evaluator conf. | twin conf. | Lava conf. of the "
              "replayed draws (twin on them) | Lava identical | nearest training image (SSIM, class) |",
              "|---|---|---|---|---|---|---|---|"]
    for b in best:
        top = ", ".join(f"{c} ({p:.2f})" for c, p in zip(b["top_classes"], b["top_probs"]))
        lava = (f"{b['lava_confidence']:.3f} (twin {b['lava_twin_confidence']:.3f})" if "lava_confidence" in b
                else "-")
        near = f"{b['nearest_ssim']:.3f}, {b['nearest_class']}" if "nearest_ssim" in b else "-"
        lines.append(f"| {b['name']} | {b['attack']} | {top} | {b['evaluator_confidence']:.3f} | "
                     f"{b['twin_confidence']:.3f} | {lava} | {b.get('lava_identical', '-')} | {near} |")
    if report.replay:
        rp = report.replay
        lines += ["", f"Lava fixed_pt replay of the winners ({rp['samples']} inputs, {rp['mode']}): "
                      f"{100 * rp['agreement']:.2f} % identical to the twin on every layer."]
    lines += ["", "## Verdict", ""] + [f"- {b['verdict']}" for b in best]
    lines += ["", "![winners](best.png)", ""]
    lines += [f"Note: {n}" for n in report.notes]
    if views is not None:
        recon_grid(work / "best.png", views, np.array([b["class"] for b in best]), views.shape[1:],
                   f"audit of {Path(report.model).name}: per-class worst case", class_names=None,
                   confidences=[b["evaluator_confidence"] for b in best],
                   real_examples=nearest, real_label="nearest")
    with atomic_path(work / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_json_atomic(work / "audit.json", report.to_dict())
