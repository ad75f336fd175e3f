"""What the service has to tell people: events, as plain data that survives a trip through JSON.

Pure: the watcher builds events, the ledger's outbox stores them, the senders render them.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any


class EventKind(enum.StrEnum):
    FIRE_FAILED = "fire-failed"
    """The service could not create the task or trigger the hook."""
    TASK_FAILED = "task-failed"
    """A task the service started resolved failed or exception."""
    GROUP_FAILED = "group-failed"
    """A decision task completed, but tasks of the group it made failed."""
    PROJECT_BROKEN = "project-broken"
    """A project cannot be scheduled: repository unreachable, `.cron.yml` or template broken."""
    PREFLIGHT_FAILED = "preflight-failed"
    """Taskcluster would refuse what a project's jobs will send (found before they fire)."""
    SLOTS_SKIPPED = "slots-skipped"
    """Catch-up after a gap left missed slots unfired."""
    RECOVERED = "recovered"
    """The first success after a failure of the same job (or project)."""
    EXPIRING = "expiring-found"
    EXPIRED = "already-expired"
    REMEDIATION_STARTED = "remediation-started"
    REMEDIATION_SUCCEEDED = "remediation-succeeded"
    REMEDIATION_NOTHING_REBUILT = "remediation-nothing-rebuilt"
    """The rebuild action's task completed without creating any task."""
    REMEDIATION_FAILED = "remediation-failed"
    REMEDIATION_DRY_RUN = "remediation-dry-run"
    EXPIRY_SCAN_FAILED = "expiry-scan-failed"
    TEST = "test"
    """`tc-scheduler notify test`."""


class EventSeverity(enum.StrEnum):
    FAILURE = "failure"
    """Somebody has to act: mentions apply."""
    RECOVERY = "recovery"
    WARNING = "warning"
    INFO = "info"


SEVERITY = {
    EventKind.FIRE_FAILED: EventSeverity.FAILURE,
    EventKind.TASK_FAILED: EventSeverity.FAILURE,
    EventKind.GROUP_FAILED: EventSeverity.FAILURE,
    EventKind.PROJECT_BROKEN: EventSeverity.FAILURE,
    EventKind.PREFLIGHT_FAILED: EventSeverity.FAILURE,
    EventKind.SLOTS_SKIPPED: EventSeverity.WARNING,
    EventKind.RECOVERED: EventSeverity.RECOVERY,
    EventKind.EXPIRING: EventSeverity.WARNING,
    EventKind.EXPIRED: EventSeverity.FAILURE,
    EventKind.REMEDIATION_STARTED: EventSeverity.INFO,
    EventKind.REMEDIATION_SUCCEEDED: EventSeverity.RECOVERY,
    EventKind.REMEDIATION_NOTHING_REBUILT: EventSeverity.WARNING,
    EventKind.REMEDIATION_FAILED: EventSeverity.FAILURE,
    EventKind.REMEDIATION_DRY_RUN: EventSeverity.INFO,
    EventKind.EXPIRY_SCAN_FAILED: EventSeverity.FAILURE,
    EventKind.TEST: EventSeverity.INFO,
}


@dataclass(frozen=True)
class FailedTask:
    """One failed task of a watched task group."""

    task_id: str
    name: str
    state: str  # "failed" or "exception"
    reason: str | None = None  # the last run's reasonResolved


@dataclass(frozen=True)
class Event:
    """One thing to tell people, with everything a message about it needs.

    `key` names the event for deduplication: two replicas, or a restart, that build the same
    event build the same key, and the outbox keeps one. `title` is the one line a person reads
    first; `error` is what went wrong, `advice` what to do about it. Links are built by the
    senders from `task_id`, `task_group_id` and the deployment's root URL.
    """

    key: str
    kind: EventKind
    project: str
    title: str
    at: datetime
    job: str | None = None
    slot: datetime | None = None
    fire_kind: str | None = None  # scheduled, catch-up or manual
    revision: str | None = None
    task_id: str | None = None
    task_group_id: str | None = None
    error: str | None = None
    advice: str | None = None
    failed_tasks: tuple[FailedTask, ...] = ()
    total_tasks: int | None = None
    facts: tuple[tuple[str, str], ...] = field(default=())  # extra labelled lines

    @property
    def severity(self) -> EventSeverity:
        return SEVERITY[self.kind]

    def to_json(self) -> dict[str, Any]:
        # Field by field: `asdict` deep-copies every value, and a tick makes a notice for each
        # project's health (most of an idle tick's notices' cost); every value is a scalar but
        # those converted below.
        data = {name: getattr(self, name) for name in _EVENT_FIELDS}
        data["kind"] = self.kind.value
        data["at"] = self.at.isoformat()
        data["slot"] = self.slot.isoformat() if self.slot else None
        data["failed_tasks"] = [asdict(t) for t in self.failed_tasks]
        data["facts"] = [list(f) for f in self.facts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(
            **{
                **data,
                "kind": EventKind(data["kind"]),
                "at": datetime.fromisoformat(data["at"]),
                "slot": datetime.fromisoformat(data["slot"]) if data.get("slot") else None,
                "failed_tasks": tuple(FailedTask(**t) for t in data.get("failed_tasks", ())),
                "facts": tuple((str(k), str(v)) for k, v in data.get("facts", ())),
            }
        )


_EVENT_FIELDS = tuple(field.name for field in fields(Event))
