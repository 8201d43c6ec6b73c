"""Small networks built in lava-dl and exported with each block's ``export_hdf5``, one per NetX feature.

Each builder returns the path of the written ``.net`` file and the input shape (n,) or (C, H, W). The
weights are random but large enough that every layer spikes on 0/1 inputs of rate ~0.3.
"""
from __future__ import annotations

import contextlib
import io

import h5py
import numpy as np
import torch


def _slayer():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import lava.lib.dl.slayer as slayer
    return slayer


def neuron(threshold=1.0, current_decay=0.25, voltage_decay=0.03, **extra):
    return {"threshold": threshold, "current_decay": current_decay, "voltage_decay": voltage_decay,
            "tau_grad": 0.03, "scale_grad": 3, "requires_grad": False, **extra}


def _export(blocks, path, input_shape, seed, gain=1.0, prepare=None):
    """Randomise weights (kept on the 8-bit grid by the blocks' quantizer), run once, export."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in blocks:
            syn = getattr(b, "synapse", None)
            if syn is not None and hasattr(syn, "weight") and syn.weight.requires_grad:
                w = torch.randn(syn.weight.shape, generator=g) * gain / np.sqrt(np.prod(syn.weight.shape[1:]))
                syn.weight.data.copy_(w)
        x = (torch.rand(1, *input_shape, 4, generator=g) < 0.3).float()
        for b in blocks:
            x = b(x)
        if prepare is not None:  # e.g. delays, whose shape lava-dl sets on the first forward pass
            prepare()
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layers.create_group(str(i)))
    return path


def dense_per_layer(path, seed=0):
    """64-48-32-10 CUBA with different decays and thresholds per layer."""
    s = _slayer()
    blocks = [s.block.cuba.Dense(neuron(1.0, 0.25, 0.03), 64, 48),
              s.block.cuba.Dense(neuron(1.25, 0.5, 0.1), 48, 32),
              s.block.cuba.Dense(neuron(0.75, 1.0, 0.2), 32, 10)]
    return _export(blocks, path, (64,), seed, gain=3.0), (64,)


def dense_bias(path, seed=1):
    """40-32-10 with a bias in every layer (lava-dl's MeanOnlyBatchNorm)."""
    s = _slayer()
    norm = s.neuron.norm.MeanOnlyBatchNorm
    blocks = [s.block.cuba.Dense(neuron(norm=norm), 40, 32), s.block.cuba.Dense(neuron(norm=norm), 32, 10)]
    g = torch.Generator().manual_seed(seed + 100)
    _export(blocks, path, (40,), seed, gain=2.5)
    with h5py.File(path, "r+") as f:  # biases of both signs (a trained norm has them; a fresh one has 0)
        for i, n in ((0, 32), (1, 10)):
            del f[f"layer/{i}/bias"]
            f[f"layer/{i}/bias"] = (torch.randint(-20, 21, (n,), generator=g) * 2).numpy().astype(np.float32)
    return path, (40,)


def input_layer(path, seed=2):
    """input (weight, bias) -> dense 30 -> dense 10."""
    s = _slayer()
    blocks = [s.block.cuba.Input(neuron(0.5, 1.0, 0.1), weight=1.5, bias=0.1),
              s.block.cuba.Dense(neuron(), 36, 30), s.block.cuba.Dense(neuron(), 30, 10)]
    return _export(blocks, path, (36,), seed, gain=3.0), (36,)


def conv_net(path, seed=3, bias=True):
    """(2, 12, 10) -> conv 4ch 3x5 stride 2 pad (1,2) -> conv 6ch 3x3 dil 2 groups 2 -> flatten -> dense 10."""
    s = _slayer()
    blocks = [s.block.cuba.Conv(neuron(), 2, 4, (3, 5), stride=2, padding=(1, 2)),
              s.block.cuba.Conv(neuron(), 4, 6, 3, padding=2, dilation=2, groups=2),
              s.block.cuba.Flatten(),
              s.block.cuba.Dense(neuron(), 6 * 6 * 5, 10)]
    _export(blocks, path, (2, 12, 10), seed, gain=4.0)
    if bias:
        g = torch.Generator().manual_seed(seed + 100)
        with h5py.File(path, "r+") as f:
            for i, c in ((0, 4), (1, 6)):
                f[f"layer/{i}/bias"] = (torch.randint(-15, 16, (c,), generator=g) * 2).numpy().astype(np.float32)
    return path, (2, 12, 10)


def pool_net(path, seed=4):
    """(1, 8, 8) -> conv 4ch 3x3 pad 1 -> pool 2 -> flatten -> dense 10."""
    s = _slayer()
    blocks = [s.block.cuba.Conv(neuron(), 1, 4, 3, padding=1), s.block.cuba.Pool(neuron(), 2),
              s.block.cuba.Flatten(), s.block.cuba.Dense(neuron(), 4 * 4 * 4, 10)]
    return _export(blocks, path, (1, 8, 8), seed, gain=4.0), (1, 8, 8)


def delay_net(path, seed=5, bias=False):
    """48-32-24-10 with integer synaptic delays 0-5."""
    s = _slayer()
    blocks = [s.block.cuba.Dense(neuron(), 48, 32, delay=True), s.block.cuba.Dense(neuron(), 32, 24, delay=True),
              s.block.cuba.Dense(neuron(), 24, 10)]
    g = torch.Generator().manual_seed(seed + 50)

    def delays():
        for b in blocks[:2]:
            b.delay.delay.data = torch.randint(0, 6, b.delay.delay.shape, generator=g).float()
    _export(blocks, path, (48,), seed, gain=3.0, prepare=delays)
    if bias:
        with h5py.File(path, "r+") as f:
            for i, n in ((0, 32), (1, 24), (2, 10)):
                f[f"layer/{i}/bias"] = (torch.randint(-10, 11, (n,), generator=g) * 2).numpy().astype(np.float32)
    return path, (48,)


def loihi_type(path, seed=6):
    """The dense per-layer net relabelled as the older 'LOIHI' neuron type with its extra keys."""
    dense_per_layer(path, seed)
    with h5py.File(path, "r+") as f:
        for i in range(3):
            ng = f[f"layer/{i}/neuron"]
            del ng["type"]
            ng["type"] = "LOIHI"
            ng["theta"], ng["tauRho"], ng["scaleRho"], ng["wgtExp"] = 4, 1, 1, 0
    return path, (64,)


def integrator_net(path, seed=7):
    """40-32 CUBA, then a dense layer with no neuron group: a non-spiking integrator read by its voltage."""
    dense_bias(path, seed)
    with h5py.File(path, "r+") as f:
        del f["layer/1/neuron"]
    return path, (40,)


def average_net(path, seed=8):
    """40-30 CUBA -> dense 20 -> average into 5 groups (lava-dl's population read-out)."""
    s = _slayer()
    blocks = [s.block.cuba.Dense(neuron(), 40, 30), s.block.cuba.Dense(neuron(), 30, 20)]
    _export(blocks, path, (40,), seed, gain=3.0)
    with h5py.File(path, "r+") as f:  # lava-dl 0.6's Average block cannot export itself (no neuron shape)
        g = f["layer"].create_group("2")
        g.create_dataset("type", (1,), "S10", [b"average"])
        g.create_dataset("shape", data=np.array([5]))
    return path, (40,)


FEATURES = {
    "dense_per_layer": dense_per_layer, "dense_bias": dense_bias, "input_layer": input_layer,
    "conv": conv_net, "pool": pool_net, "delay": delay_net, "delay_bias": lambda p: delay_net(p, bias=True),
    "loihi": loihi_type, "integrator": integrator_net, "average": average_net,
}


def signed_net(path):
    """16 inputs -> 2 outputs, no hidden layer: inputs 0-7 excite output 0 and inhibit output 1, inputs 8-15 the
    reverse (a target whose classes an attack can reach by construction)."""
    s = _slayer()
    block = s.block.cuba.Dense(neuron(1.0, 0.25, 0.03), 16, 2)
    w = torch.zeros(2, 16)
    w[0, :8], w[0, 8:], w[1, :8], w[1, 8:] = 0.5, -0.5, -0.5, 0.5
    with torch.no_grad():
        block.synapse.weight.data.copy_(w.reshape(block.synapse.weight.shape))
        block(torch.zeros(1, 16, 4))
    with h5py.File(path, "w") as f:
        block.export_hdf5(f.create_group("layer").create_group("0"))
    return path
