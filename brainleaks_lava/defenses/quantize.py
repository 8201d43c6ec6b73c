"""Coarser weight precision for a deployed NetX file, still exact on Lava.

lava-dl's default quantizer (``pre_hook_fx``, used by every target this toolkit trains) rounds weights to a step
of 2/64 of the threshold unit: the exported ``.net`` file holds ``weight x 64`` as even integers in
[-256, 254] (an 8-bit mantissa). A step ``k`` times as coarse keeps only multiples of ``2k``: here every
``layer/*/weight`` of the file is rounded to the nearest multiple of ``2k`` (ties to the even multiple, so
rounding is unbiased) and clipped to [-256, 256 - 2k]. The result is again integers that NetX loads losslessly,
so the twin rebuilt from the new file and Lava's fixed-point run stay spike-for-spike identical (the sweep replays
it to show it). ``k = 2**b`` leaves ``8 - b`` bits of weight precision. This is post-training quantization: the
network is not retrained.

A layer whose weights all round to 0 is reported (``zero_layers``) and noted in the sweep's table; it is still
replayed (NetX's weight-exponent search divides by the largest weight, which the replay works around for all-zero
matrices: ``hardware.replay``). How many levels a step leaves depends on the threshold: lava-dl scales the
initial weights with it, so at threshold 1 a 784-input layer's weights are mostly 0 and +-2 (+-1/32) already.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..fileio import atomic_path, open_h5, sha256_file, write_json_atomic

log = logging.getLogger(__name__)


def check_step(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 64:
        raise InputError(f"weight_step must be an integer multiple of lava-dl's step in [1, 64], got {k!r}")
    return k


def weight_bits(k: int) -> float:
    """Bits of weight precision left by a step ``k`` times lava-dl's 8-bit step."""
    return float(8 - np.log2(check_step(k)))


def requantize_weights(w: np.ndarray, k: int) -> np.ndarray:
    """File weights (``weight x 64``, even integers) -> the nearest multiples of ``2k`` within the 8-bit range."""
    k = check_step(k)
    q = 2 * k
    w = np.asarray(w, dtype=np.float64)
    out = np.round(w / q) * q  # ties to even
    return np.clip(out, -256, 256 - q).astype(np.float32)


def requantize_net(src: str | Path, dst: str | Path, k: int) -> dict:
    """Write a copy of the NetX file ``src`` (and its JSON sidecar) to ``dst`` with every dense/conv weight on
    the coarser grid of step ``k``; returns counts of what changed. Both files are written atomically."""
    src, dst = Path(src), Path(dst)
    k = check_step(k)
    changed = zeros = total = 0
    zero_layers = []
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        with h5py.File(tmp, "r+") as f:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and n.endswith("/weight")
                         else None)
            for n in names:
                w = f[n][()]
                if not np.all(np.mod(w, 2) == 0):
                    raise InputError(f"{src}: '{n}' is not on lava-dl's 8-bit weight grid (even integers); "
                                     "cannot requantize it exactly")
                new = requantize_weights(w, k)
                changed += int(np.count_nonzero(new != w))
                zeros += int(np.count_nonzero(new == 0))
                if not np.any(new):
                    zero_layers.append(n.rsplit("/", 1)[0])
                total += int(w.size)
                attrs = dict(f[n].attrs)
                del f[n]
                f.create_dataset(n, data=new.astype(w.dtype))
                for a, v in attrs.items():
                    f[n].attrs[a] = v
    side = src.with_suffix(".json")
    if side.is_file():
        from ..models.files import read_sidecar

        with open_h5(dst, "requantized NetX file"):  # the copy is a readable HDF5 file
            pass
        meta = read_sidecar(src)  # through fileio's guarded opener
        meta["weight_step"] = k
        meta["net_file"] = dst.name
        meta["net_sha256"] = sha256_file(dst)
        write_json_atomic(dst.with_suffix(".json"), meta)
    info = {"weight_step": k, "weight_bits": weight_bits(k), "weights": total, "changed": changed,
            "zero": zeros, "zero_layers": zero_layers}
    log.info("requantized %s -> %s: %s", src, dst, info)
    return info
