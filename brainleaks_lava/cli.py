"""The ``brainleaks`` command: thin argument parsing on top of the library.

Every user-caused error (a ``BrainleaksError``, a bad argument, an error of the OS) prints one line on stderr
and exits with status 2; ``--debug`` shows the traceback instead. Ctrl-C prints one line and exits with 130,
SIGTERM with 143. Output paths are checked before a command starts (``safety.check_command_paths``).
Anything else is a bug: one line saying so (exit 1), the traceback with ``--debug``.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
import signal
import sys

from . import __version__
from .errors import BrainleaksError
from . import interrupts
from .interrupts import Terminated, ctrl_c_in_this_process_only
from .safety import (MAX_TIME_STEPS, check_command_paths, check_recon_for_evaluator, check_recon_for_replay,
                     count_bound, count_problem, threads_bound)
from .text import defense_text, plural

log = logging.getLogger("brainleaks_lava")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2), like every other error; a mistyped
    command, option or choice gets the nearest valid one as a suggestion."""

    def error(self, message: str):  # noqa: D102 - argparse API
        msg = " ".join(str(message).split())
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", msg)
        if m:
            msg += _did_you_mean(m.group(1), re.findall(r"'([^']*)'", m.group(2)))
        self.exit(2, f"{self.prog}: error: {msg} (see '{self.prog} --help')\n")

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse API
        # argparse's own parse_args, except that arguments nobody knows are reported by the chosen command's parser
        # (its name and options), with the nearest option as a suggestion
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = [a for a in self._actions if isinstance(a, _Commands)]
            chosen = commands[0].choices.get(getattr(namespace, "command", None)) if commands else None
            parser = chosen or self
            known = [o for p in {self, parser} for a in p._actions for o in a.option_strings]
            unknown = next((e for e in extras if e.startswith("-")), None)
            hint = _did_you_mean(unknown.split("=", 1)[0], known) if unknown else ""
            parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return namespace


def _did_you_mean(word: str, choices) -> str:
    """"; did you mean 'X'?" for the choice nearest to the mistyped ``word`` (difflib), or ""."""
    import difflib

    near = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{near[0]}'?" if near else ""


class _Commands(argparse._SubParsersAction):
    """The subcommands, each of whose options are added when it is chosen (to parse or to show its help), so that
    ``brainleaks --help`` and every other command start without importing what one command's options need."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending: dict = {}  # command name -> its add_arguments(parser), until it is called

    def complete(self, name: str) -> argparse.ArgumentParser:
        p = self.choices[name]
        add = self.pending.pop(name, None)
        if add is not None:
            add(p)
            _finish_command(p)
        return p

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] in self.choices:
            p = self.complete(values[0])
            unknown = _unknown_option(p, values[1:])
            if unknown:  # reported before argparse's "required" message, which a mistyped option often causes
                known = [o for a in (*p._actions, *parser._actions) for o in a.option_strings]
                p.error(f"unrecognized arguments: {unknown}{_did_you_mean(unknown.split('=', 1)[0], known)}")
        super().__call__(parser, namespace, values, option_string)


def _unknown_option(p: argparse.ArgumentParser, args) -> str | None:
    """The first of ``args`` that looks like an option (``--name``, ``-x``; not a value such as -1 or -1,1) and is
    no option of ``p`` nor the prefix of one (argparse accepts unambiguous prefixes), or None."""
    for a in args:
        if a == "--":
            return None
        if not (a.startswith("--") or re.match(r"-[A-Za-z]", a)):
            continue
        name = a.split("=", 1)[0] if a.startswith("--") else a[:2]
        if not any(o.startswith(name) for o in p._option_string_actions):
            return a
    return None


def _finish_command(p: argparse.ArgumentParser) -> None:
    """What every command has: the output options also after the command's name (``brainleaks attack -q ...``),
    and each option's default in its help as "(default: X)" (where the help does not say it already)."""
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress output (as before the command's name)")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show info logs")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logs")
    for a in p._actions:
        if not a.option_strings or a.help == argparse.SUPPRESS:
            continue
        text = a.help or ""
        if re.search(r"\(default\b|\bdefault\)|%\(default\)", text):
            a.help = re.sub(r"\(default (?!:)", "(default: ", text)  # one spelling: "(default: X)"
        elif not (a.default is None or a.default is False or a.default == argparse.SUPPRESS
                  or isinstance(a.default, list)):
            shown = ",".join(map(str, a.default)) if isinstance(a.default, tuple) else str(a.default)
            a.help = (f"{text} " if text else "") + f"(default: {shown.replace('%', '%%')})"


def _int_type(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {v}")
        return v
    parse.__name__ = what  # argparse names the type in some messages
    return parse


positive_int = _int_type(1, "a positive integer")
nonnegative_int = _int_type(0, "an integer >= 0")


def bounded_int(minimum: int, bound, what: str):
    """An argparse type for an integer in ``minimum``..maximum, where ``bound`` is ``(maximum, why)`` or a function
    returning it; the message names the bound (``safety.count_problem``, the check of every count)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text[:40]!r}") from None
        top, why = bound() if callable(bound) else bound
        problem = count_problem(v, top, minimum, why)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return v
    parse.__name__ = what
    return parse


time_steps = bounded_int(1, (MAX_TIME_STEPS, " (time steps per sample)"), "an integer number of time steps")
thread_count = bounded_int(0, threads_bound, "an integer number of threads")
worker_count = bounded_int(1, threads_bound, "an integer number of workers")


def count(name: str, minimum: int = 1):
    """The argparse type of the count ``name``: an integer in ``minimum``..``safety.MAX_COUNTS[name]``."""
    return bounded_int(minimum, count_bound(name), "an integer")


def finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


# --------------------------------------------------------------------------------------------
# subcommands: each is (name, help, add_arguments(parser), run(args) -> int)
# --------------------------------------------------------------------------------------------

def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=["mnist", "att-faces", "nmnist", "dvs-gesture"])
    p.add_argument("--data-root", default=None,
                   help="directory with the dataset files (MNIST: the vendored subset when omitted)")
    p.add_argument("--downsample", type=count("downsample"), default=None,
                   help="integer spatial downsampling factor (default 1; DVS Gesture 4: 128x128 -> 32x32)")
    p.add_argument("--limit", type=count("limit"), default=None,
                   help="at most this many samples per split, round-robin over classes (images: a seeded sample, "
                        "for a quick run)")
    p.add_argument("--classes", type=_class_list, default=None, metavar="LIST",
                   help="only these class indices, relabelled 0..k-1 in the order given: a range 0-19, a list "
                        "0,3,5, or both (0-4,7); e.g. an identity split of att-faces (default: all)")


def _class_list(text: str) -> tuple[int, ...]:
    from .data import parse_class_list
    from .errors import InputError

    try:
        return parse_class_list(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("classes: ")) from None


_class_list.__name__ = "a list of class indices"


def _add_dataset(p: argparse.ArgumentParser) -> None:
    _add_data_options(p)
    p.add_argument("--steps", type=time_steps, default=None, help="event data: time bins per sample")


def _run_dataset(args) -> int:
    from .data import is_event_dataset, load_dataset
    from .data.encoding import dataset_inputs

    events = is_event_dataset(args.dataset)
    for split in ("train", "val"):
        ds = load_dataset(args.dataset, args.data_root, split=split, downsample=args.downsample,
                          time_bins=args.steps if events else None, limit=args.limit, classes=args.classes)
        counts = {int(c): int((ds.labels == c).sum()) for c in sorted(set(ds.labels.tolist()))}
        shape = "x".join(str(v) for v in dataset_inputs(ds).shape[1:])
        kind = "recording" if events else "image"
        print(f"{args.dataset} {split}: {plural(len(ds.labels), kind)} "
              f"{'framed as C x H x W x T =' if events else 'of'} {shape}, "
              f"{plural(len(counts), 'class')}, per class {counts}  [{ds.source}]")
    return 0


def _add_train(p: argparse.ArgumentParser) -> None:
    _add_data_options(p)
    p.add_argument("--arch", required=True, choices=["snn", "snn-conv", "ann"],
                   help="snn: dense CUBA MLP (--hidden); snn-conv: conv 5x5 (8) - pool 2 - conv 5x5 (16) - pool 2 - "
                        "dense CUBA, exported to NetX like the MLP; ann: sigmoid MLP (MI-FACE)")
    p.add_argument("--out", required=True, help="output model file (.net for SNN, .h5 for ANN)")
    p.add_argument("--hidden", type=count("hidden"), default=3000)
    p.add_argument("--epochs", type=count("epochs"), default=10)
    p.add_argument("--steps", type=time_steps, default=None,
                   help="SNN time steps T: of the rate coding (default 25), or the event frames' time bins "
                        "(default: the framing preset's, N-MNIST 100 x 3 ms, DVS Gesture 30 x 50 ms)")
    p.add_argument("--encoding", choices=["rate", "if"], default="rate",
                   help="SNN image encoder: Bernoulli rate coding, or deterministic integrate-and-fire (v += x; a "
                        "spike and v -= 1 when v >= 1); recorded in the sidecar as the deployment's encoder")
    p.add_argument("--batch-size", type=count("batch_size"), default=100)
    p.add_argument("--lr", type=finite_float, default=1e-3)
    p.add_argument("--seed", type=count("seed", 0), default=0)
    p.add_argument("--weight-decay", type=finite_float, default=0.0,
                   help="decoupled (AdamW) weight decay; 0: plain Adam")
    p.add_argument("--threshold", type=finite_float, default=None,
                   help="SNN firing threshold (default 1); weights are initialised in its units, and a larger one "
                        "gives the 8-bit Loihi weights a finer step relative to it")
    p.add_argument("--posterior-scale", type=finite_float, default=None,
                   help="scale inside the SNN posterior's softmax (default: 1 / threshold)")
    p.add_argument("--readout", choices=["membrane", "voltage", "spikes"], default="membrane",
                   help="SNN posterior: time-averaged softmax of the output membrane potential before the reset "
                        "(paper), the same after the reset (voltage), or softmax of spike counts")
    p.add_argument("--tau-grad", type=finite_float, default=None,
                   help="SNN surrogate width (default 0.03); lava-dl multiplies it by 100 x threshold (0.003: 0.3 "
                        "of the threshold, the shipped MNIST target's)")
    p.add_argument("--scale-grad", type=finite_float, default=None, help="SNN surrogate height (default 3)")
    _add_training_run_options(p)


def _add_training_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=thread_count, default=0,
                   help="torch CPU threads (0: torch default; at most 4 per CPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-resume", action="store_true",
                   help="start at epoch 1 even when a checkpoint of an interrupted training with the same settings "
                        "lies beside --out (<out>.ckpt.h5; by default the training resumes after its last "
                        "finished epoch)")


def _check_model_suffix(out: str, suffix: str, what: str) -> None:
    """``--out`` of a training must name the file type the model is written as (InputError otherwise)."""
    from pathlib import Path

    from .errors import InputError

    if Path(out).suffix.lower() != suffix:
        raise InputError(f"--out {out}: {what}; give --out NAME{suffix}")


def _run_train(args) -> int:
    if args.arch == "ann":
        _check_model_suffix(args.out, ".h5", "an ANN target is written as an HDF5 .h5 file (a NetX .net holds SNNs)")
    else:
        _check_model_suffix(args.out, ".net", "an SNN target is written as a NetX .net file (with its .json "
                                              "sidecar)")
    from .models.snn import NeuronConfig
    from .models.targets import TargetRequest, train_target
    from .models.training import TrainConfig

    req = TargetRequest(dataset=args.dataset, arch=args.arch, data_root=args.data_root, hidden=args.hidden,
                        steps=args.steps, downsample=args.downsample, limit=args.limit,
                        posterior_scale=args.posterior_scale,
                        readout=args.readout, encoding=args.encoding, neuron=NeuronConfig.with_overrides(
                            threshold=args.threshold, tau_grad=args.tau_grad, scale_grad=args.scale_grad))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      threads=args.threads, device=args.device, weight_decay=args.weight_decay)
    meta = train_target(req, cfg, args.out, resume=not args.no_resume, classes=args.classes)
    print(f"wrote {args.out}: {args.arch} target, validation accuracy "
          f"{100 * meta['validation_accuracy']:.2f}% on {plural(meta['validation_images'], 'image')}")
    return 0


def _add_train_evaluator(p: argparse.ArgumentParser) -> None:
    _add_data_options(p)
    p.add_argument("--kind", required=True, choices=["ann", "snn", "resnet", "reject"],  # classifiers.KINDS
                   help="ann: the paper's evaluation CNN on images; snn: the same topology of LIF neurons on "
                        "rate-coded images or event frames; resnet: a small residual CNN (32/64/128 channels, batch "
                        "norm, global average pooling); reject: the ann CNN with one more output, 'reject', trained "
                        "on generated junk (noise, blobs, shuffled, constant and two-class mean images)")
    p.add_argument("--out", required=True, help="output evaluator file (.h5)")
    p.add_argument("--epochs", type=count("epochs"), default=5)
    p.add_argument("--steps", type=time_steps, default=None,
                   help="snn: rate-coding time steps (default 25), or the event frames' time bins")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="train on randomly shifted (+-2 px), rotated (+-10 degrees) and scaled (0.9-1.1) images "
                        "(default: on for resnet and reject, off for ann and snn; images only)")
    p.add_argument("--batch-size", type=count("batch_size"), default=100)
    p.add_argument("--lr", type=finite_float, default=1e-3)
    p.add_argument("--seed", type=count("seed", 0), default=0)
    p.add_argument("--weight-decay", type=finite_float, default=0.0,
                   help="decoupled (AdamW) weight decay; 0: plain Adam")
    _add_training_run_options(p)


def _run_train_evaluator(args) -> int:
    _check_model_suffix(args.out, ".h5", "an evaluator is written as an HDF5 .h5 file")
    from .data import is_event_dataset
    from .evaluation.classifiers import train_evaluator
    from .models.training import TrainConfig

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      threads=args.threads, device=args.device, weight_decay=args.weight_decay)
    steps = args.steps if args.steps is not None or is_event_dataset(args.dataset) else 25
    meta = train_evaluator(args.kind, args.dataset, args.data_root, args.out, cfg, steps=steps,
                           downsample=args.downsample, limit=args.limit, resume=not args.no_resume,
                           augment=args.augment, classes=args.classes)
    extras = [what for on, what in ((meta["augment"], "augmented"), (meta["rejects"], "with a reject output")) if on]
    print(f"wrote {args.out}: {args.kind} evaluator{' (' + ', '.join(extras) + ')' if extras else ''}, validation "
          f"accuracy {100 * meta['validation_accuracy']:.2f}% on {plural(meta['validation_images'], 'image')}")
    return 0


def _add_train_prior(p: argparse.ArgumentParser) -> None:
    _add_data_options(p)
    p.add_argument("--public-split", required=True, metavar="SOURCE",
                   help="public data disjoint from the target's training records: mnist-val (MNIST's val split, "
                        "which the targets never train on) or digits (scikit-learn's 8x8 digits upsampled) for "
                        "--dataset mnist; faces-identities:A-B (every image of subjects sA..sB only) for att-faces")
    p.add_argument("--out", required=True, help="output prior file (.h5)")
    p.add_argument("--latent-dim", type=bounded_int(1, (1024, " (latent dimensions)"), "an integer"), default=None,
                   help="size of the latent code (default: 16 for MNIST-size images, 32 for faces)")
    p.add_argument("--epochs", type=count("epochs"), default=None,
                   help="training epochs (default: 100 for MNIST-size images, 400 for faces)")
    p.add_argument("--batch-size", type=count("batch_size"), default=64)
    p.add_argument("--lr", type=finite_float, default=2e-3)
    p.add_argument("--beta", type=finite_float, default=1.0, help="weight of the KL term of the VAE's loss")
    p.add_argument("--shift", type=bounded_int(0, (16, " (pixels)"), "an integer"), default=None,
                   help="augmentation: move each image by up to this many pixels at random (default: 1 for digits, "
                        "2 for faces; measured on held-out public images, it lowers the loss of both)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="augmentation: mirror images left-right at random (default: on for faces, off for digits)")
    p.add_argument("--seed", type=count("seed", 0), default=0)
    p.add_argument("--threads", type=thread_count, default=0,
                   help="torch CPU threads (0: torch default; at most 4 per CPU)")


def _run_train_prior(args) -> int:
    _check_model_suffix(args.out, ".h5", "a prior is written as an HDF5 .h5 file")
    from .errors import InputError

    if args.dataset not in ("mnist", "att-faces"):
        raise InputError(f"--dataset {args.dataset}: a prior is trained for an image dataset (mnist or att-faces)")
    from .priors.public import check_public_split

    check_public_split(args.dataset, args.public_split)  # before any data is read
    from .priors.files import save_prior
    from .priors.public import load_public
    from .priors.vae import train_prior, training_defaults

    public = load_public(args.public_split, args.dataset, args.data_root, downsample=args.downsample,
                         limit=args.limit, classes=args.classes)
    defaults = training_defaults(args.dataset)
    epochs = args.epochs if args.epochs is not None else defaults["epochs"]
    shift = args.shift if args.shift is not None else defaults["shift"]
    flip = args.flip if args.flip is not None else defaults["flip"]
    prior = train_prior(public.images, latent_dim=args.latent_dim, epochs=epochs, batch_size=args.batch_size,
                        lr=args.lr, seed=args.seed, threads=args.threads, beta=args.beta, shift=shift, flip=flip,
                        provenance=public.provenance)
    save_prior(prior, args.out)
    shape = "x".join(map(str, prior.image_shape))
    print(f"wrote {args.out}: VAE prior, {prior.latent_dim}-dimensional codes -> {shape} images; public data "
          f"{args.public_split}: {plural(len(public.images), 'image')} ({public.provenance['source']}); final loss "
          f"{prior.training['final_loss']:.2f} after {plural(epochs, 'epoch')} ({prior.training['seconds']:.0f} s)")
    return 0


def _shape_type(dims: tuple[int, ...], layout: str):
    """An argparse type for a shape of ``dims`` positive integers ("28,28" or "2x34x34")."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            shape = tuple(int(v) for v in text.replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if len(shape) not in dims or min(shape) <= 0:
            raise argparse.ArgumentTypeError(f"must be {layout} of positive integers, got {text!r}")
        return shape
    return parse


_input_shape = _shape_type((1, 3), "N or C,H,W")
_figure_shape = _shape_type((2, 3), "H,W or C,H,W")


def _input_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be LOW,HIGH, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise argparse.ArgumentTypeError(f"must be LOW,HIGH with finite LOW < HIGH, got {text!r}")
    return lo, hi


def _add_deployment(p: argparse.ArgumentParser) -> None:
    """How a NetX file is deployed, for files that have no sidecar (see ``netx.deployment``)."""
    g = p.add_argument_group("deployment (NetX files; default: a card <model>.card.toml, the sidecar, or "
                             "T=25, rate encoder, spike-count read-out)")
    g.add_argument("--steps", type=time_steps, default=None, help="time steps per sample")
    g.add_argument("--encoding", choices=["rate", "if", "graded", "events"], default=None,
                   help="input encoder: Bernoulli rate, deterministic integrate-and-fire, graded input drive, "
                        "event frames")
    g.add_argument("--input-shape", type=_input_shape, default=None, help="N or C,H,W")
    g.add_argument("--readout", choices=["spikes", "membrane", "voltage", "integrator"], default=None,
                   help="output spike counts, output potential before / after the reset, or the voltage of "
                        "a last layer without neurons")
    g.add_argument("--input-range", type=_input_range, default=None, metavar="LOW,HIGH",
                   help="valid values of a graded input drive (default 0,1)")
    g.add_argument("--card", default=None, help="deployment card (TOML) to use instead of <model>.card.toml")


def _deployment_options(args) -> dict:
    return {"steps": args.steps, "encoding": args.encoding, "input_shape": args.input_shape,
            "readout": args.readout, "input_range": args.input_range}


def _device_name(text: str) -> str:
    """--device: its spelling only (no torch import); a GPU this machine lacks is refused when the command runs."""
    from .errors import InputError
    from .models.device import DEVICE_NAMES, check_device_name

    try:
        return check_device_name(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(DEVICE_NAMES)}, got {text[:40]!r}") from None


def _add_device(p: argparse.ArgumentParser) -> None:
    """--device of the commands that run the twin, the attacks or the evaluators (``models.device``)."""
    from .models.device import DEVICE_HELP

    p.add_argument("--device", type=_device_name, default="cpu", metavar="cpu|auto|cuda|cuda:N", help=DEVICE_HELP)


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="FILE",
                   help="any file brainleaks reads or writes: a .net NetX network or its .json sidecar, an ANN target, "
                        "evaluator, reconstruction, checkpoint or prior .h5, a deployment card .toml")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    _add_deployment(p)


def _run_info(args) -> int:
    import json

    from .info import describe_file

    d = describe_file(args.model, options=_deployment_options(args), card=args.card)
    print(json.dumps(d.data, indent=2, sort_keys=True, default=str) if args.json else d.text)
    return 0


MAX_QUERIES = 10_000_000  # --queries (attacks.query_only.MAX_QUERIES; not imported: --help starts without torch)


def _add_attack(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="target: .net SNN (bl1, bl2) or ANN .h5 (miface)")
    p.add_argument("--method", required=True, choices=["bl1", "bl2", "miface", "blenc", "nes", "label", "gen"],
                   help="bl1, bl2: the paper's BrainLeaks; miface: the ANN baseline; blenc: encoder-aware "
                        "inversion (docs/attacks.md, 'BL-enc'); nes, label: query-only attacks that see the "
                        "deployed network only through its answers (score-based NES; label-only boundary search); "
                        "gen: BL-enc's search in the latent space of a generative prior (--prior)")
    p.add_argument("--mode", default="paper", choices=["paper", "reference"],
                   help="paper: the paper's algorithm; reference: the published code's variant and defaults")
    p.add_argument("--classes", type=count("classes", 0), nargs="+", default=None, help="target classes (default: all)")
    p.add_argument("--iterations", type=count("iterations"), default=None, help="iterations (MI-FACE: maximum iterations)")
    p.add_argument("--population", type=count("population"), default=None, help="BL-v2 population size K")
    p.add_argument("--lr", type=finite_float, default=None, help="BL-v2 / MI-FACE learning rate")
    p.add_argument("--eta", type=finite_float, default=None, help="BL-v1 quantization threshold (paper mode)")
    p.add_argument("--xi", type=finite_float, default=None, help="BL-v2 sparsity penalty strength")
    p.add_argument("--stop-confidence", type=finite_float, default=None,
                   help="stop a class at this target confidence (default: BL-v1 paper mode 0.99, otherwise none)")
    p.add_argument("--no-stop", action="store_true", help="run all iterations (no confidence stop)")
    p.add_argument("--queries", type=bounded_int(1, (MAX_QUERIES, " (queries)"), "an integer"), default=None,
                   help="nes, label: the query budget (queries answered by the deployed network, in all)")
    p.add_argument("--exposes", choices=["counts", "posterior", "label"], default=None,
                   help="nes, label: what the deployment answers a query with (default: nes posterior, label label)")
    p.add_argument("--prior", default=None, metavar="FILE.h5",
                   help="gen: the generative prior whose latent space is searched (brainleaks train-prior)")
    p.add_argument("--starts", type=count("starts"), default=None, help="gen: latent starts per class (default 8)")
    p.add_argument("--select-shifts", type=count("select_shifts"), default=None,
                   help="gen: among starts within 0.001 of a class's best confidence, keep the one the target is most "
                        "confident of over this many copies of its image, the image and copies shifted by up to 2 "
                        "pixels (default 8; 1: the image only)")
    p.add_argument("--seed", type=count("seed", 0), default=0)
    p.add_argument("--threads", type=thread_count, default=0,
                   help="torch CPU threads (0: torch default; at most 4 per CPU)")
    p.add_argument("--out", required=True, help="output reconstruction file (.h5)")
    _add_device(p)
    _add_deployment(p)
    d = p.add_argument_group("query-time defense (SNN targets; what the deployment does to every query it answers)")
    d.add_argument("--round-posterior", type=finite_float, default=None, metavar="Q",
                   help="round each class probability to a multiple of Q, in (0, 1]")
    d.add_argument("--clip-counts", type=count("clip_counts"), default=None, metavar="C",
                   help="cap each output neuron's spike count at C (spike-count read-outs)")
    d.add_argument("--input-flip", type=finite_float, default=None, metavar="P",
                   help="flip each input spike with probability P, in [0, 0.5]")
    d.add_argument("--straight-through", action="store_true",
                   help="gradient attacks pass gradients through the rounding and clipping (an attacker who "
                        "knows the defense)")


def _run_attack(args) -> int:
    from .errors import InputError
    from .attacks.recon_file import save_recon
    from .models.files import load_target
    from .models.training import apply_threads

    if args.prior is not None and args.method != "gen":
        raise InputError(f"--prior applies to --method gen (the latent search of a generative prior), not to "
                         f"{args.method}")
    if args.method == "gen" and args.prior is None:
        raise InputError("--method gen needs --prior FILE.h5: the generative prior whose latent space it searches "
                         "(brainleaks train-prior)")
    apply_threads(args.threads)
    target = load_target(args.model, options=_deployment_options(args), card=args.card, device=args.device)
    overrides = {}
    if args.iterations is not None:
        overrides["iterations"] = args.iterations  # MI-FACE's at most, as in a run config
    for name in ("population", "lr", "eta", "xi", "stop_confidence", "queries", "exposes", "starts", "select_shifts"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.no_stop:
        if args.method == "miface":
            raise InputError("--no-stop applies to bl1 and bl2 (MI-FACE has its own stopping rules)")
        overrides["stop_confidence"] = None
    _check_overrides(args.method, overrides)
    defense = {k: getattr(args, k) for k in ("round_posterior", "clip_counts", "input_flip")
               if getattr(args, k) is not None}
    if args.straight_through:
        if args.method in ("nes", "label"):
            raise InputError("--straight-through is a gradient attacker's knowledge of the defense; nes and label "
                             "only query the deployment")
        defense["straight_through"] = True
    if args.prior is not None:
        overrides["prior"] = args.prior
    from .api import attack

    result = attack(target, args.method, mode=args.mode, classes=args.classes, seed=args.seed,
                    defense=defense or None, **overrides)
    save_recon(result, args.out, model_path=str(args.model), model_sha256=target.sha256)
    print(f"wrote {args.out}: {args.method} ({args.mode}) on {args.model}, {plural(len(result.targets), 'class')}, "
          f"{result.seconds:.1f} s")
    for c, conf, it in zip(result.targets, result.confidence, result.iterations):
        print(f"  class {c}: target confidence {conf:.4f} after {plural(int(it), 'iteration')}")
    if "queries" in result.extra:
        print(f"  {plural(int(result.extra['queries']), 'query', 'queries')} answered ({args.method}, the deployment "
              f"exposes {result.extra['oracle']['exposes']}{defense_text(result.extra['oracle'])})")
    elif "defense" in result.extra:
        print(f"  against the deployment's defense{defense_text(result.extra['defense'])}")
    if "prior" in result.extra:
        from .attacks.generative import prior_text

        print(f"  prior {prior_text(result.extra['prior'])}")
    return 0


def _check_overrides(method: str, overrides: dict) -> None:
    """Refuse options that the chosen attack has no parameter for (naming the option)."""
    import dataclasses

    from .attacks import ATTACKS
    from .errors import InputError

    fields = {f.name for f in dataclasses.fields(ATTACKS[method].params_class)} - {"mode"}
    flags = {"iterations": "--iterations", "population": "--population",
             "lr": "--lr", "eta": "--eta", "xi": "--xi", "stop_confidence": "--stop-confidence",
             "queries": "--queries", "exposes": "--exposes", "starts": "--starts",
             "select_shifts": "--select-shifts"}
    for name in overrides:
        if name not in fields:
            valid = sorted({flags[f] for f in fields if f in flags})
            raise InputError(f"--{name.replace('_', '-')} does not apply to {method} "
                             f"(its options: {', '.join(valid)})")


def _add_replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the NetX .net file to run on Lava's fixed-point simulator")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--recon", help="reconstruction file written by 'brainleaks attack'")
    src.add_argument("--random", type=count("random"), default=None, metavar="N",
                     help="replay N seeded random inputs instead (0/1 spikes of rate 0.3; graded drives uniform "
                          "in the input range)")
    p.add_argument("--twin", default=None, help="model file of the twin to compare with (default: --model)")
    p.add_argument("--draws", type=count("draws"), default=20, help="spike-train draws per BL-v2 reconstruction")
    p.add_argument("--seed", type=count("seed", 0), default=0, help="seed of the draws")
    p.add_argument("--per-sample", action="store_true", help="one Lava run per sample instead of streaming")

    def workers(text: str):
        if text == "auto":
            return None
        try:
            positive_int(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', got {text[:40]!r}") from None
        return worker_count(text)
    p.add_argument("--workers", type=workers, default=None, metavar="N",
                   help="Lava runtimes run in parallel, each in a process of its own on its share of the samples "
                        "(default: auto, min(2, CPUs, one per 10 streamed samples)); the result does not depend on it")
    p.add_argument("--json", default=None, help="write the equivalence report as JSON")
    _add_device(p)
    _add_deployment(p)


def _run_replay(args) -> int:
    import numpy as np

    from .attacks.recon_file import load_recon, recon_draws
    from .errors import InputError
    from .fileio import write_json_atomic
    from .hardware.equivalence import check_equivalence
    from .models.files import load_snn

    options = _deployment_options(args)
    target = load_snn(args.twin or args.model, options=options, card=args.card, device=args.device)
    model = target.model
    for note in [n for layer in model.net.layers for n in layer.notes]:
        print(f"note: {args.twin or args.model}: {note}", file=sys.stderr)
    if args.random:
        import torch
        g = torch.Generator().manual_seed(args.seed)
        x = torch.rand(args.random, model.num_inputs, model.spec.steps, generator=g)
        lo, hi = model.deployment.input_range
        spikes = (lo + (hi - lo) * x if model.graded else (x < 0.3).float()).numpy()
        targets, what, r, n_draws = None, f"{args.random} random inputs (seed {args.seed})", args.random, 1
    else:
        rec = load_recon(args.recon)
        if rec.input_kind == "image":
            raise InputError(f"{args.recon}: holds images ({rec.attack}); only spiking reconstructions can be replayed")
        if rec.input_kind == "drive" and not model.graded:
            raise InputError(f"{args.recon}: holds graded input drives, but {args.twin or args.model} is deployed "
                             f"with the '{model.deployment.encoding}' encoder (give --encoding graded)")
        check_recon_for_replay(rec, args.recon, [args.model, args.twin], args.draws, options, args.card)
        if rec.samples.shape[1] != model.num_inputs:
            raise InputError(f"{args.recon} does not fit {args.twin or args.model}: {rec.samples.shape[1]} "
                             f"features but the model takes {model.num_inputs} inputs")
        if rec.targets.size and (rec.targets.min() < 0 or rec.targets.max() >= model.num_classes):
            raise InputError(f"{args.recon}: targets outside the model's {model.num_classes} classes")
        d = recon_draws(rec, args.draws, args.seed)
        n_draws, r = d.shape[:2]
        spikes = d.reshape(n_draws * r, *d.shape[2:])
        targets = np.tile(rec.targets, n_draws)
        kind = "graded drive" if rec.input_kind == "drive" else "spike train"
        what = (f"{plural(len(spikes), kind)} ({plural(r, 'reconstruction')} x {plural(n_draws, 'draw')}) of "
                f"{args.recon}")
    report = check_equivalence(args.model, spikes, targets, twin_path=args.twin,
                               mode="per-sample" if args.per_sample else "stream", options=options, card=args.card,
                               twin=target, workers=args.workers)
    print(f"replayed {what} on Lava fixed_pt ({report.mode}, {report.seconds:.1f} s); every layer compared "
          f"({plural(report.layers, 'layer')}, steps >= {model.settle} of each sample)")
    print(f"agreement with the twin: {100 * report.agreement:.2f}% "
          f"({len(spikes) - len(report.mismatches)}/{len(spikes)} identical spike for spike)")
    if targets is not None:
        conf_t = np.array([s.twin_confidence for s in report.samples])
        conf_l = np.array([s.lava_confidence for s in report.samples])
        print(f"mean target confidence: twin {conf_t.mean():.4f}, Lava {conf_l.mean():.4f}")
        for c in sorted(set(targets.tolist())):
            sel = targets == c
            print(f"  class {c}: twin {conf_t[sel].mean():.4f}  Lava {conf_l[sel].mean():.4f}  "
                  f"identical {int(sum(s.equal for s, m in zip(report.samples, sel) if m))}/{int(sel.sum())}")
    queries = None
    if not args.random and rec.query_sample is not None:
        from .hardware.equivalence import check_query_sample

        queries = check_query_sample(args.model, rec.query_sample, rec.extra.get("oracle"), target,
                                     twin_path=args.twin, mode="per-sample" if args.per_sample else "stream",
                                     workers=args.workers)
        q = queries.to_dict()
        print(f"oracle queries (a seeded sample the attack's oracle answered): {q['same_answer']}/{q['queries']} "
              f"answered the same from Lava's read-out ({rec.extra['oracle']['exposes']}"
              f"{defense_text(rec.extra['oracle'])}), {100 * q['spike_agreement']:.2f}% identical spike for "
              f"spike")
    if args.json:
        write_json_atomic(args.json, {"recon": None if args.random else str(args.recon), "draws": n_draws,
                                      **report.to_dict(), **({"oracle_queries": queries.to_dict()} if queries else {})})
    if queries is not None and queries.agreement < 1.0:
        print(f"oracle queries answered differently on Lava: {queries.to_dict()['differing_queries']}", file=sys.stderr)
        return 1
    if report.mismatches:
        print("mismatching samples (index: target, first differing layer/neuron/step):", file=sys.stderr)
        for s in report.mismatches:
            where = "output voltage" if s.first_diff is None else \
                f"layer {s.layer} neuron {s.first_diff[0]} step {s.first_diff[1]}"
            print(f"  {s.index}: class {s.target}, {where}", file=sys.stderr)
        return 1
    return 0


def _contrast(text: str):
    """--contrast: none, standardise (standardize) or MEAN,STD (checked by resolve_contrast)."""
    if text in ("none", "standardise", "standardize"):
        return text
    from .errors import InputError
    from .evaluation.score import contrast_pair  # imports torch: only for MEAN,STD

    try:
        return contrast_pair(text.split(","))
    except InputError:
        raise argparse.ArgumentTypeError(f"must be none, standardise or MEAN,STD with 0 <= MEAN <= 1 and "
                                         f"0 < STD <= 1, got {text!r}") from None


def _add_contrast(p: argparse.ArgumentParser) -> None:
    p.add_argument("--contrast", type=_contrast, default="none", metavar="none|standardise|MEAN,STD",
                   help="score each reconstruction's image standardised to the grey level of the evaluator's "
                        "training images (standardise) or to MEAN,STD, rather than as it is (none, default)")


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recon", required=True, help="reconstruction file written by 'brainleaks attack'")
    p.add_argument("--evaluator", required=True, help="evaluation classifier (.h5)")
    p.add_argument("--draws", type=count("draws"), default=20, help="Bernoulli draws per BL-v2 reconstruction")
    p.add_argument("--seed", type=count("seed", 0), default=0, help="seed of the draws")
    p.add_argument("--json", default=None, help="write the metrics as JSON")
    _add_contrast(p)
    _add_device(p)


def _run_evaluate(args) -> int:
    from .attacks.recon_file import load_recon
    from .evaluation.classifiers import load_evaluator
    from .evaluation.metrics import format_paper_table
    from .evaluation.score import evaluate_result, format_per_class
    from .fileio import write_json_atomic

    from .errors import InputError

    rec = load_recon(args.recon)
    ev = load_evaluator(args.evaluator, device=args.device)
    if rec.samples.shape[1] != ev.num_features:
        raise InputError(f"{args.recon}: reconstructions have {rec.samples.shape[1]} input features but the "
                         f"evaluator {args.evaluator} takes {ev.num_features} "
                         f"({'x'.join(str(s) for s in ev.input_shape)} images)")
    check_recon_for_evaluator(rec, args.recon, ev, args.evaluator, args.draws)
    try:
        res = evaluate_result(rec, ev, draws=args.draws, seed=args.seed, contrast=args.contrast)
    except InputError as e:
        raise InputError(f"{args.recon} cannot be scored by {args.evaluator}: {e}") from e
    n = res.summary["n_draws"]
    print(f"{res.label} on {rec.extra.get('model_path') or '?'}: {plural(len(rec.targets), 'reconstruction')}, "
          f"{plural(n, 'draw')}, scored by {args.evaluator} ({ev.kind} evaluator)"
          + (f"; images standardised to grey mean {res.extra['contrast']['mean']:.3f}, std "
             f"{res.extra['contrast']['std']:.3f}" if res.extra.get("contrast") else "") + "\n")
    print(format_paper_table({res.label: res.summary}))
    print(format_per_class(res, ev.classes))
    if args.json:
        write_json_atomic(args.json, {"recon": str(args.recon), "evaluator": str(args.evaluator), **res.to_dict()})
    return 0


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment config (TOML), e.g. experiments/mnist.toml")
    p.add_argument("--out", default=None, help="run directory (default: runs/<experiment name>)")
    p.add_argument("--force", action="store_true",
                   help="run every stage again (a training interrupted with the same settings and data still "
                        "resumes from its checkpoint: the result is the same); it removes nothing, and --out must "
                        "be new, empty or a run directory of brainleaks")


def _run_run(args) -> int:
    from .report.runner import run_experiment

    report = run_experiment(args.config, args.out, force=args.force)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="run directory")
    p.add_argument("--force", action="store_true",
                   help="run every stage again (--out must be new, empty or a run directory of brainleaks)")


def _run_demo(args) -> int:
    from .report.runner import demo_config, run_experiment

    report = run_experiment(demo_config(), args.out, force=args.force)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def _add_plot(p: argparse.ArgumentParser) -> None:
    p.add_argument("recon", help="reconstruction file written by 'brainleaks attack' or 'brainleaks audit'")
    p.add_argument("--out", default=None,
                   help="FILE.png (still grid) or FILE.gif (animation over the time steps); default: both, "
                        "beside the reconstruction file (the PNG only for images)")
    p.add_argument("--data-root", default=None, help="dataset directory: show a real example of each class")
    p.add_argument("--dataset", default=None, choices=["mnist", "att-faces", "nmnist", "dvs-gesture"],
                   help="dataset of --data-root (default: the one the model's sidecar names)")
    p.add_argument("--input-shape", type=_figure_shape, default=None, metavar="H,W|C,H,W",
                   help="layout of a sample (default: the model's sidecar, or a square image)")


def _run_plot(args) -> int:
    from .report.plot import plot_recon

    for path in plot_recon(args.recon, args.out, data_root=args.data_root, dataset=args.dataset,
                           input_shape=args.input_shape):
        print(f"wrote {path}")
    return 0


def _add_audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the model to audit: a .net NetX SNN (anyone's) or a brainleaks ANN .h5")
    p.add_argument("--evaluator", required=True,
                   help="evaluation classifier (.h5) that selects each class's most convincing reconstruction")
    p.add_argument("--judge", action="append", default=None, metavar="FILE",
                   help="an independent evaluator (.h5) that only reports: it scores every attack and the selected "
                        "reconstructions; the report leads with its figures (repeat for several judges)")
    p.add_argument("--data-root", default=None,
                   help="training data: find each reconstruction's nearest training image (SSIM); when the model's "
                        "sidecar names its dataset and training-set size (or with --dataset), split 'train' are the "
                        "members and 'val' the non-members of the member-level tests")
    p.add_argument("--dataset", default=None, choices=["mnist", "att-faces"],
                   help="dataset of --data-root (default: the one the model's sidecar names)")
    p.add_argument("--members", default=None, metavar="FILE.npz",
                   help="the target's training images for the member-level tests: arrays 'images' (N, H, W; uint8 or "
                        "floats in [0, 1]) and 'labels' (N,); with --non-members")
    p.add_argument("--non-members", default=None, metavar="FILE.npz",
                   help="images of the same classes the target never saw (same arrays); with --members")
    p.add_argument("--prior", default=None, metavar="FILE.h5",
                   help="a generative prior (brainleaks train-prior): adds the latent search gen to the SNN portfolio; "
                        "the report names the public data it was trained on")
    p.add_argument("--attacks", default=None, metavar="NAME,...",
                   help="run only these attacks of the portfolio, e.g. bl2,gen (default: all; names as in the "
                        "report: bl2, gen, blenc, blenc-prob, blenc-tv0.3, blenc-init0.3, blenc-sparsity0, "
                        "blenc-seed1, blenc-prob-seed1; miface for an ANN)")

    def member_bound():
        from .audit import MAX_MEMBER_IMAGES

        return MAX_MEMBER_IMAGES, " (images per class)"

    p.add_argument("--member-limit", type=bounded_int(4, member_bound, "an integer"), default=None,
                   help="members and non-members per class the member-level tests use, a seeded sample (default "
                        "200)")
    p.add_argument("--out", default=None, help="report directory (default: audit-<model stem>)")
    p.add_argument("--budget", type=finite_float, default=600.0,
                   help="seconds: attacks of the portfolio start only while the budget lasts (default 600)")
    p.add_argument("--draws", type=count("draws"), default=20, help="evaluator draws per Bernoulli reconstruction")
    p.add_argument("--replay-draws", type=count("replay_draws"), default=2,
                   help="draws of each winning reconstruction replayed on Lava")
    p.add_argument("--no-replay", action="store_true", help="skip the Lava replay of the winners")
    _add_contrast(p)
    p.add_argument("--classes", type=count("classes", 0), nargs="+", default=None, help="classes (default: all)")
    p.add_argument("--seed", type=count("seed", 0), default=0)
    p.add_argument("--threads", type=thread_count, default=0,
                   help="torch CPU threads (0: torch default; at most 4 per CPU)")
    p.add_argument("--force", action="store_true",
                   help="replace a report directory an earlier audit wrote (never a directory holding anything "
                        "else)")
    _add_device(p)
    _add_deployment(p)


def _run_audit(args) -> int:
    from pathlib import Path

    from .audit import run_audit
    from .models.training import apply_threads

    if args.data_root is not None and args.dataset is None:
        from .info import named_dataset

        if named_dataset(args.model) is None:  # said now, not only in the report at the end
            print(f"brainleaks audit: note: {args.model} does not name the dataset it was trained on, so --data-root "
                  f"is not used (no nearest training images; member-level tests only with --members): give --dataset "
                  f"with it", file=sys.stderr)
    apply_threads(args.threads)
    out = Path(args.out) if args.out else Path(f"audit-{Path(args.model).stem}")
    extra = {} if args.member_limit is None else {"member_limit": args.member_limit}
    run_audit(args.model, args.evaluator, out, options=_deployment_options(args), card=args.card,
              data_root=args.data_root, dataset=args.dataset, budget=args.budget, draws=args.draws,
              seed=args.seed, replay_draws=args.replay_draws, replay=not args.no_replay,
              classes=args.classes, force=args.force, contrast=args.contrast, judges=args.judge or (),
              members=args.members, non_members=args.non_members, device=args.device, prior=args.prior,
              attacks=args.attacks, **extra)
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.md'}")
    return 0


def _add_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study config (TOML), e.g. experiments/sweep_ci.toml")
    p.add_argument("--out", default=None, help="sweep directory (default: runs/<study name>)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this machine (a process pool with --workers > 1); ray: every target and cell a Ray "
                        "task")
    p.add_argument("--workers", type=worker_count, default=1,
                   help="parallel units (local pool size; CPUs of a Ray runtime started here) (default 1)")
    p.add_argument("--address", default=None,
                   help="an existing Ray cluster to join (ray://HOST:10001 or HOST:6379); with --engine ray")
    p.add_argument("--max-cells", type=bounded_int(1, _cells_bound, "an integer"), default=None,
                   help="run at most N of the missing cells, then write the tables (the next call runs the rest)")


def _cells_bound() -> tuple[int, str]:
    from .sweep.config import MAX_CELLS

    return MAX_CELLS, " (cells of a study)"


def _run_sweep(args) -> int:
    from .errors import InputError
    from .sweep import run_sweep

    if args.address and args.engine != "ray":
        raise InputError("--address joins a Ray cluster: use it with --engine ray")
    summary = run_sweep(args.study, args.out, engine=args.engine, workers=args.workers, address=args.address,
                        max_cells=args.max_cells)
    from pathlib import Path

    print(Path(summary["report"]).read_text())
    print(f"report: {summary['report']}")
    return 0


def _run_mia(args) -> int:
    report = _privacy_command().mia_command(args)
    print(report.read_text())
    print(f"report: {report}")
    return 0


COMMANDS = {
    "dataset": ("check a dataset directory and print its splits", _add_dataset, _run_dataset),
    "train": ("train an SNN or ANN target and write its model file", _add_train, _run_train),
    "train-evaluator": ("train an evaluation classifier (the paper's CNN, ANN or spiking) and write it (.h5)",
                        _add_train_evaluator, _run_train_evaluator),
    "train-prior": ("train a generative prior (a VAE) on public data disjoint from the target's training records "
                    "and write it (.h5)", _add_train_prior, _run_train_prior),
    "info": ("describe a file brainleaks reads or writes: model, sidecar, evaluator, reconstruction, checkpoint, "
             "card, prior", _add_info, _run_info),
    "attack": ("run a model-inversion attack and write the reconstructions (.h5)", _add_attack, _run_attack),
    "evaluate": ("score reconstructions with an evaluation classifier (paper metrics)", _add_evaluate, _run_evaluate),
    "run": ("run an experiment config: train, attack, evaluate, replay, report (resumable)", _add_run, _run_run),
    "demo": ("run experiments/demo.toml: the shipped MNIST targets, offline", _add_demo, _run_demo),
    "replay": ("replay reconstructions on Lava's fixed-point simulator and compare with the twin", _add_replay, _run_replay),
    "plot": ("draw a reconstruction file: PNG grid (rate-decoded) and GIF of the frames", _add_plot, _run_plot),
    "audit": ("does a deployed model leak? a portfolio of attacks, the per-class worst case, Lava replay", _add_audit,
              _run_audit),
    "sweep": ("a grid of deployment choices and defenses: every cell trained, attacked, scored, replayed (resumable; "
              "local or Ray)", _add_sweep, _run_sweep),
    "mia": ("membership inference: does the deployed model reveal which records it trained on? (LiRA with shadow "
            "models, loss; twin and Lava)", lambda p: _privacy_command().add_mia(p),
            _run_mia),
}


def _privacy_command():
    from .privacy import command

    return command


def _version_text() -> str:
    """brainleaks-lava's version and those of lava-nc, lava-dl and torch (read from the installed packages'
    metadata, without importing them)."""
    from importlib import metadata

    parts = []
    for dist in ("lava-nc", "lava-dl", "torch"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} not installed")
    return f"brainleaks-lava {__version__} ({', '.join(parts)})"


class _VersionAction(argparse.Action):
    """--version: computed only when asked for."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version_text())
        parser.exit(0)


def build_parser(complete: bool = False) -> argparse.ArgumentParser:
    """The ``brainleaks`` parser. A command's options are added when it is chosen (``complete``: all at once)."""
    parser = _Parser(
        prog="brainleaks",
        description="Model-inversion attacks on lava-dl SNNs, replayed bit-exactly on Lava's fixed-point simulator.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="print the versions of brainleaks-lava and of the packages that decide bit-exactness")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress output (bars on a terminal, plain lines every 10 s elsewhere)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show info logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", action=_Commands)
    for name, (help_, add, _run) in COMMANDS.items():
        sub.add_parser(name, help=help_, description=help_)
        sub.pending[name] = add
        if complete:
            sub.complete(name)
    return parser


def _print_any_character(stream) -> None:
    """Make ``stream`` (stdout, stderr) unable to fail on a character: one it cannot encode (``±`` under an ASCII
    locale) is written as a backslash escape, and a file name's undecodable bytes (argv's surrogate escapes) as
    those bytes, so that the name printed is the name on disk."""
    import codecs

    def handler(e):
        if not isinstance(e, UnicodeEncodeError):
            raise e
        return b"".join(bytes([ord(c) - 0xDC00]) if 0xDC80 <= ord(c) <= 0xDCFF
                        else c.encode("ascii", "backslashreplace") for c in e.object[e.start:e.end]), e.end

    codecs.register_error("brainleaks.print", handler)
    try:
        stream.reconfigure(errors="brainleaks.print")
    except (AttributeError, ValueError, OSError):  # not a text stream of io's (a test's capture, a closed stream)
        pass


def main(argv: list[str] | None = None) -> int:
    _print_any_character(sys.stdout)
    _print_any_character(sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad argument (one line printed, status 2), or --help / --version (0)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.command is None:
        parser.print_help()
        return 2
    from .progress import set_quiet

    set_quiet(args.quiet)
    level = logging.DEBUG if args.debug else (logging.INFO if args.verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    run = COMMANDS[args.command][2]
    sys.unraisablehook = _log_unraisable
    interrupts.exit_if_stuck(args.command)
    # Lava's shared memory is released by multiprocessing's resource tracker (a process of its own) if Lava
    # could not stop cleanly (an interrupt while it starts); its warning about that is not for the user.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
    try:
        return _run_guarded(args, run)
    except Exception:
        if interrupts.received is None or args.debug:
            raise
        # the interrupt broke something on its way out (e.g. Lava's stop() of a runtime still starting): still
        # an interruption, not an error
        return _interrupted(args.command, interrupts.received)


def _end_progress_bars() -> None:
    """Close the progress bars an exception left open (interrupted inside one), so that they clear their line
    (all the toolkit's bars are ``leave=False``) and the one-line message starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close is only cosmetic
            pass


def _interrupted(command: str, signum: int) -> int:
    interrupts.reported = True
    _end_progress_bars()
    if signum == signal.SIGTERM:
        print(f"brainleaks {command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    print(f"brainleaks {command}: interrupted", file=sys.stderr)
    return 130


def _run_guarded(args, run) -> int:
    try:
        with ctrl_c_in_this_process_only():
            check_command_paths(args.command, args)
            return int(run(args) or 0)
    except BrainleaksError as e:
        if args.debug:
            raise
        if interrupts.received is not None:
            return _interrupted(args.command, interrupts.received)
        msg = " ".join(str(e).split())
        print(f"brainleaks {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:  # the OS refused something the checks could not foresee
        if args.debug:
            raise
        if interrupts.received is not None:
            return _interrupted(args.command, interrupts.received)
        print(f"brainleaks {args.command}: error: {_os_error_line(e)}", file=sys.stderr)
        return 2
    except Terminated:
        return _interrupted(args.command, signal.SIGTERM)
    except KeyboardInterrupt:
        return _interrupted(args.command, signal.SIGINT)
    except Exception as e:  # a bug: one line, the traceback with --debug
        if args.debug or interrupts.received is not None:
            raise
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        print(f"brainleaks {args.command}: internal error ({msg[:300]}); please report it with the traceback "
              f"that 'brainleaks --debug {args.command} ...' prints", file=sys.stderr)
        return 1


def _log_unraisable(unraisable) -> None:
    """Errors in finalizers (h5py closing a file the disk refused) are reported by the write that failed;
    their tracebacks go to the debug log, not the terminal."""
    log.debug("ignored in %r: %s: %s", unraisable.object, unraisable.exc_type.__name__, unraisable.exc_value)


def _os_error_line(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "out of memory (the inputs are larger than this machine can hold)"
    names = " -> ".join(str(n) for n in (e.filename, e.filename2) if n is not None)
    reason = e.strerror or str(e)
    return f"{names}: {reason}" if names else " ".join(reason.split())


def entry() -> None:
    """The ``brainleaks`` console script: ``main()``, then exit. After an interrupt the process ends at once
    (:func:`interrupts.finish`): the exit handlers of ``multiprocessing`` would join Lava workers that an
    interrupted start-up left waiting forever."""
    code = main()
    if interrupts.received is not None:
        interrupts.finish(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
