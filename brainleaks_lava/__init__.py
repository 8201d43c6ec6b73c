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

# The top-level API (imported on first use, so that ``import brainleaks_lava`` and the CLI's --help stay fast):
# load_target, attack, evaluate, replay, audit; see brainleaks_lava.api.
_API = ("load_target", "attack", "evaluate", "replay", "audit")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'brainleaks_lava' has no attribute {name!r}")


__all__ = [
    *_API,
    "__version__",
    "BrainleaksError",
    "InputError",
    "DatasetError",
    "ModelFileError",
    "ConfigError",
    "OutputError",
]
