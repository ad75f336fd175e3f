"""The durations the configuration bounds: how long the ledger keeps what (never less than a
day, nor less than a slot may still be fired), and how long a Taskcluster call may take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from scheduler.common.yamldoc import Document
from scheduler.config.errors import Problems
from scheduler.config.model import (
    LONGEST_CALL_DEADLINE,
    LONGEST_CALL_TIMEOUT,
    MIN_RETENTION,
    CallBounds,
    Project,
    Retention,
)
from scheduler.durations import format_duration, parse_duration


def resolve_retention(data: Mapping[str, Any], document: Document, problems: Problems) -> Retention:
    """`retention`, each duration at least MIN_RETENTION."""
    default = Retention()
    kept = {}
    for key in ("fires", "letters", "audit"):
        duration = parse_duration(data[key]) if key in data else getattr(default, key)
        if duration < MIN_RETENTION:
            problems.error(
                document.position_of(("retention", key)),
                f"retention.{key}: {data[key]} is too short; the ledger keeps everything "
                f"at least {format_duration(MIN_RETENTION)} (the engine reads recent "
                f"fires), so write {format_duration(MIN_RETENTION)} or more, like "
                f"{format_duration(getattr(default, key))}",
            )
            duration = getattr(default, key)
        kept[key] = duration
    return Retention(**kept)


def check_fires_outlive_lateness(
    retention: Retention, projects: Sequence[Project], document: Document, problems: Problems
) -> None:
    """A fire is kept while its slot may still be fired, and a day more: a slot whose fire
    was forgotten could be claimed, and fired, again."""
    lateness = [
        (catch_up.max_lateness, project.name)
        for project in projects
        for catch_up in (project.catch_up, *project.job_catch_up.values())
    ]
    if not lateness:
        return
    longest, name = max(lateness)
    if retention.fires < longest + MIN_RETENTION:
        problems.error(
            document.position_of(("retention", "fires")),
            f"retention.fires: {format_duration(retention.fires)} would forget fires whose "
            f"slots may still be fired (project {name} has a max-lateness of "
            f"{format_duration(longest)}); keep fires at least "
            f"{format_duration(longest + MIN_RETENTION)}, or shorten that max-lateness",
        )


def resolve_call_bounds(
    taskcluster: Mapping[str, Any], document: Document, problems: Problems
) -> CallBounds:
    """`call-timeout` and `call-deadline`, checked against their limits and each other; an
    unset timeout is the default's, or the deadline if that is shorter."""
    default = CallBounds()
    deadline = _call_bound(
        taskcluster,
        document,
        problems,
        "call-deadline",
        LONGEST_CALL_DEADLINE,
        "a tick stalled on Taskcluster must end well before the next slot's, 15 minutes later",
    )
    timeout = _call_bound(
        taskcluster,
        document,
        problems,
        "call-timeout",
        LONGEST_CALL_TIMEOUT,
        "a trigger whose answer did not come is looked for soon after it was sent, and must "
        "no longer be on its way by then",
    )
    deadline = deadline or default.deadline
    if timeout is None:
        return CallBounds(min(default.timeout, deadline), deadline)
    if timeout > deadline:
        problems.error(
            document.position_of(("taskcluster", "call-timeout")),
            f"taskcluster.call-timeout {format_duration(timeout)} is longer than "
            f"call-deadline {format_duration(deadline)}: an attempt cannot outlast its "
            "call; make the timeout at most the deadline",
        )
    return CallBounds(timeout, deadline)


def _call_bound(
    taskcluster: Mapping[str, Any],
    document: Document,
    problems: Problems,
    key: str,
    longest: timedelta,
    why: str,
) -> timedelta | None:
    """The duration `taskcluster.<key>` sets, if any and within its limits (`why` them)."""
    if key not in taskcluster:
        return None
    value = parse_duration(taskcluster[key])
    if not value or value > longest:
        problems.error(
            document.position_of(("taskcluster", key)),
            f"taskcluster.{key} must be from 1s to {format_duration(longest)} (got "
            f"{format_duration(value)}): {why}",
        )
        return None
    return value
