"""Model-inversion attacks behind one interface (see :mod:`.base`).

>>> attack = make_attack("bl2", adapter_for(load_target("netx_models/mnist_snn.net")), mode="paper")
>>> result = attack.invert(classes=range(10), seed=0)
"""
from __future__ import annotations

from ..errors import InputError
from .base import ANNAdapter, Attack, AttackResult, SNNAdapter, TargetAdapter, adapter_for
from .brainleaks_v1 import BLv1Params, BrainLeaksV1
from .brainleaks_v2 import BLv2Params, BrainLeaksV2, draw_samples
from .encoder_aware import BLencParams, EncoderAware
from .generative import GenAttack, GenParams
from .miface import MIFace, MIFaceParams
from .oracle import QueryBudgetExceeded, QueryOracle
from .query_only import LabelOnlyAttack, LabelParams, NESAttack, NESParams

ATTACKS: dict[str, type[Attack]] = {"bl1": BrainLeaksV1, "bl2": BrainLeaksV2, "miface": MIFace,
                                    "blenc": EncoderAware, "nes": NESAttack, "label": LabelOnlyAttack,
                                    "gen": GenAttack}


def make_attack(method: str, adapter: TargetAdapter, mode: str = "paper", **overrides) -> Attack:
    """Build attack ``method`` with the defaults of ``mode`` ('paper' or 'reference') and ``overrides``; the keywords
    of the attack's ``resources`` (``gen``: its ``prior``) go to the attack itself, not to its parameters."""
    if method not in ATTACKS:
        raise InputError(f"method must be one of {sorted(ATTACKS)}, got {method!r}")
    cls = ATTACKS[method]
    pc = cls.params_class
    takes = tuple(getattr(cls, "resources", ()))
    resources = {k: overrides.pop(k) for k in takes if k in overrides}
    allowed = {f for f in pc.__dataclass_fields__} - {"mode"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        names = ", ".join(sorted(allowed | set(takes)))
        raise InputError(f"{method} has no parameter {', '.join(unknown)} (its parameters: {names})")
    if mode == "reference":
        params = pc.reference(**overrides)
    else:
        params = pc(**{"mode": mode, **overrides})
    return cls(adapter, params, **resources)


__all__ = ["ATTACKS", "make_attack", "Attack", "AttackResult", "TargetAdapter", "SNNAdapter", "ANNAdapter",
           "adapter_for", "BrainLeaksV1", "BLv1Params", "BrainLeaksV2", "BLv2Params", "draw_samples",
           "MIFace", "MIFaceParams", "EncoderAware", "BLencParams", "QueryOracle", "QueryBudgetExceeded",
           "NESAttack", "NESParams", "LabelOnlyAttack", "LabelParams", "GenAttack", "GenParams"]
