"""Membership inference inside ``brainleaks sweep``: a study's ``[mia]`` section (``shadows``, ``eval_samples``).

Every cell measures record-level leakage of its deployed file next to its reconstruction attacks, with the
machinery of ``brainleaks mia`` (:mod:`brainleaks_lava.privacy`):

- members are the target's training split ("train") of the study's dataset, non-members its split "val"
  (``privacy.command.member_data``); the evaluation set is balanced, ``eval_samples`` non-members (all up to that
  many) and as many members drawn with the cell's seed (``privacy.command.evaluation_set``), every image encoded
  once with the target's encoder (``encode_once``, the cell's seed);
- shadow models (LiRA) are trained with the target's own recipe, read from its sidecar (``privacy.shadows``): its
  network, encoder, training settings and training-time defenses (``input_flip`` in training, DP-SGD). They are
  trained ONCE per trained target, in ``targets/<key>/shadows`` next to it, shared by every cell (weight step,
  query-time defense) that deploys that target: :func:`prepare_shadows` on the host, then the units
  (``shadows.train_shadow_task``, training only) on the sweep's engine between the targets and the cells. Each
  unit's files are written atomically and its record last, so a rerun reuses the finished ones and a killed run
  leaves no half file;
- query-time defenses apply to what the attacker observes: the cell's deployed file answers through the cell's
  ``observer_for(defense, seed + 3)`` (posterior rounding, spike-count clipping, input flips with fresh noise).
  The attacker is *adaptive*: it knows the deployment and the defense, so each shadow model is requantized to the
  cell's weight step and answers through the same defense (its own noise draws, seeded from the cell's seed and
  the shadow's index). Observed posteriors become logits by ``membership.logits_of_posterior``: probabilities
  rounded to 0 are lifted to ``membership.POSTERIOR_FLOOR`` (1e-6) before the logarithm; without a query-time
  defense the exact logits of the deployed read-out are used, as ``brainleaks mia`` does;
- scores and metrics: ``membership.membership_scores`` / ``attack_metrics``. A cell's rows carry ``mia_attack``
  (``lira_online`` with shadow models, else ``loss``), its ``mia_auc`` and ``mia_tpr_1pct`` (TPR at FPR <= 1 %),
  and ``mia_loss_auc`` (the shadow-free loss attack); ``cells/<cell>/mia_scores.csv`` holds every example's scores.

The twin answers the queries (no Lava replay inside the sweep: its Lava replay checks the reconstructions;
``brainleaks mia`` shows posteriors and metrics identical on Lava fixed_pt).
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SHADOW_DIR = "shadows"  # inside targets/<key>
SCORES = "mia_scores.csv"  # inside cells/<cell>
TARGET_OBSERVER_OFFSET = 3  # the target's observer is seeded seed + 3 (accuracy: + 1, attacks: + 2)


def prepare_shadows(target_dir: str | Path, dataset: str, data_root, mia: dict, seed: int, threads: int) -> dict:
    """On the host, for one trained target (``targets/<key>``): its shadow directory prepared and the units of its
    ``mia["shadows"]`` shadow models (``privacy.shadows.shadow_tasks``, training only; seeded ``seed``, the
    target's training seed). Returns ``{"tasks": [...], "why": None}``, or no tasks and why there are none (no
    shadow models asked for, or a target whose recipe is unknown)."""
    from ..models.files import load_target
    from ..privacy.command import member_data, shadow_pool
    from ..privacy.shadows import recipe_of, shadow_tasks

    if mia["shadows"] == 0:
        return {"tasks": [], "why": "no shadow models asked for ('mia.shadows' is 0)"}
    d = Path(target_dir)
    target = load_target(d / "target.net")
    recipe, why = recipe_of(target)
    if recipe is None:
        return {"tasks": [], "why": why}
    data = member_data(target, data_root=data_root, dataset=dataset)
    pool_x, pool_y, classes = shadow_pool(target, data)
    tasks = shadow_tasks(recipe, pool_x, pool_y, classes, d / SHADOW_DIR, mia["shadows"], seed=seed,
                         threads=threads)
    return {"tasks": tasks, "why": None}


def cell_view(prepared: dict) -> dict:
    """What a cell needs of :func:`prepare_shadows`' answer (the units without their IN index lists)."""
    return {"tasks": [{k: v for k, v in t.items() if k != "in_index"} for t in prepared["tasks"]],
            "why": prepared["why"]}


def shadow_observer_seed(seed: int, index: int) -> int:
    """The seed of shadow ``index``'s query-time defense in a cell of seed ``seed`` (its own noise draws)."""
    return int(np.random.SeedSequence([int(seed), TARGET_OBSERVER_OFFSET, int(index) + 1]).generate_state(1)[0])


def cell_membership(target, task: dict, defense: dict, seed: int, work: Path, weight_step: int) -> dict:
    """Membership inference on one cell's deployed ``target`` (module docstring); writes ``work / SCORES`` and
    returns ``{"attack", "auc", "tpr_1pct", "loss_auc", "metrics": {attack: attack_metrics}, "lira", "shadows":
    {...}, "eval_members", "eval_non_members", "floor"}``."""
    from ..defenses.quantize import requantize_net
    from ..fileio import atomic_path
    from ..models.files import load_snn
    from ..privacy.command import encode_once, eval_pool_index, evaluation_set, member_data, scores_csv
    from ..privacy.membership import POSTERIOR_FLOOR, attack_metrics, membership_scores
    from ..privacy.shadows import collect_shadows, posterior_logits
    from .cells import observer_for

    mia = task["mia"]
    model = target.model.eval()
    dep = model.deployment
    feats, steps = model.num_inputs, int(dep.steps)
    data = member_data(target, data_root=task["data_root"], dataset=task["dataset"])
    ev = evaluation_set(data, mia["eval_samples"], seed)
    packed = encode_once(ev["images"], {"kind": dep.encoding, "steps": steps}, seed)
    target_logits = posterior_logits(model, packed, feats, steps,
                                      observe=observer_for(defense, seed + TARGET_OBSERVER_OFFSET))
    shadow_logits = shadow_in = None
    shadows = {"used": 0, "why_none": mia["why"]}
    if mia["tasks"]:
        ss = collect_shadows(mia["tasks"])
        shadow_in = ss.in_masks[:, eval_pool_index(ev, len(data["members"][1]))]
        logits = []
        with tempfile.TemporaryDirectory(prefix=".mia-shadows-", dir=work) as tmp:
            for i, net in enumerate(ss.nets):
                if weight_step != 1:  # the attacker deploys its shadow models as the cell deploys the target
                    dst = Path(tmp) / f"{i}.net"
                    requantize_net(net, dst, weight_step)
                    net = dst
                shadow = load_snn(net).model.eval()
                logits.append(posterior_logits(shadow, packed, feats, steps,
                                               observe=observer_for(defense, shadow_observer_seed(seed, i))))
        shadow_logits = np.stack(logits)
        shadows = {"used": len(ss.nets), "validation_accuracy": ss.accuracies,
                   "in_per_example": {"min": int(shadow_in.sum(0).min()), "max": int(shadow_in.sum(0).max())}}
    ms = membership_scores(target_logits, ev["labels"], shadow_logits, shadow_in)
    metrics = {a: attack_metrics(s, ev["member"]) for a, s in ms["scores"].items()}
    main = "lira_online" if "lira_online" in metrics else "loss"
    rows = {"member_index": ev["member_index"], "non_member_index": ev["non_member_index"], "labels": ev["labels"],
            "shadows_in": None if shadow_in is None else shadow_in.sum(0),
            "shadows_out": None if shadow_in is None else (~shadow_in).sum(0), "same": None}
    with atomic_path(work / SCORES) as tmp:
        tmp.write_text(scores_csv({"twin": ms["scores"]}, ev["member"], rows), encoding="utf-8")
    n = len(ev["member_index"])
    return {"attack": main, "auc": metrics[main]["auc"], "tpr_1pct": metrics[main]["tpr_at_fpr"]["0.01"]["tpr"],
            "loss_auc": metrics["loss"]["auc"], "metrics": metrics, "lira": ms["lira"], "shadows": shadows,
            "eval_members": n, "eval_non_members": n, "floor": POSTERIOR_FLOOR,
            "observed": "exact logits" if observer_for(defense, 0) is None else "defended posteriors"}
