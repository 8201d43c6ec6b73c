"""A deployed NetX network as an attack target: its twin plus its deployment, with the posterior.

``DeployedSNN`` is what ``models.files.load_snn`` returns for every ``.net`` file, the toolkit's own and
anyone else's. Its ``spec`` is an ``SNNSpec`` summary (flat layer sizes, steps, the output layer's neuron,
read-out) so code written for the toolkit's MLP targets keeps working; the network itself is the
``NetSpec`` in ``net``.
"""
from __future__ import annotations

import math

import torch

from ..models.snn import NeuronConfig, SNNSpec
from .deployment import Deployment
from .spec import NetSpec
from .twin import NetxTwin


class DeployedSNN(torch.nn.Module):
    is_spiking = True

    def __init__(self, net: NetSpec, deployment: Deployment):
        super().__init__()
        self.net = net
        self.deployment = deployment
        self.twin = NetxTwin(net, tau_grad=deployment.tau_grad, scale_grad=deployment.scale_grad)
        self.settle = self.twin.settle
        out = net.output_layer.neuron
        sizes = (net.num_inputs, *[layer.out_size for layer in net.computing])
        if net.layers[-1].kind == "average":
            sizes = (*sizes, net.num_outputs)
        readout = deployment.readout
        self.spec = SNNSpec(
            sizes=sizes, steps=deployment.steps,
            neuron=NeuronConfig(threshold=out.threshold, current_decay=out.current_decay,
                                voltage_decay=out.voltage_decay, tau_grad=deployment.tau_grad,
                                scale_grad=deployment.scale_grad),
            posterior_scale=float(deployment.posterior_scale), readout=readout)

    @property
    def num_inputs(self) -> int:
        return self.net.num_inputs

    @property
    def num_classes(self) -> int:
        return self.net.num_outputs

    @property
    def graded(self) -> bool:
        return self.deployment.encoding == "graded"

    def check_input(self, x: torch.Tensor, name: str = "spikes") -> None:
        self.twin.check_input(x, name)

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spikes (N, outputs, T) and the output voltage the posterior reads (N, neurons, T): before
        the reset for 'membrane' and 'integrator', after it for 'voltage' (lava-dl units, undelayed)."""
        return self.twin.run(x, post_reset=self.deployment.readout == "voltage")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out, voltage = self.run(x)
        return readout_logits(self.deployment, self.settle, out, voltage)

    def posterior(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]


def readout_logits(dep: Deployment, settle: int, out_spikes, voltage) -> torch.Tensor:
    """Logits of the deployment's posterior from what was observed (twin or Lava): output spikes
    (N, C, T) and voltages (N, C, T); steps before ``settle`` are not read."""
    scale = float(dep.posterior_scale)
    if dep.readout == "spikes":
        return scale * torch.as_tensor(out_spikes, dtype=torch.float32)[..., settle:].sum(-1)
    v = torch.as_tensor(voltage)
    if v.dtype == torch.float64:
        v = v.float()
    if v.shape[-1] <= settle:
        raise ValueError(f"voltage has {v.shape[-1]} steps; need more than {settle}")
    if dep.readout == "integrator":
        return scale * v[..., settle:].mean(-1)
    logp = torch.log_softmax(scale * v[..., settle:], dim=1)
    return torch.logsumexp(logp, dim=-1) - math.log(v.shape[-1] - settle)
