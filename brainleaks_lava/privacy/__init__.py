"""Record-level leakage: membership inference on a deployed SNN, on its twin and on Lava fixed_pt.

- :mod:`.membership`: scores from logits (loss, confidence, LiRA online and offline) and their metrics (ROC, AUC
  from ranks, TPR at a fixed FPR, balanced accuracy); ``membership_scores`` is the array-level entry point;
- :mod:`.shadows`: the target's training recipe from its sidecar, and shadow models trained with it on random
  halves of a pool (units on ``sweep.engines.Engine``, cached and resumable; ``shadow_tasks`` / ``collect_shadows``
  let ``brainleaks sweep`` run them on its own engine, see ``sweep.mia``);
- :mod:`.command`: ``brainleaks mia`` (``add_mia``, ``mia_command(args)``) and :func:`run_mia`, the Python API.
"""
from __future__ import annotations

from .membership import attack_metrics, membership_scores


def run_mia(model_path, out, *, members=None, non_members=None, data_root=None, dataset=None, shadows: int = 8,
            eval_samples: int = 2000, engine: str = "local", workers: int = 1, address=None, replay: bool = True,
            seed: int = 0, progress: bool = True, card=None, options: dict | None = None, threads: int | None = None,
            variance: str = "auto"):
    """``brainleaks mia`` as a function: the ``MiaReport`` of ``model_path``, written into the directory ``out``
    (see :func:`brainleaks_lava.privacy.command.run_membership_inference` for the keywords)."""
    from .command import run_membership_inference

    return run_membership_inference(model_path, out, members=members, non_members=non_members, data_root=data_root,
                                    dataset=dataset, shadows=shadows, eval_samples=eval_samples, engine=engine,
                                    workers=workers, address=address, replay=replay, seed=seed, progress=progress,
                                    card=card, options=options, threads=threads, variance=variance)


__all__ = ["run_mia", "membership_scores", "attack_metrics"]
