"""brainleaks_lava: does the deployed, hardware-quantized SNN leak its training data?

Model-inversion attacks (BrainLeaks-v1, BrainLeaks-v2, MI-FACE) on lava-dl SLAYER targets,
exported to NetX HDF5 and replayed bit-exactly on the Lava fixed-point simulator.
"""
import logging as _logging
import sys as _sys
import types as _types

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    BrainleaksError,
    ConfigError,
    DatasetError,
    InputError,
    ModelFileError,
    OutputError,
)

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

# The top-level API (imported on first use, so that ``import brainleaks_lava`` and the CLI's --help stay fast):
# load_target, attack, evaluate, replay, audit; see brainleaks_lava.api.
_API = ("load_target", "attack", "evaluate", "replay", "audit")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'brainleaks_lava' has no attribute {name!r}")


class _Package(_types.ModuleType):
    """The package's module type: importing the submodule ``brainleaks_lava.audit`` (the API's ``audit`` does) would
    bind the name ``audit`` to that module, so that a second ``brainleaks_lava.audit(...)`` found a module instead of
    the function. The import system's binding of an API name to a submodule is dropped here; the submodule stays
    importable as ``from brainleaks_lava.audit import ...`` (it is in ``sys.modules``)."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __dir__():
    # what dir() and tab completion list: the lazily imported API beside what is already defined (listing a name
    # imports nothing; the first use of one of the API's does)
    return sorted(set(globals()) | set(_API))


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
