"""A fast CPU/GPU kernel for lava-dl's CUBA neurons and dense CUBA blocks, with lava-dl's exact semantics.

Why
---
lava-dl 0.6's CPU path computes a ``slayer.block.cuba.Dense`` block as a ``conv3d`` with a 1x1x1 kernel
followed by two Python loops over time in int64 arithmetic (current, then voltage), each step touching a
strided time slice of an (N, C, T) tensor, and a backward that also computes the gradient of the (frozen)
decays. Training the 784-3000-10 target spends most of its time there. This module computes the same
numbers faster: the synapse as one matrix product over all time steps (time-major, (T * N, in) x (in, out)),
both integrators, the reset and the spike in one fused integer loop (numba, which tonic's librosa
brings; a loop of torch operations on CUDA or without numba), one hand-written backward, and the 8-bit
quantizer as one autograd function.

The dynamics (:func:`cuba_dynamics`)
------------------------------------
Input: the synaptic input ``z`` (N, ..., T), float32, as lava-dl's synapse gives it. With ``S = 4096``
(lava-dl's state scale), ``c = round(current_decay * 4096)``, ``d = round(voltage_decay * 4096)``
(lava-dl quantizes both) and integers throughout::

    x[t] = trunc(S * z[t])                                   # float32 product, truncated like .to(int64)
    u[t] = trunc(u[t-1] * (4096 - c) / 4096) + x[t]           # current; u[-1] = 0
    v[t] = trunc(v'[t-1] * (4096 - d) / 4096) + u'[t]         # voltage before reset; v'[-1] = 0
    v'[t] = 0 if v[t] >= S * (threshold + eps) else v[t]       # reset (eps = 0.01 / S, lava-dl's threshold_eps)
    current[t] = u[t] / S,  voltage[t] = v[t] / S             # float32, what lava-dl returns
    spike[t] = voltage[t] >= threshold + eps                   # float32 comparison, lava-dl's Spike.forward

where ``u'[t] = trunc(S * current[t])`` is the float32 current as the voltage integrator re-reads it
(``u`` itself while ``|u| < 2**24``). With a ``bias`` ``b`` (a NetX bias, entering between the integrators
from step ``bias_from`` on): ``u'[t] = trunc(S * (current[t] + b))``, the float32 sum and product lava-dl's
voltage integrator computes when fed ``current + b``. ``trunc(a * b / 4096)`` is lava-dl's ``right_shift_to_zero(a * b,
12)``. The numba loop uses int64 like lava-dl. The torch loop holds the state in float64, where every
value above is an integer and every product and truncation is exact while ``|v| * 4096 < 2**53``; it
checks a bound on that before running and refuses (``ValueError``) otherwise. ``threshold`` is the
neuron's (lava-dl rounds it down to a multiple of 1/64).

Gradients are lava-dl's: the spike's surrogate ``scale_rho / 2 / tau_rho * exp(-|v - th| / tau_rho)``
(``th = threshold + eps``, ``tau_rho = 100 * tau_grad * threshold``, ``scale_rho = 0.1 * scale_grad``,
all float32 scalars) times the spike gradient, plus the gradient arriving at ``voltage`` directly; then
the two leaky integrators backwards without the reset: ``g[t] = (1 - d / 4096) * g[t+1] + g_out[t]``
(float32, a multiply and an add as lava-dl does; with ``c = 4096`` the current's pass is the identity).
Decays and threshold get no gradient (lava-dl's default ``requires_grad=False``).

Exactness: the forward (current, voltage, spikes) is bit-identical to ``neuron.dynamics`` +
``neuron.spike``. The backward performs the same float32 operations in the same order element by
element; the only freedom is ``exp``, whose vectorized and scalar paths on the CPU may differ in the
last bit depending on where an element falls in memory (lava-dl itself differs across thread counts for
the same reason): gradients agree to ~1e-6 relative, exactly in most elements.

The dense synapse (:class:`FastDenseStack`)
-------------------------------------------
With lava-dl's default 8-bit quantizer (weights ``k / 32`` with integer ``k`` in [-128, 127]) and 0/1
input spikes, every partial sum of ``W x`` is a multiple of 1/32
below ``fan_in * 4`` in magnitude: exact in float32 while ``fan_in * 128 < 2**24`` (fan-in < 131072), in
any summation order. So a matrix product over (T * N, in) gives bit-identical synaptic input to lava-dl's
``conv3d``. Inputs that are not 0/1 (graded drives) go through lava-dl's own synapse instead. The
weight gradient is a different summation order of the same products, equal up to float32 rounding.

Coverage: dense CUBA blocks with the default quantizer, ``delay_shift=True``, no axonal delay, no mask,
no weight norm, no bias, shared neuron parameters, non-learnable decays, binary spikes, no persistent
state, no neuron norm/dropout, threshold < 2048. :func:`unsupported_reason` names what is not covered;
callers then use lava-dl's blocks.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

STATE_SCALE = 4096  # lava-dl's s_scale for CUBA neurons (w_scale 64 x 64)
P_SCALE = 4096  # decay scale
TAU_RHO_MULT = 100.0  # lava-dl cuba.py's multipliers of tau_grad / scale_grad
SCALE_RHO_MULT = 0.1
_EXACT_STATE = 2.0 ** 40  # |v| * 4096 must stay below 2**53 (float64 integers); 2**40 leaves a margin


def _decay_int(decay: float | torch.Tensor) -> int:
    """lava-dl's quantized decay, an integer in [0, 4096] (``quantize(4096 * decay)``, rounding half to even)."""
    if isinstance(decay, torch.Tensor):
        return int(torch.round(decay.detach().float().reshape(-1)[0]).item())
    t = torch.tensor([P_SCALE * float(decay)], dtype=torch.float32).clamp(0, P_SCALE)
    return int(torch.round(t).item())


class CubaParams:
    """The numbers of one CUBA neuron group, as lava-dl uses them (see the module docstring).

    ``threshold`` (lava-dl rounds it down to a multiple of 1/64 here, as its ``Neuron`` does),
    ``current_decay`` and ``voltage_decay`` as integers in [0, 4096] (lava-dl's quantized decays),
    ``tau_rho`` and ``scale_rho`` the surrogate's width and height as lava-dl's ``Spike`` receives them.
    """

    def __init__(self, threshold: float, current_decay: int, voltage_decay: int, tau_rho: float,
                 scale_rho: float):
        if not 0 <= current_decay <= P_SCALE or not 0 <= voltage_decay <= P_SCALE:
            raise ValueError(f"decays must be integers in [0, {P_SCALE}], got {current_decay}, {voltage_decay}")
        threshold = int(threshold * 64) / 64
        if not 0 < threshold < 2048:
            raise ValueError(f"threshold must be in (0, 2048) for the fast kernel, got {threshold}")
        if not (tau_rho > 0 and scale_rho > 0):
            raise ValueError(f"tau_rho and scale_rho must be positive, got {tau_rho}, {scale_rho}")
        self.threshold = threshold
        self.current_decay = int(current_decay)
        self.voltage_decay = int(voltage_decay)
        self.tau_rho = float(tau_rho)
        self.scale_rho = float(scale_rho)
        eps = 0.01 / STATE_SCALE  # lava-dl's threshold_eps
        self.spike_threshold = threshold + eps  # the Python float lava-dl compares voltages with
        # the reset compares the int64 state with S * (th + eps) in float32 (torch promotes an int64 tensor
        # against a float scalar to float32); for states below 2**24 that is state >= ceil(that float32)
        reset32 = torch.tensor(self.spike_threshold * STATE_SCALE, dtype=torch.float32)
        self.reset32 = float(reset32.item())  # a float32 value
        self.reset_level = float(torch.ceil(reset32.double()).item())
        self.spike_level = float(torch.tensor(self.spike_threshold, dtype=torch.float32).item())

    @classmethod
    def from_neuron(cls, neuron) -> "CubaParams":
        """From a ``slayer.neuron.cuba.Neuron`` (its quantized decays, threshold and surrogate settings)."""
        return cls(threshold=neuron.threshold, current_decay=_decay_int(neuron.current_decay),
                   voltage_decay=_decay_int(neuron.voltage_decay), tau_rho=neuron.tau_rho * TAU_RHO_MULT,
                   scale_rho=neuron.scale_rho * SCALE_RHO_MULT)

    @classmethod
    def from_config(cls, threshold: float, current_decay: float, voltage_decay: float, tau_grad: float = 1.0,
                    scale_grad: float = 1.0) -> "CubaParams":
        """From the settings lava-dl's ``Neuron`` takes (decays as fractions of 1), computed its way."""
        th = int(threshold * 64) / 64
        return cls(th, _decay_int(current_decay), _decay_int(voltage_decay), tau_grad * th * TAU_RHO_MULT,
                   scale_grad * SCALE_RHO_MULT)

    def __repr__(self) -> str:
        return (f"CubaParams(threshold={self.threshold}, current_decay={self.current_decay}, "
                f"voltage_decay={self.voltage_decay}, tau_rho={self.tau_rho}, scale_rho={self.scale_rho})")


def _current_tm(z: torch.Tensor, p: CubaParams) -> torch.Tensor:
    """The current integrator's output as the voltage integrator reads it, scaled by S: float32 integers
    (T, ...) when the current has no memory (``c = 4096``), else float64."""
    x = torch.mul(z, STATE_SCALE).trunc_()  # float32 product truncated, like lava-dl's .to(int64)
    if p.current_decay == P_SCALE:
        return x  # u = x; u / S and back is exact (a power-of-two scaling of a float32)
    keep = (P_SCALE - p.current_decay) / P_SCALE  # exact in float64
    u = torch.empty(x.shape, dtype=torch.float64, device=x.device)
    u[0].copy_(x[0])
    tmp = torch.empty_like(u[0])
    for t in range(1, x.shape[0]):
        torch.mul(u[t - 1], keep, out=tmp)
        tmp.trunc_()
        torch.add(tmp, x[t], out=u[t])
    # the voltage integrator re-reads the float32 current u / S: round u to float32 (exact below 2**24)
    return u.float()


_NUMBA_KERNEL = None  # the compiled loop, False when numba is missing or failed


def _numba_kernel():
    """The fused integer loop of both integrators, compiled with numba (a dependency of tonic's librosa),
    or None when numba is not importable (the torch loop then runs)."""
    global _NUMBA_KERNEL
    if _NUMBA_KERNEL is None:
        try:
            import numba
            import numpy as np
        except ImportError:
            log.info("numba is not available: the CUBA kernel runs its time loop with torch operations")
            _NUMBA_KERNEL = False
            return None

        @numba.njit(cache=True, nogil=True)
        def cuba_loop(z, keep_c, memory, keep_v, reset32, spike32, delay, bias, bias_from, volt,
                      spikes):  # pragma: no cover
            # z: float32 (T, M) synaptic input; volt: float32 (T, M) voltage before the reset; spikes:
            # float32 (T, M), shifted one step later when delay. int64 arithmetic and float32 roundings
            # exactly as lava-dl's _li_dynamics_fwd and Spike.forward. bias: float32 (M,) added to the
            # float32 current from step bias_from on (an empty array: no bias).
            steps, m_all = z.shape
            has_bias = bias.shape[0] > 0
            scale = np.float32(4096.0)
            inv = np.float32(1.0 / 4096.0)
            u = np.zeros(m_all, np.int64)
            v = np.zeros(m_all, np.int64)
            if delay:
                spikes[0, :] = 0.0
            for t in range(steps):
                for m in range(m_all):
                    xi = np.int64(z[t, m] * scale)  # float32 product, truncated toward zero like .to(int64)
                    if memory:
                        pu = u[m] * keep_c
                        ui = ((pu >> 12) if pu > 0 else -((-pu) >> 12)) + xi
                        u[m] = ui
                        xi = np.int64(np.float32(ui))  # the voltage integrator re-reads the float32 current
                    if has_bias and t >= bias_from:  # float32 current u / S plus the bias, re-read x S
                        xi = np.int64((np.float32(xi) * inv + bias[m]) * scale)
                    pv = v[m] * keep_v
                    vi = ((pv >> 12) if pv > 0 else -((-pv) >> 12)) + xi
                    f = np.float32(vi)
                    vf = f * inv  # a power of two: exact
                    volt[t, m] = vf
                    s = np.float32(1.0) if vf >= spike32 else np.float32(0.0)
                    if not delay:
                        spikes[t, m] = s
                    elif t + 1 < steps:
                        spikes[t + 1, m] = s
                    v[m] = 0 if f >= reset32 else vi
        _NUMBA_KERNEL = cuba_loop
    return _NUMBA_KERNEL or None


def _forward_numba(kernel, z: torch.Tensor, p: CubaParams, delay: bool, bias: torch.Tensor | None,
                   bias_from: int) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np

    flat = z.reshape(z.shape[0], -1)
    voltage = torch.empty_like(flat)
    spikes = torch.empty_like(flat)
    b = np.zeros(0, np.float32) if bias is None else bias.expand(z.shape[1:]).contiguous().reshape(-1).numpy()
    kernel(flat.numpy(), P_SCALE - p.current_decay, p.current_decay < P_SCALE, P_SCALE - p.voltage_decay,
           np.float32(p.reset32), np.float32(p.spike_level), delay, b, int(bias_from), voltage.numpy(),
           spikes.numpy())
    return spikes.reshape(z.shape), voltage.reshape(z.shape)


def _voltage_torch(z: torch.Tensor, p: CubaParams, bias: torch.Tensor | None = None,
                   bias_from: int = 0) -> torch.Tensor:
    """The same loop with torch operations (CUDA, or no numba): float64 state, exact while |v| < 2**40."""
    steps = z.shape[0]
    peak = 0.0
    if z.numel():
        lo, hi = torch.aminmax(z)
        peak = max(-float(lo), float(hi)) * STATE_SCALE
    bound_u = peak * (steps if p.current_decay < P_SCALE else 1)  # |u| <= sum of |x| over time
    if bias is not None and bias.numel():
        bound_u += float(bias.abs().max()) * STATE_SCALE + 1.0
    if not bound_u * steps < _EXACT_STATE:  # |v| <= sum of |u| over time (also catches NaN / inf)
        raise ValueError(f"synaptic input too large (or not finite) for the exact float64 kernel: |z| up to "
                         f"{peak / STATE_SCALE:g}")
    u = _current_tm(z, p)
    if bias is not None and bias_from < steps:
        # lava-dl's float32 current u / S plus the bias, re-read by the voltage integrator as trunc(S * .)
        # (u is a new float32 tensor: changed in place)
        u[bias_from:].mul_(1.0 / STATE_SCALE).add_(bias).mul_(STATE_SCALE).trunc_()
    u = u.double()
    keep = (P_SCALE - p.voltage_decay) / P_SCALE
    voltage = torch.empty_like(z)
    v = torch.empty(z.shape[1:], dtype=torch.float64, device=z.device)
    prev = torch.zeros_like(v)
    for t in range(steps):
        if t == 0 or p.voltage_decay == P_SCALE:
            v.copy_(u[t])  # trunc(0 * keep) + u
        else:
            torch.mul(prev, keep, out=v)
            v.trunc_()
            v.add_(u[t])
        voltage[t].copy_(v)  # rounds to float32 like lava-dl's int64 -> float32 (exact below 2**24)
        prev = v.masked_fill(v >= p.reset_level, 0.0)
    return voltage


def _forward_tm(z: torch.Tensor, p: CubaParams, delay: bool, bias: torch.Tensor | None = None,
                bias_from: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-major (T, ...) float32 synaptic input -> (spikes, voltage) float32, time-major; the spikes
    delayed by one step (``out[0] = 0``) when ``delay``; ``bias`` (float32, broadcastable to ``z.shape[1:]``)
    added to the current from step ``bias_from`` on."""
    kernel = _numba_kernel() if z.device.type == "cpu" and z.is_contiguous() else None
    if kernel:
        return _forward_numba(kernel, z, p, delay, bias, bias_from)
    if z.device.type != "cpu":
        _log_device_loop(z.device)
    voltage = _voltage_torch(z, p, bias, bias_from)
    voltage.mul_(1.0 / STATE_SCALE)  # a power of two: commutes with the float32 rounding of the state
    if delay:
        spikes = torch.empty_like(voltage)
        spikes[0].zero_()
        torch.ge(voltage[:-1], p.spike_level, out=spikes[1:])
    else:
        spikes = torch.ge(voltage, p.spike_level).to(voltage.dtype)
    return spikes, voltage


_DEVICE_LOOP_LOGGED: set = set()


def _log_device_loop(device: torch.device) -> None:
    """Say once per device type that the numba loop (CPU code) is not used there."""
    if device.type not in _DEVICE_LOOP_LOGGED:
        _DEVICE_LOOP_LOGGED.add(device.type)
        log.info("CUBA kernel on %s: the numba loop is CPU only; the time loop runs as torch operations on %s "
                 "(float64 state, the same integers)", device.type, device.type)


def _leaky_backward(g: torch.Tensor, decay: int) -> torch.Tensor:
    """lava-dl's ``_li_dynamics_bwd`` on time-major float32 gradients (reversed recursion, no reset),
    in place."""
    if decay == P_SCALE:
        return g  # lava-dl's 0 * g[t+1] + g[t] equals g[t]
    keep = (1 - torch.tensor([float(decay)], dtype=torch.float32, device=g.device) / P_SCALE).reshape(())
    tmp = torch.empty_like(g[0])
    for t in range(g.shape[0] - 2, -1, -1):
        torch.mul(g[t + 1], keep, out=tmp)
        g[t].add_(tmp)  # == keep * g[t+1] + g[t], one float32 rounding per operation as in lava-dl
    return g


def _surrogate_times(voltage: torch.Tensor, grad: torch.Tensor, p: CubaParams,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """lava-dl's ``_spike_backward(voltage, ...) * grad`` for binary spikes: the same float32 scalars
    and operation order, computed in place in ``out`` (a new tensor when None)."""
    f32 = dict(dtype=torch.float32, device=voltage.device)
    th = torch.tensor(p.spike_threshold, **f32)
    tau = torch.tensor(p.tau_rho, **f32)
    height = torch.tensor(p.scale_rho, **f32) / 2 / tau
    out = torch.sub(voltage, th, out=out)
    out.abs_().neg_().div_(tau).exp_()
    torch.mul(height, out, out=out)
    return out.mul_(grad)


class _CubaTM(torch.autograd.Function):
    """Time-major CUBA dynamics + spike with lava-dl's surrogate gradient: z (T, ...) -> (spikes, voltage)."""

    @staticmethod
    def forward(ctx, z, params, delay, bias=None, bias_from=0):
        spikes, voltage = _forward_tm(z, params, delay, bias, bias_from)
        ctx.params, ctx.delay = params, delay
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(voltage)
        return spikes, voltage

    @staticmethod
    def backward(ctx, g_spikes, g_voltage):
        (voltage,) = ctx.saved_tensors
        if ctx.delay:
            g = _cuba_backward(voltage, ctx.params, None, g_spikes, g_voltage)
        else:
            g = _cuba_backward(voltage, ctx.params, g_spikes, None, g_voltage)
        return g, None, None, None, None


class _CubaTMBoth(torch.autograd.Function):
    """:class:`_CubaTM` returning the spikes both undelayed and delayed by one step: z -> (spikes, voltage,
    delayed), saving the caller a differentiable shift (a copy forward, a zero fill and a copy backward)."""

    @staticmethod
    def forward(ctx, z, params, bias=None, bias_from=0):
        spikes, voltage = _forward_tm(z, params, False, bias, bias_from)
        ctx.params = params
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(voltage)
        return spikes, voltage, step_delay_tm(spikes)

    @staticmethod
    def backward(ctx, g_spikes, g_voltage, g_delayed):
        (voltage,) = ctx.saved_tensors
        return _cuba_backward(voltage, ctx.params, g_spikes, g_delayed, g_voltage), None, None, None


def _cuba_backward(voltage, p: CubaParams, g_spikes, g_delayed, g_voltage):
    """The gradient w.r.t. z from those of the undelayed spikes, the delayed spikes and the voltage (each may
    be None): lava-dl's delay backward (the gradient of step t + 1 goes to step t, the last step gets 0),
    the surrogate, then both leaky integrators backwards."""
    if g_delayed is not None and g_spikes is not None:  # both used: sum them as autograd would
        g_spikes = g_spikes.clone()
        g_spikes[:-1].add_(g_delayed[1:])
        g_delayed = None
    if g_delayed is not None:
        g = torch.empty_like(voltage)
        _surrogate_times(voltage[:-1], g_delayed[1:], p, out=g[:-1])
        g[-1] = 0.0
    elif g_spikes is not None:
        g = _surrogate_times(voltage, g_spikes, p)
    elif g_voltage is not None:
        g = None
    else:
        return None
    if g is None:
        g = g_voltage.clone()
    elif g_voltage is not None:
        g.add_(g_voltage)
    g = _leaky_backward(g, p.voltage_decay)
    return _leaky_backward(g, p.current_decay)


def cuba_time_major(z: torch.Tensor, params: CubaParams, delay: bool = False, bias: torch.Tensor | None = None,
                    bias_from: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cuba_dynamics` on a time-major (T, N, ...) tensor; returns time-major (spikes, voltage), the
    spikes delayed by one step (lava-dl's ``delay_shift``) when ``delay``.

    ``bias`` (float32, broadcastable to ``z.shape[1:]``, no gradient) enters between the two integrators
    from step ``bias_from`` on, as ``current + bias`` in float32 would before lava-dl's voltage
    integrator (a NetX bias): the voltage integrator reads ``trunc(S * (u / S + bias))``. It does not change
    the backward (the gradient of ``current + bias`` w.r.t. the current is 1)."""
    if z.dtype != torch.float32:
        raise ValueError(f"z must be float32, got {z.dtype}")
    bias = _check_bias(bias, z)
    return _CubaTM.apply(z.contiguous(), params, bool(delay), bias, int(bias_from))


def cuba_time_major_both(z: torch.Tensor, params: CubaParams, bias: torch.Tensor | None = None,
                         bias_from: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`cuba_time_major` (undelayed) that also returns the spikes delayed by one step, time-major:
    ``(spikes, voltage, step_delay_tm(spikes))`` with the same values and gradients, cheaper than shifting
    the spikes outside (one copy forward, none backward)."""
    if z.dtype != torch.float32:
        raise ValueError(f"z must be float32, got {z.dtype}")
    bias = _check_bias(bias, z)
    return _CubaTMBoth.apply(z.contiguous(), params, bias, int(bias_from))


def _check_bias(bias, z):
    if bias is None:
        return None
    if bias.requires_grad:
        raise ValueError("the bias of the fast CUBA kernel takes no gradient")
    bias = bias.to(device=z.device, dtype=torch.float32)
    torch.broadcast_shapes(bias.shape, z.shape[1:])  # raises if it does not fit
    return bias


def cuba_dynamics(z: torch.Tensor, params: CubaParams, bias: torch.Tensor | None = None,
                  bias_from: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """lava-dl CUBA dynamics + spike on synaptic input ``z`` (N, ..., T), float32 (module docstring).

    Returns ``(spikes, voltage)``, both (N, ..., T) float32: the spikes *not* delayed (a block's
    ``delay_shift`` is applied by the caller) and the voltage before the step's reset, both differentiable
    w.r.t. ``z`` with lava-dl's surrogate gradients. Equals ``neuron.spike(neuron.dynamics(z)[1])`` and
    ``neuron.dynamics(z)[1]`` of a fresh ``slayer.neuron.cuba.Neuron`` with the same settings.
    ``bias`` (broadcastable to ``z.shape[1:-1]``, e.g. (C, 1, 1) for a conv layer) is added between the
    integrators from step ``bias_from`` on (:func:`cuba_time_major`).
    """
    if z.ndim < 2:
        raise ValueError(f"z must have shape (N, ..., T), got {tuple(z.shape)}")
    perm = (z.ndim - 1,) + tuple(range(z.ndim - 1))
    inv = tuple(range(1, z.ndim)) + (0,)
    spikes, voltage = cuba_time_major(z.permute(perm), params, bias=bias, bias_from=bias_from)
    return spikes.permute(inv), voltage.permute(inv)


def step_delay_tm(s: torch.Tensor) -> torch.Tensor:
    """lava-dl's one-step ``delay_shift`` on a time-major tensor: out[0] = 0, out[t] = s[t-1]."""
    return torch.cat([torch.zeros_like(s[:1]), s[:-1]], dim=0)


# ----------------------------------------------------------------------------------------------------
# dense CUBA blocks
# ----------------------------------------------------------------------------------------------------

MAX_EXACT_FAN_IN = 2 ** 24 // 128  # partial sums of k/32 (|k| <= 128) over 0/1 inputs stay exact in float32


def unsupported_reason(block) -> str | None:
    """Why ``block`` (a ``slayer.block.cuba.Dense``) cannot run on this kernel, or None if it can."""
    from lava.lib.dl.slayer.block.cuba import Dense

    if type(block) is not Dense:
        return f"{type(block).__name__} blocks"
    n, s = block.neuron, block.synapse
    checks = [
        (getattr(block, "delay", None) is not None, "axonal delays"),
        (block.delay_shift is not True, "delay_shift=False"),
        (getattr(block, "mask", None) is not None, "synapse masks"),
        (getattr(block, "count_log", False), "count_log"),
        (getattr(s, "complex", False), "complex synapses"),
        (s.weight_norm_enabled, "weight normalization"),
        (s.bias is not None, "synapse bias"),
        (getattr(s, "_pre_hook_fx", None) != n.quantize_8bit, "a weight pre-hook other than the 8-bit quantizer"),
        (n.w_scale != 64 or n.s_scale != STATE_SCALE or n.p_scale != P_SCALE, "non-default neuron scales"),
        (s.in_channels >= MAX_EXACT_FAN_IN, f"fan-in >= {MAX_EXACT_FAN_IN}"),
        (n.shared_param is not True, "per-neuron decays"),
        (n.requires_grad, "learnable decays"),
        (n.persistent_state, "persistent state"),
        (n.graded_spike, "graded spikes"),
        (n.norm is not None, "neuron normalization"),
        (n.drop is not None, "neuron dropout"),
        (not 0 < n.threshold < 2048, "threshold outside (0, 2048)"),
    ]
    for bad, what in checks:
        if bad:
            return what
    return None


class _Quantize8(torch.autograd.Function):
    """lava-dl's ``Neuron.quantize_8bit`` (``quantize(w, 2/64).clamp(-256/64, 254/64)``, straight-through round,
    clamp's masked gradient) with in-place steps: the same values (scaling by 32 is exact) and gradients."""

    @staticmethod
    def forward(ctx, w):
        q = torch.mul(w, 32.0).round_()  # == round(w / (2/64)): dividing by a power of two is exact
        inside = (q >= -128.0).logical_and_(q <= 127.0)  # clamp's gradient mask (bounds included, as torch's)
        ctx.save_for_backward(inside)
        return q.clamp_(-128.0, 127.0).mul_(1.0 / 32.0)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved_tensors
        return torch.where(inside, g, 0.0)


def quantize_8bit(weight: torch.Tensor) -> torch.Tensor:
    """The weights a CUBA block with lava-dl's default quantizer computes with (and exports x 64)."""
    return _Quantize8.apply(weight)


def is_binary(x: torch.Tensor) -> bool:
    """Whether every element of ``x`` is 0 or 1 (the inputs a matrix-product synapse is exact for)."""
    return bool(((x == 0) | (x == 1)).all())


_is_binary = is_binary


class FastDenseStack:
    """Runs a list of ``slayer.block.cuba.Dense`` blocks (input -> ... -> output) on this kernel, using the
    blocks' own parameters and quantizer; see the module docstring for what is identical to lava-dl."""

    def __init__(self, blocks):
        self.blocks = list(blocks)
        self.params = [CubaParams.from_neuron(b.neuron) for b in self.blocks]

    def _synapse_tm(self, block, x_tm: torch.Tensor, binary: bool) -> torch.Tensor:
        syn = block.synapse
        if not binary:  # graded input: lava-dl's own conv3d keeps its summation order
            n_t = x_tm.permute(1, 2, 0)
            return syn(n_t).permute(2, 0, 1).contiguous()
        w = quantize_8bit(syn.weight).reshape(syn.out_channels, syn.in_channels)
        return torch.matmul(x_tm, w.t())

    def run(self, x: torch.Tensor, keep_hidden: bool = False):
        """Spikes (N, C, T) in. Returns the last block's spikes time-major (T, N, C) *before* its one-step
        delay, its voltage (before the reset) time-major, and, with ``keep_hidden``, every block's output
        spikes as the block returns them (delayed one step), (N, C, T) each."""
        for b in self.blocks:
            if b.neuron.shape is None:  # what lava-dl's first forward sets (its export needs it)
                b.neuron.shape = torch.Size([b.synapse.out_channels])
                b.neuron.num_neurons = b.synapse.out_channels
        h = x.permute(2, 0, 1).contiguous()
        binary = _is_binary(h)
        hidden = []
        spikes = voltage = None
        for i, (block, p) in enumerate(zip(self.blocks, self.params)):
            z = self._synapse_tm(block, h, binary)
            last = i == len(self.blocks) - 1
            spikes, voltage = cuba_time_major(z, p, delay=not last)  # the last block's spikes undelayed
            h, binary = spikes, True
            if keep_hidden:
                hidden.append((step_delay_tm(spikes) if last else spikes).permute(1, 2, 0))
        return spikes, voltage, hidden


def stack_unsupported_reason(blocks) -> str | None:
    for i, b in enumerate(blocks):
        why = unsupported_reason(b)
        if why:
            return f"block {i}: {why}"
    return None


def log_fallback(what: str, why: str) -> None:
    log.info("%s: lava-dl's blocks are used (%s is not covered by the fast CUBA kernel)", what, why)


__all__ = ["CubaParams", "cuba_dynamics", "cuba_time_major", "cuba_time_major_both", "step_delay_tm", "is_binary", "FastDenseStack",
           "unsupported_reason", "stack_unsupported_reason", "STATE_SCALE"]
