"""``brainleaks sweep STUDY.toml``: train the targets a grid needs, run its cells, write the tables and plots.

Layout of the output directory::

    evaluator/eval.h5 (+ done.json)     only when the study trains its evaluator
    targets/<key>/target.net, .json     one per combination of the settings that change training
    targets/<key>/done.json
    targets/<key>/shadows/              with [mia]: its shadow models (``sweep.mia``), trained once, reused
    cells/<cell>/result.json            one row per attack; target.net (the deployed file), attacks/*.h5,
                                        with [mia] mia_scores.csv
    superseded/                         cells replaced after their settings changed (never deleted)
    results.csv, results.json, report.md, leakage_<knob>.png, mia_auc.png (with [mia]), last_sweep.json

The directory carries the marker ``.brainleaks-sweep``; a sweep writes only into a new or empty directory or one
of its own (``safety.claim_output_dir``: a directory of an earlier version is recognised by ``cells`` and
``targets`` if it holds nothing but what a sweep writes). Rerunning finishes only what is missing: a target or cell whose fingerprint (settings, toolkit version and the
content of the files it reads) and recorded outputs are unchanged is skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import OutputError
from ..fileio import sweep_stale_temps, write_json_atomic
from ..progress import format_duration, status
from ..report.runner import fingerprint
from ..safety import claim_output_dir, inside, marker_path, write_marker
from ..text import plural
from .cells import DONE, RESULT, run_cell_task, run_target_task, unit_done
from .config import StudyConfig, load_study
from .results import read_record

log = logging.getLogger(__name__)


def _dataset_dir(study: StudyConfig) -> Path:
    if study.data_root is not None:
        return study.data_root
    from ..data.mnist import vendored_mnist_root

    return vendored_mnist_root()


def target_settings(study: StudyConfig, cell: dict) -> dict:
    """What decides a cell's trained target (weight step and read-out defenses act after training)."""
    t = study.target
    d = study.defenses[cell["defense"]]
    dp = d.get("dp")
    if dp is not None:
        from ..defenses.dp import DPConfig

        dp = DPConfig(**dp).to_dict()
    return {"hidden": cell["hidden"], "steps": cell["steps"], "threshold": float(cell["threshold"]),
            "readout": cell["readout"], "encoding": t["encoding"], "epochs": t["epochs"], "lr": float(t["lr"]),
            "batch_size": t["batch_size"], "tau_grad": float(t["tau_grad"]), "scale_grad": float(t["scale_grad"]),
            "posterior_scale": t["posterior_scale"], "weight_decay": float(t["weight_decay"]),
            "input_flip": float(d.get("input_flip", 0.0)), "dp": dp, "seed": cell["seed"]}


def cell_id(cell: dict) -> str:
    return (f"T{cell['steps']}-w{cell['weight_step']}-th{cell['threshold']:g}-h{cell['hidden']}-{cell['readout']}"
            f"-{cell['defense']}-s{cell['seed']}")


def _key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _evaluator(study: StudyConfig, out: Path) -> Path:
    if study.evaluator_model is not None:
        return study.evaluator_model
    from ..evaluation.classifiers import train_evaluator
    from ..models.training import TrainConfig

    tr = study.evaluator_train
    dest = out / "evaluator" / "eval.h5"
    fp = fingerprint({"evaluator": study.evaluator_kind, "train": tr, "dataset": study.dataset,
                      "root": str(study.data_root)}, [_dataset_dir(study)])
    if unit_done(dest.parent / DONE, fp):
        status("evaluator: already trained, skipped")
        return dest
    status(f"evaluator: training a {study.evaluator_kind} evaluator ...")
    cfg = TrainConfig(epochs=tr.get("epochs", 5), batch_size=tr.get("batch_size", 100), lr=float(tr.get("lr", 1e-3)),
                      seed=tr.get("seed", 0), threads=study.threads)
    meta = train_evaluator(study.evaluator_kind, study.dataset, str(study.data_root) if study.data_root else None,
                           dest, cfg, steps=tr.get("steps", 25))
    from ..fileio import sha256_file

    write_json_atomic(dest.parent / DONE, {"fingerprint": fp, "validation_accuracy": meta["validation_accuracy"],
                                           "outputs": {"eval.h5": sha256_file(dest)}})
    return dest


def remove_dead_partials(cells: Path) -> list[Path]:
    """Remove the private directories (``.<cell>.partial-<pid>``) of cells whose process is gone (killed): they
    never became results. A directory of a process still running is left alone."""
    import re
    import shutil

    from ..fileio import _pid_alive

    removed = []
    for d in cells.glob(".*.partial-*"):
        m = re.fullmatch(r"\..+\.partial-(\d+)", d.name)
        if m and d.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    if removed:
        log.info("removed %d directories of interrupted cells", len(removed))
    return removed


def _run_shadows(study: StudyConfig, out: Path, todo: list, engine_ctx) -> dict:
    """The shadow models of every target the cells ``todo`` deploy (``sweep.mia``): prepared on the host, the
    unfinished ones trained as units on ``engine_ctx``; returns ``{target key: mia.cell_view(...)}``."""
    from ..privacy.shadows import task_done, train_shadow_task
    from .mia import cell_view, prepare_shadows

    root = str(study.data_root) if study.data_root else None
    prepared, units = {}, []
    for p in todo:
        key = p[2]
        if key in prepared:
            continue
        prepared[key] = prepare_shadows(out / "targets" / key, study.dataset, root, study.mia, p[3]["seed"],
                                        study.threads)
        if prepared[key]["why"]:
            log.warning("target %s: no shadow models (%s); its cells get the shadow-free attacks only", key,
                        prepared[key]["why"])
        units += [(key, t) for t in prepared[key]["tasks"] if not task_done(t)]
    total = sum(len(v["tasks"]) for v in prepared.values())
    if total:
        status(f"shadow models: {total - len(units)} of {total} already trained, {len(units)} to train "
               f"({study.mia['shadows']} per target, {len(prepared)} target{'s' if len(prepared) != 1 else ''})")
    tasks = [t for _, t in units]
    for n, (i, rec) in enumerate(engine_ctx.run(train_shadow_task, tasks), 1):
        status(f"shadow {n}/{len(tasks)} (target {units[i][0]}, shadow {rec['index']}) trained: validation accuracy "
               f"{100 * rec['validation_accuracy']:.2f}% on its OUT examples in {format_duration(rec['seconds'])}")
    return {key: cell_view(v) for key, v in prepared.items()}


def run_sweep(config: str | Path, out: str | Path | None = None, engine: str = "local", workers: int = 1,
              address: str | None = None, max_cells: int | None = None) -> dict:
    """Run (or finish) the study of ``config``; returns ``{"ran", "skipped", "missing", "report"}`` (cell ids).

    ``max_cells``: run at most this many of the missing cells, then write the tables of what is done (a sweep
    can be finished in pieces; the rest runs on the next call)."""
    from .results import write_results

    study = load_study(config)
    if engine == "ray" and address:  # a cluster that is not there: one line now, before the directory is touched
        from .engines import check_reachable

        check_reachable(address)
    out = Path(out) if out else Path("runs") / study.name
    if study.data_root is not None and inside(out, study.data_root):
        raise OutputError(f"the sweep directory {out} lies inside 'dataset.root' {study.data_root}; choose another "
                          f"--out")
    claim_output_dir(out, "sweep", [("the study", config), ("'evaluator.model'", study.evaluator_model),
                                    ("'dataset.root'", study.data_root)], label="sweep directory")
    for sub in ("", "targets", "cells", "evaluator"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(out / sub)
    if not marker_path(out, "sweep").is_file():
        write_marker(out, "sweep")
    remove_dead_partials(out / "cells")
    started = time.monotonic()
    evaluator = _evaluator(study, out)
    ev_fp = fingerprint({}, [evaluator])

    cells = study.cells()
    plan = []  # (cell, id, target key, target fingerprint, cell fingerprint)
    for cell in cells:
        ts = target_settings(study, cell)
        plan.append([cell, cell_id(cell), _key(ts), ts, None])
    # the dataset's content is read once for every target fingerprint
    data_fp = fingerprint({}, [_dataset_dir(study)])
    for p in plan:
        p[4] = fingerprint({"target": p[3], "dataset": study.dataset, "data": data_fp}, [])
    attacks = [asdict(a) for a in study.attacks]

    def cell_fp(p) -> str:
        cell = p[0]
        extra = {} if study.mia is None else {"mia": study.mia}  # studies without [mia] keep their fingerprints
        return fingerprint({**extra, "cell": cell, "defense": study.defenses[cell["defense"]], "attacks": attacks,
                            "classes": study.classes, "draws": study.draws, "replay": study.replay,
                            "replay_draws": study.replay_draws, "accuracy_limit": study.accuracy_limit,
                            "threads": study.threads, "dataset": study.dataset, "target": p[4],
                            "evaluator": ev_fp}, [])

    done, missing = [], []
    for p in plan:
        (done if unit_done(out / "cells" / p[1] / RESULT, cell_fp(p)) else missing).append(p)
    for p in done:
        status(f"cell {p[1]}: already done, skipped")
    todo = missing if max_cells is None else missing[:max_cells]
    status(f"sweep {study.name}: {plural(len(cells), 'cell')}, {len(done)} done, {len(todo)} to run now"
           + (f" ({len(missing) - len(todo)} left for later: max cells {max_cells})"
              if len(todo) < len(missing) else "")
           + f" [{engine}, {plural(workers, 'worker')}]")

    from .engines import Engine

    ran: list[str] = []
    engine_ctx = Engine(engine, workers, address)
    try:
        # ---- the targets the cells to run need
        targets = {}
        for p in todo:
            tdir = out / "targets" / p[2]
            if p[2] not in targets and not unit_done(tdir / DONE, p[4]):
                targets[p[2]] = {"key": p[2], "dir": str(tdir), "settings": p[3], "fingerprint": p[4],
                                 "dataset": study.dataset, "threads": study.threads,
                                 "data_root": str(study.data_root) if study.data_root else None}
        tasks = list(targets.values())
        if tasks:
            status(f"training {len(tasks)} target{'s' if len(tasks) != 1 else ''} ...")
        for n, (i, rec) in enumerate(engine_ctx.run(run_target_task, tasks), 1):
            status(f"target {n}/{len(tasks)} ({tasks[i]['key']}) trained: validation accuracy "
                   f"{100 * rec['validation_accuracy']:.2f}% in {format_duration(rec['seconds'])}")
        epsilons = {}
        for p in todo:
            rec = read_record(out / "targets" / p[2] / DONE) or {}
            epsilons[p[2]] = rec.get("epsilon")
        # ---- with [mia]: the shadow models of the targets the cells to run deploy (once per target)
        shadows = _run_shadows(study, out, todo, engine_ctx) if study.mia is not None else {}
        # ---- the cells
        ctasks = [{"dir": str(out / "cells" / p[1]), "cell": p[0], "defense": study.defenses[p[0]["defense"]],
                   "target_dir": str(out / "targets" / p[2]), "target_key": p[2], "fingerprint": cell_fp(p),
                   "attacks": attacks, "classes": list(study.classes) if study.classes else None,
                   "draws": study.draws, "replay": study.replay, "replay_draws": study.replay_draws,
                   "evaluator": str(evaluator), "dataset": study.dataset,
                   "data_root": str(study.data_root) if study.data_root else None,
                   "accuracy_limit": study.accuracy_limit, "threads": study.threads, "epsilon": epsilons[p[2]],
                   **({} if study.mia is None else {"mia": {**study.mia, **shadows[p[2]]}})}
                  for p in todo]
        for n, (i, rec) in enumerate(engine_ctx.run(run_cell_task, ctasks), 1):
            cid = Path(ctasks[i]["dir"]).name
            ran.append(cid)
            best = max(r["attack_accuracy"] for r in rec["rows"])
            lava = [r["lava_agreement"] for r in rec["rows"] if r["lava_agreement"] is not None]
            mia = rec.get("mia")
            status(f"cell {n}/{len(ctasks)} {cid}: target acc {100 * rec['rows'][0]['target_accuracy']:.1f}%, "
                   f"best attack acc {100 * best:.1f}%"
                   + (f", Lava {100 * min(lava):.0f}% identical" if lava else "")
                   + (f", MIA AUC {mia['auc']:.3f} ({mia['attack']})" if mia else "")
                   + f" in {format_duration(rec['seconds'])}")
    except KeyboardInterrupt:
        status(f"sweep {study.name}: stopped after {len(ran)} new cell{'s' if len(ran) != 1 else ''}; run the same "
               f"command again to finish the missing ones")
        raise
    finally:
        engine_ctx.__exit__(None, None, None)
    finished = [p for p in plan if (out / "cells" / p[1] / RESULT).is_file()
                and unit_done(out / "cells" / p[1] / RESULT, cell_fp(p))]
    records = [read_record(out / "cells" / p[1] / RESULT) for p in finished]
    left = [p[1] for p in plan if p not in finished]
    report = write_results(study, out, records, missing=left)
    summary = {"ran": ran, "skipped": [p[1] for p in done], "missing": left, "report": str(report),
               "engine": engine, "workers": workers}
    write_json_atomic(out / "last_sweep.json", summary)
    status(f"sweep {study.name}: {len(ran)} cell{'s' if len(ran) != 1 else ''} run, {len(done)} already done, "
           f"{len(left)} missing, in {format_duration(time.monotonic() - started)}")
    return summary
