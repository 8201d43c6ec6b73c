"""Typed, frozen specs of the layers of a NetX network, holding the integers NetX runs.

Units are the file's (and so Loihi's): weights and biases as the integers NetX hands to Lava (weight x 64
of a lava-dl weight, already truncated and clipped the way NetX does it), decays x 4096, thresholds as
``vThMant`` (x 64 of a lava-dl threshold), delays in time steps. Shapes are lava-dl's: ``(C, H, W)`` for
feature maps and ``(n,)`` for flat layers (NetX reverses them to ``(W, H, C)`` internally).

Every layer that computes (``InputLayer``, ``DenseLayer``, ``ConvLayer``, ``PoolLayer``) is one Lava
process with one neuron group; ``FlattenLayer`` only reorders; ``AverageLayer`` is lava-dl's population
read-out, computed on the host from the previous layer's spikes (NetX has no process for it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

WEIGHT_SCALE = 64  # the file holds lava-dl weights, biases and thresholds x 64
DECAY_SCALE = 4096  # decays x 4096
# NetX gives a layer without a neuron group this neuron: a non-leaky current integrator that never spikes
INTEGRATOR_VTH = 1 << 17


@dataclass(frozen=True)
class NeuronSpec:
    """A CUBA neuron group as NetX builds it (the older 'LOIHI' type runs as CUBA; its extra keys are
    ignored by NetX). ``kind`` is 'CUBA', 'LOIHI' or 'integrator' (no neuron group in the file)."""

    kind: str
    i_decay: int
    v_decay: int
    vth_mant: int
    ignored: tuple[str, ...] = ()  # keys present in the file that NetX does not read

    @property
    def spiking(self) -> bool:
        return self.kind != "integrator"

    @property
    def threshold(self) -> float:  # lava-dl units
        return self.vth_mant / WEIGHT_SCALE

    @property
    def current_decay(self) -> float:
        return self.i_decay / DECAY_SCALE

    @property
    def voltage_decay(self) -> float:
        return self.v_decay / DECAY_SCALE

    def describe(self) -> str:
        if not self.spiking:
            return "integrator (no neuron group: iDecay 0, vDecay 4096, never spikes)"
        return f"{self.kind} iDecay {self.i_decay} vDecay {self.v_decay} vThMant {self.vth_mant}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "iDecay": self.i_decay, "vDecay": self.v_decay, "vThMant": self.vth_mant}


INTEGRATOR = NeuronSpec(kind="integrator", i_decay=0, v_decay=DECAY_SCALE, vth_mant=INTEGRATOR_VTH)


@dataclass(frozen=True, eq=False)
class Layer:
    """Base of every layer spec: its index in the file and its input and output shapes."""

    kind: ClassVar[str] = ""
    index: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    # what NetX changed while reading the file (clipped or truncated weights, clamped delays)
    notes: tuple[str, ...] = ()

    @property
    def neuron(self) -> NeuronSpec | None:
        """The layer's neuron group (None for layers that only reorder or read out)."""
        return getattr(self, "neuron_spec", None)

    @property
    def computes(self) -> bool:
        """True for layers that are a Lava process with a neuron group."""
        return self.neuron is not None

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    def weight_array(self) -> np.ndarray | None:
        w = getattr(self, "weight", None)
        return w if isinstance(w, np.ndarray) else None

    @property
    def synapses(self) -> int:
        return 0

    @property
    def fan_in(self) -> int:
        return 0

    @property
    def bias_array(self) -> np.ndarray | None:
        b = getattr(self, "bias", None)
        return b if isinstance(b, np.ndarray) else None

    @property
    def max_delay(self) -> int:
        return 0

    def describe(self) -> str:
        return ""


@dataclass(frozen=True, eq=False)
class InputLayer(Layer):
    """lava-dl's ``Input`` block: each input value x drives its neuron with ``x * weight + bias``."""

    kind: ClassVar[str] = "input"
    weight: int = WEIGHT_SCALE
    bias: int = 0
    neuron_spec: NeuronSpec = field(default=INTEGRATOR)


    @property
    def fan_in(self) -> int:
        return 1

    def describe(self) -> str:
        return f"drive x*{self.weight}+{self.bias}"


@dataclass(frozen=True, eq=False)
class DenseLayer(Layer):
    kind: ClassVar[str] = "dense"
    weight: np.ndarray = None  # (out, in) int64
    bias: np.ndarray | None = None  # (out,) int64
    delay: np.ndarray | None = None  # (out,) int64: delay of every synapse into output neuron i
    neuron_spec: NeuronSpec = field(default=INTEGRATOR)

    @property
    def synapses(self) -> int:
        return int(np.count_nonzero(self.weight))

    @property
    def fan_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def max_delay(self) -> int:
        return 0 if self.delay is None else int(self.delay.max())

    def describe(self) -> str:
        return f"{self.weight.shape[1]}->{self.weight.shape[0]}"


@dataclass(frozen=True, eq=False)
class ConvLayer(Layer):
    kind: ClassVar[str] = "conv"
    weight: np.ndarray = None  # (out, in/groups, kh, kw) int64
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: np.ndarray | None = None  # (out channels,) int64
    neuron_spec: NeuronSpec = field(default=INTEGRATOR)

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.weight.shape[1:]))

    @property
    def synapses(self) -> int:  # connections, counting every output position
        h, w = self.out_shape[1:]
        return int(np.count_nonzero(self.weight)) * h * w

    def describe(self) -> str:
        k = self.kernel
        return (f"{k[0]}x{k[1]} stride {self.stride[0]},{self.stride[1]} pad {self.padding[0]},{self.padding[1]} "
                f"dil {self.dilation[0]},{self.dilation[1]} groups {self.groups}")


@dataclass(frozen=True, eq=False)
class PoolLayer(Layer):
    """lava-dl's ``Pool`` block: every channel summed over a window with one shared weight per tap.
    NetX has no pool process; the replay runs it as a grouped convolution with the same weights."""

    kind: ClassVar[str] = "pool"
    weight: np.ndarray = None  # (kh, kw) int64
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    neuron_spec: NeuronSpec = field(default=INTEGRATOR)


    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[0]), int(self.weight.shape[1])

    def conv_weight(self) -> np.ndarray:
        """The equivalent grouped-conv weight (C, 1, kh, kw)."""
        c = self.in_shape[0]
        return np.tile(self.weight[None, None], (c, 1, 1, 1))

    @property
    def fan_in(self) -> int:
        return int(self.weight.size)

    @property
    def synapses(self) -> int:
        return int(np.count_nonzero(self.weight)) * self.out_size

    def describe(self) -> str:
        k = self.kernel
        return f"{k[0]}x{k[1]} stride {self.stride[0]},{self.stride[1]}"


@dataclass(frozen=True, eq=False)
class FlattenLayer(Layer):
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True, eq=False)
class AverageLayer(Layer):
    """lava-dl's ``Average`` block: mean spike rate of each of ``out_shape[0]`` equal population groups."""

    kind: ClassVar[str] = "average"


@dataclass(frozen=True, eq=False)
class NetSpec:
    """The whole network: its layers in file order, and the input shape it takes."""

    path: str
    sha256: str
    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]  # (n,) or (C, H, W)

    @property
    def computing(self) -> list[Layer]:
        """The layers that are Lava processes (in order)."""
        return [layer for layer in self.layers if layer.computes]

    @property
    def has_input_layer(self) -> bool:
        return any(isinstance(layer, InputLayer) for layer in self.layers)

    @property
    def num_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_layer(self) -> Layer:
        return self.computing[-1]

    @property
    def readout_layer(self) -> Layer:
        return self.layers[-1]

    @property
    def num_outputs(self) -> int:
        return self.readout_layer.out_size

    @property
    def has_bias(self) -> bool:
        return any(layer.bias_array is not None for layer in self.layers) or any(
            isinstance(layer, InputLayer) and layer.bias != 0 for layer in self.layers)

    @property
    def integrator_output(self) -> bool:
        """The last computing layer has no neuron group: its voltage is the read-out."""
        return not self.output_layer.neuron.spiking

    def clean_steps(self) -> list[int]:
        """Per computing layer, the first of its own steps that is compared and read out:
        ``p + sum_{j<=p} max_delay_j``. In a streamed Lava run layer p is reset at its step p; without the
        replay's clearing of the delay buffers (``hardware.delay_models``) the previous sample's spikes still
        in its synaptic delays would arrive up to d_p steps later. With it the stream is exact from step p
        on (measured); the delay term is kept as the read-out convention."""
        out, acc = [], 0
        for p, layer in enumerate(self.computing):
            acc += layer.max_delay
            out.append(p + acc)
        return out

    def settle_steps(self) -> int:
        """Leading steps of each sample's window not compared or read out: one per layer (in a streamed
        Lava run they still hold the previous sample's activity), plus every layer's longest synaptic delay
        (see ``clean_steps``)."""
        return sum(1 + layer.max_delay for layer in self.computing)
