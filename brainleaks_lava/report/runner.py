"""``brainleaks run CONFIG``: train -> attack -> evaluate -> replay -> report, resumable.

Every unit of work (one target trained, one attack run, one evaluation, one replay, the report) is a
*stage* with a fingerprint: the sha256 of its settings and of the bytes of every file it reads (a ``.net``
file's sidecar and every file of the dataset directory included: :func:`fingerprint`). Its
outputs are written atomically into the run directory and the fingerprint is recorded in
``state.json`` only after they are complete; a rerun skips every stage whose fingerprint and output
files are unchanged, so an interrupted run resumes where it stopped; a training stage interrupted mid-way
resumes after its last finished epoch (its checkpoint ``models/<name>.<ext>.ckpt.h5``, ``models.checkpoint``).

Without ``-v`` a person sees one line as each stage starts ("stage 2/9: train evaluator snn ..."), one when it
ends with its wall time ("stage 2/9: train evaluator snn done in 3m12s") or that it was already done, and each
training epoch's loss and accuracies (``progress.status``; ``--quiet`` turns them off).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import ConfigError, OutputError
from ..fileio import sha256_file, sweep_stale_temps, write_json_atomic
from ..progress import format_duration, status
from ..safety import (check_recon_for_evaluator, check_recon_for_replay, claim_output_dir, inside, marker_path,
                      same_file, write_marker)
from .config import ExperimentConfig, load_config

log = logging.getLogger(__name__)

PAPER_TABLES = "paper"


def stage_plan(cfg: ExperimentConfig) -> list[str]:
    """The keys of the stages a run of ``cfg`` goes through, in order (each one runs or is skipped)."""
    keys = [f"train/{t.name}" for t in cfg.targets.values() if t.model is None]
    keys += [f"train/eval_{e.name}" for e in cfg.evaluators.values() if e.model is None]
    keys += [f"attack/{a.name}" for a in cfg.attacks]
    keys += [f"evaluate/{a.name}" for a in cfg.attacks if a.evaluator]
    if cfg.replay:
        keys += [f"replay/{a.name}" for a in cfg.attacks
                 if a.method != "miface" and cfg.targets[a.target].arch == "snn"]
    return keys + ["report"]


def stage_label(key: str) -> str:
    """What a person reads for a stage key: 'train/eval_snn' -> 'train evaluator snn'."""
    kind, _, name = key.partition("/")
    if kind == "train":
        return f"train evaluator {name[5:]}" if name.startswith("eval_") else f"train target {name}"
    return f"{kind} {name}".strip()


class Run:
    def __init__(self, cfg: ExperimentConfig, out: Path, force: bool = False):
        self.cfg = cfg
        self.out = out
        self.force = force
        self.state_path = out / "state.json"
        self.state = {} if force else read_state(self.state_path)
        self.plan = stage_plan(cfg)
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def stage(self, key: str, settings: dict, inputs: list[Path], outputs: list[Path], fn: Callable[[], dict | None]) -> dict:
        """Run ``fn`` unless the stage's fingerprint and outputs are unchanged; returns its recorded info.

        A line for the person running it says which stage of how many starts, and when it ends, its wall time
        (or that it was already done)."""
        head = f"stage {self.plan.index(key) + 1}/{len(self.plan)}: {stage_label(key)}"
        fp = fingerprint(settings, inputs)
        rec = self.state.get(key)
        if (rec and rec.get("fingerprint") == fp and all(p.is_file() for p in outputs)
                and all(sha256_file(p) == rec["outputs"].get(str(p.relative_to(self.out))) for p in outputs)):
            log.info("stage %s: unchanged, skipped", key)
            status(f"{head}: already done, skipped")
            self.skipped.append(key)
            return rec.get("info", {})
        log.info("stage %s: running", key)
        status(f"{head} ...")
        t0 = time.time()
        start = time.monotonic()
        try:
            info = fn() or {}
        except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (interrupts.Terminated)
            status(f"{head}: stopped after {format_duration(time.monotonic() - start)}; run the same command "
                   f"again to resume")
            raise
        self.state[key] = {"fingerprint": fp, "seconds": round(time.time() - t0, 2), "info": info,
                           "outputs": {str(p.relative_to(self.out)): sha256_file(p) for p in outputs}}
        write_json_atomic(self.state_path, self.state)
        self.ran.append(key)
        status(f"{head} done in {format_duration(time.monotonic() - start)}")
        return info


def read_state(path: Path) -> dict:
    """The stages recorded in a run directory's ``state.json`` ({} when there is none yet).

    A file that is not one (not JSON, ``null``, a list, stages that are not records) is refused with one line
    (``OutputError``): the directory may not be a run directory at all; ``--force`` starts afresh.
    """
    if not os.path.lexists(path):
        return {}
    from ..fileio import read_bytes_guarded

    try:  # a regular file inside the run directory, of at most MAX_STATE_BYTES (a FIFO would block for ever)
        state = json.loads(read_bytes_guarded(path, "run state", MAX_STATE_BYTES, OutputError, within=path.parent)
                           .decode("utf-8"))
        if isinstance(state, dict) and all(
                isinstance(r, dict) and isinstance(r.get("fingerprint"), str) and isinstance(r.get("outputs"), dict)
                for r in state.values()):
            return state
        problem = f"{path}: does not hold stage records (found {type(state).__name__})"
    except OutputError as e:
        problem = str(e)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        problem = f"{path}: is unreadable ({type(e).__name__}: {e})"
    raise OutputError(f"{problem}; not a brainleaks run state (remove it, choose another --out, or rerun with "
                      f"--force)")


MAX_STATE_BYTES = 64 << 20


def _file_digest(p: Path) -> str:
    """sha256 of a file; a ``.net`` file's JSON sidecar is read with it, so it counts too."""
    parts = [sha256_file(p)]
    if p.suffix == ".net":
        side = p.with_suffix(".json")
        parts.append(sha256_file(side) if side.is_file() else "-")
    return ":".join(parts)


def _tree_digest(root: Path) -> str:
    """sha256 over the content of every regular file under ``root`` (a dataset directory), with their relative
    names; the frame cache and hidden files (temporary files) are not data and are left out."""
    from ..data.events import CACHE_DIRNAME

    h = hashlib.sha256()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != CACHE_DIRNAME and not d.startswith("."))
        files += [Path(dirpath) / n for n in filenames if not n.startswith(".")]
    for p in sorted(files):
        if p.is_file():
            h.update(f"{p.relative_to(root)}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def fingerprint(settings: dict, inputs: list[Path]) -> str:
    """What a stage depends on: its settings, the toolkit's version and the *content* (sha256) of everything
    it reads: files, a ``.net`` file's sidecar, every file of a dataset directory. A file changed on disk
    under the same name, with the same config, changes the fingerprint and the stage runs again."""
    h = hashlib.sha256(json.dumps({"settings": settings, "version": __version__}, sort_keys=True, default=str).encode())
    for p in inputs:
        p = Path(p)
        h.update((_tree_digest(p) if p.is_dir() else _file_digest(p)).encode())
    return h.hexdigest()


def _dataset_dir(cfg: ExperimentConfig) -> Path:
    """The directory a training stage reads its data from (the vendored MNIST subset without a root)."""
    if cfg.data_root is not None:
        return cfg.data_root
    from ..data.mnist import vendored_mnist_root

    return vendored_mnist_root()


def _run_outputs(cfg: ExperimentConfig, out: Path) -> list[Path]:
    """Every file a run of ``cfg`` writes into ``out``."""
    paths = [out / n for n in ("state.json", "last_run.json", "report.md", "metrics.json", "results.csv")]
    for t in cfg.targets.values():
        if t.model is None:
            net = out / "models" / f"{t.name}.{'net' if t.arch == 'snn' else 'h5'}"
            paths += [net, net.with_suffix(".json")] if t.arch == "snn" else [net]
    paths += [out / "models" / f"eval_{e.name}.h5" for e in cfg.evaluators.values() if e.model is None]
    for a in cfg.attacks:
        paths += [out / "attacks" / f"{a.name}.h5", out / "evaluation" / f"{a.name}.json",
                  out / "replay" / f"{a.name}.json", out / f"{a.name}.png", out / f"{a.name}.gif"]
    return paths


def check_run_paths(cfg: ExperimentConfig, out: Path) -> None:
    """Before the first stage: the run directory can be written and no file the run writes is one it reads.

    The directory is claimed with ``safety.claim_output_dir``: new, empty, or a run directory (its marker
    ``.brainleaks-run``; one written before markers existed is recognised by its ``state.json`` and accepted if it
    holds nothing but what a run writes, and gets the marker). It must not be, contain or lie inside an input."""
    inputs = [("the config", cfg.path)]
    inputs += [(f"targets.{t.name}.model", t.model) for t in cfg.targets.values() if t.model is not None]
    inputs += [(f"evaluators.{e.name}.model", e.model) for e in cfg.evaluators.values() if e.model is not None]
    inputs += [(f"attacks[{i}].params.prior", a.prior) for i, a in enumerate(cfg.attacks) if a.prior is not None]
    outputs = _run_outputs(cfg, out)
    for label, p in inputs:
        for q in [p] + ([p.with_suffix(".json")] if p.suffix == ".net" else []):
            if any(same_file(q, o) for o in outputs):
                raise ConfigError(f"{cfg.path}: '{label}' {p} is a file the run writes into {out}; it would be "
                                  f"overwritten (choose another --out)")
    if cfg.data_root is not None and inside(out, cfg.data_root):
        raise ConfigError(f"{cfg.path}: the run directory {out} lies inside 'dataset.root' {cfg.data_root}; "
                          f"choose another --out")
    claim_output_dir(out, "run", inputs + [("'dataset.root'", cfg.data_root)], label="run directory")


def _train_config(cfg: ExperimentConfig, tr: dict, epochs: int):
    from ..models.training import TrainConfig

    return TrainConfig(epochs=tr.get("epochs", epochs), batch_size=tr.get("batch_size", 100),
                       lr=float(tr.get("lr", 1e-3)), seed=tr.get("seed", cfg.seed), threads=cfg.threads,
                       weight_decay=float(tr.get("weight_decay", 0.0)))


def _train_target(cfg: ExperimentConfig, t, out: Path) -> dict:
    from ..models.snn import NeuronConfig
    from ..models.targets import TargetRequest, train_target

    tr = t.train
    opts = cfg.data_options()
    req = TargetRequest(dataset=cfg.dataset, arch=t.arch, data_root=str(cfg.data_root) if cfg.data_root else None,
                        hidden=tr.get("hidden", 3000), steps=opts.get("time_bins") or tr.get("steps"),
                        downsample=opts["downsample"], limit=opts.get("limit"),
                        posterior_scale=tr.get("posterior_scale"),
                        neuron=NeuronConfig.with_overrides(**{k: tr.get(k) for k in ("threshold", "tau_grad",
                                                                                     "scale_grad")}))
    meta = train_target(req, _train_config(cfg, tr, epochs=10), out)
    return {"validation_accuracy": meta["validation_accuracy"]}


def _train_evaluator(cfg: ExperimentConfig, e, out: Path) -> dict:
    from ..data import is_event_dataset
    from ..evaluation.classifiers import train_evaluator

    tr = e.train
    meta = train_evaluator(e.kind, cfg.dataset, str(cfg.data_root) if cfg.data_root else None, out,
                           _train_config(cfg, tr, epochs=5),
                           steps=cfg.time_bins if is_event_dataset(cfg.dataset) else tr.get("steps", 25),
                           downsample=cfg.downsample, limit=cfg.limit)
    return {"validation_accuracy": meta["validation_accuracy"]}


def load_attack_prior(cfg: ExperimentConfig, name: str):
    """The generative prior (``priors.Prior``) of the gen attack ``name`` of ``cfg``, read from its file; a file that
    is not a usable prior is a ``ConfigError`` naming the config key and the file's problem."""
    from ..errors import ModelFileError
    from ..priors.files import load_prior

    i, a = next((i, a) for i, a in enumerate(cfg.attacks) if a.name == name)
    try:
        return load_prior(a.prior)
    except ModelFileError as e:
        raise ConfigError(f"{cfg.path}: 'attacks[{i}].params.prior' is not a usable prior file: {e}") from None


def check_priors(cfg: ExperimentConfig) -> None:
    """Before the first stage: every gen attack's prior file is a usable prior (:func:`load_attack_prior`), so a
    wrong file is refused at once, not after the targets' training. The attack stage reads the file again (its
    content then is what the stage's fingerprint read)."""
    for a in cfg.attacks:
        if a.prior is not None:
            load_attack_prior(cfg, a.name)


def _check_target_fits_evaluator(cfg: ExperimentConfig, a, target, tfile: Path, efile: Path, dest: Path) -> None:
    """Before attack ``a`` runs: its target takes as many inputs as its evaluator scores. A model file replaced by
    another network since an earlier run makes the attack run again (its fingerprint reads the file's content); a
    network that no longer fits the evaluator is refused here, naming both files, and the earlier reconstructions
    stay as they are."""
    from ..evaluation.classifiers import load_evaluator

    ev = load_evaluator(efile)
    n, m = int(target.model.num_inputs), int(ev.num_features)
    if n == m:
        return
    t_label = f"targets.{a.target}.model" if cfg.targets[a.target].model is not None else f"target '{a.target}'"
    e_label = f"evaluators.{a.evaluator}.model" if cfg.evaluators[a.evaluator].model is not None \
        else f"evaluator '{a.evaluator}'"
    kept = f"; the earlier run's reconstructions {dest} are kept as they are" if dest.is_file() else ""
    raise ConfigError(f"{cfg.path}: {t_label} {tfile} takes {n} inputs but {e_label} {efile} scores {m} "
                      f"({'x'.join(str(v) for v in ev.input_shape)} images): attack '{a.name}' was not run{kept}")


#: ``results.csv``: one row per attack of the run, the numbers of report.md's tables: the mean and std over draws of
#: each of the paper's four metrics (fractions; empty for an attack without an evaluator), the draws scored, and
#: the Lava replay (spike trains replayed, share identical to the twin; empty without a replay)
RESULT_COLUMNS = ("attack", "method", "mode", "target", "evaluator", "accuracy", "accuracy_std", "top3_accuracy",
                  "top3_accuracy_std", "avg_confidence", "avg_confidence_std", "daa", "daa_std", "draws",
                  "replay_samples", "lava_agreement")


def results_rows(cfg: ExperimentConfig, evaluations: dict, replays: dict) -> list[dict]:
    """The rows of ``results.csv`` (``RESULT_COLUMNS``; None where not measured), in the config's attack order,
    from the evaluation and replay records the report reads."""
    from ..evaluation.metrics import METRIC_NAMES

    rows = []
    for a in cfg.attacks:
        row = dict.fromkeys(RESULT_COLUMNS)
        row.update(attack=a.name, method=a.method, mode=a.mode, target=a.target, evaluator=a.evaluator or None)
        summary = (evaluations.get(a.name) or {}).get("summary")
        if summary:
            for m in METRIC_NAMES:
                row[m], row[f"{m}_std"] = summary[m]["mean"], summary[m]["std"]
            row["draws"] = summary.get("n_draws")
        rep = replays.get(a.name)
        if rep:
            row["replay_samples"], row["lava_agreement"] = rep["samples"], rep["agreement"]
        rows.append(row)
    return rows


def write_results_csv(cfg: ExperimentConfig, path: Path, evaluations: dict, replays: dict) -> Path:
    """Write ``results.csv`` (:func:`results_rows`; empty cells where not measured) atomically."""
    import csv
    import io

    from ..fileio import atomic_path

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in results_rows(cfg, evaluations, replays):
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


def demo_config() -> Path:
    """``experiments/demo.toml``, from the checkout or from the installed package (``resources.demo_config``)."""
    from ..resources import demo_config as shipped_demo_config

    return shipped_demo_config()


def run_experiment(config: str | Path, out: str | Path | None = None, force: bool = False,
                   fail_after: str | None = None) -> Path:
    """Run (or resume) the experiment of ``config``; returns the path of ``report.md``.

    ``fail_after`` (testing aid) raises after the named stage kind ('train', 'attack', ...) completes.
    """
    from ..attacks import adapter_for, make_attack
    from ..attacks.recon_file import load_recon, recon_draws, save_recon
    from ..evaluation.classifiers import load_evaluator
    from ..evaluation.score import evaluate_result
    from ..hardware.equivalence import check_equivalence
    from ..models.files import load_target
    from ..models.training import apply_threads

    cfg = load_config(config)
    out = Path(out) if out else Path("runs") / cfg.name
    check_run_paths(cfg, out)
    check_priors(cfg)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the run directory {out}: {e.strerror or e}") from None
    for d in [out] + [out / sub for sub in ("models", "attacks", "evaluation", "replay")]:
        sweep_stale_temps(d)  # what killed runs left
    apply_threads(cfg.threads)
    run = Run(cfg, out, force)
    if not marker_path(out, "run").is_file():  # after its state.json was found to be one (or is ignored: --force)
        write_marker(out, "run")
    started = time.monotonic()

    def maybe_fail(kind: str) -> None:
        if fail_after == kind:
            raise RuntimeError(f"injected failure after the {kind} stage")

    # ---- train / locate targets and evaluators
    target_files: dict[str, Path] = {}
    for t in cfg.targets.values():
        if t.model is not None:
            target_files[t.name] = t.model
            continue
        dest = out / "models" / f"{t.name}.{'net' if t.arch == 'snn' else 'h5'}"
        outputs = [dest] + ([dest.with_suffix(".json")] if t.arch == "snn" else [])
        run.stage(f"train/{t.name}", {"target": t.__dict__, "dataset": cfg.dataset, "root": str(cfg.data_root),
                                      **cfg.data_options(), "seed": cfg.seed}, [_dataset_dir(cfg)], outputs,
                  lambda t=t, dest=dest: _train_target(cfg, t, dest))
        target_files[t.name] = dest
    eval_files: dict[str, Path] = {}
    for e in cfg.evaluators.values():
        if e.model is not None:
            eval_files[e.name] = e.model
            continue
        dest = out / "models" / f"eval_{e.name}.h5"
        run.stage(f"train/eval_{e.name}", {"evaluator": e.__dict__, "dataset": cfg.dataset, "root": str(cfg.data_root),
                                           **cfg.data_options(), "seed": cfg.seed}, [_dataset_dir(cfg)], [dest],
                  lambda e=e, dest=dest: _train_evaluator(cfg, e, dest))
        eval_files[e.name] = dest
    maybe_fail("train")

    # ---- attacks
    recon_files: dict[str, Path] = {}
    for a in cfg.attacks:
        dest = out / "attacks" / f"{a.name}.h5"
        tfile = target_files[a.target]

        def do_attack(a=a, dest=dest, tfile=tfile):
            target = load_target(tfile)
            if a.evaluator:
                _check_target_fits_evaluator(cfg, a, target, tfile, eval_files[a.evaluator], dest)
            prior = load_attack_prior(cfg, a.name) if a.prior is not None else None
            given = {"prior": prior} if prior is not None else {}
            attack = make_attack(a.method, adapter_for(target), mode=a.mode, **given, **a.params)
            res = attack.invert(classes=list(a.classes) if a.classes else None, seed=cfg.seed)
            save_recon(res, dest, model_path=str(tfile), model_sha256=target.sha256)
            info = {"confidence": res.confidence.tolist(), "iterations": res.iterations.tolist(),
                    "seconds": round(res.seconds, 2)}
            if prior is not None:  # which prior file (by content) made the reconstructions
                info["prior"] = {"path": prior.path, "sha256": prior.sha256}
            return info

        # the attack reads the target's file and, for gen, the prior file: a change of either's content reruns it
        inputs = [tfile] + ([a.prior] if a.prior is not None else [])
        run.stage(f"attack/{a.name}", {"attack": a.settings(), "seed": cfg.seed}, inputs, [dest], do_attack)
        recon_files[a.name] = dest
    maybe_fail("attack")

    # ---- evaluation
    evaluations: dict[str, dict] = {}
    for a in cfg.attacks:
        if not a.evaluator:
            continue
        dest = out / "evaluation" / f"{a.name}.json"
        efile = eval_files[a.evaluator]

        def do_eval(a=a, dest=dest, efile=efile):
            rec, evaluator = load_recon(recon_files[a.name]), load_evaluator(efile)
            check_recon_for_evaluator(rec, recon_files[a.name], evaluator, efile, cfg.draws)
            ev = evaluate_result(rec, evaluator, draws=cfg.draws, seed=cfg.seed, contrast=cfg.contrast)
            write_json_atomic(dest, {"evaluator": str(efile), **ev.to_dict()})
            return {"accuracy": ev.summary["accuracy"]["mean"]}

        key = {"draws": cfg.draws, "seed": cfg.seed, **({"contrast": cfg.contrast} if cfg.contrast != "none" else {})}
        run.stage(f"evaluate/{a.name}", key, [recon_files[a.name], efile], [dest], do_eval)
        evaluations[a.name] = json.loads(dest.read_text())
    maybe_fail("evaluate")

    # ---- Lava replay of spiking reconstructions
    replays: dict[str, dict] = {}
    if cfg.replay:
        for a in cfg.attacks:
            if a.method == "miface" or cfg.targets[a.target].arch != "snn":
                continue
            dest = out / "replay" / f"{a.name}.json"
            tfile = target_files[a.target]

            def do_replay(a=a, dest=dest, tfile=tfile):
                rec = load_recon(recon_files[a.name])
                check_recon_for_replay(rec, recon_files[a.name], [tfile], cfg.replay_draws)
                d = recon_draws(rec, cfg.replay_draws, cfg.seed)
                spikes = d.reshape(-1, *d.shape[2:])
                rep = check_equivalence(tfile, spikes, np.tile(rec.targets, len(d)))
                write_json_atomic(dest, {"draws": len(d), **rep.to_dict()})
                return {"agreement": rep.agreement}

            run.stage(f"replay/{a.name}", {"draws": cfg.replay_draws, "seed": cfg.seed},
                      [recon_files[a.name], tfile], [dest], do_replay)
            replays[a.name] = json.loads(dest.read_text())
    maybe_fail("replay")

    # ---- report
    from .report import write_report

    report_inputs = list(recon_files.values()) + [out / "evaluation" / f"{n}.json" for n in evaluations] + \
        [out / "replay" / f"{n}.json" for n in replays] + list(target_files.values()) + list(eval_files.values())
    outputs = [out / "report.md", out / "metrics.json", out / "results.csv"] + \
        [out / f"{a.name}.png" for a in cfg.attacks]

    def do_report():
        info = write_report(cfg, out, target_files, eval_files, recon_files, evaluations, replays)
        write_results_csv(cfg, out / "results.csv", evaluations, replays)
        return info

    run.stage("report", {"paper": cfg.paper, "config": str(cfg.path)}, report_inputs, outputs, do_report)
    log.info("stages run: %s; skipped: %s", run.ran, run.skipped)
    status(f"run {cfg.name}: {len(run.ran)} stage{'s' if len(run.ran) != 1 else ''} run, {len(run.skipped)} "
           f"already done, in {format_duration(time.monotonic() - started)}")
    write_json_atomic(out / "last_run.json", {"ran": run.ran, "skipped": run.skipped})
    return out / "report.md"
