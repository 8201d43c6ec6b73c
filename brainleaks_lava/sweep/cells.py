"""The two kinds of work of a sweep, as plain functions of plain dicts (so a process pool or Ray can run them).

- ``run_target_task``: train one target (one combination of the settings that change training) and export it
  to ``targets/<key>/target.net`` (``models.targets.train_target``: atomic files, per-epoch checkpoints); then
  ``done.json`` records the fingerprint and the sha256 of the outputs.
- ``run_cell_task``: one cell: the deployed file (the target, re-quantized to the cell's weight step), its
  accuracy on the validation split as deployed (read-out defenses and input noise included), every attack
  through the adapter's ``observe`` hook, the evaluator's four metrics, and the Lava replay of the
  reconstructions; with a study's ``[mia]`` section also membership inference on the deployed file
  (``sweep.mia``: ``mia_*`` columns, ``mia_scores.csv``). Everything is written into a private directory that is
  renamed to ``cells/<id>`` only when complete (``result.json`` last), so a killed cell leaves no half result; a
  previous directory of that cell (written with other settings) is moved to ``superseded/``, never deleted.

A unit is done when its record's fingerprint (``report.runner.fingerprint``: settings and the content of the
files it reads) and the sha256 of every output it recorded match.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..fileio import sha256_file, write_json_atomic

log = logging.getLogger(__name__)

RESULT = "result.json"
DONE = "done.json"


def unit_done(record_path: Path, fingerprint: str) -> dict | None:
    """The record of a finished unit whose fingerprint and outputs are unchanged, else None."""
    from .results import read_record

    rec = read_record(record_path)  # None when missing or damaged; a FIFO, device or outside link is refused
    if not isinstance(rec, dict) or rec.get("fingerprint") != fingerprint or not isinstance(rec.get("outputs"), dict):
        return None
    base = record_path.parent
    for name, digest in rec["outputs"].items():
        p = base / name
        if not p.is_file() or sha256_file(p) != digest:
            return None
    return rec


def _outputs(base: Path, names: list[str]) -> dict:
    return {n: sha256_file(base / n) for n in names}


# ------------------------------------------------------------------------------------------------ targets

def run_target_task(task: dict) -> dict:
    """Train and export one target; returns its ``done.json`` record."""
    from ..defenses.dp import DPConfig
    from ..models.snn import NeuronConfig
    from ..models.targets import TargetRequest, train_target
    from ..models.training import TrainConfig, apply_threads

    apply_threads(task["threads"])
    d = Path(task["dir"])
    d.mkdir(parents=True, exist_ok=True)
    s = task["settings"]
    neuron = NeuronConfig.with_overrides(threshold=s["threshold"], tau_grad=s["tau_grad"], scale_grad=s["scale_grad"])
    req = TargetRequest(dataset=task["dataset"], arch="snn", data_root=task["data_root"], hidden=s["hidden"],
                        steps=s["steps"], posterior_scale=s["posterior_scale"], readout=s["readout"], neuron=neuron,
                        encoding=s["encoding"], input_flip=s["input_flip"],
                        dp=DPConfig(**s["dp"]) if s["dp"] is not None else None)
    cfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], lr=float(s["lr"]), seed=s["seed"],
                      threads=task["threads"], weight_decay=float(s["weight_decay"]))
    t0 = time.monotonic()
    meta = train_target(req, cfg, d / "target.net")
    rec = {"fingerprint": task["fingerprint"], "key": task["key"], "settings": s,
           "validation_accuracy": meta["validation_accuracy"], "epsilon": (meta.get("dp") or {}).get("epsilon"),
           "seconds": round(time.monotonic() - t0, 2),
           "outputs": _outputs(d, ["target.net", "target.json"])}
    write_json_atomic(d / DONE, rec)
    return rec


# ------------------------------------------------------------------------------------------------ cells

def observer_for(defense: dict, seed: int):
    """The adapter's ``observe`` hook for a defense's read-out settings (None when it sets none)."""
    from ..defenses.readout import READOUT_KEYS, observed_posterior

    return observed_posterior({k: defense[k] for k in READOUT_KEYS if k in defense}, seed)


@torch.no_grad()
def deployed_accuracy(target, dataset: str, data_root, defense: dict, seed: int, limit: int | None,
                      batch: int = 200) -> float:
    """Top-1 accuracy on the validation split of the network as deployed: the file's twin (== Lava), the
    sidecar's encoding (seeded draws), the read-out defenses and input noise of ``defense``."""
    from ..data import load_dataset
    from ..data.encoding import to_spikes

    va = load_dataset(dataset, data_root, split="val")
    images, labels = va.images, va.labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    encoding = target.metadata.get("encoding") or {"kind": "rate", "steps": target.model.spec.steps}
    gen = torch.Generator().manual_seed(seed)
    observe = observer_for(defense, seed)
    model = target.model.eval()
    correct = 0
    for i in range(0, len(labels), batch):
        x = to_spikes(torch.as_tensor(images[i:i + batch]), encoding, gen)
        post = observe(model, x) if observe is not None else model.posterior(x)
        correct += int((post.argmax(1) == torch.as_tensor(labels[i:i + batch])).sum())
    return correct / max(len(labels), 1)


def run_cell_task(task: dict) -> dict:
    """Run one cell (see the module docstring); returns its ``result.json`` record."""
    from ..api import replay
    from ..attacks import adapter_for, make_attack
    from ..attacks.recon_file import save_recon
    from ..defenses.quantize import requantize_net, weight_bits
    from ..evaluation.classifiers import load_evaluator
    from ..evaluation.score import evaluate_result
    from ..models.files import load_target
    from ..models.training import apply_threads

    apply_threads(task["threads"])
    t_start = time.monotonic()
    final = Path(task["dir"])
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f".{final.name}.partial-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        cell, defense, seed = task["cell"], task["defense"], task["cell"]["seed"]
        src = Path(task["target_dir"]) / "target.net"
        k = cell["weight_step"]
        net = work / "target.net"
        quant = requantize_net(src, net, k)
        target = load_target(net)
        acc = deployed_accuracy(target, task["dataset"], task["data_root"], defense, seed + 1,
                                task["accuracy_limit"])
        evaluator = load_evaluator(task["evaluator"])
        (work / "attacks").mkdir()
        rows, outputs = [], ["target.net", "target.json"]
        for a in task["attacks"]:
            t0 = time.monotonic()
            adapter = adapter_for(target, observe=observer_for(defense, seed + 2))
            res = make_attack(a["method"], adapter, mode=a["mode"], **a["params"]).invert(
                classes=task["classes"], seed=seed + a["seed_offset"], progress=False)
            rel = f"attacks/{a['name']}.h5"
            save_recon(res, work / rel, model_path=str(final / "target.net"), model_sha256=target.sha256)
            outputs.append(rel)
            ev = evaluate_result(res, evaluator, draws=task["draws"], seed=seed)
            agreement = mismatches = None
            note = ""
            if quant["zero_layers"]:  # replayed all the same: a layer of zero weights runs on Lava (issue 31)
                note = f"every weight of {', '.join(quant['zero_layers'])} rounds to 0 at this weight step"
            query_agreement = None
            if task["replay"]:
                rep = replay(target, res, draws=task["replay_draws"], seed=seed, progress=False)
                agreement, mismatches = rep.agreement, [s.index for s in rep.mismatches]
                if rep.queries is not None:  # query-only attacks: the oracle's answers recomputed on Lava
                    query_agreement = rep.queries.agreement
            summ = ev.summary
            rows.append({
                "cell": final.name, **{k2: cell[k2] for k2 in ("seed", "steps", "weight_step", "threshold",
                                                               "hidden", "readout", "defense")},
                "weight_bits": weight_bits(k), "attack": a["name"], "method": a["method"],
                "target_accuracy": acc, "attack_accuracy": summ["accuracy"]["mean"],
                "top3": summ["top3_accuracy"]["mean"], "avg_confidence": summ["avg_confidence"]["mean"],
                "daa": summ["daa"]["mean"], "lava_agreement": agreement,
                "replay_exact": None if agreement is None else bool(agreement == 1.0),
                "replay_mismatches": mismatches, "queries": res.extra.get("queries"),
                "query_agreement": query_agreement,
                "twin_confidence": float(np.mean(res.confidence)),
                "epsilon": task.get("epsilon"), "zero_weights": quant["zero"] / max(quant["weights"], 1),
                "note": note, "attack_seconds": round(time.monotonic() - t0, 2),
            })
        mia = None
        if task.get("mia") is not None:
            from .mia import SCORES, cell_membership

            t0 = time.monotonic()
            mia = cell_membership(target, task, defense, seed, work, k)
            mia["seconds"] = round(time.monotonic() - t0, 2)
            outputs.append(SCORES)
            for r in rows:
                r.update(mia_attack=mia["attack"], mia_auc=mia["auc"], mia_tpr_1pct=mia["tpr_1pct"],
                         mia_loss_auc=mia["loss_auc"])
        seconds = round(time.monotonic() - t_start, 2)
        for r in rows:
            r["cell_seconds"] = seconds
        rec = {"fingerprint": task["fingerprint"], "cell": cell, "defense": defense, "rows": rows, "mia": mia,
               "target_key": task["target_key"], "quantization": quant, "seconds": seconds,
               "outputs": _outputs(work, outputs)}
        write_json_atomic(work / RESULT, rec)
        if final.exists():  # written with other settings (or damaged): kept aside, never deleted
            old = final.parent.parent / "superseded" / f"{final.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            old.parent.mkdir(parents=True, exist_ok=True)
            os.replace(final, old)
            log.warning("cell %s: the previous results were moved to %s", final.name, old)
        os.replace(work, final)
        return rec
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
