"""Shadow models of a membership inference: the target's training recipe, trained again on random halves of a pool.

The recipe is read from the target's sidecar (:func:`recipe_of`): the network (``spec``: sizes, neuron, read-out,
time steps, posterior scale), the encoder (``encoding``), the training settings (``training``: epochs, batch size,
learning rate, weight decay, gradient clipping, device) and the defenses trained with (``input_flip``, ``dp``).
Each shadow model is trained by ``models.targets.train_on_arrays``, the code path of ``brainleaks train``, on a
random half of the pool (members + non-members; the half of shadow ``i`` is drawn from a generator seeded
``(seed, i)``, so each example is IN for about half the shadow models and shadow ``i`` does not depend on how many
there are). Its training seed is derived from ``(seed, i)`` too, so the shadow models differ in initial weights
and batch order as independently trained models do. They validate once, after training, on up to
``SHADOW_VALIDATION`` OUT examples (the target's training validated every epoch: that draws its own generator and
does not change the weights).

Files, in the directory ``shadows`` of a ``brainleaks mia`` output (one unit of work per shadow model, run on a
``sweep.engines.Engine``: this process, a local process pool or Ray)::

    pool_images.npy, pool_labels.npy    the pool (written by the host; each unit checks its digest)
    queries.npy                         the evaluation examples' spike trains, bit-packed (N, ceil(F*T/8))
    <i>.net, <i>.json                   shadow i (NetX file and sidecar, with "mia_shadow": its seeds and digests)
    <i>.in.npy                          its IN mask over the pool (bool)
    <i>.done.json                       training record: fingerprint, sha256 of the three files above
    <i>.logits.npy, <i>.query.json      its logits of the deployed read-out on queries.npy, and their record

Without queries (:func:`shadow_tasks` with ``packed_queries=None``: ``brainleaks sweep``, whose cells query the
shadow models themselves through their query-time defenses) a unit only trains, and ``queries.npy``,
``<i>.logits.npy`` and ``<i>.query.json`` are not written.

A unit whose records' fingerprints (recipe, pool, IN mask, seeds, toolkit version; for the logits also the
queries and the shadow file) and recorded outputs match is reused, so a rerun of the same command trains only
what is missing; an interrupted training resumes after its last finished epoch (``<i>.net.ckpt.h5``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ModelFileError

log = logging.getLogger(__name__)

SHADOW_VALIDATION = 1000  # OUT examples each shadow model is validated on once, after training
QUERY_BATCH = 200  # samples per forward pass when a model answers the queries
POOL_IMAGES, POOL_LABELS, QUERIES = "pool_images.npy", "pool_labels.npy", "queries.npy"
MAX_STATE_BYTES = 1 << 34  # the largest .npy file read back from a shadow directory (16 GiB)


# ---------------------------------------------------------------------------------------------- the recipe

@dataclass(frozen=True)
class ShadowRecipe:
    """How the target was trained: a ``TargetRequest`` and a ``TrainConfig`` (its seed is replaced per shadow)."""

    request: object  # models.targets.TargetRequest
    train: object  # models.training.TrainConfig

    def to_dict(self) -> dict:
        req = dataclasses.asdict(self.request)
        req.pop("data_root", None)
        return {"target": req, "train": {k: v for k, v in self.train.to_dict().items() if k != "threads"}}

    @classmethod
    def from_dict(cls, d: dict) -> "ShadowRecipe":
        from ..defenses.dp import DPConfig
        from ..models.snn import NeuronConfig
        from ..models.targets import TargetRequest
        from ..models.training import TrainConfig

        t = dict(d["target"])
        t["neuron"] = NeuronConfig(**t["neuron"])
        t["dp"] = DPConfig(**t["dp"]) if t.get("dp") else None
        return cls(request=TargetRequest(**t), train=TrainConfig(**d["train"]))

    def describe(self) -> str:
        r, c = self.request, self.train
        net = f"{r.arch} hidden {r.hidden}" if r.arch == "snn" else r.arch
        extra = (f", input flip {r.input_flip:g}" if r.input_flip else "") + (", DP-SGD" if r.dp is not None else "")
        return (f"{net}, {r.encoding} encoder T={r.steps}, read-out {r.readout}, {c.epochs} epochs, batch "
                f"{c.batch_size}, lr {c.lr:g}, weight decay {c.weight_decay:g}, grad clip {c.grad_clip:g}{extra}")


def recipe_of(target) -> tuple[ShadowRecipe | None, str]:
    """The training recipe of an SNN target (``models.files.SNNTarget``) from its sidecar, or ``(None, why)`` when
    the file does not carry one (a foreign NetX file, a network the toolkit does not train). A sidecar whose recipe
    fields are of the wrong type or out of bounds is refused (``ModelFileError`` naming the field)."""
    from ..defenses.dp import DPConfig
    from ..models.files import sidecar_path
    from ..models.snn import NeuronConfig
    from ..models.targets import TargetRequest
    from ..models.training import TrainConfig
    from ..safety import MAX_COUNTS, check_count, check_time_steps

    meta = target.metadata or {}
    where = sidecar_path(target.path)
    if not meta:
        return None, f"{target.path} has no sidecar, so its training recipe is unknown"
    spec, enc, training = meta.get("spec"), meta.get("encoding"), meta.get("training")
    if not (isinstance(spec, dict) and isinstance(enc, dict) and isinstance(training, dict)):
        return None, f"{where} holds no training recipe ('spec', 'encoding' and 'training')"
    if enc.get("kind") not in ("rate", "if"):
        return None, (f"{where}: the target's inputs are encoded as {enc.get('kind')!r}; shadow models are trained "
                      f"on images (rate or if encoder)")
    sizes = spec.get("sizes")
    if not (isinstance(sizes, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in sizes)):
        raise ModelFileError(f"{where}: 'spec.sizes' must be a list of integers, got {str(sizes)[:60]}")
    if tuple(sizes) != tuple(target.spec.sizes):
        raise ModelFileError(f"{where}: 'spec.sizes' {sizes} does not match the network in {target.path} "
                             f"{list(target.spec.sizes)}")
    conv = any(layer.kind == "conv" for layer in target.net.layers)
    if len(sizes) == 3 and not conv:
        arch, hidden = "snn", sizes[1]
    elif len(sizes) == 2 and conv:
        arch, hidden = "snn-conv", 3000
    else:
        return None, (f"{target.path}: a network of sizes {sizes} is not one the toolkit trains (a dense CUBA MLP "
                      f"with one hidden layer, or the snn-conv target)")

    def count(section: dict, key: str, label: str, default=None):
        v = section.get(key, default)
        return check_count(v, f"{where}: '{label}'", MAX_COUNTS[key][0], 1, MAX_COUNTS[key][1], ModelFileError)

    def number(section: dict, key: str, label: str, default: float) -> float:
        v = section.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ModelFileError(f"{where}: '{label}' must be a finite number, got {str(v)[:60]}")
        return float(v)

    try:
        hidden = count({"hidden": hidden}, "hidden", "spec.sizes")
        dp = meta.get("dp")
        if dp is not None:
            if not isinstance(dp, dict):
                raise ModelFileError(f"{where}: 'dp' must be an object, got {str(dp)[:60]}")
            dp = DPConfig(**{k: dp[k] for k in ("noise_multiplier", "max_grad_norm", "delta") if k in dp})
        neuron = spec.get("neuron") or {}
        if not isinstance(neuron, dict):
            raise ModelFileError(f"{where}: 'spec.neuron' must be an object")
        known = {f.name for f in dataclasses.fields(NeuronConfig)}
        steps = check_time_steps(enc.get("steps", spec.get("steps", 25)), f"{where}: 'encoding.steps'",
                                 ModelFileError)
        readout = spec.get("readout", "membrane")
        if readout not in ("membrane", "voltage", "spikes"):
            raise ModelFileError(f"{where}: 'spec.readout' must be membrane, voltage or spikes, got "
                                 f"{str(readout)[:60]}")
        downsample = meta.get("downsample")
        if downsample is not None:
            downsample = check_count(downsample, f"{where}: 'downsample'", MAX_COUNTS["downsample"][0], 1, "",
                                     ModelFileError)
        req = TargetRequest(
            dataset=str(meta.get("dataset") or "images"), arch=arch, hidden=hidden, steps=steps,
            downsample=downsample, posterior_scale=number(spec, "posterior_scale", "spec.posterior_scale", 1.0),
            readout=readout,
            neuron=NeuronConfig(**{k: number(neuron, k, f"spec.neuron.{k}", 0.0) for k in neuron if k in known}),
            encoding=enc["kind"], input_flip=number(meta, "input_flip", "input_flip", 0.0), dp=dp)
        cfg = TrainConfig(epochs=count(training, "epochs", "training.epochs", 10),
                          batch_size=count(training, "batch_size", "training.batch_size", 100),
                          lr=number(training, "lr", "training.lr", 1e-3),
                          grad_clip=number(training, "grad_clip", "training.grad_clip", 1.0),
                          weight_decay=number(training, "weight_decay", "training.weight_decay", 0.0),
                          device=str(training.get("device", "auto")))
    except InputError as e:
        raise ModelFileError(f"{where}: invalid training recipe ({e})") from None
    return ShadowRecipe(request=req, train=cfg), ""


# ---------------------------------------------------------------------------------------------- masks, seeds

def in_mask(pool_size: int, index: int, seed: int) -> np.ndarray:
    """Shadow ``index``'s IN mask over a pool of ``pool_size`` examples: a random half (``pool_size // 2``
    examples), from a generator seeded ``(seed, index)``."""
    rng = np.random.default_rng([int(seed), int(index), 0])
    mask = np.zeros(pool_size, dtype=bool)
    mask[rng.permutation(pool_size)[: pool_size // 2]] = True
    return mask


def shadow_seed(index: int, seed: int) -> int:
    """Shadow ``index``'s training seed (initial weights, batch order, encoding draws)."""
    return int(np.random.SeedSequence([int(seed), int(index), 1]).generate_state(1)[0] & 0x7FFFFFFF)


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of ``arrays``."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- queries

def pack_spikes(spikes: np.ndarray) -> np.ndarray:
    """(N, F, T) 0/1 spikes -> (N, ceil(F*T/8)) uint8, bit-packed."""
    s = np.asarray(spikes)
    return np.packbits(s.reshape(len(s), -1).astype(bool), axis=1)


def unpack_spikes(packed: np.ndarray, features: int, steps: int) -> np.ndarray:
    """The inverse of :func:`pack_spikes`: float32 (N, F, T)."""
    bits = np.unpackbits(packed, axis=1, count=features * steps)
    return bits.reshape(len(packed), features, steps).astype(np.float32)


@torch.no_grad()
def posterior_logits(model, packed: np.ndarray, features: int, steps: int, batch: int = QUERY_BATCH,
                     observe=None) -> np.ndarray:
    """The logits of a twin's deployed posterior (``netx.target.DeployedSNN.logits``) on bit-packed spike trains:
    float32 (N, classes). With ``observe`` (an ``observe(model, x)`` hook returning posteriors, such as
    ``defenses.readout.ObservedPosterior``): the logits of what that hook lets a querier see,
    ``membership.logits_of_posterior`` (float64; rounded zeros lifted to its floor)."""
    from .membership import logits_of_posterior

    out = []
    for i in range(0, len(packed), batch):
        x = torch.as_tensor(unpack_spikes(packed[i:i + batch], features, steps))
        if observe is None:
            out.append(model.logits(x).float().numpy())
        else:
            out.append(logits_of_posterior(observe(model, x).double().numpy()))
    dtype = np.float32 if observe is None else np.float64
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), dtype)


# ---------------------------------------------------------------------------------------------- files

def save_npy(path: Path, array: np.ndarray) -> None:
    from ..fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def load_npy(path: Path, what: str) -> np.ndarray:
    """A ``.npy`` file of a shadow directory (a regular file, never unpickled); ``ModelFileError`` naming it."""
    from ..fileio import open_guarded

    with open_guarded(path, what, ModelFileError, max_bytes=MAX_STATE_BYTES) as f:
        try:
            a = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, MemoryError) as e:
            raise ModelFileError(f"{path}: unreadable {what} ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray):  # an .npz archive under the name
        getattr(a, "close", lambda: None)()
        raise ModelFileError(f"{path}: the {what} is not a .npy array")
    return a


def _record_done(path: Path, fingerprint: str) -> dict | None:
    from ..sweep.cells import unit_done

    return unit_done(path, fingerprint)


def _write_record(directory: Path, name: str, fingerprint: str, outputs: list[str], **fields) -> dict:
    from ..fileio import sha256_file, write_json_atomic

    rec = {"fingerprint": fingerprint, "outputs": {n: sha256_file(directory / n) for n in outputs}, **fields}
    write_json_atomic(directory / name, rec)
    return rec


def _fingerprint(settings: dict) -> str:
    from ..report.runner import fingerprint

    return fingerprint(settings, [])


# ---------------------------------------------------------------------------------------------- one unit

def train_shadow_task(task: dict) -> dict:
    """One unit: train shadow ``task["index"]`` unless its training record matches, then answer the queries
    unless its query record matches. A plain function of a plain dict (a process pool or Ray runs it)."""
    from ..fileio import sha256_file
    from ..models.files import load_snn
    from ..models.targets import train_on_arrays
    from ..models.training import apply_threads
    from ..progress import set_quiet

    if "quiet" in task:  # else this process's setting stands (a sweep: the CLI's --quiet)
        set_quiet(task["quiet"])
    apply_threads(task["threads"])
    d, i = Path(task["dir"]), int(task["index"])
    net = d / f"{i}.net"
    t0 = time.monotonic()
    trained = queried = False
    rec = _record_done(d / f"{i}.done.json", task["train_fingerprint"])
    if rec is None:
        images = load_npy(d / POOL_IMAGES, "pool of images")
        labels = load_npy(d / POOL_LABELS, "pool of labels")
        if array_digest(images, labels) != task["pool_digest"]:
            raise ModelFileError(f"{d}: the pool files changed while shadow {i} was to be trained; run again")
        mask = np.zeros(len(labels), dtype=bool)
        mask[np.asarray(task["in_index"], dtype=np.int64)] = True
        out_idx = np.nonzero(~mask)[0][:SHADOW_VALIDATION]
        recipe = ShadowRecipe.from_dict(task["recipe"])
        cfg = dataclasses.replace(recipe.train, seed=task["train_seed"], threads=task["threads"])
        meta = train_on_arrays(
            recipe.request, cfg, net, images[mask], labels[mask], images[out_idx], labels[out_idx],
            classes=task["classes"], validate_epochs=False, desc=f"shadow {i}",
            data_source=f"shadow {i} of a membership inference: {int(mask.sum())} of a pool of {len(labels)} "
                        f"examples (members and non-members); validated on {len(out_idx)} others",
            extra_meta={"mia_shadow": {"index": i, "seed": task["seed"], "train_seed": task["train_seed"],
                                       "pool_digest": task["pool_digest"], "in_digest": task["in_digest"]}})
        save_npy(d / f"{i}.in.npy", mask)
        rec = _write_record(d, f"{i}.done.json", task["train_fingerprint"], [f"{i}.net", f"{i}.json", f"{i}.in.npy"],
                            validation_accuracy=meta["validation_accuracy"], validation_images=len(out_idx),
                            train_images=int(mask.sum()), seconds=round(time.monotonic() - t0, 2))
        trained = True
    if task.get("queries_digest") is None:  # training only (module docstring)
        return {"index": i, "trained": trained, "queried": False, "validation_accuracy": rec["validation_accuracy"],
                "seconds": round(time.monotonic() - t0, 2)}
    qfp = _fingerprint({"train": task["train_fingerprint"], "net": rec["outputs"][f"{i}.net"],
                        "queries": task["queries_digest"], "features": task["features"], "steps": task["steps"]})
    if _record_done(d / f"{i}.query.json", qfp) is None:
        if sha256_file(net) != rec["outputs"][f"{i}.net"]:
            raise ModelFileError(f"{net} changed after it was trained; run again to train it anew")
        packed = load_npy(d / QUERIES, "queries")
        if array_digest(packed) != task["queries_digest"]:
            raise ModelFileError(f"{d / QUERIES} changed while shadow {i} was to answer it; run again")
        model = load_snn(net).model
        save_npy(d / f"{i}.logits.npy", posterior_logits(model, packed, task["features"], task["steps"]))
        _write_record(d, f"{i}.query.json", qfp, [f"{i}.logits.npy"])
        queried = True
    return {"index": i, "trained": trained, "queried": queried, "validation_accuracy": rec["validation_accuracy"],
            "seconds": round(time.monotonic() - t0, 2)}


# ---------------------------------------------------------------------------------------------- all of them

@dataclass
class ShadowSet:
    """What the shadow models give a membership inference."""

    in_masks: np.ndarray  # (M, pool) bool
    logits: np.ndarray | None  # (M, queries, classes) float32; None when the units had no queries
    accuracies: list[float]  # validation accuracy of each on its OUT examples
    trained: int  # trained by this call
    reused: int  # found finished
    nets: list = dataclasses.field(default_factory=list)  # the NetX file of each (Path)


def shadow_tasks(recipe: ShadowRecipe, images: np.ndarray, labels: np.ndarray, classes, directory: str | Path,
                 count: int, packed_queries: np.ndarray | None = None, features: int = 0, steps: int = 0, *,
                 seed: int = 0, threads: int = 0, quiet: bool | None = None) -> list[dict]:
    """Prepare ``directory`` for ``count`` shadow models of ``recipe`` on random halves of the pool (``images``,
    ``labels``; the pool files, and ``queries.npy`` when ``packed_queries`` are given, are written unless they
    already hold the same arrays) and return their units (plain dicts for :func:`train_shadow_task`, in index
    order; :func:`task_done` says which are finished). ``quiet``: the units' progress setting (None: the setting
    of the process that runs them)."""
    from ..fileio import sweep_stale_temps
    from ..safety import MAX_COUNTS, check_count

    count = check_count(count, "shadows", MAX_COUNTS["shadows"][0], 0, MAX_COUNTS["shadows"][1])
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(d)
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    pool_digest = array_digest(images, labels)
    files = [(POOL_IMAGES, images), (POOL_LABELS, labels)]
    if packed_queries is not None:
        files.append((QUERIES, packed_queries))
    for name, arr in files:
        p = d / name
        try:
            same = p.is_file() and array_digest(load_npy(p, name)) == array_digest(arr)
        except ModelFileError:
            same = False
        if not same:
            save_npy(p, arr)
    queries_digest = None if packed_queries is None else array_digest(np.ascontiguousarray(packed_queries))
    recipe_d = recipe.to_dict()
    tasks = []
    for i in range(count):
        mask = in_mask(len(labels), i, seed)
        tseed = shadow_seed(i, seed)
        in_digest = array_digest(mask)
        tfp = _fingerprint({"recipe": recipe_d, "pool": pool_digest, "in": in_digest, "train_seed": tseed,
                            "classes": list(classes), "validation": SHADOW_VALIDATION})
        task = {"index": i, "dir": str(d), "recipe": recipe_d, "seed": int(seed), "train_seed": tseed,
                "in_index": np.nonzero(mask)[0].tolist(), "in_digest": in_digest, "pool_digest": pool_digest,
                "pool_size": int(len(labels)), "queries_digest": queries_digest, "features": int(features),
                "steps": int(steps), "classes": list(classes), "train_fingerprint": tfp, "threads": threads}
        if quiet is not None:
            task["quiet"] = bool(quiet)
        tasks.append(task)
    return tasks


def collect_shadows(tasks: list[dict], n_queries: int | None = None, trained: int = 0) -> ShadowSet:
    """The finished shadow models of ``tasks`` (:func:`shadow_tasks`; the key ``in_index`` may be left out): each
    one's records checked (``ModelFileError`` when one is missing or its files changed), its IN mask compared with
    the one its seed gives, and its logits on the ``n_queries`` queries read when the units had queries."""
    masks, logits, accs, nets = [], [], [], []
    classes = tasks[0]["classes"] if tasks else []
    for t in tasks:
        d, i = Path(t["dir"]), int(t["index"])
        rec = _record_done(d / f"{i}.done.json", t["train_fingerprint"])
        if rec is None or not task_done(t):
            raise ModelFileError(f"{d}: shadow {i} is not complete after its training (its files changed); run again")
        expected = in_mask(int(t["pool_size"]), i, int(t["seed"]))
        mask = load_npy(d / f"{i}.in.npy", "IN mask")
        if mask.dtype != bool or not np.array_equal(mask, expected):
            raise ModelFileError(f"{d / f'{i}.in.npy'}: not the IN mask shadow {i} was trained with")
        masks.append(mask)
        nets.append(d / f"{i}.net")
        accs.append(float(rec["validation_accuracy"]))
        if t.get("queries_digest") is None:
            continue
        lg = load_npy(d / f"{i}.logits.npy", "shadow logits")
        if lg.shape != (n_queries, len(classes)):
            raise ModelFileError(f"{d / f'{i}.logits.npy'}: shape {lg.shape}, expected {(n_queries, len(classes))}")
        logits.append(lg)
    if not tasks:  # no shadow models: nothing trained, no logits on the queries
        return ShadowSet(in_masks=np.zeros((0, 0), bool), logits=np.zeros((0, n_queries or 0, 0), np.float32),
                         accuracies=[], trained=0, reused=0)
    return ShadowSet(in_masks=np.stack(masks), logits=np.stack(logits) if logits else None, accuracies=accs,
                     trained=trained, reused=len(tasks) - trained, nets=nets)


def train_shadows(recipe: ShadowRecipe, images: np.ndarray, labels: np.ndarray, classes, directory: str | Path,
                  count: int, packed_queries: np.ndarray, features: int, steps: int, *, seed: int = 0,
                  engine: str = "local", workers: int = 1, address: str | None = None, threads: int | None = None,
                  progress: bool = True) -> ShadowSet:
    """Train (or reuse) ``count`` shadow models of ``recipe`` on random halves of the pool (``images``, ``labels``)
    and have each answer the bit-packed queries (module docstring): :func:`shadow_tasks`, the unfinished units on
    an ``Engine``, :func:`collect_shadows`. ``threads``: torch threads per unit (None: 1 when ``workers`` > 1,
    else torch's default)."""
    from ..progress import format_duration, status
    from ..sweep.engines import Engine

    if threads is None:
        threads = 1 if workers > 1 else 0
    tasks = shadow_tasks(recipe, images, labels, classes, directory, count, packed_queries, features, steps,
                         seed=seed, threads=threads, quiet=not progress)
    d = Path(directory)
    todo = [t for t in tasks if not task_done(t)]
    reused = len(tasks) - len(todo)
    log.info("shadow models in %s: %d reused, %d to train or query", d, reused, len(todo))
    if reused:
        status(f"shadow models: {reused} of {len(tasks)} already trained and queried, reused")
    trained = 0
    if todo:
        status(f"shadow models: {len(todo)} to train or query ({recipe.describe()}; {len(labels) // 2} of "
               f"{len(labels)} pool examples each) [{engine}, {workers} worker{'s' if workers != 1 else ''}]")
        t0 = time.monotonic()
        try:
            with Engine(engine, workers, address) as eng:
                for n, (k, rec) in enumerate(eng.run(train_shadow_task, todo), 1):
                    trained += rec["trained"]
                    status(f"shadow {rec['index']} ({n}/{len(todo)}): "
                           + ("trained, " if rec["trained"] else "")
                           + f"validation accuracy {100 * rec['validation_accuracy']:.2f}% on its OUT examples, "
                             f"{format_duration(rec['seconds'])}")
        except KeyboardInterrupt:
            status(f"shadow models: stopped after {format_duration(time.monotonic() - t0)}; the finished ones are "
                   f"kept in {d} and the same command reuses them")
            raise
    return collect_shadows(tasks, len(packed_queries), trained=trained)


def task_done(task: dict) -> bool:
    """Both records of a unit match (training, and the queries when it has any)."""
    d, i = Path(task["dir"]), task["index"]
    rec = _record_done(d / f"{i}.done.json", task["train_fingerprint"])
    if rec is None:
        return False
    if task.get("queries_digest") is None:
        return True
    qfp = _fingerprint({"train": task["train_fingerprint"], "net": rec["outputs"][f"{i}.net"],
                        "queries": task["queries_digest"], "features": task["features"], "steps": task["steps"]})
    return _record_done(d / f"{i}.query.json", qfp) is not None
