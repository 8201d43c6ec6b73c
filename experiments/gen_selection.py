"""How ``gen`` picks a class's winner among its starts, measured: the target's deployed confidence in the image itself
(``select_shifts=1``), the default (the most confident, near-ties broken by the mean confidence over the image and
shifted copies, Plug & Play's final selection) and that shift score alone (``select_tolerance=1``), each scored by
independent judges.

    .venv/bin/python experiments/gen_selection.py MODEL --prior PRIOR.h5 --judge J.h5 [--judge ...]
        [--seeds 0 1 2 3] [--starts N] [--steps T --encoding if --readout spikes] [--threads 1]

Both rules run on the same seeds, so on the same starts: the searches are identical and only the choice of the
winner differs. Prints, per rule and judge, the attack accuracy (%, one draw) on each seed and its mean. The judges
never steer the attack; the rule uses nothing but the target's read-out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--prior", required=True)
    ap.add_argument("--judge", action="append", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--encoding", default=None)
    ap.add_argument("--readout", default=None)
    ap.add_argument("--starts", type=int, default=None, help="starts per class (default: gen's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from brainleaks_lava.api import attack, load_target
    from brainleaks_lava.evaluation.classifiers import load_evaluator
    from brainleaks_lava.evaluation.score import evaluate_result
    from brainleaks_lava.priors.files import load_prior

    target = load_target(args.model, steps=args.steps, encoding=args.encoding, readout=args.readout)
    prior = load_prior(args.prior)
    judges = {Path(j).stem: load_evaluator(j) for j in args.judge}
    rules = {"most confident (select_shifts=1)": {"select_shifts": 1},
             "most confident, near-ties (0.001) to the shift score (default)": {},
             "most confident, near-ties (0.01) to the shift score": {"select_tolerance": 0.01},
             "shift score alone (select_tolerance=1)": {"select_tolerance": 1.0}}
    acc = {(r, j): [] for r in rules for j in judges}
    for seed in args.seeds:
        for rule, k in rules.items():
            extra = {"starts": args.starts} if args.starts else {}
            res = attack(target, "gen", prior=prior, seed=seed, progress=False, **k, **extra)
            for name, ev in judges.items():
                acc[rule, name].append(100 * evaluate_result(res, ev, draws=1, seed=0).summary["accuracy"]["mean"])
    print(f"{args.model}; prior {args.prior}; seeds {args.seeds}; starts {args.starts or 'default'}; attack accuracy % "
          "(one draw), per seed and mean")
    print("| winner chosen by | " + " | ".join(judges) + " |")
    print("|---|" + "---|" * len(judges))
    for rule in rules:
        cells = [f"{np.mean(acc[rule, j]):.1f} ({', '.join(f'{v:.0f}' for v in acc[rule, j])})" for j in judges]
        print(f"| {rule} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
