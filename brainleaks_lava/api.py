"""The top-level Python API: the CLI's steps as functions, for scripts and notebooks.

>>> from brainleaks_lava import load_target, attack, evaluate, replay, audit
>>> target = load_target("netx_models/mnist_snn.net")
>>> result = attack(target, "bl2", classes=[0, 1], seed=0, iterations=10)
>>> scores = evaluate(result, "netx_models/mnist_eval_snn.h5", draws=20)
>>> fig = result.plot(evaluation=scores)        # the reconstruction grid (a matplotlib Figure)
>>> scores.to_frame()                            # one row per class (pandas)
>>> report = replay(target, result, draws=2)     # bit-exact check on Lava

Nothing here imports torch or Lava until a function is called: ``import brainleaks_lava`` stays fast.
"""
from __future__ import annotations

from pathlib import Path


def load_target(path, *, steps=None, encoding=None, input_shape=None, readout=None, input_range=None, card=None,
                device=None):
    """Load a model file as an attack target.

    A NetX ``.net`` file (anyone's SNN, not only the toolkit's) is rebuilt as its lava-dl twin, with its
    deployment (what a NetX file does not say) taken field by field from these keywords, then the deployment
    ``card``, then the JSON sidecar beside the file, then defaults (``target.model.deployment.sources`` says
    which). A brainleaks ANN ``.h5`` file is loaded as it is (the deployment keywords do not apply).

    Parameters
    ----------
    path : str or path-like
        The model file: ``.net`` (NetX HDF5) or a brainleaks ANN ``.h5``; decided by the file's content.
    steps : int, optional
        Time steps per sample the deployment runs (default: card, sidecar, else 25).
    encoding : {'rate', 'if', 'graded', 'events'}, optional
        The input encoder: Bernoulli ``rate`` coding of intensities, deterministic integrate-and-fire ``if``,
        ``graded`` drives of the input layer within ``input_range``, or ``events`` (frames, already spikes).
    input_shape : tuple of int, optional
        The layout of one sample without time, e.g. ``(28, 28)`` or ``(2, 34, 34)``.
    readout : {'spikes', 'membrane', 'voltage', 'integrator'}, optional
        How the deployment classifies: softmax of output spike counts, of the time-averaged output potential
        before the reset (the paper's), after it, or of the mean voltage of a last layer without neurons.
    input_range : tuple of float, optional
        ``(low, high)`` of a graded drive (default ``(0, 1)``).
    card : str or path-like, optional
        A deployment card (TOML) to use instead of ``<model stem>.card.toml`` beside the model.
    device : {None, 'cpu', 'auto', 'cuda', 'cuda:N'} or torch.device, optional
        Where the model computes (None: the CPU; ``auto``: CUDA when present). See ``models.device``.

    Returns
    -------
    SNNTarget or ANNTarget
        ``.model`` (the twin or the ANN), ``.path``, ``.sha256``, ``.metadata`` (the sidecar), ``.arch``.

    Raises
    ------
    ModelFileError
        The file is missing, unreadable, neither kind of model, or its sidecar or card is invalid.
    InputError
        A keyword is out of range (e.g. ``steps`` not a positive integer, an unknown ``readout``).

    Examples
    --------
    >>> target = load_target("netx_models/mnist_snn.net")
    >>> target.model.deployment.readout
    'membrane'
    >>> load_target("someone_elses.net", steps=32, encoding="rate", input_shape=(28, 28), readout="spikes")
    """
    from .models.files import load_target as _load

    options = {"steps": steps, "encoding": encoding, "input_shape": input_shape, "readout": readout,
               "input_range": input_range}
    return _load(path, options=options, card=card, device=device)


def attack(target, method: str = "bl2", *, mode: str = "paper", classes=None, seed: int = 0,
           progress: bool = True, device=None, defense=None, **params):
    """Run a model-inversion attack and return its reconstructions.

    Parameters
    ----------
    target : SNNTarget, ANNTarget, str or path-like
        A target from :func:`load_target`, or a model path (loaded with its defaults).
    method : {'bl2', 'bl1', 'blenc', 'gen', 'nes', 'label', 'miface'}
        ``bl1`` BrainLeaks-v1 and ``bl2`` BrainLeaks-v2 (the paper's, SNN targets), ``blenc`` the encoder-aware
        attack and ``gen`` its search in a generative prior's latent space (SNN targets loaded from a ``.net`` file;
        ``gen`` needs ``prior=``), ``nes`` and ``label`` the query-only attacks, ``miface`` MI-FACE (ANN targets).
    mode : {'paper', 'reference'}
        ``paper``: the algorithms as the paper states them; ``reference``: as the authors' published code runs
        them, starting from that code's defaults (listed below as "reference"). ``blenc`` and ``gen`` have
        ``paper`` only.
    classes : sequence of int, optional
        The classes to invert, one reconstruction each (default: all).
    seed : int
        Seed of every random draw (populations, Bernoulli samples, restarts): the same seed gives the same result.
    progress : bool
        Show a progress bar.
    device : {None, 'cpu', 'auto', 'cuda', 'cuda:N'} or torch.device, optional
        Where the attack computes: the target is moved there (None: where it is; a path loads on the CPU).
        Random draws stay seeded on the CPU; on a GPU results equal the CPU's up to float rounding.
    defense : dict or defenses.ObservedPosterior, optional
        What the deployment does to every query it answers (SNN targets): ``round_posterior`` (round each class
        probability to a multiple of it), ``clip_counts`` (cap output spike counts), ``input_flip`` (flip each
        input spike with this probability), ``straight_through`` (a white-box attacker who knows the rounding or
        clipping passes gradients through it). Gradient attacks then differentiate what the deployment
        answers; ``nes`` and ``label`` query it. Recorded in ``result.extra['defense']``.
    **params
        The attack's settings, overriding its defaults: see "Other Parameters" for each method's names,
        defaults and accepted values. A name the method does not have is refused.

    Other Parameters
    ----------------
    method 'bl1': BrainLeaks-v1, ternary spike updates from quantized surrogate gradients

    iterations : int, default 100 (reference 10), in [1, 1000000]
        Updates of the spike trains.
    eta : float, default 0.3, in (0, 1]
        ``paper`` mode: threshold on the max-normalised gradient magnitude; entries above it flip.
    stop_confidence : float or None, default 0.99 (reference None), in (0, 1]
        Stop a class once the target's confidence in it reaches this (None: run all iterations).
    graded_step : float, default 0.25, in (0, 1]
        Graded-input networks only: step of the normalised drive per update.

    method 'bl2': BrainLeaks-v2, optimised Bernoulli spike probabilities (population of draws, RMSProp)

    iterations : int, default 50 (reference 10), in [1, 1000000]
        Optimisation steps.
    population : int, default 7, in [1, 4096]
        Spike-train draws per class and step, whose gradients are weighted and summed.
    lr : float, default 0.1 (reference 1.0), in (0, inf)
        Step size.
    momentum : float, default 0.9, in [0, 1)
        Momentum of the step.
    rho : float, default 0.9 (reference 0.1), in [0, 1]
        Decay of RMSProp's squared-gradient average.
    xi : float, default 0.01, in [0, inf)
        Weight of the sparsity term (mean spike rate) in the loss.
    eps : float, default 1e-08 (reference 1e-10), in (0, 1]
        RMSProp's denominator offset.
    init_prob : float, default 0.0, in [0, 1]
        The spike probability everything starts from.
    stop_confidence : float or None, default None, in (0, 1]
        Stop a class once its population's mean confidence reaches this (None: run all iterations).

    method 'blenc': BL-enc, encoder-aware inversion of a deployed SNN (Adam on input rates, priors, restarts)

    objective : {'auto', 'potential', 'posterior', 'margin', 'integrator'}, default 'auto'
        What is differentiated: the softmax of the output potential, the deployed read-out, a capped potential
        margin, or an integrator read-out (``auto``: ``integrator`` for integrator read-outs, else ``potential``).
    parameterisation : {'auto', 'static', 'per-step'}, default 'auto'
        One rate per input shared over time, or one per input and step (``auto``: ``per-step`` for events).
    estimator : {'stochastic', 'ste', 'expectation'}, default 'stochastic'
        Gradient through the encoder: Bernoulli spikes passed straight through, the deployed encoder's own
        spikes passed straight through, or the rates themselves as the expected spike train.
    iterations : int, default 300, in [1, 1000000]
        Adam steps per restart.
    lr : float, default 0.1, in (0, inf)
        Adam's step size (decayed by ``lr_decay``).
    tv : float, default 0.1, in [0, inf)
        Weight of the total-variation prior of the rate image.
    sparsity : float, default 0.05, in [0, inf)
        Weight of the mean-rate prior.
    kappa : float, default 1.0, in (0, inf)
        ``margin`` objective: the cap of the margin, in threshold units.
    loss : {'ce', 'prob'}, default 'ce'
        ``potential`` objective: cross-entropy ``-log p`` or ``1 - p``.
    init_rate : float, default 0.1, in (0, 1)
        The rate everything starts from.
    restarts : int, default 1, in [1, 1000]
        Independent seeded starts; the one with the lowest final loss is kept.
    lr_decay : {'cosine', 'none'}, default 'cosine'
        Step-size schedule.

    method 'gen': latent search of a generative prior through BL-enc's encoder and objectives (SNN targets)

        ``prior`` (required): a ``priors.Prior`` or a prior file (``brainleaks train-prior``), trained on public data;
        its images must be the target's inputs (size, and layout when the deployment states one). The result's
        ``extra`` records the prior (file, sha256, provenance), the winners' latent codes and the winning starts.
    objective : {'logp', 'margin', 'posterior'}, default 'logp'
        BL-enc's objectives: ``-log p`` of the time-averaged output potential (its ``potential``), the capped
        potential margin, or the deployed read-out (an integrator read-out: BL-enc's ``integrator`` for all).
    estimator : {'stochastic', 'ste', 'expectation'}, default 'stochastic'
        Gradient through the encoder, as BL-enc's.
    starts : int, default 8, in [1, 1000]
        Seeded latent codes z ~ N(0, I) per class, optimised at once; each class keeps the start the deployed
        read-out is most confident of; near-ties (``select_tolerance``) go to the start it stays most confident of
        under shifts (``select_shifts``), then to the lower final loss.
    iterations : int, default 100, in [1, 1000000]
        Adam steps.
    lr : float, default 0.1, in (0, inf)
        Adam's step size on the latent code (decayed by ``lr_decay``).
    latent_weight : float, default 0.01, in [0, inf)
        Weight of the Gaussian prior of the code, ``mean(z^2)``.
    kappa : float, default 1.0, in (0, inf)
        ``margin`` objective: the cap of the margin, in threshold units.
    lr_decay : {'cosine', 'none'}, default 'cosine'
        Step-size schedule.
    select_shifts : int, default 8, in [1, 64]
        Copies of a start's image (the image and seeded shifted ones) over which the deployed confidence is
        averaged to break near-ties (Plug & Play's final selection); 1: the image only.
    shift_pixels : int, default 2, in [1, 16]
        Largest shift of a copy, in pixels (at most an eighth of the image's shorter side; an image under 8 pixels
        is not moved).
    select_tolerance : float, default 0.001, in [0, 1]
        Starts this close to a class's best deployed confidence count as tied (0: no ties but exact ones).

    method 'miface': MI-FACE, gradient descent in image space (ANN targets)

    lr : float, default 0.1, in (0, inf)
        Step size.
    iterations : int, default 5000, in [1, 1000000]
        Steps at most (the CLI's ``--iterations``).
    patience : int, default 100, in [1, 1000000]
        Stop a class after this many steps without improvement.
    cost_threshold : float, default 0.01, in [0, 1]
        Stop a class once its cost ``1 - p`` reaches this.
    rescue_below : float, default 0.001 (reference 0.0), in [0, 1]
        Below this target posterior, step along ``-grad log p`` (saturated classes; 0: never).
    start : float, default 0.0, in [0, 1]
        Grey level of the uniform start image.

    method 'nes': query-only NES, antithetic zeroth-order gradient estimates through a query oracle (SNN targets)

    queries : int, default 10000, in [1, 10000000]
        The query budget in all (every query the deployed network answers counts; never exceeded).
    exposes : {'posterior', 'counts'}, default 'posterior'
        What the deployment answers a query with: its posterior (after the deployment's defense), or output
        spike counts (spike-count read-outs).
    population : int, default 10, in [1, 4096]
        Antithetic pairs per class and iteration (two queries each).
    sigma : float, default 0.5, in (0, 100]
        Perturbation of the input logits.
    lr : float, default 0.1, in (0, inf)
        Adam's step size (cosine decay to 10 %).
    iterations : int, default 1000, in [1, 1000000]
        Steps at most (fewer when the budget runs out first).
    objective : {'logp', 'margin'}, default 'logp'
        The target's negative log-posterior, or its log-posterior margin to the best other class.
    kappa : float, default 5.0, in (0, inf)
        ``margin`` objective: the cap of the margin.
    tv : float, default 0.1, in [0, inf)
        Weight of the total-variation prior of the rate image (exact gradient, no queries).
    sparsity : float, default 0.05, in [0, inf)
        Weight of the mean-rate prior.
    init_rate : float, default 0.1, in (0, 1)
        The rate everything starts from.

    method 'label': query-only label-only boundary repelling (BREP-MI style) through a query oracle (SNN targets)

    queries : int, default 10000, in [1, 10000000]
        The query budget in all, split evenly between the classes (never exceeded).
    exposes : {'label', 'counts', 'posterior'}, default 'label'
        What the deployment answers with (only the top-1 label is used).
    population : int, default 16, in [1, 4096]
        Points on the sphere per step.
    radius : float, default 0.3, in (0, 100]
        Starting sphere radius (RMS per input logit).
    grow : float, default 1.3, in [1, 10]
        Radius factor when every point on the sphere keeps the label.
    max_radius : float, default 8.0, in (0, 1000]
        Largest radius.
    step : float, default 1.0, in (0, 100]
        Move length, in radii.
    iterations : int, default 1000, in [1, 1000000]
        Steps per class at most (fewer when the budget runs out first).
    search_fraction : float, default 0.5, in (0, 1]
        Share of a class's budget the random search for a start may use at most.

    Returns
    -------
    AttackResult
        ``targets``, ``samples`` (spike trains (N, features, T), graded drives, or images (N, features)),
        ``confidence`` (the target's posterior of each), ``probabilities`` (BL-v2), ``iterations``,
        ``loss_history``, ``seconds``; ``images()``, ``plot()``, ``save(path)`` and ``to_frame()``.

    Raises
    ------
    InputError
        An unknown method, parameter or mode; a value out of range; classes outside the target's; a method the
        target cannot take (MI-FACE on an SNN, the spike attacks on an ANN); an attack too large for memory.
    ModelFileError
        ``target`` is a path that does not hold a readable model.

    Examples
    --------
    >>> result = attack("netx_models/mnist_snn.net", "bl2", classes=[0, 1, 7], iterations=10, population=5)
    >>> result.confidence.round(2)
    >>> result.plot("bl2.png")
    >>> attack("netx_models/mnist_ann.h5", "miface", iterations=500)
    >>> attack("netx_models/mnist_snn.net", "gen", prior="mnist_val_vae.h5", classes=[4, 5, 8])
    """
    from .attacks import adapter_for, make_attack

    if isinstance(target, (str, Path)):
        target = load_target(target, device=device)
    elif device is not None:
        target.to(device)
    from .defenses.readout import observed_posterior

    from .attacks.base import SNNAdapter
    from .errors import InputError

    observe = observed_posterior(defense, seed)
    adapter = adapter_for(target, observe)
    if observe is not None and not isinstance(adapter, SNNAdapter):
        raise InputError("a query-time defense (round_posterior, clip_counts, input_flip) applies to SNN targets")
    result = make_attack(method, adapter, mode=mode, **params).invert(classes=classes, seed=seed, progress=progress)
    if observe is not None:
        result.extra["defense"] = observe.describe()
    _describe(result, target)
    return result


def _describe(result, target) -> None:
    """Record on ``result`` what the target says about its inputs and classes (for ``images()``, ``plot()``
    and ``save()``)."""
    meta = getattr(target, "metadata", None) or {}
    dep = getattr(getattr(target, "model", None), "deployment", None)
    shape = meta.get("input_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) >= 2):
        shape = getattr(dep, "input_shape", None)
    if isinstance(shape, (list, tuple)) and len(shape) >= 2 and all(isinstance(v, int) for v in shape):
        result.input_shape = tuple(int(v) for v in shape)
    names = getattr(dep, "classes", None) or meta.get("classes")
    if isinstance(names, (list, tuple)) and names:
        result.class_names = tuple(str(c) for c in names)
    if getattr(target, "path", None) is not None:
        result.model_path = str(target.path)
        result.model_sha256 = str(getattr(target, "sha256", "") or "")


def evaluate(result, evaluator, *, draws: int = 20, seed: int = 0, contrast=None, device=None):
    """Score reconstructions with an independent evaluation classifier: the paper's four metrics.

    Attack accuracy, top-3 attack accuracy, average confidence and distinctive attack accuracy (DAA), as
    fractions; for BL-v2 the mean and population std over ``draws`` seeded spike-train draws of its Bernoulli
    probabilities (deterministic reconstructions are scored once).

    Parameters
    ----------
    result : AttackResult
        From :func:`attack` (or ``attacks.recon_file.load_recon`` of a file ``brainleaks attack`` wrote).
    evaluator : evaluator or str or path-like
        A loaded evaluator or its file (``brainleaks train-evaluator``; the shipped ones are in ``netx_models/``).
    draws : int
        Spike-train draws scored per BL-v2 reconstruction.
    seed : int
        Seed of the draws (and of rate coding for a spiking evaluator).
    contrast : None, 'standardise' or (float, float)
        ``None``: scored as they are; ``"standardise"``: each reconstruction's image standardised to the grey
        level of the evaluator's training images; or an explicit ``(mean, std)`` (``evaluation.score``).
    device : {None, 'cpu', 'auto', 'cuda', 'cuda:N'} or torch.device, optional
        Where the evaluator computes: it is moved there (None: where it is; a path loads on the CPU).

    Returns
    -------
    Evaluation
        ``summary`` (metric -> mean, std; ``n_draws``), ``per_class`` rows, ``posteriors`` (draws, N, C);
        ``to_frame()`` (one row per class) and ``to_frame(summary=True)`` (one row per metric).

    Raises
    ------
    InputError
        The reconstructions do not fit the evaluator (classes, features, time steps), bad ``draws`` or
        ``contrast``.
    ModelFileError
        ``evaluator`` is a path that does not hold a readable evaluator.

    Examples
    --------
    >>> scores = evaluate(result, "netx_models/mnist_eval_ann.h5", draws=10)
    >>> scores.summary["accuracy"]["mean"]
    >>> scores.to_frame(summary=True)
    """
    from .evaluation.classifiers import load_evaluator
    from .evaluation.score import evaluate_result

    if isinstance(evaluator, (str, Path)):
        evaluator = load_evaluator(evaluator, device=device)
    elif device is not None:
        evaluator.to(device)
    ev = evaluate_result(result, evaluator, draws=draws, seed=seed, contrast=contrast)
    names = getattr(evaluator, "classes", None)
    if names:
        ev.class_names = tuple(str(c) for c in names)
    return ev


def replay(target, inputs, *, targets=None, draws: int = 1, seed: int = 0, mode: str = "stream",
           progress: bool = True, workers: int | None = None, device=None):
    """Replay inputs on Lava's fixed-point simulator and compare every layer with the twin, spike for spike.

    Parameters
    ----------
    target : SNNTarget, str or path-like
        A loaded SNN target (its deployment is used as loaded) or a ``.net`` path.
    inputs : AttackResult or numpy.ndarray
        An attack result (``draws`` seeded draws of each BL-v2 reconstruction; other results once), or an array
        of spike trains (or graded drives) of shape (N, features, T).
    targets : array of int, optional
        With an array: the class of each input, for the confidences of the report (taken from a result).
    draws : int
        Draws per BL-v2 reconstruction.
    seed : int
        Seed of the draws.
    mode : {'stream', 'per-sample'}
        Inputs streamed through Lava runs of up to 200 each (neurons reset between inputs), or one run per
        input (the reference the streaming is checked against).
    progress : bool
        Show a progress bar.
    workers : int, optional
        Lava runtimes run in parallel (None: automatic, at most 2); the result does not depend on it.
    device : {None, 'cpu', 'auto', 'cuda', 'cuda:N'} or torch.device, optional
        Where the twin side computes (Lava runs on the CPU): the target is moved there (None: where it is; a
        path loads on the CPU). Where a GPU would not give the CPU's bits, the comparison uses the CPU twin.

    Returns
    -------
    EquivalenceReport
        ``agreement`` (share of inputs identical in every layer), ``samples`` (per input: equal, the first
        differing layer, neuron and step, the Lava and twin confidences), ``to_dict()``; for a query-only attack's
        result also ``queries`` (``QueryCheck``: the sample of its oracle's answers recomputed from Lava's
        read-out, ``agreement`` and ``same_answer`` per query).

    Raises
    ------
    InputError
        Inputs of the wrong shape or values, classes out of range, a bad ``draws``, ``mode`` or ``workers``.
    ModelFileError
        ``target`` is a path that does not hold a NetX network Lava can run.

    Examples
    --------
    >>> report = replay(target, result, draws=2)
    >>> report.agreement
    1.0
    >>> replay(target, result.samples[:1], targets=result.targets[:1])   # one reconstruction
    """
    import numpy as np

    from .attacks.base import AttackResult
    from .attacks.recon_file import recon_draws
    from .hardware.equivalence import check_equivalence, check_query_sample

    if isinstance(target, (str, Path)):
        target = load_target(target, device=device)
    elif device is not None:
        target.to(device)
    sample = None
    if isinstance(inputs, AttackResult):
        sample, oracle = inputs.query_sample, inputs.extra.get("oracle")
        d = recon_draws(inputs, draws, seed)
        targets = np.tile(inputs.targets, d.shape[0])
        inputs = d.reshape(d.shape[0] * d.shape[1], *d.shape[2:])
    dep = target.model.deployment
    options = {"steps": dep.steps, "encoding": dep.encoding, "input_shape": dep.input_shape,
               "readout": dep.readout, "input_range": dep.input_range}
    report = check_equivalence(target.path, inputs, targets, mode=mode, progress=progress, options=options,
                               twin=target, workers=workers)
    if sample is not None:  # a query-only attack: its oracle's answers, recomputed from Lava's read-out
        report.queries = check_query_sample(target.path, sample, oracle, target, mode=mode, progress=progress,
                                            workers=workers)
    return report


def audit(model_path, evaluator_path, out, **kwargs):
    """Audit a model: run a portfolio of attacks, keep each class's worst case, score it, replay it on Lava and
    write a report (``brainleaks audit``).

    Parameters
    ----------
    model_path : str or path-like
        The model to audit (``.net`` or ANN ``.h5``).
    evaluator_path : str or path-like
        The evaluator that scores every attack and selects each class's winner.
    out : str or path-like
        The report directory (new or empty; an earlier audit's only with ``force=True``): ``report.md``,
        ``audit.json``, ``best.png``, ``recon/<attack>.h5``.
    **kwargs
        The keywords of ``brainleaks_lava.audit.run_audit``: ``options`` (the deployment, as
        :func:`load_target`'s keywords in a dict), ``card``, ``budget`` (seconds, default 600), ``draws``,
        ``seed``, ``replay`` / ``replay_draws``, ``classes``, ``judges`` (independent evaluator files),
        ``members`` / ``non_members`` (.npz) or ``data_root`` / ``dataset`` (member-level tests),
        ``member_limit``, ``contrast``, ``portfolio``, ``progress``, ``force``, ``device`` (where the target,
        attacks and evaluators compute; as :func:`load_target`'s).

    Returns
    -------
    AuditReport
        ``best`` (per class: winning attack, confidences, verdict), ``worst_case``, ``attacks``, ``replay``,
        ``verdict``; ``to_frame()`` (one row per class) and ``to_frame("attacks")``.

    Raises
    ------
    InputError, ModelFileError, OutputError
        Bad keywords; unreadable model, evaluator or member files; an ``out`` that may not be written.

    Examples
    --------
    >>> rep = audit("netx_models/mnist_snn.net", "netx_models/mnist_eval_snn.h5", "audit_out", budget=120)
    >>> rep.to_frame()[["class", "attack", "evaluator_confidence"]]
    """
    from .audit import run_audit

    return run_audit(model_path, evaluator_path, out, **kwargs)
