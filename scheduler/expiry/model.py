"""The expiry watch's risk model: cached tasks, how healthy each is, a scan's report and the
events it leads to, and where taskgraph indexes a project's caches. Pure."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.config.model import Project
from scheduler.durations import format_duration

# Index namespaces name the cache type in taskgraph's words; reports use the kind's name.
CACHE_TYPES = {
    "docker-images": "docker-image",
    "toolchains": "toolchain",
    "content": "fetch",
    "fetches": "fetch",
}


class TaskHealth(enum.StrEnum):
    EXPIRED = "expired"
    EXPIRING = "expiring"
    HEALTHY = "healthy"


@dataclass(frozen=True)
class CachedTask:
    """One cached task and the earliest moment something a run needs of it goes away."""

    task_id: str
    where: str  # the index namespace it was found under, or `task-group <id>`
    kind: str | None
    expires: datetime
    because: str  # what expires first: "index entry", "task", "artifact <name>"
    gone: bool = False  # the index points at a task the queue no longer has

    def days_left(self, now: datetime) -> float:
        return 0.0 if self.gone else (self.expires - now) / timedelta(days=1)

    def health(self, now: datetime, threshold: timedelta) -> TaskHealth:
        if self.gone or self.expires <= now:
            return TaskHealth.EXPIRED
        return TaskHealth.EXPIRING if self.expires - now <= threshold else TaskHealth.HEALTHY


@dataclass(frozen=True)
class ExpiryReport:
    project: str
    scanned: int
    threshold: timedelta
    now: datetime
    at_risk: tuple[CachedTask, ...]  # expired or expiring, soonest first

    def health(self, task: CachedTask) -> TaskHealth:
        return task.health(self.now, self.threshold)

    @property
    def expired(self) -> tuple[CachedTask, ...]:
        return tuple(t for t in self.at_risk if self.health(t) is TaskHealth.EXPIRED)

    @property
    def expiring(self) -> tuple[CachedTask, ...]:
        return tuple(t for t in self.at_risk if self.health(t) is TaskHealth.EXPIRING)


def default_namespaces(project: Project) -> tuple[str, ...]:
    """Where taskgraph indexes a project's cached tasks: `<trust-domain>.cache.level-<N>`."""
    return (f"{project.trust_domain}.cache.level-{project.level}",)


def kind_of_namespace(namespace: str) -> str | None:
    """`gecko.cache.level-3.toolchains.v3.linux64-clang.hash.ab12` -> `toolchain`."""
    parts = namespace.split(".")
    if "cache" not in parts:
        return None
    after = parts[parts.index("cache") + 1 :]
    cache_type = after[1] if len(after) > 1 and after[0].startswith("level-") else None
    return CACHE_TYPES.get(cache_type or "", cache_type)


def at_risk(
    tasks: Iterable[CachedTask], now: datetime, threshold: timedelta
) -> tuple[CachedTask, ...]:
    """The expired and expiring tasks, soonest first."""
    risky = (t for t in tasks if t.health(now, threshold) is not TaskHealth.HEALTHY)
    return tuple(sorted(risky, key=lambda t: (not t.gone, t.expires, t.task_id)))


class ExpiryEventKind(enum.StrEnum):
    """What the expiry watch has to say; the notification layer turns these into messages."""

    STARTED = "remediation-started"
    SUCCEEDED = "remediation-succeeded"
    NOTHING_REBUILT = "remediation-nothing-rebuilt"  # the action completed and made no task
    FAILED = "remediation-failed"
    DRY_RUN = "remediation-dry-run"
    WAITING = "remediation-waiting"  # at risk, but one is running or the cooldown holds
    RUNNING = "remediation-running"  # the rebuild started earlier runs on: followed, no verdict
    EXPIRING = "expiring-found"
    EXPIRED = "already-expired"
    SCAN_FAILED = "expiry-scan-failed"  # Taskcluster failed a call of the scan or the step


@dataclass(frozen=True)
class ExpiryEvent:
    kind: ExpiryEventKind
    project: str
    message: str
    at_risk: tuple[CachedTask, ...] = ()
    remediation_id: int | None = None
    # The rebuilt tasks' group: what a pipeline adds to its `previous_group_ids`.
    task_group_id: str | None = None

    @property
    def failed(self) -> bool:
        """The scan, or the rebuild, failed: somebody has to look."""
        return self.kind in (ExpiryEventKind.FAILED, ExpiryEventKind.SCAN_FAILED)


def findings(report: ExpiryReport) -> list[ExpiryEvent]:
    """What a scan found, as events: what has already expired, and what expires soon."""
    events = []
    if report.expired:
        names = ", ".join(f"{t.where} ({t.because})" for t in report.expired[:5])
        events.append(
            ExpiryEvent(
                ExpiryEventKind.EXPIRED,
                report.project,
                f"{len(report.expired)} cached tasks have expired or are gone: {names}",
                report.expired,
            )
        )
    if report.expiring:
        soonest = report.expiring[0]
        events.append(
            ExpiryEvent(
                ExpiryEventKind.EXPIRING,
                report.project,
                f"{len(report.expiring)} cached tasks expire within "
                f"{format_duration(report.threshold)}; the first, {soonest.where}, in "
                f"{soonest.days_left(report.now):.1f} days",
                report.expiring,
            )
        )
    return events
