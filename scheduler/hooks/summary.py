"""A hook as people read it: its schedule in words, its triggerSchema in short, and an example
payload derived from that schema. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.common.schema_messages import TYPE_PHRASES

# Taskcluster's schedule entries have six fields: second, minute, hour, day of month, month,
# day of week (its cron-parser's order), all in UTC.
_FIELDS = 6
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# Placeholders for a required field whose schema says no default, const, enum or example.
_PLACEHOLDERS: dict[str, Any] = {
    "string": "",
    "integer": 0,
    "number": 0,
    "boolean": False,
    "object": {},
    "array": [],
    "null": None,
}


def schedule_words(schedule: Sequence[str]) -> str | None:
    """The hook's schedule in words (None: fired only on demand): the plain shapes
    ("daily at 03:00 UTC") said so, any other entry as written."""
    if not schedule:
        return None
    return "; ".join(_entry_words(entry) for entry in schedule)


def _entry_words(entry: str) -> str:
    fields = entry.split()
    if len(fields) != _FIELDS or not all(_plain(f) for f in fields[:3]):
        return f"cron {entry} (UTC)"
    second, minute, hour, day, month, weekday = fields
    if second != "0" or month != "*" or minute == "*":
        return f"cron {entry} (UTC)"
    if hour == "*" and day == weekday == "*":
        return f"hourly at :{int(minute):02d}"
    if hour == "*":
        return f"cron {entry} (UTC)"
    at = f"at {int(hour):02d}:{int(minute):02d} UTC"
    if day == weekday == "*":
        return f"daily {at}"
    if day == "*" and weekday.isdigit() and int(weekday) < len(_WEEKDAYS):
        return f"every {_WEEKDAYS[int(weekday)]} {at}"
    if weekday == "*" and day.isdigit():
        return f"monthly on day {int(day)} {at}"
    return f"cron {entry} (UTC)"


def _plain(field: str) -> bool:
    return field == "*" or field.isdigit()


def schema_summary(trigger_schema: Mapping[str, Any]) -> str:
    """The payload a triggerSchema asks for, in one line: its fields, their types, which are
    required, and whether others are allowed."""
    properties = trigger_schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = trigger_schema.get("required")
    required = set(required) if isinstance(required, list) else set()
    others = trigger_schema.get("additionalProperties", True) is not False
    if not properties:
        return "any object" if others else "an empty object: {}"
    fields = [
        f"{name} ({_type_words(spec)}{', required' if name in required else ''})"
        for name, spec in properties.items()
    ]
    return ", ".join(fields) + ("; other fields allowed" if others else "")


def _type_words(spec: Any) -> str:
    if not isinstance(spec, dict):
        return "any"
    if "enum" in spec and isinstance(spec["enum"], list):
        return "one of " + " | ".join(json.dumps(value) for value in spec["enum"])
    kind = spec.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    said = " or ".join(TYPE_PHRASES.get(k, k) for k in kinds) or "any"
    if isinstance(spec.get("pattern"), str):
        said += f" matching {spec['pattern']}"
    return said


def example_payload(trigger_schema: Mapping[str, Any]) -> dict[str, Any]:
    """A payload to start from: each required field with its default, const, first enum
    value or first example, or an empty value of its type (to be filled in)."""
    properties = trigger_schema.get("properties")
    required = trigger_schema.get("required")
    if not isinstance(properties, dict) or not isinstance(required, list):
        return {}
    return {name: _example(properties.get(name)) for name in required if isinstance(name, str)}


def _example(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return ""
    for key in ("default", "const"):
        if key in spec:
            return spec[key]
    for key in ("enum", "examples"):
        if isinstance(spec.get(key), list) and spec[key]:
            return spec[key][0]
    if spec.get("type") == "object":
        return example_payload(spec)
    kind = spec.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    return _PLACEHOLDERS.get(kind, "") if isinstance(kind, str) else ""
