"""Defenses against model inversion that a deployment can choose, each measurable by ``brainleaks sweep``.

- :mod:`.readout`: what the attacker observes is coarsened: the output spike counts are clipped
  (``clip_counts``), the posterior is rounded to a grid (``round_posterior``), and the input encoder can flip
  spikes at deployment (``input_flip``). They act through the attack adapter's ``observe`` hook
  (``attacks.base.TargetAdapter``); the network and its file are unchanged.
- :mod:`.quantize`: coarser weight precision of a deployed NetX file (a multiple of lava-dl's 8-bit step),
  still exact on Lava.
- :mod:`.noise`: spike flips of the rate-coded input (training and deployment).
- :mod:`.dp`: differentially private training (DP-SGD: per-sample clipping and Gaussian noise).
Fewer time steps is the ``steps`` knob of a study, not a module.
"""
from __future__ import annotations

from .readout import ObservedPosterior

__all__ = ["ObservedPosterior"]
