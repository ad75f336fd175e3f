"""Durations as people write them in configuration (`6h`, `90m`, `1d12h`, `30s`).

Parsing, formatting back, and the JSON-schema fragment that accepts one.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

DURATION_PATTERN = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# A field of a schema (explained by `schema_messages.Explainer`) that holds a duration.
DURATION_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": DURATION_PATTERN.pattern,
    "minLength": 2,
    "x-expected": "a duration like 6h, 90m, 1d or 30s",
}

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> timedelta:
    match = DURATION_PATTERN.fullmatch(text)
    if not match or not text:
        raise ValueError(f"not a duration: {text!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in _UNITS:
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
