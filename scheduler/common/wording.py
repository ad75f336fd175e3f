"""Counting things in words: `1 slot`, `3 slots`. The one place that knows English plurals of
the nouns messages count (all of them take an `s`).
"""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """`noun` as it goes with `count`: `slot` for one, `slots` for any other number."""
    return noun if count == 1 else f"{noun}s"


def counted(count: int, noun: str) -> str:
    """`1 slot`, `3 slots`, `0 slots`."""
    return f"{count} {plural(count, noun)}"
