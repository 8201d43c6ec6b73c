"""Wording of the messages the toolkit prints: one place for a count with its noun."""
from __future__ import annotations


def plural(n, noun: str, many: str | None = None) -> str:
    """``n`` and ``noun``, the noun in the plural unless ``n`` is 1: ``plural(1, "class")`` is "1 class",
    ``plural(3, "image")`` "3 images". ``many``: the plural form where adding "s" (or "es" after s, x, sh, ch) is
    wrong. ``n`` is shown as given (an int, or text such as "1,000")."""
    if str(n) == "1":
        return f"{n} {noun}"
    if many is None:
        sibilant = noun.endswith(("s", "x", "sh")) or (noun.endswith("ch") and not noun.endswith("epoch"))
        many = noun + "es" if sibilant else noun + "s"
    return f"{n} {many}"


def defense_text(defense: dict | None) -> str:
    """", posterior rounded to 0.1, counts clipped at 5, inputs flipped with p = 0.02" for the settings of a
    query-time defense that are on (``ObservedPosterior.describe()`` or an oracle's description); "" for none."""
    d = defense or {}
    parts = []
    if d.get("round_posterior") is not None:
        parts.append(f"posterior rounded to {d['round_posterior']:g}")
    if d.get("clip_counts") is not None:
        parts.append(f"counts clipped at {d['clip_counts']}")
    if d.get("input_flip"):
        parts.append(f"inputs flipped with p = {d['input_flip']:g}")
    if d.get("straight_through"):
        parts.append("the attacker passes gradients straight through")
    return "".join(", " + part for part in parts)
