"""BL-v2 (paper mode), the best BL-enc and the latent search ``gen`` side by side, under every judge of the panel:
attack accuracy, top-3 accuracy and the paper's KNN distance, read from the ``audit.json`` of audits run with
``--judge`` and ``--prior`` (issue 29). It computes nothing itself: every figure is the audit's.

    brainleaks audit MODEL --evaluator netx_models/mnist_eval_snn.h5 --judge netx_models/mnist_eval_resnet.h5 \
        --judge netx_models/mnist_eval_reject.h5 --judge netx_models/mnist_eval_ann.h5 \
        --prior mnist_val_vae.h5 --data-root DIR --out audits/shipped
    python experiments/gen_evidence.py "shipped=audits/shipped" "IF-16=audits/if16" [--out table.md]

"Best BL-enc" is the BL-enc entry of the portfolio whose reconstructions the audit's evaluator (the selector)
scores highest (attack accuracy, then average confidence): chosen as an attacker would, without the judges. Each
cell is attack acc. / top-3 acc. (%) and, when the audit ran its member-level tests, the KNN distance (mean over
the classes of the distance to the nearest training image of the class, in that judge's feature space) with, in
the judge's header row, the same distance for real unseen images (the scale). Independent judges come first, the
selector last. The goal line says whether every independent judge gives >= 90 % attack accuracy to ``gen``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GOAL = 0.90
ROWS = (("BL-v2 paper", lambda a: a["name"] == "bl2"), ("best BL-enc", lambda a: a["method"] == "blenc"),
        ("gen", lambda a: a["name"] == "gen"))


def load(path: Path) -> dict:
    f = path / "audit.json" if path.is_dir() else path
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"gen_evidence: {f}: {e}")


def pick(audit: dict, test) -> tuple[int, dict] | None:
    """The attack (index, record) the selector scores best among those ``test`` accepts."""
    found = [(i, a) for i, a in enumerate(audit["attacks"]) if test(a)]
    if not found:
        return None
    return max(found, key=lambda ia: (ia[1]["summary"]["accuracy"]["mean"],
                                      ia[1]["summary"]["avg_confidence"]["mean"], -ia[0]))


def judge_names(audit: dict) -> list[tuple[str, str]]:
    """(label in the audit, file name) of each independent judge, then the selector."""
    return [(j["label"], Path(j["path"]).stem) for j in audit["judges"]] + [("selector", Path(audit["evaluator"]).stem)]


def table(name: str, audit: dict) -> tuple[list[str], bool | None]:
    from brainleaks_lava.audit import knn_by_judge

    knn = knn_by_judge(audit.get("member_level"))
    judges = judge_names(audit)
    head = [f"{stem}{' (selector)' if lab == 'selector' else ''}"
            + (f", real unseen: {knn[lab]['non_members']:.3g}" if lab in knn else "") for lab, stem in judges]
    lines = [f"### {name}: `{Path(audit['model']).name}`", "",
             "| attack | " + " | ".join(head) + " | time (s) |", "|---|" + "---|" * (len(judges) + 1)]
    goal = None
    for row, test in ROWS:
        found = pick(audit, test)
        if found is None:
            lines.append(f"| {row} | " + " | ".join("not run" for _ in judges) + " | |")
            continue
        i, a = found
        cells = []
        for lab, _ in judges:
            s = a["summary"] if lab == "selector" else a["judges"][lab]
            cell = f"{100 * s['accuracy']['mean']:.0f} / {100 * s['top3_accuracy']['mean']:.0f}"
            if lab in knn:
                cell += f" / {knn[lab]['attacks'][i]:.3g}"
            cells.append(cell)
        label = row if row != "best BL-enc" else f"best BL-enc ({a['name']})"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {a['seconds']:.0f} |")
        if row == "gen":
            goal = all(a["judges"][lab]["accuracy"]["mean"] >= GOAL for lab, _ in judges if lab != "selector")
    skipped = (audit.get("member_level") or {}).get("skipped")
    if not knn:
        lines += ["", f"KNN distance: not measured ({skipped or 'no member-level tests'})"]
    elif skipped:
        lines += ["", f"KNN distance measured; {skipped}"]
    if audit.get("prior"):
        from brainleaks_lava.attacks.generative import prior_text

        lines += ["", f"Prior of gen: {prior_text(audit['prior'])}."]
    replay = audit.get("replay")
    if replay:
        lines += [f"Lava replay of the per-class winners: {100 * replay['agreement']:.2f} % identical "
                  f"({replay['samples']} inputs)."]
    return lines + [""], goal


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("audits", nargs="+", metavar="NAME=DIR", help="an audit directory (or its audit.json), named")
    p.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = p.parse_args(argv)
    out = ["Cells: attack acc. / top-3 acc. (%) / KNN distance; independent judges first, the selector last.", ""]
    goals = []
    for item in args.audits:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        lines, goal = table(name, load(Path(path)))
        out += lines
        goals.append((name, goal))
    out.append("gen >= 90 % attack accuracy from every independent judge: " + "; ".join(
        f"{n}: {'not run' if g is None else ('yes' if g else 'no')}" for n, g in goals))
    text = "\n".join(out) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
