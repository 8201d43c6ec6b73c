"""The lava-dl twin of a NetX network, built from its ``NetSpec`` alone (the file's integers).

Every computing layer is a synapse (dense, grouped conv, or pooling as a grouped conv; weights = file
integers / 64), optional per-neuron synaptic delays, and a lava-dl CUBA neuron group (``slayer.neuron.cuba``
dynamics and surrogate spike function, threshold vThMant / 64, decays / 4096). A bias enters the voltage
every step, after the current's decay, exactly where Loihi adds it. An ``input`` layer drives its neurons
with ``round(x * weight + bias) / 64`` (graded drive; for 0/1 spikes and integer weights this is exact).

Time: the twin runs one sample of T steps. Layer p (the p-th computing layer) receives the previous layer's
spikes one step late (Loihi's one-step synapse buffer, lava-dl's ``delay_shift``) and applies its bias from
step p on: in a streamed Lava run NetX resets layer p at that step of every window (see
``hardware.replay``). The network's output spikes are the last layer's delayed by one step (lava-dl's block
convention). Steps before ``spec.settle_steps()`` are not compared with Lava and not read out: in a
streamed run they still carry the previous sample's activity.

Fast path
---------
By default (``FAST_PATH``, or ``NetxTwin(..., fast=...)`` / :meth:`NetxTwin.set_fast`) a layer computes its
CUBA dynamics with :mod:`brainleaks_lava.models.fast_cuba`'s fused kernel instead of lava-dl's two
``leaky_integrator.dynamics`` loops, the bias entering between the integrators as above; and a dense synapse
fed 0/1 inputs as one matrix product over all steps, time-major ``(T * N, in) x (in, out)``, instead of
lava-dl's 1x1x1 ``conv3d``. What is identical: the file's weights are integers ``k`` / 64, so with 0/1
inputs every partial sum of a dense synapse is a multiple of 1/64 of magnitude at most ``sum_i |k_oi|`` / 64;
it is exact in float32, in any summation order, while ``max_o sum_i |k_oi| < 2**24`` (checked per layer when
the twin is built; a layer above it keeps the ``conv3d``). So the synaptic input, and then the kernel's
currents, voltages (before and after the reset) and spikes, are bit-identical to the lava-dl path's. Inputs
that are not 0/1 (graded drives, BL-enc's expectation estimator) keep lava-dl's ``conv3d`` (its summation
order) and use only the fast dynamics, which are exact for any float32 input. Gradients: the kernel's
backward performs lava-dl's float32 operations in lava-dl's order (``exp`` may differ in the last bit, see
``fast_cuba``); the matrix product's input gradient ``g W`` sums the same products as ``conv3d``'s backward
in another order. Input gradients therefore agree with the lava-dl path to float32 rounding, not bit for
bit (tests/netx/test_twin_fast.py: ``rtol=1e-5`` with an absolute floor of 1e-6 of the largest element; on
the shipped MNIST target the largest difference is ~3e-7 of the largest gradient). Hidden layers hand the
next layer their spikes delayed by one step from the same kernel call (``cuba_time_major_both``), time-major,
so the next matrix product reads them without a copy. Layers the kernel does not cover (a threshold of
2048 or more, i.e. NetX's non-spiking integrator) and non-float32 inputs run the lava-dl path.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..models import fast_cuba
from .spec import WEIGHT_SCALE, AverageLayer, ConvLayer, DenseLayer, FlattenLayer, InputLayer, NetSpec, PoolLayer

log = logging.getLogger(__name__)

FAST_PATH = True  # the default of twins built with fast=None (read at every forward pass)
MAX_EXACT_ROW_SUM = 2 ** 24  # a dense layer's max_o sum_i |k_oi| (file integers) must stay below this


def _slayer():
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import lava.lib.dl.slayer as slayer
        from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator
        from lava.lib.dl.slayer.utils import quantize
    return slayer, leaky_integrator, quantize


class _RoundST(torch.autograd.Function):
    """Round to integers with a straight-through gradient."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class TwinLayer(torch.nn.Module):
    """One computing layer of the twin."""

    def __init__(self, layer, position: int, tau_grad: float, scale_grad: float, fast: bool | None = None):
        super().__init__()
        self.fast = fast  # None: the module's FAST_PATH
        slayer, self._li, self._quantize = _slayer()
        self.layer = layer
        self.position = position
        n = layer.neuron
        self.neuron = slayer.neuron.cuba.Neuron(
            threshold=n.threshold, current_decay=n.current_decay, voltage_decay=n.voltage_decay,
            tau_grad=tau_grad, scale_grad=scale_grad, requires_grad=False)
        w = layer.weight_array()
        if isinstance(layer, PoolLayer):
            w = layer.conv_weight()
        if w is not None:
            self.register_buffer("weight", torch.as_tensor(w / WEIGHT_SCALE, dtype=torch.float32))
        else:
            self.weight = None
        b = layer.bias_array
        if b is not None:
            self.register_buffer("bias", torch.as_tensor(b / WEIGHT_SCALE, dtype=torch.float32))
        else:
            self.bias = None
        d = getattr(layer, "delay", None)
        # a buffer, so that the twin's .to(device) moves it with the weights (not in the state dict)
        self.register_buffer("delays", None if d is None else torch.as_tensor(d, dtype=torch.long), persistent=False)
        try:
            self._cuba = fast_cuba.CubaParams.from_neuron(self.neuron)
        except ValueError as e:  # e.g. NetX's integrator (threshold 2048)
            log.debug("layer %d: lava-dl's dynamics (%s)", layer.index, e)
            self._cuba = None
        self._matmul = False
        if isinstance(layer, DenseLayer) and self.weight is not None:
            k = np.asarray(w, dtype=np.float64)  # the file's integers
            row_sum = float(np.abs(k).sum(axis=1).max()) if k.size else 0.0
            self._matmul = bool(np.all(k == np.round(k)) and row_sum < MAX_EXACT_ROW_SUM)
            if not self._matmul:
                log.debug("layer %d: dense synapse kept as conv3d (weights not integers / 64 or row sum %g)",
                          layer.index, row_sum)

    def synapse(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if isinstance(layer, InputLayer):
            return _RoundST.apply(x * layer.weight + layer.bias) / WEIGHT_SCALE
        if isinstance(layer, DenseLayer):
            # lava-dl's own dense synapse op (a 1x1x1 conv3d), so forward and gradients equal a Dense block's
            n, t = x.shape[0], x.shape[-1]
            return F.conv3d(x.reshape(n, -1, 1, 1, t), self.weight[:, :, None, None, None]).reshape(n, -1, t)
        groups = layer.groups if isinstance(layer, ConvLayer) else layer.in_shape[0]
        return F.conv3d(x, self.weight.unsqueeze(-1), None, (*layer.stride, 1), (*layer.padding, 0),
                        (*layer.dilation, 1), groups)

    def delay(self, z: torch.Tensor) -> torch.Tensor:
        if self.delays is None:
            return z
        out = torch.zeros_like(z)
        t = z.shape[-1]
        for d in torch.unique(self.delays).tolist():
            rows = self.delays == d
            if d < t:
                out[:, rows, d:] = z[:, rows, : t - d]
        return out

    def uses_fast(self, x: torch.Tensor) -> bool:
        """Whether ``forward`` takes the fast kernel for input ``x``."""
        on = FAST_PATH if self.fast is None else self.fast
        return bool(on and self._cuba is not None and x.dtype == torch.float32)

    def forward(self, x: torch.Tensor, binary: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes and voltage before the reset, both (N, *out_shape, T), in the layer's own steps.

        ``binary``: whether ``x`` holds only 0 and 1 (None: checked), which lets a dense synapse run as a
        matrix product on the fast path."""
        return self.forward_delayed(x, binary)[:2]

    def forward_delayed(self, x: torch.Tensor, binary: bool | None = None):
        """``forward``'s spikes and voltage, and the spikes delayed by one step (the next layer's input)."""
        if self.uses_fast(x):
            return self._forward_fast(x, binary)
        s, v = self._forward_lava(x)
        return s, v, _step_delay(s)

    def _forward_fast(self, x: torch.Tensor, binary: bool | None):
        t = x.shape[-1]
        if self._matmul and (fast_cuba.is_binary(x) if binary is None else binary):
            n = x.shape[0]
            # (T * N, in): a view when x is time-major, else one copy (a batched matmul of the strided
            # (T, N, in) view would broadcast the weight over T and run many times slower)
            x_tm = x.reshape(n, -1, t).permute(2, 0, 1).reshape(t * n, -1)
            z_tm = torch.mm(x_tm, self.weight.t()).view(t, n, -1)  # (T, N, out), exact (module docstring)
            if self.delays is not None:
                z_tm = self.delay(z_tm.permute(1, 2, 0)).permute(2, 0, 1)
        else:
            z_tm = self.delay(self.synapse(x)).movedim(-1, 0)
        bias = None
        if self.bias is not None:
            bias = self.bias.view(-1, *([1] * (z_tm.ndim - 3)))  # per channel, against (N, C, ...)
        try:
            s_tm, v_tm, d_tm = fast_cuba.cuba_time_major_both(z_tm, self._cuba, bias=bias, bias_from=self.position)
        except ValueError as e:  # the torch loop (CUDA, no numba) refuses inputs beyond its exact range
            log.debug("layer %d: lava-dl's dynamics (%s)", self.layer.index, e)
            s, v = self._lava_dynamics(z_tm.movedim(0, -1))
            return s, v, _step_delay(s)
        return s_tm.movedim(0, -1), v_tm.movedim(0, -1), d_tm.movedim(0, -1)

    def device_inexact_reason(self, binary: bool) -> str | None:
        """Why this layer's forward on a GPU may differ in a bit from the CPU's (None: the same numbers).

        Exact anywhere: the fast kernel's integer dynamics (float64 state on a GPU), an input layer's elementwise
        drive, and a dense synapse fed 0/1 spikes as a matrix product (its sums of multiples of 1/64 are exact in
        float32 in any order, see the module docstring). Other synapses run as convolutions, whose GPU algorithms
        (cuDNN's Winograd and FFT among them) need not sum exactly; lava-dl's dynamics are not checked there."""
        on = FAST_PATH if self.fast is None else self.fast
        if not (on and self._cuba is not None):
            return "lava-dl's dynamics (not the fast kernel)"
        if isinstance(self.layer, InputLayer) or (isinstance(self.layer, DenseLayer) and self._matmul and binary):
            return None
        if isinstance(self.layer, DenseLayer):
            return "a dense synapse fed inputs other than 0/1 runs as a convolution"
        return f"a {self.layer.kind} synapse runs as a convolution"

    def _forward_lava(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._lava_dynamics(self.delay(self.synapse(x)))

    def _lava_dynamics(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.neuron
        zeros = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        current = self._li.dynamics(z, self._quantize(n.current_decay), zeros, n.s_scale)
        if self.bias is not None:
            shape = [1, -1] + [1] * (current.ndim - 2)
            mask = torch.zeros(current.shape[-1], dtype=current.dtype, device=current.device)
            mask[self.position:] = 1.0
            current = current + self.bias.view(*shape) * mask
        voltage = self._li.dynamics(current, self._quantize(n.voltage_decay), zeros, n.s_scale,
                                    n.threshold + n.threshold_eps)
        spikes = n.spike(voltage)
        return spikes, voltage


class NetxTwin(torch.nn.Module):
    """The lava-dl twin of a ``NetSpec``: spike trains (N, *input_shape, T) in, every layer's spikes out."""

    def __init__(self, spec: NetSpec, tau_grad: float = 0.03, scale_grad: float = 3.0, fast: bool | None = None):
        super().__init__()
        self.spec = spec
        self.layers = torch.nn.ModuleList()
        pos = 0
        for layer in spec.layers:
            if layer.computes:
                self.layers.append(TwinLayer(layer, pos, tau_grad, scale_grad, fast))
                pos += 1
        self.settle = spec.settle_steps()

    def set_fast(self, fast: bool | None) -> "NetxTwin":
        """Switch the fast path on (True), off (False: lava-dl's dynamics and conv3d), or back to the module's
        ``FAST_PATH`` (None), for every layer."""
        for layer in self.layers:
            layer.fast = fast
        return self

    @property
    def num_inputs(self) -> int:
        return self.spec.num_inputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.spec.input_shape

    def device_inexact_reason(self, binary_input: bool) -> str | None:
        """Why a forward pass on a GPU may differ in a bit from the CPU's for inputs that are 0/1 spikes
        (``binary_input``) or not, naming the first layer concerned; None when every layer computes the same
        numbers (:meth:`TwinLayer.device_inexact_reason`)."""
        binary = binary_input
        for layer in self.layers:
            why = layer.device_inexact_reason(binary)
            if why is not None:
                return f"layer {layer.layer.index}: {why}"
            binary = True  # every later layer gets spikes
        return None

    def check_input(self, x: torch.Tensor, name: str = "spikes") -> torch.Tensor:
        """Accept (N, features, T) or (N, *input_shape, T); return (N, *input_shape, T)."""
        shape = tuple(self.spec.input_shape)
        if x.ndim == 3 and x.shape[1] == self.num_inputs:
            return x.reshape(x.shape[0], *shape, x.shape[-1])
        if tuple(x.shape[1:-1]) == shape:
            return x
        raise InputError(f"{name} must have shape (batch, {self.num_inputs}, T) or (batch, "
                         f"{', '.join(map(str, shape))}, T), got {tuple(x.shape)}")

    def run_all(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every computing layer's spikes (N, *out_shape, T) in its own steps (not delayed), and the last
        computing layer's voltage before the reset."""
        return self._run_all(x)[:2]

    def _run_all(self, x: torch.Tensor):
        """``run_all``, and the last layer's spikes delayed one step."""
        x = self.check_input(x)
        spikes = []
        it = iter(self.layers)
        voltage = None
        binary = None  # the first layer checks its input; later ones get 0/1 spikes
        for layer in self.spec.layers:
            if isinstance(layer, FlattenLayer):
                x = x.reshape(x.shape[0], -1, x.shape[-1])
                continue
            if isinstance(layer, AverageLayer):
                continue
            twin_layer = next(it)
            s, voltage, x = twin_layer.forward_delayed(x, binary=binary)
            spikes.append(s)
            binary = True
        return spikes, voltage, x

    def run(self, x: torch.Tensor, post_reset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output spikes (N, outputs, T), delayed one step as lava-dl blocks are, with an
        ``average`` read-out layer applied, and the last computing layer's voltage (N, neurons, T),
        undelayed, before the step's reset (after it, ``v * (1 - s)``, with ``post_reset``)."""
        out, pre, post = self.outputs(x)
        return out, (post if post_reset else pre)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One forward pass: output spikes as ``run`` gives them, and the last computing layer's voltage
        before and after the step's reset (N, neurons, T)."""
        spikes, voltage, out = self._run_all(x)
        post = voltage * (1.0 - spikes[-1].detach())
        n = out.shape[0]
        out = out.reshape(n, -1, out.shape[-1])
        if isinstance(self.spec.layers[-1], AverageLayer):
            groups = self.spec.layers[-1].out_shape[0]
            out = out.reshape(n, groups, -1, out.shape[-1]).mean(2)
        return out, voltage.reshape(n, -1, voltage.shape[-1]), post.reshape(n, -1, post.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]


def _step_delay(s: torch.Tensor) -> torch.Tensor:
    return F.pad(s, (1, 0))[..., :-1]
