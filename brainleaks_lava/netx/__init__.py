"""One description of a deployed NetX network, read once, used by the twin, the Lava replay and ``info``.

``read_network`` (reader) is the only code that knows the HDF5 keys; it returns a ``NetSpec`` of typed,
frozen layer specs holding the file's integers. ``twin.NetxTwin`` (lava-dl) and ``hardware.replay``
(Lava) are built from that spec, ``readiness`` reports on it, and ``deployment.Deployment`` says how the
network is driven and read (steps, encoder, input shape, read-out, classes).
"""
from .spec import (AverageLayer, ConvLayer, DenseLayer, FlattenLayer, InputLayer, Layer, NetSpec, NeuronSpec,
                   PoolLayer)
from .reader import read_network

__all__ = ["AverageLayer", "ConvLayer", "DenseLayer", "FlattenLayer", "InputLayer", "Layer", "NetSpec",
           "NeuronSpec", "PoolLayer", "read_network"]
