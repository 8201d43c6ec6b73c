"""A convolutional spiking target of the kind lava-dl users deploy: lava-dl SLAYER CUBA blocks
conv 5x5 -> pool 2 -> conv 5x5 -> pool 2 -> flatten -> dense, exported to NetX like the MLP target.

Every block keeps lava-dl's defaults that make the Lava replay exact (8-bit weight quantizer,
``delay_shift=True``); pooling is lava-dl's ``Pool`` block (NetX has no pool process: the replay runs it as
the grouped convolution it is, see ``hardware.replay``). The posterior is the deployment's read-out
(``netx.target.readout_logits``) over the steps the deployed network reads, so training, the twin rebuilt
from the file, attacks and the replay share one definition.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from ..errors import InputError
from .base import SizedModel
from .snn import SNNSpec, _import_slayer


class ConvSNN(SizedModel, torch.nn.Module):
    """(C, H, W) spike maps in (or flat (N, C*H*W, T)); H and W must be multiples of 4."""

    is_spiking = True

    def __init__(self, spec: SNNSpec, input_shape: tuple[int, int, int], channels: tuple[int, int] = (8, 16)):
        super().__init__()
        if len(input_shape) != 3 or input_shape[1] % 4 or input_shape[2] % 4:
            raise InputError(f"the conv target takes (C, H, W) maps with H and W multiples of 4, got {input_shape}")
        if len(channels) != 2 or min(channels) <= 0:
            raise InputError(f"channels must be two positive integers, got {channels}")
        slayer = _import_slayer()
        self.spec = spec
        self.input_shape = tuple(int(v) for v in input_shape)
        c, h, w = self.input_shape
        p = spec.neuron.slayer_params()
        # weights initialised 3x lava-dl's default scale: with 1x the second conv layer stays silent on
        # rate-coded digits (measured: spike rates 0.8 %, 1.1 %, 0, 0 per layer) and nothing trains
        scale = 3.0 * spec.neuron.threshold
        cuba = slayer.block.cuba
        self.blocks = torch.nn.ModuleList([
            cuba.Conv(p, c, channels[0], 5, padding=2, weight_scale=scale, weight_norm=False, delay_shift=True),
            cuba.Pool(p, 2, weight_scale=spec.neuron.threshold, weight_norm=False, delay_shift=True),
            cuba.Conv(p, channels[0], channels[1], 5, padding=2, weight_scale=scale, weight_norm=False,
                      delay_shift=True),
            cuba.Pool(p, 2, weight_scale=spec.neuron.threshold, weight_norm=False, delay_shift=True),
            cuba.Flatten(),
            cuba.Dense(p, channels[1] * (h // 4) * (w // 4), spec.sizes[-1], weight_scale=scale, weight_norm=False,
                       delay_shift=True),
        ])
        self.settle = 5  # computing blocks: the steps a streamed deployment does not read (netx.twin)

    def _maps(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3 and x.shape[1] == self.num_inputs:
            return x.reshape(x.shape[0], *self.input_shape, x.shape[-1])
        if x.ndim == 5 and tuple(x.shape[1:4]) == self.input_shape:
            return x
        raise InputError(f"spikes must have shape (batch, {self.num_inputs}, T), got {tuple(x.shape)}")

    def check_input(self, x: torch.Tensor, name: str = "spikes") -> None:
        self._maps(x)

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spikes (N, classes, T), one step late as lava-dl blocks are, and the output layer's
        voltage before the reset (after it for the 'voltage' read-out), undelayed."""
        x = self._maps(x)
        for block in self.blocks[:-1]:
            x = block(x)
        last = self.blocks[-1]
        _, voltage = last.neuron.dynamics(last.synapse(x))
        spikes = last.neuron.spike(voltage)
        if self.spec.readout == "voltage":
            voltage = voltage * (1.0 - spikes.detach())
        out = torch.nn.functional.pad(spikes, (1, 0))[..., :-1]
        return out, voltage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        from ..netx.target import readout_logits

        out, voltage = self.run(x)
        dep = SimpleNamespace(readout=self.spec.readout, posterior_scale=self.spec.posterior_scale)
        return readout_logits(dep, self.settle, out, voltage)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)
