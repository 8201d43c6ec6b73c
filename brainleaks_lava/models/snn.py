"""The spiking target: a stack of lava-dl SLAYER CUBA Dense blocks with Loihi semantics.

Neuron model (what the paper's LIF becomes on Loihi)
----------------------------------------------------
The paper uses a LIF neuron ``v[t] = 0.7 v[t-1] + W x[t]`` with a soft reset (the threshold is
subtracted on a spike). Loihi's CUBA neuron has two state variables::

    u[t] = (1 - current_decay) * u[t-1] + W x[t]
    v[t] = (1 - voltage_decay) * v[t-1] + u[t]        spike if v[t] > threshold, then v[t] = 0

With ``current_decay = 1`` the current holds no memory (``u[t] = W x[t]``) and with
``voltage_decay = 0.3`` the voltage keeps 70 % per step: exactly the paper's leak of 0.7.
The difference is the reset: CUBA resets the voltage to 0 (hard reset) instead of subtracting the
threshold, so charge above the threshold is lost; this is how Loihi behaves, and the target is trained
with it. Weights go through SLAYER's default 8-bit quantizer (step 2/64) in training and export, and
the decays/threshold map to Loihi's iDecay/vDecay (x4096) and vThMant (x64) losslessly for the
defaults, which is what makes the Lava fixed-point replay bit-exact.

Posterior (shared by training, attacks and the Lava replay)
-----------------------------------------------------------
Three read-outs of the output layer are supported (``SNNSpec.readout``):

* ``"membrane"`` (the paper's posterior, and the published code's ``mem``; used by the shipped MNIST
  target): the time average of a softmax of the output membrane potential *before* the step's reset,
  ``M(x) = 1/(T-L) sum_{t>=L} softmax(posterior_scale * v_out[:, :, t])``. The first L steps
  (L = number of layers) are left out because on hardware they still hold the previous sample's spikes
  in flight. Lava's ``Monitor`` on ``v`` reads the post-reset value, so the replay also records the
  output current ``u`` and restores the pre-reset potential where a neuron was reset
  (:mod:`brainleaks_lava.hardware.replay`). The potential is smooth in the input, so the posterior does
  not saturate after a couple of attack iterations the way a spike count does.
* ``"voltage"``: the same average over the voltage *after* the step's reset (``v * (1 - s)``, what the
  ``Monitor`` reads directly). A neuron that fires reads 0 at that step, so the class the model is
  surest of is pulled down whenever it spikes; targets trained with it give blurrier inversions
  (docs/attacks.md, "Target recipe: the read-out"). Kept so that files trained with it keep their meaning.
* ``"spikes"``: a softmax of the output spike counts, ``softmax(posterior_scale * sum_t s_out)``,
  observable from a Lava ``RingBuffer`` sink alone.

Training minimizes the cross-entropy of the posterior itself (``logits`` are ``log M(x)`` for the
voltage read-outs), so training, attacks and replay share one definition.

Kernel
------
The blocks are lava-dl's (parameters, quantizer, NetX export), but ``forward`` and ``run`` compute them
with :mod:`brainleaks_lava.models.fast_cuba` (one matrix product per layer, a time-major CUBA loop and a
hand-written surrogate backward): spikes and voltages bit-identical to the blocks' own forward, gradients
equal to lava-dl's up to float32 summation order. ``kernel = "lava"`` runs lava-dl's blocks instead; a
configuration the fast kernel does not cover falls back to them by itself (logged once).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..errors import InputError
from . import fast_cuba
from .base import SizedModel


@dataclass(frozen=True)
class NeuronConfig:
    """CUBA neuron settings of every layer (see the module docstring)."""

    threshold: float = 1.0
    current_decay: float = 1.0
    voltage_decay: float = 0.3
    # surrogate gradient: lava-dl's exponential surrogate, 100 x tau_grad thresholds wide; the lava-dl
    # defaults (1, 1) give an almost flat gradient, these (as in lava-dl's examples) a 3-threshold-wide one.
    # The shipped MNIST target uses tau_grad 0.003 (docs/attacks.md, "Target recipe: the surrogate width").
    tau_grad: float = 0.03
    scale_grad: float = 3.0

    def __post_init__(self):
        for name in ("threshold", "tau_grad", "scale_grad"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0 and v == v):
                raise InputError(f"neuron {name} must be a positive number, got {v!r}")
        for name in ("current_decay", "voltage_decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise InputError(f"neuron {name} must be in [0, 1], got {v!r}")

    @classmethod
    def with_overrides(cls, **values) -> "NeuronConfig":
        """The defaults, replaced by every given value that is not None (CLI options, config keys)."""
        return cls(**{k: float(v) for k, v in values.items() if v is not None})

    def slayer_params(self) -> dict:
        return {
            "threshold": float(self.threshold),
            "current_decay": float(self.current_decay),
            "voltage_decay": float(self.voltage_decay),
            "tau_grad": float(self.tau_grad),
            "scale_grad": float(self.scale_grad),
            "requires_grad": False,
        }


READOUTS = ("spikes", "voltage", "membrane", "integrator")  # integrator: NetX files whose last layer has no neurons
VOLTAGE_READOUTS = ("voltage", "membrane")  # posteriors read from the output voltage


@dataclass(frozen=True)
class SNNSpec:
    """Everything needed to rebuild an SNN target's twin (stored in the sidecar)."""

    sizes: tuple[int, ...]  # (inputs, hidden..., classes)
    steps: int = 25
    neuron: NeuronConfig = field(default_factory=NeuronConfig)
    posterior_scale: float = 1.0
    # "membrane" (time-averaged softmax of the pre-reset output potential, the paper's), "voltage" (the
    # same of the post-reset voltage) or "spikes" (softmax of output spike counts)
    readout: str = "membrane"

    def __post_init__(self):
        if self.readout not in READOUTS:
            raise InputError(f"readout must be one of {', '.join(READOUTS)}, got {self.readout!r}")
        if len(self.sizes) < 2 or any((not isinstance(s, int)) or s <= 0 for s in self.sizes):
            raise InputError(f"sizes must be >= 2 positive integers, got {self.sizes!r}")
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise InputError(f"steps must be a positive integer, got {self.steps!r}")
        if not self.posterior_scale > 0:
            raise InputError(f"posterior_scale must be positive, got {self.posterior_scale!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SNNSpec":
        d = dict(d)
        neuron = NeuronConfig(**d.pop("neuron", {}))
        return cls(sizes=tuple(int(s) for s in d.pop("sizes")), neuron=neuron, **d)


def _import_slayer():
    """Import lava-dl's slayer lazily, hiding the banner it prints on stdout about an optional toolbox."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import lava.lib.dl.slayer as slayer
    return slayer


class SpikingMLP(SizedModel, torch.nn.Module):
    """input -> hidden CUBA layers -> output CUBA layer; spikes in and out as (N, features, T)."""

    def __init__(self, spec: SNNSpec):
        super().__init__()
        slayer = _import_slayer()
        self.spec = spec
        params = spec.neuron.slayer_params()
        self.blocks = torch.nn.ModuleList(
            slayer.block.cuba.Dense(params, n_in, n_out, weight_norm=False, delay_shift=True,
                                    weight_scale=spec.neuron.threshold)
            for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:])
        )
        # "fast": fast_cuba's kernel where it covers the blocks (else lava-dl's, logged once); "lava": lava-dl's
        self.kernel = "fast"
        self._fallback_logged = False

    def _fast_stack(self, x: torch.Tensor):
        """The fast kernel over this model's blocks, or None when lava-dl's blocks must run."""
        if self.kernel != "fast" or x.dtype != torch.float32:
            return None
        why = fast_cuba.stack_unsupported_reason(self.blocks)
        if why is not None:
            if not self._fallback_logged:
                fast_cuba.log_fallback("SpikingMLP", why)
                self._fallback_logged = True
            return None
        return fast_cuba.FastDenseStack(self.blocks)

    def check_input(self, x: torch.Tensor, name: str = "spikes") -> None:
        if x.ndim != 3 or x.shape[1] != self.num_inputs:
            raise InputError(
                f"{name} must have shape (batch, {self.num_inputs}, T), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        """Output spikes (N, classes, T); with ``return_hidden`` also a list of every layer's spikes."""
        self.check_input(x)
        stack = self._fast_stack(x)
        if stack is not None:
            _, _, layers = stack.run(x, keep_hidden=True)
            return (layers[-1], layers) if return_hidden else layers[-1]
        layers = []
        for block in self.blocks:
            x = block(x)
            layers.append(x)
        return (x, layers) if return_hidden else x

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spikes (N, classes, T) and the output layer's voltage (N, classes, T) that the
        posterior reads: before the step's reset for the ``"membrane"`` read-out, after it
        (``v * (1 - s)``) otherwise.

        The last block is unrolled (synapse -> CUBA dynamics -> spike -> one-step delay), which is
        exactly what ``block(x)`` computes, so the spikes equal ``forward``'s. The voltage is
        the block's own (not delayed): its step t belongs to output spike step t + 1.
        """
        self.check_input(x)
        stack = self._fast_stack(x)
        if stack is not None:
            spikes, voltage, _ = stack.run(x)
            out = fast_cuba.step_delay_tm(spikes).permute(1, 2, 0)
            voltage = voltage.permute(1, 2, 0)
            if self.spec.readout != "membrane":
                voltage = voltage * (1.0 - spikes.detach().permute(1, 2, 0))
            return out, voltage
        for block in self.blocks[:-1]:
            x = block(x)
        last = self.blocks[-1]
        _, voltage = last.neuron.dynamics(last.synapse(x))
        spikes = last.neuron.spike(voltage)
        if self.spec.readout != "membrane":
            voltage = voltage * (1.0 - spikes.detach())
        return _step_delay(last, spikes), voltage

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the shared posterior: ``softmax(logits) == posterior`` (see the module docstring)."""
        if self.spec.readout in VOLTAGE_READOUTS:
            return voltage_logits(self.run(x)[1], self.spec.posterior_scale, len(self.blocks))
        return spike_count_logits(self(x), self.spec.posterior_scale)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


def _step_delay(block, spikes):
    from lava.lib.dl.slayer.block.base import step_delay
    return step_delay(block, spikes)


def spike_count_logits(out_spikes: torch.Tensor, posterior_scale: float) -> torch.Tensor:
    """Logits of the target's posterior from output spikes (N, C, T): scale * spike count."""
    return posterior_scale * out_spikes.sum(dim=-1)


def voltage_logits(voltage: torch.Tensor, posterior_scale: float, skip: int) -> torch.Tensor:
    """``log(mean_{t >= skip} softmax(scale * v[:, :, t]))`` for output voltages (N, C, T), stably.

    The first ``skip`` (= number of layers) steps are left out: on hardware they still carry the
    previous sample's spikes in flight through the layers' one-step delays (the same steps the spike
    comparison ignores), and in the twin the first of them is always 0.
    """
    if voltage.shape[-1] <= skip:
        raise InputError(f"voltage has {voltage.shape[-1]} steps; need more than {skip}")
    logp = torch.log_softmax(posterior_scale * voltage[..., skip:], dim=1)
    return torch.logsumexp(logp, dim=-1) - math.log(voltage.shape[-1] - skip)


def posterior_from_spikes(out_spikes, posterior_scale: float) -> torch.Tensor:
    """The target's posterior from output spikes (N, C, T), from the twin or from Lava."""
    out = torch.as_tensor(out_spikes, dtype=torch.float32)
    return torch.softmax(spike_count_logits(out, posterior_scale), dim=1)
