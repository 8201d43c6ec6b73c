"""A sweep's tables and figures: ``results.csv`` / ``results.json`` (one row per cell x attack), ``report.md``
(one table; cells whose reconstructions do not replay identically on Lava are marked) and, for every knob the
study varies, ``leakage_<knob>.png``: attack accuracy against target accuracy, one colour per knob value and one
marker per attack; a cell leaks what its strongest attack gets (black x), and the Pareto front over the cells (no
other cell has a higher target accuracy with a lower worst-case attack accuracy) is joined and ringed.

With a study's ``[mia]`` section the rows also carry membership inference (``sweep.mia``): ``mia_attack``,
``mia_auc``, ``mia_tpr_1pct`` and ``mia_loss_auc``; ``report.md`` shows them and ``mia_auc.png`` draws the AUC
against the time steps, one line per defense, chance (0.5) marked."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..fileio import atomic_path, read_bytes_guarded, write_json_atomic
from ..text import plural

log = logging.getLogger(__name__)

COLUMNS = ("cell", "seed", "steps", "weight_step", "weight_bits", "threshold", "hidden", "readout", "defense",
           "attack", "method", "target_accuracy", "attack_accuracy", "top3", "avg_confidence", "daa",
           "lava_agreement", "replay_exact", "queries", "query_agreement", "twin_confidence", "zero_weights", "epsilon", "mia_attack", "mia_auc",
           "mia_tpr_1pct", "mia_loss_auc", "note",
           "attack_seconds", "cell_seconds")
TIME_COLUMNS = ("attack_seconds", "cell_seconds")
KNOBS = ("steps", "weight_step", "threshold", "hidden", "readout", "defense")


MAX_RECORD_BYTES = 16 << 20  # a unit's record: settings, output digests and one row per attack (a few kB)


def read_record(path: Path) -> dict | None:
    """The record a sweep unit wrote (``cells/<cell>/result.json``, ``targets/<key>/done.json``, ...); None when
    there is none or it is damaged (the unit then runs again).

    It is read through ``fileio.read_bytes_guarded``: a FIFO (which would block the resume for ever), a device,
    a link leading out of the unit's directory or a file over ``MAX_RECORD_BYTES`` is not something the sweep
    writes, and is refused (``OutputError``, one line naming the file) rather than read or run over."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    try:
        raw = read_bytes_guarded(path, "sweep record", MAX_RECORD_BYTES, OutputError, within=path.parent)
    except OutputError as e:
        raise OutputError(f"{e}; not a record the sweep wrote (remove it to run that unit again)") from None
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return rec if isinstance(rec, dict) else None


def pareto_front(target_acc: np.ndarray, leak: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (target accuracy >= and leakage <=, one of them strictly),
    ordered by target accuracy."""
    t, a = np.asarray(target_acc, float), np.asarray(leak, float)
    keep = []
    for i in range(len(t)):
        dominated = np.any((t >= t[i]) & (a <= a[i]) & ((t > t[i]) | (a < a[i])))
        if not dominated:
            keep.append(i)
    return np.asarray(sorted(keep, key=lambda i: (t[i], a[i])), dtype=int)


def rows_of(records: list[dict]) -> list[dict]:
    return [{c: r.get(c) for c in COLUMNS} for rec in records for r in rec["rows"]]


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def _count(v) -> str:
    return "-" if v is None else f"{int(v):,}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _listed(names: list[str], first: int = 8) -> str:
    more = len(names) - first
    return ", ".join(names[:first]) + (f" and {more} more (results.json lists them)" if more > 0 else "")


def write_results(study, out: Path, records: list[dict], missing: list[str]) -> Path:
    rows = rows_of(records)
    write_json_atomic(out / "results.json", {"study": study.name, "rows": rows, "missing_cells": missing})
    with atomic_path(out / "results.csv") as tmp:
        tmp.write_text(_csv_text(rows), encoding="utf-8")
    varied = [k for k in KNOBS if len({r[k] for r in rows}) > 1]
    figures = []
    for k in varied:
        png = out / f"leakage_{k}.png"
        plot_leakage(rows, k, png, title=f"{study.name}: leakage vs target accuracy by {k}")
        figures.append(png)
    mia = any(r.get("mia_auc") is not None for r in rows)
    qry = any(r.get("queries") is not None for r in rows)
    mia_png = None
    if mia:
        mia_png = plot_mia(rows, out / "mia_auc.png", title=f"{study.name}: membership inference vs time steps")
    lines = [f"# Sweep {study.name}", "",
             f"{plural(len({r['cell'] for r in rows}), 'cell')} done" + (f", {len(missing)} missing: {_listed(missing)}"
                                                               if missing else "") + f"; attacks: "
             f"{', '.join(a.name for a in study.attacks)}; evaluator draws {study.draws}; Lava replay "
             + (f"{study.replay_draws} draw(s) per reconstruction" if study.replay else "off") + ".", "",
             "Percent. `Lava` is the share of replayed reconstructions whose every layer's spikes are identical on "
             "Lava fixed_pt and the twin; **NOT EXACT** marks cells below 100 %. `zero w` is the share of weights "
             "the weight step rounded to 0; eps is the DP epsilon (delta as configured)."
             + (" MIA: membership inference on the deployed file's twin (members: its training split, non-members: "
                "split 'val'); `MIA AUC` and `TPR@1%` are those of LiRA online with shadow models (of the loss "
                "attack without), `loss AUC` the shadow-free loss attack's; query-time defenses apply to what the "
                "attacker observes (target and shadow models alike). Not percent." if mia else "")
             + (" `queries`: the queries the query-only attacks (nes, label) put to the deployment (through the "
                "cell's defense); `Lava answers`: the share of a seeded sample of them (100 or more) answered the same "
                "from Lava's read-out." if qry else ""), "",
             "| cell | T | w step (bits) | thr | hidden | read-out | defense | seed | attack | target acc | attack acc "
             "| top-3 | avg conf | DAA | Lava | zero w | eps | time s |"
             + (" MIA AUC | TPR@1% | loss AUC |" if mia else "") + (" queries | Lava answers |" if qry else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
             + ("---|---|---|" if mia else "") + ("---|---|" if qry else "")]
    for r in rows:
        lava = _pct(r["lava_agreement"])
        if r.get("note"):
            lava = "n/a (note)"
        if r["replay_exact"] is False:
            lava = f"**NOT EXACT {lava}**"
        eps = "-" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
        lines.append(f"| {r['cell']} | {r['steps']} | {r['weight_step']} ({r['weight_bits']:g}) | {r['threshold']:g} | "
                     f"{r['hidden']} | {r['readout']} | {r['defense']} | {r['seed']} | {r['attack']} | "
                     f"{_pct(r['target_accuracy'])} | {_pct(r['attack_accuracy'])} | {_pct(r['top3'])} | "
                     f"{_pct(r['avg_confidence'])} | {_pct(r['daa'])} | {lava} | {_pct(r['zero_weights'])} | {eps} | "
                     f"{r['attack_seconds']:.1f} |" + (f" {_num(r.get('mia_auc'))} | {_num(r.get('mia_tpr_1pct'))} | "
                                                       f"{_num(r.get('mia_loss_auc'))} |" if mia else "")
                     + (f" {_count(r.get('queries'))} | {_pct(r.get('query_agreement'))} |" if qry else ""))
    notes = sorted({(r["cell"], r["note"]) for r in rows if r.get("note")})
    if notes:
        lines += ["", "Notes:", ""] + [f"- {c}: {n}" for c, n in notes]
    if figures:
        lines += ["", "Figures (attack accuracy against target accuracy; a cell leaks what its strongest attack gets; "
                  "ringed and joined: the Pareto front of the cells, where no other cell has a higher target "
                  "accuracy with less leakage):", ""]
        lines += [f"![{p.stem}]({p.name})" for p in figures]
    if mia_png is not None:
        lines += ["", "Membership inference AUC against the time steps, one line per defense (solid: the attack of "
                  "the `MIA AUC` column; dashed: the loss attack; dotted: chance, 0.5):", "",
                  f"![{mia_png.stem}]({mia_png.name})"]
    defs = {n: d for n, d in study.defenses.items() if n != "none"}
    if defs:
        lines += ["", "Defenses:", ""] + [f"- `{n}`: {d}" for n, d in defs.items()]
    report = out / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def plot_leakage(rows: list[dict], knob: str, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([100 * r["target_accuracy"] for r in rows])
    a = np.array([100 * r["attack_accuracy"] for r in rows])
    values = sorted({r[knob] for r in rows}, key=lambda v: (isinstance(v, str), v))
    attacks = sorted({r["attack"] for r in rows})
    markers = "osD^vP*X"
    cmap = plt.get_cmap("viridis" if len(values) > 2 else "tab10")
    fig, ax = plt.subplots(figsize=(8.6, 4.8), dpi=100)
    for vi, v in enumerate(values):
        colour = cmap(vi / max(len(values) - 1, 1)) if len(values) > 2 else cmap(vi)
        for ai, at in enumerate(attacks):
            idx = [i for i, r in enumerate(rows) if r[knob] == v and r["attack"] == at]
            if idx:
                # later values drawn smaller on top: points at the same place show as concentric marks
                size = 150 * (0.55 ** vi) + 18
                ax.scatter(t[idx], a[idx], color=colour, marker=markers[ai % len(markers)], s=size, alpha=0.9,
                           edgecolors="white", linewidths=0.6,
                           label=f"{knob}={v}" + (f", {at}" if len(attacks) > 1 else ""))
    # a cell leaks what its strongest attack gets: the front is over the cells' worst case
    cells = sorted({r["cell"] for r in rows})
    ct = np.array([max(t[i] for i, r in enumerate(rows) if r["cell"] == c) for c in cells])
    ca = np.array([max(a[i] for i, r in enumerate(rows) if r["cell"] == c) for c in cells])
    if len(attacks) > 1:
        ax.scatter(ct, ca, marker="x", color="black", s=30, lw=1.0, zorder=4, label="cell: strongest attack")
    front = pareto_front(ct, ca)
    if len(front):
        ax.plot(ct[front], ca[front], color="crimson", lw=1.2, ls="--", zorder=1, label="Pareto front (cells)")
        ax.scatter(ct[front], ca[front], facecolors="none", edgecolors="crimson", s=260, lw=1.5, zorder=3)
    ax.set_xlabel("target accuracy (%), as deployed")
    ax.set_ylabel("attack accuracy (%), evaluator")
    ax.set_ylim(-3, 103)
    return _finish_figure(fig, ax, path, title)


def plot_mia(rows: list[dict], path: Path, title: str = "") -> Path:
    """Membership-inference AUC against the time steps: one colour per defense, ``mia_auc`` solid and the loss
    attack's ``mia_loss_auc`` dashed (when they differ in kind), chance (0.5) dotted. A cell counts once (its rows
    repeat its MIA values); several cells at one (defense, steps), e.g. other knobs or seeds, are drawn as their
    mean with a bar from the lowest to the highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {}
    for r in rows:
        if r.get("mia_auc") is not None:
            cells.setdefault(r["cell"], r)
    per = list(cells.values())
    defenses = sorted({r["defense"] for r in per}, key=lambda d: (d != "none", d))
    lira = any(r.get("mia_attack") not in (None, "loss") for r in per)
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    steps_all = sorted({r["steps"] for r in per})
    for k, d in enumerate(defenses):
        series = [("mia_auc", "-", "o", "LiRA" if lira else "loss")]
        if lira:
            series.append(("mia_loss_auc", "--", "s", "loss"))
        for col, style, marker, name in series:
            xs, ys, lo, hi = [], [], [], []
            for t in steps_all:
                v = [r[col] for r in per if r["defense"] == d and r["steps"] == t and r.get(col) is not None]
                if v:
                    xs.append(t)
                    ys.append(float(np.mean(v)))
                    lo.append(ys[-1] - min(v))
                    hi.append(max(v) - ys[-1])
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi] if any(lo) or any(hi) else None, fmt=style, marker=marker,
                            color=cmap(k % 10), lw=1.6 if style == "-" else 1.1, ms=5, capsize=3,
                            label=f"{d}, {name}")
    ax.axhline(0.5, ls=":", color="grey", lw=1.0, label="chance (0.5)")
    ax.set_xticks(steps_all)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("membership inference AUC")
    values = [r[c] for r in per for c in ("mia_auc", "mia_loss_auc") if r.get(c) is not None]
    ax.set_ylim(min(0.45, min(values) - 0.02), max(0.75, max(values) + 0.03))
    return _finish_figure(fig, ax, path, title)


def _finish_figure(fig, ax, path: Path, title: str) -> Path:
    """Grid, title and outside legend of a sweep plot; written atomically as PNG and closed."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
