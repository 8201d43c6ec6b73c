"""The run report: ``report.md`` (paper-layout tables, figures) and ``metrics.json``."""
from __future__ import annotations

from pathlib import Path


from ..fileio import atomic_path, write_json_atomic
from ..evaluation.metrics import METRIC_NAMES, format_paper_table
from ..evaluation.score import METHOD_LABELS, contrast_images
from ..text import plural
from .figures import class_examples, frames_gif, recon_grid


def _acc(meta: dict) -> str:
    a = meta.get("validation_accuracy")
    return f"{100 * a:.2f}%" if isinstance(a, (int, float)) else "—"


def _paper(cfg, key: str, field: str) -> str:
    v = cfg.paper.get(key, {}).get(field)
    return f"{v:.2f}%" if isinstance(v, (int, float)) else "—"


def _prior_lines(rec) -> list[str]:
    """What the report says of the generative prior of a gen reconstruction (its ``extra["prior"]``, the
    ``attacks.generative.prior_record`` the attack stores): the file and which public data trained it."""
    from ..attacks.generative import prior_text

    record = rec.extra.get("prior")
    try:
        text = prior_text(record)
    except (AttributeError, KeyError, TypeError):  # not a prior record (a file written by something else)
        return ["Generative prior: not recorded in the reconstruction file.", ""]
    return [f"Generative prior (the latent search draws every image from it): {text}.", ""]


def write_report(cfg, out: Path, target_files: dict, eval_files: dict, recon_files: dict,
                 evaluations: dict, replays: dict) -> dict:
    from ..attacks.recon_file import load_recon
    from ..data import is_event_dataset, load_dataset
    from ..data.encoding import dataset_inputs
    from ..evaluation.classifiers import load_evaluator
    from ..models.files import load_target

    targets = {n: load_target(p) for n, p in target_files.items()}
    evaluators = {n: load_evaluator(p) for n, p in eval_files.items()}
    lines = [f"# {cfg.name}", "", f"Config `{cfg.path.name}`, dataset {cfg.dataset}, seed {cfg.seed}, "
             f"{plural(cfg.draws, 'draw')} per Bernoulli reconstruction.", ""]
    if cfg.contrast != "none":
        lines += ["Evaluators score each reconstruction's image standardised to a grey-level mean and standard "
                  "deviation (`[evaluation] contrast = " + (f'"{cfg.contrast}"' if isinstance(cfg.contrast, str)
                                                            else str(list(cfg.contrast))) + "`; values below per "
                  "attack), not its raw brightness: see docs/attacks.md, \"Scoring what a reconstruction shows\".", ""]

    # Tables 1/2: accuracies
    lines += ["## Target and evaluator accuracy (paper Tables 1 and 2)", "",
              "| model | kind | file | validation accuracy (ours) | paper |", "|---|---|---|---|---|"]
    for n, t in targets.items():
        lines.append(f"| target `{n}` | {t.arch.upper()} | {Path(t.path).name} | {_acc(t.metadata)} "
                     f"| {_paper(cfg, t.arch.upper(), 'target_accuracy')} |")
    for n, e in evaluators.items():
        lines.append(f"| evaluator `{n}` | {e.kind.upper()} | {Path(e.path).name} | {_acc(e.metadata)} "
                     f"| {_paper(cfg, e.kind.upper(), 'evaluator_accuracy')} |")
    lines.append("")

    # Table 3: attack metrics
    columns, paper_cols, metrics = {}, {}, {}
    for a in cfg.attacks:
        if a.name not in evaluations:
            continue
        label = f"{a.name}: {METHOD_LABELS[a.method]}, {a.mode} mode"
        columns[label] = evaluations[a.name]["summary"]
        metrics[a.name] = {"method": a.method, "mode": a.mode, "target": a.target,
                           "evaluation": evaluations[a.name]["summary"],
                           "contrast": evaluations[a.name].get("contrast")}
        pk = METHOD_LABELS[a.method]
        if pk in cfg.paper:
            paper_cols[f"{pk} (published)"] = {m: cfg.paper[pk][m] / 100 for m in METRIC_NAMES if m in cfg.paper[pk]}
    if columns:
        lines += ["## Attack metrics (paper Table 3 layout; ours: mean ± std over draws)", "", format_paper_table(columns)]
        full = {k: v for k, v in paper_cols.items() if len(v) == len(METRIC_NAMES)}
        if full:
            lines += ["Paper, same dataset:", "", format_paper_table(full)]

    # Table 4: ANN (MI-FACE) vs SNN (BL-v2)
    ann = [a for a in cfg.attacks if a.method == "miface" and a.name in evaluations]
    snn = [a for a in cfg.attacks if a.method == "bl2" and a.name in evaluations]
    if ann and snn:
        cols = {"ANN MI-FACE (ours)": evaluations[ann[0].name]["summary"],
                "SNN BL-v2 (ours)": evaluations[snn[0].name]["summary"]}
        for pk, lab in (("MI-FACE", "ANN MI-FACE (paper)"), ("BL-v2", "SNN BL-v2 (paper)")):
            if pk in cfg.paper and all(m in cfg.paper[pk] for m in METRIC_NAMES):
                cols[lab] = {m: cfg.paper[pk][m] / 100 for m in METRIC_NAMES}
        lines += ["## ANN vs SNN (paper Table 4 layout)", "", format_paper_table(cols)]

    # Lava replay
    if replays:
        lines += ["## Lava fixed-point replay (twin vs `Loihi2SimCfg(select_tag='fixed_pt')`)", "",
                  "| attack | spike trains | identical to twin | mismatching samples |", "|---|---|---|---|"]
        for n, r in replays.items():
            lines.append(f"| {n} | {r['samples']} | {100 * r['agreement']:.2f}% | {r['mismatching_samples'][:10] or 'none'} |")
            metrics.setdefault(n, {})["replay"] = {"samples": r["samples"], "agreement": r["agreement"]}
        lines.append("")

    # figures
    events = is_event_dataset(cfg.dataset)
    try:
        train = load_dataset(cfg.dataset, str(cfg.data_root) if cfg.data_root else None, split="train",
                             **cfg.data_options())
        inputs = dataset_inputs(train)
        shape = inputs.shape[1:-1] if events else inputs.shape[1:]  # (C, H, W) of frames, (H, W) of images
    except Exception:  # the figure still shows the reconstructions without real examples
        train, inputs, shape = None, None, None
    lines += ["## Reconstructions", ""]
    for a in cfg.attacks:
        rec = load_recon(recon_files[a.name])
        t = targets[a.target]
        img_shape = tuple(shape) if shape is not None else tuple(t.metadata.get("input_shape", (28, 28)))
        real = class_examples(inputs, train.labels, rec.targets) if train is not None else None
        conf = None
        if a.name in evaluations:
            conf = [row["target_confidence"] for row in evaluations[a.name]["per_class"]]
        shown = (evaluations.get(a.name) or {}).get("contrast")
        view = contrast_images(rec, shown["mean"], shown["std"]) if shown else rec.view()
        recon_grid(out / f"{a.name}.png", view, rec.targets, img_shape,
                   f"{a.name}: {METHOD_LABELS[a.method]} ({a.mode}) on {Path(t.path).name}",
                   confidences=conf, real_examples=real)
        lines += [f"### {a.name}", "", f"![{a.name}]({a.name}.png)", ""]
        if len(img_shape) == 3 and rec.input_kind != "image":  # event frames: also the animation
            frames_gif(out / f"{a.name}.gif", view, img_shape, real_examples=real)
            lines += [f"![{a.name} frames]({a.name}.gif)", "",
                      "Animation: the frames over the time bins, real example (upper) and reconstruction "
                      "(lower row of each pair; BL-v2: spike probabilities).", ""]
        lines += [
                  "Upper row of each pair: a real training image of the class (more than 10 classes wrap into "
                  "further pairs of rows). Lower row: the reconstruction, its target "
                  "class and the evaluator's mean confidence over draws. "
                  + (f"Each reconstruction as the evaluator scores it: its image (time average of the spike "
                     f"trains; BL-v2: of the Bernoulli probabilities) standardised to grey mean {shown['mean']:.3f} "
                     f"and std {shown['std']:.3f} (`brainleaks plot` shows it unscaled)." if shown else
                     "Spike trains are shown rate-decoded (time average); for BL-v2 the time average of the "
                     "Bernoulli probabilities, i.e. the expected rate of its draws; MI-FACE images min-max scaled, "
                     "as the evaluator scores them."), "",
                  f"Target confidence per class: {', '.join(f'{c:.3f}' for c in rec.confidence)}; "
                  f"{rec.seconds:.1f} s.", ""]
        metrics.setdefault(a.name, {})["target_confidence"] = rec.confidence.tolist()
        if a.method == "gen":
            lines += _prior_lines(rec)
            if isinstance(rec.extra.get("prior"), dict):
                metrics[a.name]["prior"] = rec.extra["prior"]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_json_atomic(out / "metrics.json", {"experiment": cfg.name, "seed": cfg.seed, "draws": cfg.draws,
                                             "targets": {n: t.metadata.get("validation_accuracy") for n, t in targets.items()},
                                             "evaluators": {n: e.metadata.get("validation_accuracy") for n, e in evaluators.items()},
                                             "attacks": metrics})
    return {"attacks": list(metrics)}
