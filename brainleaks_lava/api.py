"""The top-level Python API: the CLI's steps as functions.

>>> from brainleaks_lava import load_target, attack, evaluate, replay, audit
>>> target = load_target("netx_models/mnist_snn.net")
>>> result = attack(target, "bl2", classes=[0, 1], seed=0)
>>> scores = evaluate(result, "netx_models/mnist_eval_snn.h5", draws=20)
>>> report = replay(target, result, draws=2)
"""
from __future__ import annotations

from pathlib import Path


def load_target(path, *, steps=None, encoding=None, input_shape=None, readout=None, input_range=None, card=None):
    """A model file as an attack target: a NetX ``.net`` SNN (anyone's; the deployment from these keywords,
    a card, the sidecar or defaults) or a brainleaks ANN ``.h5``."""
    from .models.files import load_target as _load

    options = {"steps": steps, "encoding": encoding, "input_shape": input_shape, "readout": readout,
               "input_range": input_range}
    return _load(path, options=options, card=card)


def attack(target, method: str = "bl2", *, mode: str = "paper", classes=None, seed: int = 0,
           progress: bool = True, **params):
    """Run ``method`` ("bl1", "bl2", "blenc" on SNNs; "miface" on ANNs) against ``target`` (a loaded target or
    a model path) and return the ``AttackResult``; ``params`` override the attack's defaults."""
    from .attacks import adapter_for, make_attack

    if isinstance(target, (str, Path)):
        target = load_target(target)
    return make_attack(method, adapter_for(target), mode=mode, **params).invert(classes=classes, seed=seed,
                                                                                  progress=progress)


def evaluate(result, evaluator, *, draws: int = 20, seed: int = 0, contrast=None):
    """The paper's four metrics of ``result`` under ``evaluator`` (a loaded evaluator or its path).

    ``contrast``: None (scored as they are), ``"standardise"`` (each reconstruction's image standardised to the
    grey level of the evaluator's training images) or a (mean, std) pair; see ``evaluation.score``."""
    from .evaluation.classifiers import load_evaluator
    from .evaluation.score import evaluate_result

    if isinstance(evaluator, (str, Path)):
        evaluator = load_evaluator(evaluator)
    return evaluate_result(result, evaluator, draws=draws, seed=seed, contrast=contrast)


def replay(target, inputs, *, targets=None, draws: int = 1, seed: int = 0, mode: str = "stream",
           progress: bool = True, workers: int | None = None):
    """Replay on Lava fixed_pt and compare every layer with the twin: ``inputs`` is an ``AttackResult``
    (``draws`` seeded draws of Bernoulli reconstructions) or an (N, features, T) array. ``target`` is a
    loaded SNN target or a ``.net`` path. ``workers``: Lava runtimes run in parallel (None: automatic, at
    most 2; the result does not depend on it). Returns the ``EquivalenceReport``."""
    import numpy as np

    from .attacks.base import AttackResult
    from .attacks.recon_file import recon_draws
    from .hardware.equivalence import check_equivalence

    if isinstance(target, (str, Path)):
        target = load_target(target)
    if isinstance(inputs, AttackResult):
        d = recon_draws(inputs, draws, seed)
        targets = np.tile(inputs.targets, d.shape[0])
        inputs = d.reshape(d.shape[0] * d.shape[1], *d.shape[2:])
    dep = target.model.deployment
    options = {"steps": dep.steps, "encoding": dep.encoding, "input_shape": dep.input_shape,
               "readout": dep.readout, "input_range": dep.input_range}
    return check_equivalence(target.path, inputs, targets, mode=mode, progress=progress, options=options,
                             twin=target, workers=workers)


def audit(model_path, evaluator_path, out, **kwargs):
    """``brainleaks audit`` (see ``brainleaks_lava.audit.run_audit`` for the keywords)."""
    from .audit import run_audit

    return run_audit(model_path, evaluator_path, out, **kwargs)
