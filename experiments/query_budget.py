"""Leakage against the query budget: the query-only attacks (nes, label) at several budgets beside the white-box
attacks, scored by every judge given, every reconstruction and a sample of the oracle's answers replayed on Lava.

    python experiments/query_budget.py --model netx_models/mnist_snn.net \
        --judge "residual CNN=netx_models/mnist_eval_resnet.h5" --judge "reject=netx_models/mnist_eval_reject.h5" \
        --judge "ANN=netx_models/mnist_eval_ann.h5" --judge "spiking=netx_models/mnist_eval_snn.h5" \
        --nes 1000 10000 100000 --label 10000 --white bl2 --out runs/query_budget/shipped

Give the independent judges first: the table and the figure keep their order. Deployment options (--steps,
--encoding, --readout) as for ``brainleaks attack``; --round-posterior Q puts the posterior rounding defense
in front of every attack (the gradient attacks then differentiate the rounded posterior, the query attacks
read it). Writes, in --out: one reconstruction file per attack and budget (an existing one is reused, so an
interrupted study resumes), ``scores.json``, ``table.md`` and ``curves.png``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import brainleaks_lava as bl
from brainleaks_lava.attacks.recon_file import load_recon
from brainleaks_lava.errors import BrainleaksError
from brainleaks_lava.fileio import write_json_atomic


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--judge", action="append", required=True, metavar="NAME=PATH",
                   help="an evaluator scoring every reconstruction (repeat; independent judges first)")
    p.add_argument("--nes", type=int, nargs="*", default=[1000, 10000, 100000], help="budgets of nes")
    p.add_argument("--label", type=int, nargs="*", default=[10000], help="budgets of label")
    p.add_argument("--white", nargs="*", default=["bl2"], help="white-box attacks beside them (bl2, blenc, bl1)")
    p.add_argument("--round-posterior", type=float, default=None)
    p.add_argument("--contrast", default=None, help="as brainleaks evaluate --contrast (faces: standardise)")
    p.add_argument("--draws", type=int, default=5, help="Bernoulli draws per reconstruction when scoring")
    p.add_argument("--replay-draws", type=int, default=2, help="draws of each reconstruction replayed on Lava")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--encoding", default=None)
    p.add_argument("--readout", default=None)
    p.add_argument("--title", default=None, help="the figure's title (default: the model's file name)")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def judges_of(specs):
    out = []
    for s in specs:
        name, sep, path = s.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--judge must be NAME=PATH, got {s!r}")
        out.append((name, path))
    return out


def run_study(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = bl.load_target(args.model, steps=args.steps, encoding=args.encoding, readout=args.readout)
    defense = None if args.round_posterior is None else {"round_posterior": args.round_posterior}
    runs = [(m, None) for m in args.white] + [("nes", q) for q in args.nes] + [("label", q) for q in args.label]
    rows = []
    for method, queries in runs:
        name = method if queries is None else f"{method}_{queries}"
        path = out / f"{name}.h5"
        if path.exists():
            result = load_recon(path)
        else:
            params = {} if queries is None else {"queries": queries}
            t0 = time.monotonic()
            result = bl.attack(target, method, seed=args.seed, defense=defense, progress=False, **params)
            result.seconds = time.monotonic() - t0
            result.save(path)
        row = {"attack": method, "queries": queries, "used": result.extra.get("queries"),
               "seconds": round(float(result.seconds), 1), "twin_confidence": float(np.mean(result.confidence)),
               "judges": {}}
        for jname, jpath in judges_of(args.judge):
            s = bl.evaluate(result, jpath, draws=args.draws, seed=args.seed, contrast=args.contrast).summary
            row["judges"][jname] = {k: round(100 * float(s[k]["mean"]), 2)  # percent
                                    for k in ("accuracy", "top3_accuracy", "daa", "avg_confidence")}
        rep = bl.replay(target, result, draws=args.replay_draws, seed=args.seed, progress=False)
        row["lava"] = f"{len(rep.samples) - len(rep.mismatches)}/{len(rep.samples)}"
        if rep.queries is not None:  # the oracle's answers recomputed from Lava's read-out
            row["lava_queries"] = f"{int(rep.queries.same_answer.sum())}/{len(rep.queries.same_answer)}"
        rows.append(row)
        print(f"{name}: " + ", ".join(f"{j} {v['accuracy']:.0f}%" for j, v in row["judges"].items())
              + f"; Lava {row['lava']}" + (f", queries {row['lava_queries']}" if "lava_queries" in row else ""),
              flush=True)
    study = {"model": str(args.model), "defense": defense, "contrast": args.contrast, "draws": args.draws,
             "judges": [n for n, _ in judges_of(args.judge)], "rows": rows}
    write_json_atomic(out / "scores.json", study)
    (out / "table.md").write_text(table(study))
    curves(study, out / "curves.png", args.title or Path(args.model).name)
    return study


def table(study: dict) -> str:
    judges = study["judges"]
    head = "| attack | queries (used) | " + " | ".join(judges) + " | twin conf. | Lava recon. | Lava queries | time |"
    lines = [head, "|" + "---|" * (len(judges) + 6)]
    for r in study["rows"]:
        q = "white-box" if r["queries"] is None else f"{r['queries']:,} ({r['used']:,})"
        cells = [f"{r['judges'][j]['accuracy']:.0f} / {r['judges'][j]['top3_accuracy']:.0f} / "
                 f"{r['judges'][j]['daa']:.0f}" for j in judges]
        lines.append(f"| {r['attack']} | {q} | " + " | ".join(cells) + f" | {r['twin_confidence']:.2f} | {r['lava']} | "
                     f"{r.get('lava_queries', '-')} | {r['seconds']:.0f} s |")
    note = ("Cells: attack accuracy / top-3 / DAA (%) under each judge"
            + (f", images standardised ({study['contrast']})" if study["contrast"] else "")
            + (f"; the deployment rounds its posterior to {study['defense']['round_posterior']}" if study["defense"]
               else "") + ".")
    return "\n".join(lines) + "\n\n" + note + "\n"


def curves(study: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judges = study["judges"]
    fig, axes = plt.subplots(1, len(judges), figsize=(3.2 * len(judges), 3.0), sharey=True, squeeze=False)
    colours = {"nes": "tab:blue", "label": "tab:orange"}
    styles = ["--", ":", "-."]
    for ax, j in zip(axes[0], judges):
        for method in ("nes", "label"):
            pts = sorted((r["queries"], r["judges"][j]["accuracy"]) for r in study["rows"] if r["attack"] == method)
            if pts:
                ax.plot([q for q, _ in pts], [a for _, a in pts], "o-", color=colours[method], label=method)
        white = [r for r in study["rows"] if r["queries"] is None]
        for k, r in enumerate(white):
            ax.axhline(r["judges"][j]["accuracy"], color="k", ls=styles[k % len(styles)], lw=1,
                       label=f"{r['attack']} (white-box)")
        ax.set_xscale("log")
        ax.set_ylim(-3, 103)
        ax.set_title(j, fontsize=9)
        ax.set_xlabel("queries")
    axes[0][0].set_ylabel("attack accuracy %")
    axes[0][-1].legend(fontsize=7, loc="best")
    extra = "" if not study["defense"] else f", posterior rounded to {study['defense']['round_posterior']}"
    fig.suptitle(f"{title}{extra}", fontsize=10)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    judges_of(args.judge)  # NAME=PATH, checked before anything runs
    try:
        run_study(args)
    except BrainleaksError as e:
        print(f"query_budget: error: {e}", file=sys.stderr)
        return 2
    print((Path(args.out) / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
