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
