"""``brainleaks mia``: record-level leakage of a deployed SNN by membership inference, on the twin and on Lava.

Which images the target trained on (members) and which it did not (non-members): a target trained by this toolkit
names its dataset in its sidecar, and it trained on that dataset's split "train"; split "val" are non-members
(``--dataset`` / ``--data-root`` choose the data, the sidecar's ``downsample`` is applied). Or ``--members`` and
``--non-members`` give them as ``.npz`` files (arrays ``images``, intensities in [0, 1], and ``labels``).

The evaluation set is every non-member (at most ``eval_samples``, drawn at random when there are more) and as many
members drawn at random (seeded), so the AUC is on a balanced set. Every evaluation image is encoded once into
spike trains with the target's own encoder (rate or integrate-and-fire, a generator seeded ``seed``); the same
trains are the queries of the target's twin, of the target replayed on Lava fixed_pt (``hardware.replay``: output
spikes and the voltages its read-out uses), and of every shadow model's twin. Posteriors are the file's deployed
read-out (``netx.target.readout_logits``). Attacks and metrics: ``privacy.membership``; shadow models:
``privacy.shadows`` (the target's recipe from its sidecar; a file without one gets the shadow-free attacks only).

Output directory (claimed with ``safety.claim_output_dir(out, "mia", ...)``: new, empty, or one an earlier
``brainleaks mia`` wrote, marker ``.brainleaks-mia``)::

    shadows/                   the shadow models and their answers (reused by a rerun with the same settings)
    report.md, scores.csv, roc.png, mia.json

The report files are written into a staging directory inside ``out`` and moved into place when all of them are
complete, ``mia.json`` last (an earlier ``mia.json`` is removed first): a directory holding ``mia.json`` holds one
run's complete report.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .membership import ATTACKS, FPR_LEVELS, attack_metrics, membership_scores

log = logging.getLogger(__name__)

REPORT_FILES = ("roc.png", "scores.csv", "report.md", "mia.json")  # in the order they are put in place
BLOCK = 1000  # evaluation samples per Lava replay call and per twin pass (bounds the float32 spike trains held)
MAX_NPZ_BYTES = 8 << 30
NO_MEMBERS = ("no member information: {why}. Give --members F.npz --non-members F.npz (arrays 'images', "
              "intensities in [0, 1], and 'labels'), or --dataset NAME [--data-root DIR] when the model was trained "
              "on that dataset's 'train' split")
SOURCES = ("twin", "lava")


@dataclass
class MiaReport:
    model: str
    sha256: str
    out: str
    data: dict  # where members and non-members came from, and how many were evaluated
    shadows: dict  # count, recipe, trained / reused, accuracies, LiRA variance (or why there are none)
    metrics: dict  # {source: {attack: membership.attack_metrics}}
    equivalence: dict | None  # twin vs Lava on the evaluation queries
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # seconds of each stage: encode, shadows (training + queries), target

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------- member data

def load_examples(path, what: str, num_inputs: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, features) float32 in [0, 1] and labels (N,) int64 of a ``.npz`` file with arrays ``images`` and
    ``labels``, read by :func:`~brainleaks_lava.data.labelled.read_labelled_npz` (never unpickled; sizes bounded
    before reading); ``InputError`` naming the file and the field."""
    from ..data.labelled import read_labelled_npz
    from ..safety import MAX_COUNTS

    limit = MAX_COUNTS["limit"][0]
    images, labels = read_labelled_npz(path, what, max_bytes=MAX_NPZ_BYTES, max_images=limit,
                                       max_values_per_image=num_inputs, max_values=MAX_NPZ_BYTES // 4)
    if math.prod(images.shape[1:]) != num_inputs:
        raise InputError(f"{what} {path}: 'images' must have {num_inputs} values per image (the model's inputs), got "
                         f"shape {images.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise InputError(f"{what} {path}: 'labels' must be class indices in 0..{num_classes - 1} (the model's "
                         f"classes)")
    return images.reshape(len(images), -1), labels


def member_data(target, members=None, non_members=None, data_root=None, dataset=None) -> dict:
    """Members and non-members of ``target``'s training (module docstring): ``{"members": (images, labels),
    "non_members": (...), "source": text, "notes": [...]}``; images (N, features) float32."""
    from ..data import STATIC_DATASETS, load_static

    n_in, n_cls = target.model.num_inputs, target.model.num_classes
    notes = []
    if (members is None) != (non_members is None):
        raise InputError("give both --members and --non-members (or neither, to use the dataset the model names)")
    if members is not None:
        mem = load_examples(members, "--members", n_in, n_cls)
        non = load_examples(non_members, "--non-members", n_in, n_cls)
        return {"members": mem, "non_members": non, "notes": notes,
                "source": f"members from {members} ({len(mem[1])}), non-members from {non_members} ({len(non[1])})"}
    meta = target.metadata or {}
    name = dataset or meta.get("dataset")
    if name is None:
        why = f"{target.path} names no training dataset" + ("" if meta else " (it has no sidecar)")
        raise InputError(NO_MEMBERS.format(why=why))
    if name not in STATIC_DATASETS:
        raise InputError(NO_MEMBERS.format(why=f"{target.path} was trained on {name}; membership inference takes "
                                               f"image datasets ({', '.join(STATIC_DATASETS)}) or .npz files"))
    if dataset is not None and meta.get("dataset") not in (None, dataset):
        notes.append(f"--dataset {dataset} although the sidecar names {meta.get('dataset')}")
    down = meta.get("downsample") or 1
    tr = load_static(name, data_root, split="train", downsample=down)
    va = load_static(name, data_root, split="val", downsample=down)
    trained = (meta.get("training") or {}).get("train_images")
    if isinstance(trained, int) and not isinstance(trained, bool):
        if len(tr) > trained:
            raise InputError(f"{target.path} was trained on {trained} images, but the 'train' split of {tr.source} "
                             f"holds {len(tr)}: not its training set. Give --data-root with the data it was trained "
                             f"on ({meta.get('data_source', 'see its sidecar')}), or --members and --non-members")
        if len(tr) < trained:
            notes.append(f"members: the {len(tr)} images of this 'train' split, a part of the {trained} the target "
                         f"trained on")
    for ds in (tr, va):
        if math.prod(ds.images.shape[1:]) != n_in:
            raise InputError(f"{name} images ({'x'.join(map(str, ds.images.shape[1:]))}) do not fit "
                             f"{target.path}, which takes {n_in} inputs")
    return {"members": (tr.images.reshape(len(tr), -1), tr.labels.astype(np.int64)),
            "non_members": (va.images.reshape(len(va), -1), va.labels.astype(np.int64)), "notes": notes,
            "source": f"{name} split 'train' as members ({len(tr)}), split 'val' as non-members ({len(va)}): "
                      f"{va.source}"}


def evaluation_indices(n_members: int, n_non_members: int, eval_samples: int, seed: int):
    """(member indices, non-member indices) of the balanced evaluation set: every non-member up to
    ``eval_samples`` (a random choice beyond), and as many members drawn at random; sorted."""
    rng = np.random.default_rng([int(seed), 2])
    n = min(n_members, n_non_members, eval_samples)
    non = np.arange(n_non_members) if n == n_non_members else np.sort(rng.choice(n_non_members, n, replace=False))
    mem = np.sort(rng.choice(n_members, n, replace=False))
    return mem, non


def evaluation_set(data: dict, eval_samples: int, seed: int) -> dict:
    """The balanced evaluation set of :func:`member_data`'s ``data`` (:func:`evaluation_indices`):
    ``{"member_index", "non_member_index", "images" (2n, features) float32, "labels" (2n,), "member" (2n,) bool}``,
    the n members first."""
    (x_mem, y_mem), (x_non, y_non) = data["members"], data["non_members"]
    mem_idx, non_idx = evaluation_indices(len(y_mem), len(y_non), eval_samples, seed)
    n = len(mem_idx)
    x = np.concatenate([x_mem[mem_idx], x_non[non_idx]])
    return {"member_index": mem_idx, "non_member_index": non_idx, "images": x.reshape(len(x), -1),
            "labels": np.concatenate([y_mem[mem_idx], y_non[non_idx]]),
            "member": np.r_[np.ones(n, bool), np.zeros(n, bool)]}


def shadow_pool(target, data: dict) -> tuple[np.ndarray, np.ndarray, list]:
    """The pool the shadow models of ``target`` draw their halves from: every member and non-member of ``data``
    (:func:`member_data`), images in the target's input shape when its sidecar names one, labels, class names."""
    (x_mem, y_mem), (x_non, y_non) = data["members"], data["non_members"]
    model = target.model
    dep = model.deployment
    pool_x = np.concatenate([x_mem, x_non])
    pool_y = np.concatenate([y_mem, y_non])
    shape = tuple(int(v) for v in ((target.metadata or {}).get("input_shape") or ()))
    if shape and math.prod(shape) == model.num_inputs:
        pool_x = pool_x.reshape(len(pool_x), *shape)
    classes = list(dep.classes) if dep.classes else list((target.metadata or {}).get("classes") or
                                                         [str(c) for c in range(model.num_classes)])
    return pool_x, pool_y, classes


def eval_pool_index(ev: dict, n_members: int) -> np.ndarray:
    """Positions in :func:`shadow_pool` of the evaluation examples of :func:`evaluation_set` (members first)."""
    return np.r_[ev["member_index"], n_members + ev["non_member_index"]]


def encode_once(images: np.ndarray, encoding: dict, seed: int, batch: int = 500) -> np.ndarray:
    """Every image encoded once (``data.encoding.to_spikes``, one generator seeded ``seed``), bit-packed."""
    import torch

    from ..data.encoding import to_spikes
    from .shadows import pack_spikes

    gen = torch.Generator().manual_seed(int(seed))
    out = [pack_spikes(to_spikes(torch.as_tensor(images[i:i + batch]), encoding, gen).numpy())
           for i in range(0, len(images), batch)]
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------- the target

def target_outputs(target, packed: np.ndarray, lava: bool, workers: int | None, progress: bool):
    """Logits of the deployed read-out on the twin (N, C) and, with ``lava``, on Lava fixed_pt (N, C), plus per
    sample whether Lava's output spikes (and read-out voltages) equal the twin's."""
    from ..hardware.equivalence import replayed_voltage, twin_outputs
    from ..hardware.replay import replay_network
    from ..netx.target import readout_logits
    from ..progress import progress_bar
    from .shadows import unpack_spikes

    model = target.model
    dep, settle = model.deployment, model.settle
    which = replayed_voltage(target.spec)
    feats, steps = model.num_inputs, model.spec.steps
    twin_l, lava_l, same = [], [], []
    blocks = range(0, len(packed), BLOCK)
    for i in progress_bar(blocks, desc="target twin" + (" and Lava" if lava else ""), unit="block",
                          disable=not progress):
        x = unpack_spikes(packed[i:i + BLOCK], feats, steps)
        ref, ref_v = twin_outputs(model, x, voltage=True)
        ref_v = ref_v if which else None
        twin_l.append(readout_logits(dep, settle, ref, ref_v).numpy())
        if not lava:
            continue
        res = replay_network(target.net, x, voltage=which, record_layers=False, progress=progress, workers=workers)
        out = res.output
        if target.net.layers[-1].kind == "average":  # the host applies an average read-out layer (as replay does)
            g = target.net.layers[-1].out_shape[0]
            out = out.reshape(len(x), g, -1, out.shape[-1]).mean(2)
        lava_l.append(readout_logits(dep, settle, out, res.voltage).numpy())
        eq = (out == ref).reshape(len(x), -1).all(1)
        if which:
            eq &= (res.voltage == ref_v).reshape(len(x), -1).all(1)
        same.append(eq)
    twin = np.concatenate(twin_l).astype(np.float64)
    if not lava:
        return twin, None, None
    return twin, np.concatenate(lava_l).astype(np.float64), np.concatenate(same)


# ---------------------------------------------------------------------------------------------- the command

def run_membership_inference(model_path, out, *, members=None, non_members=None, data_root=None, dataset=None,
                             shadows: int = 8, eval_samples: int = 2000, engine: str = "local", workers: int = 1,
                             address: str | None = None, replay: bool = True, seed: int = 0, progress: bool = True,
                             card=None, options: dict | None = None, threads: int | None = None,
                             variance: str = "auto") -> MiaReport:
    """Membership inference on ``model_path`` (module docstring); writes the directory ``out`` and returns the
    report. ``shadows``: shadow models for LiRA (0: loss and confidence attacks only); ``engine`` / ``workers`` /
    ``address``: where they train (``sweep.engines.Engine``; ``workers`` also sets the Lava runtimes of the
    replay); ``threads``: torch threads per shadow unit (None: 1 with several workers, else torch's default);
    ``replay``: also query the target on Lava fixed_pt; ``options`` / ``card``: the deployment of the NetX file;
    ``variance``: LiRA's variance (``membership.VARIANCES``)."""
    from ..data.encoding import IMAGE_ENCODERS
    from ..models.files import load_target
    from ..progress import format_duration, status
    from ..safety import MAX_COUNTS, check_count, check_memory, claim_output_dir, marker_path, write_marker
    from ..sweep.engines import Engine
    from .membership import VARIANCES
    from .shadows import recipe_of, train_shadows

    t_start = time.monotonic()
    out = Path(out)
    shadows = check_count(shadows, "shadows", MAX_COUNTS["shadows"][0], 0, MAX_COUNTS["shadows"][1])
    eval_samples = check_count(eval_samples, "eval_samples", MAX_COUNTS["eval_samples"][0], 1,
                               MAX_COUNTS["eval_samples"][1])
    seed = check_count(seed, "seed", MAX_COUNTS["seed"][0], 0)
    if variance not in VARIANCES:
        raise InputError(f"variance must be one of {', '.join(VARIANCES)}, got {variance!r}")
    Engine(engine, workers, address)  # engine, workers and a Ray address checked before any work (nothing started)
    inputs = [("model", model_path), ("--members", members), ("--non-members", non_members),
              ("--data-root", data_root)]
    inputs += [("--card", card)] if isinstance(card, (str, os.PathLike)) else []
    claim_output_dir(out, "mia", inputs)
    target = load_target(model_path, options=options, card=card)
    if target.arch != "snn":
        raise InputError(f"{model_path}: membership inference runs on SNN targets (.net NetX files); this is an "
                         f"ANN model file")
    model = target.model
    dep = model.deployment
    if dep.encoding not in IMAGE_ENCODERS:
        raise InputError(f"{model_path} is deployed with the '{dep.encoding}' encoder; membership inference encodes "
                         f"images ({' or '.join(IMAGE_ENCODERS)} encoder)")
    if replay:
        from ..hardware.replay import check_replayable

        check_replayable(target.net, " (give --no-replay to run the inference on the twin alone)")
    data = member_data(target, members, non_members, data_root, dataset)
    notes = list(data["notes"])
    (x_mem, y_mem), (x_non, y_non) = data["members"], data["non_members"]
    recipe, why = (recipe_of(target) if shadows else (None, "no shadow models asked for (--shadows 0)"))
    encoding = {"kind": dep.encoding, "steps": int(dep.steps)}
    if recipe is not None:
        r = recipe.request
        trained_as = (r.encoding, r.steps, r.readout)
        if trained_as != (dep.encoding, dep.steps, dep.readout):
            recipe, why = None, (f"the deployment ({dep.encoding} encoder, T={dep.steps}, read-out {dep.readout}) "
                                 f"differs from the training recipe ({trained_as[0]} encoder, T={trained_as[1]}, "
                                 f"read-out {trained_as[2]})")
    if recipe is None and shadows:
        notes.append(f"LiRA not run: {why}; the loss and confidence attacks need no shadow models")
    ev = evaluation_set(data, eval_samples, seed)
    mem_idx, non_idx, x_eval, y_eval, member = (ev["member_index"], ev["non_member_index"], ev["images"],
                                                ev["labels"], ev["member"])
    n = len(mem_idx)
    feats, steps = model.num_inputs, int(dep.steps)
    check_memory(2 * n * feats * steps / 8 + 3 * BLOCK * feats * steps * 4, "the evaluation spike trains")
    status(f"mia: {n} members and {n} non-members, encoded once ({encoding['kind']} encoder, T={steps}, seed {seed})")
    timings = {}
    t_stage = time.monotonic()
    packed = encode_once(x_eval, encoding, seed)
    timings["encode"] = round(time.monotonic() - t_stage, 2)

    out.mkdir(parents=True, exist_ok=True)
    if not marker_path(out, "mia").is_file():
        write_marker(out, "mia")
    _remove_dead_staging(out)
    shadow_info: dict = {"requested": shadows, "used": 0}
    shadow_logits = shadow_in = None
    t_stage = time.monotonic()
    if recipe is not None:
        pool_x, pool_y, classes = shadow_pool(target, data)
        ss = train_shadows(recipe, pool_x, pool_y, classes, out / "shadows", shadows, packed, feats, steps,
                           seed=seed, engine=engine, workers=workers, address=address, threads=threads,
                           progress=progress)
        shadow_logits, shadow_in = ss.logits, ss.in_masks[:, eval_pool_index(ev, len(y_mem))]
        shadow_info.update({"used": shadows, "recipe": recipe.to_dict(), "recipe_text": recipe.describe(),
                            "trained": ss.trained, "reused": ss.reused, "pool": len(pool_y),
                            "validation_accuracy": ss.accuracies,
                            "in_per_example": {"min": int(shadow_in.sum(0).min()), "max": int(shadow_in.sum(0).max()),
                                               "mean": float(shadow_in.sum(0).mean())}})
    elif shadows:
        shadow_info["why_none"] = why
    timings["shadows"] = round(time.monotonic() - t_stage, 2)
    status("mia: querying the target" + (" on its twin and on Lava fixed_pt" if replay else " (twin)"))
    t_stage = time.monotonic()
    twin_logits, lava_logits, same = target_outputs(target, packed, replay, workers, progress)
    timings["target"] = round(time.monotonic() - t_stage, 2)
    sources = {"twin": twin_logits}
    if replay:
        sources["lava"] = lava_logits
    scores, metrics = {}, {}
    for src, logits in sources.items():
        ms = membership_scores(logits, y_eval, shadow_logits, shadow_in, variance)
        scores[src] = ms["scores"]
        metrics[src] = {a: attack_metrics(s, member) for a, s in ms["scores"].items()}
        if ms["lira"] is not None:
            shadow_info["lira"] = ms["lira"]
    equivalence = None
    if replay:
        equivalence = {"samples": int(len(same)), "identical_outputs": int(same.sum()),
                       "fraction_identical": float(same.mean()),
                       "posteriors_identical": bool(np.array_equal(twin_logits, lava_logits)),
                       "metrics_identical": metrics["twin"] == metrics["lava"],
                       "compared": "output spikes" + (" and read-out voltages"
                                                      if target.spec.readout != "spikes" else "")}
    report = MiaReport(
        model=str(model_path), sha256=target.sha256, out=str(out),
        data={"source": data["source"], "members": int(len(y_mem)), "non_members": int(len(y_non)),
              "eval_members": n, "eval_non_members": n, "encoding": encoding, "deployment": dep.describe()},
        shadows=shadow_info, metrics=metrics, equivalence=equivalence, notes=notes,
        seconds=round(time.monotonic() - t_start, 1),
        settings={"shadows": shadows, "eval_samples": eval_samples, "seed": seed, "engine": engine,
                  "workers": workers, "replay": replay, "variance": variance}, timings=timings)
    rows = {"member_index": mem_idx, "non_member_index": non_idx, "labels": y_eval,
            "shadows_in": None if shadow_in is None else shadow_in.sum(0),
            "shadows_out": None if shadow_in is None else (~shadow_in).sum(0), "same": same}
    _write_report(out, report, scores, member, rows)
    for src, per in metrics.items():
        log.info("mia %s: %s", src, ", ".join(f"{a} AUC {m['auc']:.4f}" for a, m in per.items()))
    status(f"mia: done in {format_duration(time.monotonic() - t_start)}; report {out / 'report.md'}")
    return report


# ---------------------------------------------------------------------------------------------- writing

def _remove_dead_staging(out: Path) -> None:
    """Remove staging directories (``.report-<pid>.tmp``) of runs that were killed while writing their report."""
    from ..fileio import _pid_alive

    for d in out.glob(".report-*.tmp"):
        m = re.fullmatch(r"\.report-(\d+)\.tmp", d.name)
        if m and d.is_dir() and not d.is_symlink() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _write_report(out: Path, report: MiaReport, scores: dict, member: np.ndarray, rows: dict) -> None:
    from ..fileio import atomic_path, write_json_atomic

    stage = out / f".report-{os.getpid()}.tmp"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        plot_roc(stage / "roc.png", scores, member, f"membership inference on {Path(report.model).name}")
        with atomic_path(stage / "scores.csv") as tmp:
            tmp.write_text(scores_csv(scores, member, rows), encoding="utf-8")
        with atomic_path(stage / "report.md") as tmp:
            tmp.write_text(_report_md(report), encoding="utf-8")
        write_json_atomic(stage / "mia.json", report.to_dict())
        old = out / "mia.json"
        if old.exists() or old.is_symlink():
            old.unlink()
        for name in REPORT_FILES:
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def scores_csv(scores: dict, member: np.ndarray, rows: dict) -> str:
    """``scores.csv``: one line per evaluated example (members first) with its index in its set, label, whether a
    member, how many shadow models trained on it and each score of ``scores`` (``{source: {attack: (N,)}}``);
    ``rows``: ``member_index``, ``non_member_index``, ``labels``, ``shadows_in`` / ``shadows_out`` and ``same``
    (per example, or None to leave the column out)."""
    n = len(rows["member_index"])
    cols = ["index", "set", "example", "label", "member"]
    if rows["shadows_in"] is not None:
        cols += ["shadows_in", "shadows_out"]
    names = [(src, a) for src in scores for a in ATTACKS if a in scores[src]]
    cols += [f"{a}_{src}" for src, a in names]
    if rows["same"] is not None:
        cols.append("lava_identical")
    lines = [",".join(cols)]
    for i in range(len(member)):
        mem = i < n
        vals = [str(i), "member" if mem else "non-member",
                str(int(rows["member_index"][i] if mem else rows["non_member_index"][i - n])),
                str(int(rows["labels"][i])), str(int(member[i]))]
        if rows["shadows_in"] is not None:
            vals += [str(int(rows["shadows_in"][i])), str(int(rows["shadows_out"][i]))]
        vals += [f"{float(scores[src][a][i]):.10g}" for src, a in names]
        if rows["same"] is not None:
            vals.append(str(int(rows["same"][i])))
        lines.append(",".join(vals))
    return "\n".join(lines) + "\n"


ATTACK_LABELS = {"loss": "loss (-cross-entropy)", "confidence": "confidence p_y", "lira_online": "LiRA online",
                 "lira_offline": "LiRA offline"}


def _report_md(report: MiaReport) -> str:
    d, sh, eq = report.data, report.shadows, report.equivalence
    n_non = d["eval_non_members"]
    lines = [f"# Membership inference on {Path(report.model).name}", "",
             f"- model: `{report.model}` (sha256 {report.sha256[:16]}...)",
             f"- deployment: {d['deployment']}",
             f"- data: {d['source']}",
             f"- evaluation: {d['eval_members']} members and {n_non} non-members (balanced; drawn with seed "
             f"{report.settings['seed']}), each encoded once ({d['encoding']['kind']} encoder, "
             f"T={d['encoding']['steps']}); the same spike trains query the twin"
             + (", Lava fixed_pt" if eq else "") + (" and every shadow model" if sh.get("used") else "")]
    if sh.get("used"):
        acc = sh["validation_accuracy"]
        lira = sh.get("lira") or {}
        lines.append(f"- shadow models: {sh['used']} ({sh['recipe_text']}), each trained on a random half of the "
                     f"{sh['pool']} members and non-members; {sh['trained']} trained now, {sh['reused']} reused; "
                     f"validation accuracy on their OUT examples {100 * min(acc):.2f}-{100 * max(acc):.2f}%; IN "
                     f"shadow models per evaluated example {sh['in_per_example']['min']}-{sh['in_per_example']['max']}"
                     f"; LiRA variance {lira.get('variance', '?')}"
                     + (f"; examples without an IN / OUT shadow model: {lira.get('no_in', 0)} / "
                        f"{lira.get('no_out', 0)} (given the mean over all examples)"
                        if lira.get("no_in") or lira.get("no_out") else ""))
    elif sh.get("why_none"):
        lines.append(f"- shadow models: none ({sh['why_none']})")
    if eq:
        lines.append(f"- Lava fixed_pt: {eq['identical_outputs']}/{eq['samples']} evaluation samples with "
                     f"{eq['compared']} identical to the twin; posteriors identical: "
                     f"{'yes' if eq['posteriors_identical'] else 'NO'}; metrics identical: "
                     f"{'yes' if eq['metrics_identical'] else 'NO'}")
    allowed = ", ".join(f"FPR <= {100 * a:g} % allows {math.floor(a * n_non + 1e-9)} of the {n_non} non-members "
                        f"as false positives" for a in FPR_LEVELS)
    lines += ["", "| attack | source | AUC | TPR @ FPR <= 1 % | TPR @ FPR <= 0.1 % | balanced acc. |",
              "|---|---|---|---|---|---|"]
    for a in ATTACKS:
        for src, per in report.metrics.items():
            if a not in per:
                continue
            m = per[a]
            lines.append(f"| {ATTACK_LABELS[a]} | {src} | {m['auc']:.4f} | {_pct(m['tpr_at_fpr']['0.01']['tpr'])} % | "
                         f"{_pct(m['tpr_at_fpr']['0.001']['tpr'])} % | {_pct(m['balanced_accuracy'])} % |")
    lines += ["", f"AUC from ranks (ties count half); TPR: the largest whose FPR does not exceed the level "
              f"({allowed}); "
              "balanced accuracy at the best threshold. A score of 0.5 AUC is chance.", "", "![ROC](roc.png)", ""]
    lines += [f"Note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _marker_indices(fpr: np.ndarray, n: int = 12) -> list[int]:
    """About ``n`` points of a curve, evenly spaced in log FPR (a log-log plot's eye), for markers."""
    if len(fpr) == 0:
        return []
    logs = np.log10(np.maximum(fpr, 1e-12))
    marks = np.linspace(logs.min(), logs.max(), n)
    return sorted({int(np.argmin(np.abs(logs - m))) for m in marks})


def plot_roc(path: Path, scores: dict, member: np.ndarray, title: str) -> Path:
    """ROC curves on log-log axes: one colour per attack, the twin solid, chance dotted; Lava dashed, or as open
    markers on the twin's curve where its scores are identical to the twin's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_path
    from .membership import roc_curve

    n_neg = int((~member).sum())
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=100)
    cmap = plt.get_cmap("tab10")
    lo = 1.0 / max(n_neg, 1)
    for k, a in enumerate(ATTACKS):
        for src in ("twin", "lava"):
            if src not in scores or a not in scores[src]:
                continue
            fpr, tpr, _ = roc_curve(scores[src][a], member)
            fpr, tpr = np.maximum(fpr, lo / 2), np.maximum(tpr, lo / 2)  # zeros drawn at the axis' edge
            if src == "twin":
                ax.plot(fpr, tpr, "-", color=cmap(k), lw=1.6, drawstyle="steps-post", label=f"{ATTACK_LABELS[a]}, twin")
            elif "twin" in scores and a in scores["twin"] and np.array_equal(scores["twin"][a], scores[src][a]):
                # a dashed copy would hide under the twin's line: open markers on it say "the same scores"
                ax.plot(fpr, tpr, "o", color=cmap(k), mfc="none", ms=5, markevery=_marker_indices(fpr),
                        label=f"{ATTACK_LABELS[a]}, Lava (scores identical to the twin)")
            else:
                ax.plot(fpr, tpr, "--", color=cmap(k), lw=1.2, drawstyle="steps-post",
                        label=f"{ATTACK_LABELS[a]}, Lava")
    ax.plot([lo / 2, 1], [lo / 2, 1], ":", color="grey", lw=1.0, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo / 2, 1.05)
    ax.set_ylim(lo / 2, 1.05)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- CLI

def add_mia(p) -> None:
    """The arguments of ``brainleaks mia``."""
    from ..cli import _add_deployment, count, thread_count, worker_count

    p.add_argument("model", help="the deployed SNN: a .net NetX file (with its sidecar for shadow models)")
    p.add_argument("--out", default=None, help="report directory (default: mia-<model stem>); a rerun with the same "
                                               "settings reuses its shadow models")
    p.add_argument("--shadows", type=count("shadows", 0), default=8,
                   help="shadow models for LiRA, trained with the target's recipe from its sidecar (0: loss and "
                        "confidence attacks only) (default 8)")
    p.add_argument("--dataset", default=None, choices=["mnist", "att-faces"],
                   help="dataset whose 'train' split the model trained on (default: the one its sidecar names)")
    p.add_argument("--data-root", default=None, help="directory of that dataset (MNIST: the vendored subset when "
                                                     "omitted)")
    p.add_argument("--members", default=None, help=".npz with arrays 'images' ([0, 1]) and 'labels' of training "
                                                   "examples (with --non-members)")
    p.add_argument("--non-members", default=None, help=".npz of examples the model did not train on")
    p.add_argument("--eval-samples", type=count("eval_samples"), default=2000,
                   help="non-members evaluated (all up to this many), and as many random members (default 2000)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where shadow models train: local (a process pool with --workers > 1) or ray")
    p.add_argument("--workers", type=worker_count, default=1,
                   help="parallel shadow trainings, and Lava runtimes of the replay (default 1)")
    p.add_argument("--address", default=None, help="an existing Ray cluster to join; with --engine ray")
    p.add_argument("--no-replay", action="store_true", help="query the twin only, not the target on Lava")
    p.add_argument("--seed", type=count("seed", 0), default=0,
                   help="seed of the evaluation draw, the encoding and the shadow models")
    p.add_argument("--threads", type=thread_count, default=0,
                   help="torch CPU threads of this process (0: torch default); shadow units use 1 with --workers > 1")
    _add_deployment(p)


def mia_command(args) -> Path:
    """``brainleaks mia``: run the inference from the parsed options; returns the report's path (the CLI prints
    it)."""
    from ..cli import _deployment_options
    from ..models.training import apply_threads

    if args.address and args.engine != "ray":
        raise InputError("--address joins a Ray cluster: use it with --engine ray")
    apply_threads(args.threads)
    out = Path(args.out) if args.out else Path(f"mia-{Path(args.model).stem}")
    run_membership_inference(args.model, out, members=args.members, non_members=args.non_members,
                             data_root=args.data_root, dataset=args.dataset, shadows=args.shadows,
                             eval_samples=args.eval_samples, engine=args.engine, workers=args.workers,
                             address=args.address, replay=not args.no_replay, seed=args.seed,
                             card=args.card, options=_deployment_options(args),
                             threads=args.threads if args.threads and args.workers == 1 else None)
    return out / "report.md"
