"""The demo: the shipped MNIST targets, attacked, scored, replayed on Lava, with a report.

Offline by construction: it reads only the shipped ``netx_models/`` files and the vendored MNIST
subset (for the real examples beside the reconstructions).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..attacks import adapter_for, make_attack
from ..attacks.recon_file import recon_draws, save_recon
from ..data import load_static
from ..errors import DatasetError
from ..evaluation.classifiers import load_evaluator
from ..evaluation.metrics import format_paper_table
from ..evaluation.score import evaluate_result, format_per_class
from ..fileio import atomic_path, write_json_atomic
from ..hardware.equivalence import check_equivalence
from ..models.files import load_target
from .figures import class_examples, recon_grid

log = logging.getLogger(__name__)

PAPER_MNIST = {  # paper Table 3/4, MNIST columns (percent)
    "BL-v1": {"accuracy": 100.0, "top3_accuracy": 100.0, "avg_confidence": 93.11, "daa": 100.0},
    "BL-v2": {"accuracy": 100.0, "top3_accuracy": 100.0, "avg_confidence": 94.59, "daa": 100.0},
    "MI-FACE": {"accuracy": 50.0, "top3_accuracy": 90.0, "avg_confidence": 45.38, "daa": 80.0},
}


def shipped_models_dir() -> Path:
    """``netx_models/`` of the source checkout this package runs from."""
    d = Path(__file__).resolve().parents[2] / "netx_models"
    if not (d / "mnist_snn.net").is_file():
        raise DatasetError(f"the shipped models are missing: expected {d}/mnist_snn.net (run from a checkout of the repository)")
    return d


def run_demo(out: str | Path = "runs/demo", draws: int = 20, seed: int = 0, bl2_iterations: int = 30) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = shipped_models_dir()
    snn = load_target(models / "mnist_snn.net")
    ann = load_target(models / "mnist_ann.h5")
    ev_snn = load_evaluator(models / "mnist_eval_snn.h5")
    ev_ann = load_evaluator(models / "mnist_eval_ann.h5")
    train = load_static("mnist", None, split="train")
    real = class_examples(train.images, train.labels, range(10))
    results = {}
    t0 = time.time()
    runs = [("BL-v2", "bl2", snn, {"iterations": bl2_iterations}, ev_snn),
            ("BL-v1", "bl1", snn, {}, ev_snn),
            ("MI-FACE", "miface", ann, {}, ev_ann)]
    lines = ["# brainleaks demo: shipped MNIST targets", ""]
    columns = {}
    for label, method, target, overrides, evaluator in runs:
        log.info("running %s", label)
        attack = make_attack(method, adapter_for(target), mode="paper", **overrides)
        res = attack.invert(seed=seed)
        save_recon(res, out / f"{method}.h5", model_path=str(target.path), model_sha256=target.sha256)
        ev = evaluate_result(res, evaluator, draws=draws, seed=seed)
        columns[label] = ev.summary
        conf = [row["target_confidence"] for row in ev.per_class]
        recon_grid(out / f"{method}.png", res.samples, res.targets, (28, 28),
                   f"{label} on {target.path.name} (target conf. {np.mean(res.confidence):.2f})",
                   confidences=conf, real_examples=real)
        results[label] = {"evaluation": ev.to_dict(), "target_confidence": res.confidence.tolist(),
                          "iterations": res.iterations.tolist(), "seconds": res.seconds}
        lines += [f"## {label}", "", f"![{label}]({method}.png)", "",
                  f"Target confidence per class: {', '.join(f'{c:.3f}' for c in res.confidence)} "
                  f"({res.seconds:.1f} s)", "", format_per_class(ev), ""]
        if res.input_kind == "spikes":
            d = recon_draws(res, draws, seed)
            spikes = d.reshape(-1, *d.shape[2:])
            rep = check_equivalence(target.path, spikes, np.tile(res.targets, len(d)))
            results[label]["replay"] = {"samples": len(spikes), "agreement": rep.agreement,
                                        "mismatching": [s.index for s in rep.mismatches]}
            lines += [f"Lava fixed_pt replay: {100 * rep.agreement:.2f}% of {len(spikes)} spike trains identical "
                      f"to the twin.", ""]
    table = format_paper_table(columns)
    paper = format_paper_table({k + " (paper)": {m: v / 100 for m, v in PAPER_MNIST[k].items()} for k in columns})
    lines[2:2] = ["## Attack metrics (ours; mean ± std over draws)", "", table, "## Paper (MNIST)", "", paper,
                  f"Targets: SNN {100 * snn.metadata.get('validation_accuracy', float('nan')):.2f}%, "
                  f"ANN {100 * ann.metadata.get('validation_accuracy', float('nan')):.2f}% validation accuracy; "
                  f"evaluators: spiking {100 * ev_snn.metadata.get('validation_accuracy', float('nan')):.2f}%, "
                  f"ANN {100 * ev_ann.metadata.get('validation_accuracy', float('nan')):.2f}%.", ""]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines))
    write_json_atomic(out / "metrics.json", {"seed": seed, "draws": draws, "results": results,
                                             "seconds": round(time.time() - t0, 1)})
    return out / "report.md"
