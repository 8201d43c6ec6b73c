"""The JSON sidecar of a ``.net`` file, and a NetX network read with the input shape its deployment declares.

The sidecar (same name, ``.json``) holds what NetX has no field for: time steps, encoder, read-out, posterior
scale, training settings and results, the sha256 of the ``.net`` file (written by ``models.files.export_snn``).
Nothing here imports torch or lava: ``brainleaks info`` describes a ``.net`` file with these and ``netx.reader``
alone (``models.files`` re-exports them for the loaders that build the twin).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import ModelFileError
from ..safety import check_sidecar

log = logging.getLogger(__name__)

SNN_FORMAT = "brainleaks-snn/1"
MAX_SIDECAR_BYTES = 16 << 20


def sidecar_path(net_path: str | Path) -> Path:
    return Path(net_path).with_suffix(".json")


def read_sidecar(net_path: str | Path) -> dict:
    """The sidecar of ``net_path`` as a dict ({} when there is none); unreadable JSON is a ``ModelFileError``."""
    from ..fileio import read_bytes_guarded

    p = sidecar_path(net_path)
    if not (p.exists() or p.is_symlink()):
        return {}
    raw = read_bytes_guarded(p, "sidecar", MAX_SIDECAR_BYTES, ModelFileError)  # no FIFO, device, huge file
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFileError(f"{p}: sidecar is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{p}: sidecar must hold a JSON object")
    return meta


def read_deployed_network(path: str | Path, options: dict | None = None, card=None):
    """(``NetSpec``, sidecar metadata) of a NetX file, read with the input shape its deployment declares (an
    option, the deployment card, the sidecar) where the file does not say it; the sidecar is checked first."""
    from .reader import read_network

    path, options = Path(path), dict(options or {})
    meta = read_sidecar(path)
    check_sidecar(meta, sidecar_path(path), SNN_FORMAT)
    return read_network(path, input_shape=options.get("input_shape"),
                        declared_shape=_declared_input_shape(path, meta, options, card)), meta


def read_deployment(path: str | Path, options: dict | None = None, card=None):
    """(``NetSpec``, ``Deployment``, sidecar metadata) of a NetX file: :func:`read_deployed_network`, then the
    deployment resolved from ``options``, the card, the sidecar and defaults (``netx.deployment.resolve``); a
    sidecar whose sha256 is not the file's is logged (the file changed since its export)."""
    from .deployment import resolve

    path, options = Path(path), dict(options or {})
    net, meta = read_deployed_network(path, options, card)
    if meta and meta.get("net_sha256") not in (None, net.sha256):
        log.warning("%s: sha256 differs from the one recorded in its sidecar (file changed since export)", path)
    try:
        dep = resolve(net, path, meta, options, card)
    except ModelFileError:
        raise
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{sidecar_path(path)}: invalid deployment ({e})") from None
    return net, dep, meta


def _declared_input_shape(path: Path, meta: dict, options: dict, card) -> tuple | None:
    """The input shape the deployment declares (an option, else the deployment card, else the sidecar: the
    precedence of ``netx.deployment.resolve``), checked and naming where it came from. The reader needs it before
    the deployment is resolved when the file does not say it (a first conv layer with a stride > 1, no input
    layer)."""
    from .deployment import Deployment, card_path, from_sidecar, read_card

    if options.get("input_shape") is not None:
        return None  # read_network takes the option itself
    card_file = Path(card) if card is not None else card_path(path)
    shape, where = None, None
    if card is not None or card_file.is_file():  # an explicit card must exist (read_card names it)
        shape, where = read_card(card_file).get("input_shape"), card_file
    if shape is None:
        try:
            shape, where = from_sidecar(meta).get("input_shape"), sidecar_path(path)
        except (TypeError, ValueError, AttributeError) as e:  # fields of the wrong type
            raise ModelFileError(f"{sidecar_path(path)}: invalid deployment ({type(e).__name__}: {e})") from None
    if shape is None:
        return None
    shape = tuple(shape) if isinstance(shape, list) else shape
    Deployment(input_shape=shape).check(str(where))
    return shape
