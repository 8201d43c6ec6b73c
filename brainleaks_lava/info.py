"""``brainleaks info``: what a file the toolkit reads or writes holds.

The kind of a file is decided by its content, not its name (:func:`file_kind`):

- ``netx``: a NetX network (``.net``: HDF5 with a ``layer`` group): its deployment (options, a card, the sidecar,
  defaults), the layer table and the Loihi 2 readiness (``netx.readiness``). Read with h5py alone
  (``netx.reader``, ``netx.sidecar``): no torch, no lava, so a table takes a fraction of a second;
- ``sidecar``: the JSON file beside a ``.net`` (``<name>.json``), described with its network when that is there;
- ``ann`` (an ANN target, MI-FACE's), ``evaluator`` (an evaluation classifier of kind ann, snn, resnet or reject),
  ``recon`` (a reconstruction file of ``brainleaks attack`` / ``audit``), ``checkpoint`` (a training checkpoint
  ``<out>.ckpt.h5``), ``prior`` (a generative prior of ``brainleaks train-prior``): read and checked by their own
  loaders (which import torch), described from what they hold;
- ``card``: a deployment card (TOML; ``netx.deployment``).

Every problem is the loaders' ``ModelFileError`` naming the file (the CLI prints it on one line, exit 2).
:func:`wrong_kind` gives the readers of one kind a message that says what a file of another kind is ("this is a
model file (an evaluation classifier), not a reconstruction file").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelFileError
from .text import plural

# what each kind of HDF5 file is, in the words of an error message
KIND_NAMES = {
    "netx": "a model file (a NetX SNN network)",
    "ann": "a model file (an ANN target)",
    "evaluator": "a model file (an evaluation classifier)",
    "recon": "a reconstruction file",
    "checkpoint": "a training checkpoint",
    "prior": "a generative prior (brainleaks train-prior)",
}
# what a reader expected, in the words of an error message ("..., not an evaluation classifier")
WANTED_NAMES = {
    "netx": "a NetX network file (.net)",
    "ann": "an ANN target",
    "evaluator": "an evaluation classifier",
    "recon": "a reconstruction file",
    "checkpoint": "a training checkpoint",
    "prior": "a generative prior",
}
_FORMAT_PREFIXES = (("brainleaks-ann", "ann"), ("brainleaks-evaluator", "evaluator"),
                    ("brainleaks-checkpoint", "checkpoint"), ("brainleaks-prior", "prior"))


@dataclass
class FileInfo:
    """What :func:`describe_file` found: the file's kind, a JSON-able description and the text ``info`` prints."""

    kind: str
    data: dict
    text: str


def _text_attr(f, key: str):
    from .fileio import read_attr

    try:
        v = read_attr(f, key)
    except ModelFileError:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return v if isinstance(v, str) else None


def format_kind(fmt: str) -> str | None:
    """The kind of a file whose ``brainleaks_format`` attribute is ``fmt`` (``brainleaks-evaluator/2`` ->
    ``evaluator``), or None."""
    return next((kind for prefix, kind in _FORMAT_PREFIXES if fmt.startswith(prefix)), None)


def h5_kind(f) -> str | None:
    """The kind of the open HDF5 file ``f`` (``netx``, ``ann``, ``evaluator``, ``checkpoint``, ``recon``), or None
    for an HDF5 file the toolkit did not write. Reads one group name and two attributes, nothing else."""
    if "layer" in f:
        return "netx"
    fmt = _text_attr(f, "brainleaks_format")
    if fmt is not None:
        return format_kind(fmt)
    fmt = _text_attr(f, "format")
    return "recon" if fmt is not None and fmt.startswith("brainleaks-recon") else None


def wrong_kind(f, path, wanted: str) -> str | None:
    """"<path>: this is <its kind>, not <wanted>" when the open HDF5 file ``f`` is a file of the toolkit of another
    kind than a reader expected, else None (then the reader's own message says what is wrong). ``wanted``: a key
    of ``WANTED_NAMES`` (``"recon"``), or the words for what was expected ("a target model")."""
    try:
        kind = h5_kind(f)
    except Exception:  # noqa: BLE001 - a damaged file: the reader reports it
        return None
    if kind is None or kind == wanted:
        return None
    return f"{path}: this is {KIND_NAMES[kind]}, not {WANTED_NAMES.get(wanted, wanted)}"


def file_kind(path) -> str:
    """The kind of the file ``path`` (see the module docstring). A JSON file is taken for a sidecar and a TOML
    file for a deployment card (their readers check that); an HDF5 file is classified by :func:`h5_kind`.
    ``ModelFileError`` for a missing, unreadable or unknown file."""
    from .fileio import open_h5

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".json", ".toml"):
        if not path.is_file():
            raise ModelFileError(f"{'sidecar' if suffix == '.json' else 'deployment card'} not found: {path}")
        return "sidecar" if suffix == ".json" else "card"
    with open_h5(path, "model file") as f:
        kind = h5_kind(f)
    if kind is None:
        raise ModelFileError(f"{path}: an HDF5 file brainleaks does not know: neither a NetX network (no 'layer' "
                             f"group) nor a file with a brainleaks format attribute (model, evaluator, "
                             f"reconstruction, checkpoint, prior)")
    return kind


def named_dataset(path) -> str | None:
    """The dataset a target model file says it was trained on (a ``.net``'s sidecar, an ANN file's metadata), or
    None: it says none, or the file cannot be read (its loader will say why). Reads no weights, imports no torch."""
    from .errors import BrainleaksError

    try:
        kind = file_kind(path)
        if kind == "netx":
            from .netx.sidecar import read_sidecar

            meta = read_sidecar(path)
        elif kind == "ann":
            from .fileio import open_h5

            with open_h5(path, "model file") as f:
                meta = json.loads(_text_attr(f, "metadata") or "{}")
        else:
            return None
    except (BrainleaksError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return None
    name = meta.get("dataset") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def describe_file(path, options: dict | None = None, card=None) -> FileInfo:
    """Describe any file the toolkit reads or writes (``brainleaks info``). ``options`` / ``card``: the deployment
    of a NetX file (as ``models.files.load_snn`` takes them); other kinds ignore them."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "netx":
        return _netx(path, options, card)
    if kind == "sidecar":
        return _sidecar(path, options, card)
    return {"ann": _ann, "evaluator": _evaluator, "recon": _recon, "checkpoint": _checkpoint,
            "card": _card, "prior": _prior}[kind](path)


# ----------------------------------------------------------------------------------------------------- kinds

def _dataset_lines(m: dict) -> list[str]:
    lines = []
    if "dataset" in m:
        lines.append(f"dataset:    {m['dataset']} ({m.get('data_source', '?')})")
    if "validation_accuracy" in m:
        n = m.get("validation_images")
        lines.append(f"validation: {100 * m['validation_accuracy']:.2f}% on "
                     f"{plural(n, 'image') if isinstance(n, int) else '? images'}")
    return lines


def _netx(path: Path, options, card) -> FileInfo:
    from .netx.readiness import describe, format_readiness, format_table
    from .netx.sidecar import read_deployment

    net, dep, meta = read_deployment(path, options, card)
    info = describe(net, dep.steps)
    sizes = [net.num_inputs, *(layer.out_size for layer in net.computing)]
    if net.layers[-1].kind == "average":  # as the twin counts its outputs (netx.target.DeployedSNN)
        sizes.append(net.num_outputs)
    data = {"file_kind": "netx", "path": str(path), "sha256": net.sha256, "topology": sizes, "network": info,
            "deployment": {"steps": dep.steps, "encoding": dep.encoding, "input_shape": list(dep.input_shape or ()),
                           "readout": dep.readout, "classes": list(dep.classes) if dep.classes else None,
                           "posterior_scale": dep.posterior_scale, "sources": dep.sources},
            "metadata": meta}
    lines = [f"model:      {path}  (NetX SNN, sha256 {net.sha256[:16]}...)",
             f"topology:   {'-'.join(map(str, sizes))}",
             f"deployment: {dep.describe()}",
             format_table(info), format_readiness(info), *_dataset_lines(meta)]
    return FileInfo("netx", data, "\n".join(lines))


def _sidecar(path: Path, options, card) -> FileInfo:
    from .netx.sidecar import SNN_FORMAT, read_sidecar
    from .safety import check_sidecar

    net = path.with_suffix(".net")
    if net.is_file():
        d = _netx(net, options, card)
        d.data.update(file_kind="sidecar", sidecar=str(path))
        return FileInfo("sidecar", d.data, f"sidecar:    {path}  (of {net})\n{d.text}")
    meta = read_sidecar(net)
    if not meta:
        raise ModelFileError(f"{path}: an empty sidecar")
    check_sidecar(meta, path, SNN_FORMAT)
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    enc = meta.get("encoding") if isinstance(meta.get("encoding"), dict) else {}
    lines = [f"sidecar:    {path}  ({meta.get('format')}; its network {net.name} is not beside it, so there is no "
             f"layer table)"]
    if isinstance(spec.get("sizes"), list):
        lines.append(f"topology:   {'-'.join(map(str, spec['sizes']))}")
    lines.append(f"deployment: T={spec.get('steps', '?')}, encoder {enc.get('kind', '?')}, read-out "
                 f"{spec.get('readout', '?')}")
    return FileInfo("sidecar", {"file_kind": "sidecar", "path": str(path), "network": None, "metadata": meta},
                    "\n".join(lines + _dataset_lines(meta)))


def _ann(path: Path) -> FileInfo:
    from .models.files import load_ann

    t = load_ann(path)
    m = t.metadata
    lines = [f"model:      {t.path}  (ANN target, sha256 {t.sha256[:16]}...)",
             f"topology:   {'-'.join(str(s) for s in t.model.spec.sizes)}", *_dataset_lines(m)]
    return FileInfo("ann", {"file_kind": "ann", "path": str(t.path), "sha256": t.sha256, **m}, "\n".join(lines))


def _evaluator(path: Path) -> FileInfo:
    from .evaluation.classifiers import load_evaluator

    ev = load_evaluator(path)
    m = ev.metadata
    n_params = sum(int(p.numel()) for p in ev.model.parameters())
    shape = "x".join(map(str, ev.input_shape))
    takes = f"spike trains of {shape} inputs (trained with T={ev.steps})" if ev.kind == "snn" else f"{shape} images"
    names = list(ev.classes[:-1] if ev.rejects else ev.classes)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    training = m.get("training") if isinstance(m.get("training"), dict) else {}
    lines = [f"model:      {path}  (evaluation classifier, kind {ev.kind}; {m.get('format', '?')}, sha256 "
             f"{ev.sha256[:16]}...)",
             f"input:      {takes}",
             f"classes:    {plural(len(names), 'class')} ({shown})" + (" and a 'reject' output" if ev.rejects else ""),
             f"parameters: {n_params:,}"]
    if isinstance(training.get("epochs"), int):
        trained = training.get("train_images")
        lines.append(f"training:   {plural(training['epochs'], 'epoch')}"
                     + (f" on {plural(trained, 'image')}" if isinstance(trained, int) else "")
                     + (", augmented" if m.get("augment") else ""))
    data = {"file_kind": "evaluator", "path": str(path), "sha256": ev.sha256, "kind": ev.kind,
            "classes": list(ev.classes), "rejects": ev.rejects, "input_shape": list(ev.input_shape),
            "steps": ev.steps, "parameters": n_params, "metadata": m}
    return FileInfo("evaluator", data, "\n".join(lines + _dataset_lines(m)))


def _recon(path: Path) -> FileInfo:
    from .attacks.recon_file import load_recon

    rec = load_recon(path)
    s = rec.samples
    what = {"spikes": "spike trains", "image": "images", "drive": "graded input drives"}[rec.input_kind]
    size = f"{s.shape[1]} features" + (f" x {s.shape[2]} steps" if s.ndim == 3 else "")
    model, sha = rec.extra.get("model_path") or "?", rec.extra.get("model_sha256") or ""
    lines = [f"reconstructions: {path}  ({rec.attack}, {rec.mode} mode, seed {rec.seed}, {rec.seconds:.1f} s)",
             f"content:    {plural(len(rec.targets), 'reconstruction')}: {what} of {size}"
             + (" with their Bernoulli probabilities" if rec.probabilities is not None else ""),
             f"model:      {model}" + (f"  (sha256 {sha[:16]}...)" if sha else ""),
             f"parameters: {json.dumps(rec.params, sort_keys=True)}"]
    lines += [f"  class {c}: target confidence {conf:.4f} after {plural(int(it), 'iteration')}"
              for c, conf, it in zip(rec.targets, rec.confidence, rec.iterations)]
    data = {"file_kind": "recon", "path": str(path), "attack": rec.attack, "mode": rec.mode, "seed": rec.seed,
            "input_kind": rec.input_kind, "samples_shape": list(s.shape), "targets": rec.targets.tolist(),
            "confidence": rec.confidence.tolist(), "iterations": rec.iterations.tolist(), "params": rec.params,
            "seconds": rec.seconds, "model_path": model, "model_sha256": sha,
            "probabilities": rec.probabilities is not None}
    return FileInfo("recon", data, "\n".join(lines))


def _checkpoint(path: Path) -> FileInfo:
    from .models.checkpoint import read_checkpoint

    ck = read_checkpoint(path)
    n_values = sum(int(a.size) for a in ck.model.values())
    lines = [f"checkpoint: {path}  (training checkpoint; checksum verified)",
             f"progress:   {ck.epoch} of {plural(ck.epochs, 'epoch')} finished; a training of the same model file "
             f"with the same settings and data resumes after epoch {ck.epoch}",
             f"model:      {plural(len(ck.model), 'tensor')}, {n_values:,} values"]
    data = {"file_kind": "checkpoint", "path": str(path), "epoch": ck.epoch, "epochs": ck.epochs,
            "fingerprint": ck.fingerprint, "history": ck.history, "tensors": len(ck.model), "values": n_values}
    return FileInfo("checkpoint", data, "\n".join(lines))


def _card(path: Path) -> FileInfo:
    from .netx.deployment import read_card

    fields = read_card(path)
    stem = path.name[:-len(".card.toml")] if path.name.endswith(".card.toml") else None
    lines = [f"card:       {path}  (deployment card" + (f" of {stem}.net, read when that file is loaded" if stem
                                                       else "; give it with --card") + ")"]
    lines += [f"  {k} = {json.dumps(v)}" for k, v in sorted(fields.items())]
    return FileInfo("card", {"file_kind": "card", "path": str(path), "fields": fields}, "\n".join(lines))


def _prior(path: Path) -> FileInfo:
    from .priors.files import load_prior

    prior = load_prior(path)
    arch, prov, tr = prior.architecture, prior.provenance, prior.training
    n_params = sum(int(p.numel()) for p in prior.decoder.parameters())
    shape = "x".join(map(str, prior.image_shape))
    lines = [f"prior:      {path}  (generative prior, {arch.get('kind', '?')}; sha256 {prior.sha256[:16]}...)",
             f"decoder:    {prior.latent_dim}-dimensional codes -> {shape} images in [0, 1] ({n_params:,} "
             f"parameters; works at {'x'.join(map(str, arch.get('work_shape', [])))}, channels "
             f"{'-'.join(map(str, arch.get('channels', [])))})"]
    if isinstance(prov.get("public_split"), str):
        n = prov.get("images")
        lines.append(f"public:     {prov['public_split']} for {prov.get('dataset', '?')}: "
                     f"{plural(n, 'image') if isinstance(n, int) else '? images'} ({prov.get('source', '?')})")
    if isinstance(prov.get("disjoint_from"), str):
        lines.append(f"never read: {prov['disjoint_from']}")
    if isinstance(tr.get("epochs"), int):
        loss = tr.get("final_loss")
        secs = tr.get("seconds")
        lines.append(f"training:   {plural(tr['epochs'], 'epoch')}"
                     + (f" on {plural(tr['images'], 'image')}" if isinstance(tr.get("images"), int) else "")
                     + (f", final loss {loss:.2f}" if isinstance(loss, (int, float)) else "")
                     + (f", beta {tr['beta']:g}" if isinstance(tr.get("beta"), (int, float)) else "")
                     + (f", {secs:.0f} s" if isinstance(secs, (int, float)) else ""))
    data = {"file_kind": "prior", "path": str(path), "sha256": prior.sha256, "latent_dim": prior.latent_dim,
            "image_shape": list(prior.image_shape), "architecture": arch, "parameters": n_params,
            "provenance": prov, "training": tr}
    return FileInfo("prior", data, "\n".join(lines))
