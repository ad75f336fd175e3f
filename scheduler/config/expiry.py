"""A project's expiry watch as the configuration writes it, resolved with its defaults. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from scheduler.config.model import ExpiryWatch, TaskGroupWatch
from scheduler.durations import parse_duration


def expiry_watch(data: Mapping[str, Any]) -> ExpiryWatch:
    """A project's `expiry` entry (valid), defaults filled in."""
    default = ExpiryWatch()

    def duration(key: str, fallback: timedelta) -> timedelta:
        return parse_duration(data[key]) if key in data else fallback

    return ExpiryWatch(
        namespaces=tuple(data.get("namespaces", ())),
        task_groups=tuple(
            TaskGroupWatch(g["id"], tuple(g.get("kinds", ())), g.get("label-prefix"))
            for g in data.get("task-groups", ())
        ),
        threshold=duration("threshold", default.threshold),
        action=data.get("action", default.action),
        action_input=data.get("input", {}),
        every=duration("every", default.every),
        cooldown=duration("cooldown", default.cooldown),
        artifacts=data.get("artifacts", False),
        concurrency=data.get("concurrency", default.concurrency),
        decision_index=data.get("decision-index"),
    )
