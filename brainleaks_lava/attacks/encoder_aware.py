"""BL-enc: an encoder-aware inversion of a deployed SNN (not in the paper; for audits of foreign models).

What a strong attacker who holds the ``.net`` file does, separated into three choices:

- **objective**: the twin quantity it differentiates, independent of the deployed read-out: ``potential``
  (time-averaged softmax of the output potential before the reset, in threshold units: smooth even
  where the spike counts saturate), ``posterior`` (the deployed read-out through the surrogate gradient),
  ``margin`` (the target's time-averaged potential minus the best other class's, capped at ``kappa``
  thresholds), ``integrator`` (softmax of the mean voltage of a last layer without neurons). ``auto``:
  ``integrator`` for integrator read-outs, otherwise ``potential``.
- **input parameterisation** following the deployment's encoder: ``static`` (one rate per input,
  shared over the time steps: what a rate or integrate-and-fire encoder can produce from an image; for a
  graded input layer one drive per input), ``per-step`` (one probability per input and step: event
  data). ``auto``: ``per-step`` for the ``events`` encoder, otherwise ``static``. Rates are sigmoids of
  free logits.
- **estimator** of the gradient through the encoder: ``stochastic`` (Bernoulli spikes of the rates, whatever
  the encoder, with the gradient passed straight through to the rate: for an integrate-and-fire encoder a
  randomised version of its spike trains with the same rates), ``ste`` (the deployed encoder's own spikes,
  deterministic for integrate-and-fire, straight through) or ``expectation`` (the rates themselves drive
  the twin, i.e. the expected spike train). For rate and event encoders ``stochastic`` and ``ste`` agree.

The loss per reconstruction is ``objective + tv * TV(image) + sparsity * mean(rate)`` (TV: mean absolute
difference of neighbouring pixels of the rate image), minimised by Adam with a cosine step-size decay;
``restarts`` independent seeded starts are run and the one with the lowest final loss is kept.

Success is judged as for every attack: the deployed read-out's confidence of the returned input (twin;
``brainleaks replay`` for Lava) and an independent evaluator. The result records each class's deployed
confidence at the start and flags any class that ends below its start (``extra["worse_than_start"]``,
also logged as a warning): the attack never silently returns something worse than where it began.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from ..progress import progress_bar

from ..data.encoding import if_spikes
from ..errors import InputError
from .base import SPIKES, Attack, AttackParams, AttackResult, history_row, stack_history

log = logging.getLogger(__name__)

OBJECTIVES = ("auto", "potential", "posterior", "margin", "integrator")
PARAMETERISATIONS = ("auto", "static", "per-step")
ESTIMATORS = ("stochastic", "ste", "expectation")


@dataclass(frozen=True)
class BLencParams(AttackParams):
    mode: str = "paper"  # kept for the common interface; BL-enc has one mode
    objective: str = "auto"
    parameterisation: str = "auto"
    estimator: str = "stochastic"
    iterations: int = 300
    lr: float = 0.1
    # Priors. On lava-dl's tutorial MNIST classifier (probes in docs/attacks.md, "BL-enc"): TV 0.1 gave the
    # most recognisable digits (84.5 % evaluator accuracy); 0.3 and 1.0 blurred them (79 %, 75 %).
    tv: float = 0.1
    sparsity: float = 0.05
    kappa: float = 1.0  # margin objective: cap in threshold units
    loss: str = "ce"  # potential objective: cross-entropy -log p ('ce') or 1 - p ('prob', saturates early)
    init_rate: float = 0.1
    restarts: int = 1
    lr_decay: str = "cosine"  # or "none"

    def __post_init__(self):
        if self.mode != "paper":
            raise InputError(f"mode must be 'paper' for bl-enc (it has one mode), got {self.mode!r}")
        for name, allowed in (("objective", OBJECTIVES), ("parameterisation", PARAMETERISATIONS),
                              ("estimator", ESTIMATORS), ("lr_decay", ("cosine", "none")),
                              ("loss", ("ce", "prob"))):
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        self._positive_int("iterations")
        self._positive_int("restarts")
        self._in_range("lr", 0.0, float("inf"), lo_open=True, hi_open=True)
        self._in_range("tv", 0.0, float("inf"), hi_open=True)
        self._in_range("sparsity", 0.0, float("inf"), hi_open=True)
        self._in_range("kappa", 0.0, float("inf"), lo_open=True, hi_open=True)
        self._in_range("init_rate", 0.0, 1.0, lo_open=True, hi_open=True)

    @classmethod
    def reference(cls, **overrides) -> "BLencParams":
        raise InputError("bl-enc has no reference mode (it is not in the published code)")


def cosine_lr(lr: float, it: int, iterations: int) -> float:
    """Adam's step size at iteration ``it`` of ``iterations``: a cosine decay from ``lr`` to 10 % of it."""
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / iterations)))


def total_variation(img: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV per row of images (R, ..., H, W): mean |vertical| + mean |horizontal| difference."""
    dv = (img[..., 1:, :] - img[..., :-1, :]).abs().flatten(1).mean(1)
    dh = (img[..., :, 1:] - img[..., :, :-1]).abs().flatten(1).mean(1)
    return dv + dh


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The (C, H, W) or (H, W) layout the TV prior uses: (C, H, W) inputs as they are, a flat input of a
    square number of values (784) as a square image; otherwise None (no TV)."""
    if len(input_shape) == 3:
        return tuple(input_shape)
    if len(input_shape) == 2:
        return tuple(input_shape)
    n = int(input_shape[0])
    side = math.isqrt(n)
    return (side, side) if side * side == n and side > 1 else None


class _Straight(torch.autograd.Function):
    """Forward: the encoder's spikes; backward: the gradient passed to the per-step drive unchanged."""

    @staticmethod
    def forward(ctx, drive, spikes):
        return spikes

    @staticmethod
    def backward(ctx, g):
        return g, None


class EncoderAware(Attack):
    name = "blenc"
    label = "bl-enc"  # in messages
    requires = SPIKES
    params_class = BLencParams

    def __init__(self, adapter, params=None, **kwargs):
        super().__init__(adapter, params, **kwargs)
        self._setup(*self._choices())

    def _choices(self) -> tuple[str, str, str, float]:
        """(objective, parameterisation, loss, kappa) as the parameters state them (``auto`` unresolved)."""
        p = self.params
        return p.objective, p.parameterisation, p.loss, p.kappa

    def _setup(self, obj: str, param: str, loss: str, kappa: float) -> None:
        """Resolve the objective and the input parameterisation for the target's deployment (``auto``, integrator
        read-outs); the latent search (``generative``) shares this with BL-enc."""
        model = self.adapter.model
        if not hasattr(model, "twin") or not hasattr(model, "deployment"):
            raise InputError(f"{self.label} needs a NetX target (a .net file loaded with its deployment)")
        self.model = model
        dep = model.deployment
        if obj == "auto":
            obj = "integrator" if dep.readout == "integrator" else "potential"
        if obj == "integrator" and dep.readout != "integrator":
            raise InputError("objective 'integrator' needs a network whose last layer has no neuron group")
        if obj in ("potential", "margin") and dep.readout == "integrator":
            obj = "integrator"  # an integrator's voltage is the output potential
        self.objective = obj
        self.loss_kind, self.kappa = loss, kappa
        if param == "auto":
            param = "per-step" if dep.encoding == "events" else "static"
        self.parameterisation = param
        self.encoding = dep.encoding
        shape = tuple(dep.input_shape or (model.num_inputs,))
        self.image_shape = image_shape(shape)

    # ------------------------------------------------------------------ pieces
    def _encode(self, rate: torch.Tensor, gen: torch.Generator, sample: bool = True) -> torch.Tensor:
        """Rates (R, F) or (R, F, T) in [0, 1] -> the twin's input (R, F, T), differentiable in the rates."""
        steps = self.adapter.input_shape[-1]
        drive = rate.unsqueeze(-1).expand(*rate.shape, steps) if rate.ndim == 2 else rate
        if self.encoding == "graded":
            return self.adapter.drive(drive)
        if self.params.estimator == "expectation" or not sample:
            return drive
        if self.encoding == "if" and self.params.estimator == "ste":
            spikes = if_spikes(drive)
        else:
            u = torch.rand(drive.shape, generator=gen).to(drive.device)
            spikes = (u < drive.detach()).to(drive.dtype)
        return _Straight.apply(drive, spikes)

    def _final_input(self, rate: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, np.ndarray | None]:
        """The returned reconstruction: spikes as the deployment's encoder makes them (one seeded draw for
        Bernoulli encoders, whose probabilities are returned too), or the graded drive."""
        steps = self.adapter.input_shape[-1]
        drive = rate.unsqueeze(-1).expand(*rate.shape, steps) if rate.ndim == 2 else rate
        if self.encoding == "graded":
            return self.adapter.drive(drive), None
        if self.encoding == "if":
            return if_spikes(drive), None
        probs = drive.detach().cpu().numpy().astype(np.float32)
        return torch.bernoulli(drive.detach().cpu(), generator=gen).to(drive.device), probs

    def _objective(self, x: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective loss (R,), deployed-read-out confidence of the target (R,)) from one forward pass."""
        from ..netx.target import readout_logits

        model = self.model
        dep = model.deployment
        out, v_pre, v_post = model.twin.outputs(model.twin.check_input(x))
        settle = model.settle
        deployed = readout_logits(dep, settle, out, v_post if dep.readout == "voltage" else v_pre)
        p_dep = torch.softmax(deployed, 1).gather(1, classes.view(-1, 1)).squeeze(1)
        thr = model.net.output_layer.neuron.threshold
        if self.objective in ("posterior", "integrator"):  # the integrator objective is its read-out
            loss = 1.0 - p_dep
        elif self.objective == "potential":
            logits = readout_logits(replace(dep, readout="membrane", posterior_scale=1.0 / thr), settle, out, v_pre)
            logp = torch.log_softmax(logits, 1).gather(1, classes.view(-1, 1)).squeeze(1)
            loss = -logp if self.loss_kind == "ce" else 1.0 - logp.exp()
        else:  # margin
            z = v_pre[..., settle:].mean(-1) / thr
            zy = z.gather(1, classes.view(-1, 1)).squeeze(1)
            other = z.scatter(1, classes.view(-1, 1), float("-inf")).amax(1)
            loss = (other - zy).clamp_min(-self.kappa)
        return loss, p_dep

    def _prior(self, rate: torch.Tensor) -> torch.Tensor:
        p = self.params
        img = rate.mean(-1) if rate.ndim == 3 else rate
        loss = p.sparsity * img.mean(1)
        if p.tv > 0 and self.image_shape is not None:
            loss = loss + p.tv * total_variation(img.reshape(len(img), *self.image_shape))
        return loss

    # ------------------------------------------------------------------ the attack
    def _invert(self, classes, gen, progress):
        p = self.params
        dev = self.adapter.device
        r = len(classes)
        feats, steps = self.adapter.input_shape
        shape = (r, feats) if self.parameterisation == "static" else (r, feats, steps)
        cls = classes.to(dev)
        with torch.no_grad():
            if self.encoding == "graded":
                start_in = self.adapter.drive(torch.full((r, feats, steps), self.adapter.rest(), device=dev))
            else:
                start_in = torch.zeros((r, feats, steps), device=dev)
            _, start_conf = self._objective(start_in, cls)
        best_loss = torch.full((r,), float("inf"))
        best_rate = torch.zeros(shape)
        history = []
        total = p.iterations * p.restarts
        bar = progress_bar(total=total, desc=f"BL-enc ({self.objective}, {self.parameterisation})",
                           disable=not progress)
        base = math.log(p.init_rate / (1 - p.init_rate))
        for restart in range(p.restarts):
            logits = (base + 0.1 * torch.randn(shape, generator=gen)).to(dev)
            record = (lambda loss: history_row(r, torch.arange(r), loss)) if restart == 0 else None
            history += self._descend(logits, torch.sigmoid, lambda _, rate: self._prior(rate), cls, gen, bar, record)
            with torch.no_grad():
                rate = torch.sigmoid(logits)
                # the final loss of this start, on the expected input (no sampling noise) plus its priors
                obj, _ = self._objective(self._encode(rate, gen, sample=p.estimator != "expectation"), cls)
                final = (obj + self._prior(rate)).cpu()
                better = final < best_loss
                best_loss[better] = final[better]
                best_rate[better] = rate.cpu()[better]
        bar.close()
        result = self._result(classes, best_rate.to(dev), gen, p.iterations * p.restarts, history,
                              {"final_loss": best_loss.tolist()})
        start = start_conf.cpu().numpy()
        result.extra["start_confidence"] = start.tolist()
        result.extra["worse_than_start"] = self._worse_than_start(
            classes, result.confidence, start, "the deployed read-out prefers no input to the reconstruction")
        return result

    # ------------------------------------------------------------------ shared with the latent search
    def _descend(self, var: torch.Tensor, to_rate, penalty, cls: torch.Tensor, gen: torch.Generator, bar,
                 record=None) -> list:
        """``iterations`` Adam steps on ``var`` (step size ``lr``, decayed by ``lr_decay``), in place. The loss of
        each row: the objective of the encoded input ``to_rate(var)`` plus ``penalty(var, rate)``. Returns what
        ``record(loss)`` gives at each step (nothing without ``record``)."""
        p = self.params
        var.requires_grad_(True)
        opt = torch.optim.Adam([var], lr=p.lr)
        history = []
        for it in range(p.iterations):
            if p.lr_decay == "cosine":
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(p.lr, it, p.iterations)
            rate = to_rate(var)
            obj, conf = self._objective(self._encode(rate, gen), cls)
            loss = obj + penalty(var, rate)
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            if record is not None:
                history.append(record(loss))
            bar.update(1)
            if it % 20 == 0:
                bar.set_postfix(conf=f"{float(conf.mean()):.3f}")
        var.requires_grad_(False)
        return history

    def _result(self, classes: torch.Tensor, rate: torch.Tensor, gen: torch.Generator, iterations: int, history,
                extra: dict) -> AttackResult:
        """The result for the rates (R, F) or (R, F, T) of ``classes``: the input as the deployment's encoder makes
        it (``_final_input``) and the deployed read-out's confidence of it."""
        p = self.params
        r = len(classes)
        with torch.no_grad():
            samples, probs = self._final_input(rate, gen)
            _, conf = self._objective(samples, classes.to(rate.device))
        graded = self.encoding == "graded"
        return AttackResult(
            attack=self.name, mode=p.mode, params=p.to_dict(), seed=0, targets=classes.numpy(),
            samples=samples.cpu().numpy().astype(np.float32 if graded else np.uint8), confidence=conf.cpu().numpy(),
            iterations=np.full(r, iterations, dtype=np.int64), loss_history=stack_history(history, r),
            probabilities=probs,
            extra={"objective": self.objective, "parameterisation": self.parameterisation,
                   "encoding": self.encoding, **extra},
            drive_range=self.adapter.drive_range if graded else None)

    def _worse_than_start(self, classes: torch.Tensor, conf, start, why: str) -> list[int]:
        """The classes whose confidence ``conf`` ends below ``start`` (logged as a warning saying ``why``)."""
        worse = [int(c) for c, a, b in zip(classes.tolist(), conf, start) if a < b]
        if worse:
            log.warning("%s: classes %s end below their starting confidence (%s)", self.label, worse, why)
        return worse
