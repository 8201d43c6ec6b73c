"""brainleaks_lava: does the deployed, hardware-quantized SNN leak its training data?

Model-inversion attacks (BrainLeaks-v1, BrainLeaks-v2, MI-FACE) on lava-dl SLAYER targets,
exported to NetX HDF5 and replayed bit-exactly on the Lava fixed-point simulator.
"""
import logging

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    BrainleaksError,
    ConfigError,
    DatasetError,
    InputError,
    ModelFileError,
    OutputError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "BrainleaksError",
    "InputError",
    "DatasetError",
    "ModelFileError",
    "ConfigError",
    "OutputError",
]
