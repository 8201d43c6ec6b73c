"""Where the twin, the attacks and the evaluators compute: one place that reads a device name.

Names (``--device`` on the CLI, ``device=`` in the API): ``"cpu"`` (the default: results are reproducible bit
for bit and the tests compare exact values), ``"auto"`` (CUDA when torch sees a GPU, else the CPU), ``"cuda"``
and ``"cuda:N"`` (that GPU; an error where there is none). A ``torch.device`` is accepted as it is, after the
same checks.

What stays on the CPU, whatever the device: every random draw (generators are seeded on the CPU and the draws
moved to the device, so a seed gives the same spike trains and Bernoulli samples everywhere), the results
(CPU NumPy at the boundary), Lava's fixed-point replay, and the comparison of a replay with the twin where the
GPU would not be exact (see ``hardware.equivalence``). fast_cuba's numba loop is CPU code: on a GPU the CUBA
time loop runs as torch operations (float64 state, exact as well; logged once).

On CUDA, TF32 is switched off for matrix products and cuDNN convolutions when a CUDA device is resolved (torch
enables it for cuDNN by default on Ampere and later GPUs): TF32 rounds float32 operands to 10 bits of mantissa,
which would change spikes of the twin; in full float32 only summation order separates a GPU run from a CPU run.
"""
from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

DEVICE_NAMES = ("cpu", "auto", "cuda", "cuda:N")
DEVICE_HELP = ("where the twin, the attacks and the evaluators compute: cpu (default; bit-reproducible), auto "
               "(CUDA when present, else cpu), cuda or cuda:N; random draws stay seeded on the CPU and Lava runs on "
               "the CPU")
_NAME = re.compile(r"^(cpu|auto|cuda(:\d{1,3})?)$")
_tf32_off = False


def check_device_name(name) -> str:
    """``name`` if it is a device name this toolkit accepts (see the module docstring), else ``InputError``;
    the spelling only, without importing torch (the CLI checks ``--device`` with it)."""
    from ..errors import InputError

    if not isinstance(name, str) or not _NAME.match(name.strip().lower()):
        shown = repr(name)[:60]
        raise InputError(f"--device must be one of {', '.join(DEVICE_NAMES)}, got {shown}")
    return name.strip().lower()


def available_devices() -> list[str]:
    """The device names that resolve on this machine (``cpu``, ``auto``, and ``cuda:0`` ... when torch sees
    GPUs)."""
    import torch

    names = ["cpu", "auto"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return names


def resolve_device(device=None):
    """The ``torch.device`` of a device name (``None``: the CPU). ``InputError`` naming ``--device`` and what is
    available for a name that is not one, or for a GPU this machine does not have."""
    import torch

    from ..errors import InputError

    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        name = "cpu" if device.type == "cpu" else str(device)
        if device.type not in ("cpu", "cuda"):
            raise InputError(f"--device must be one of {', '.join(DEVICE_NAMES)}, got {name!r} (available here: "
                             f"{', '.join(available_devices())})")
    else:
        try:
            name = check_device_name(device)
        except InputError as e:
            raise InputError(f"{e} (available here: {', '.join(available_devices())})") from None
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    if not torch.cuda.is_available():
        raise InputError(f"--device {name}: torch sees no CUDA device on this machine (torch "
                         f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); available: "
                         f"{', '.join(available_devices())}")
    dev = torch.device(name)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); available: "
                         f"{', '.join(available_devices())}")
    exact_float32()
    return dev


def exact_float32() -> None:
    """Switch TF32 off for CUDA matrix products and cuDNN convolutions (see the module docstring; logged once)."""
    global _tf32_off
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if not _tf32_off:
        _tf32_off = True
        log.info("CUDA: TF32 switched off for matrix products and convolutions (full float32, as on the CPU)")


def module_device(module):
    """The device of a module's first parameter or buffer (the CPU for a module that has neither)."""
    import torch

    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")
