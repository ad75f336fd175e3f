"""What this replica last found about each project outside its slots: the latest preflight and
the latest expiry scan, in memory, so that the pages show them without calling Taskcluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from scheduler.expiry.model import CachedTask, ExpiryEvent, ExpiryEventKind
from scheduler.findings import Checked


@dataclass(frozen=True)
class Preflighted:
    """A project's latest preflight, and when it ran."""

    at: datetime
    checked: Checked


@dataclass(frozen=True)
class ExpiryScanned:
    """A project's latest expiry scan: when, what it said (its events), and the cached tasks
    at risk it found. A scan that failed keeps the tasks of the last one that worked, with
    `seen_at` saying when they were seen."""

    at: datetime
    events: tuple[ExpiryEvent, ...]
    at_risk: tuple[CachedTask, ...]
    seen_at: datetime | None

    @property
    def failure(self) -> str | None:
        """Why the scan (or following the rebuild) failed, if it did."""
        failed = [e.message for e in self.events if e.kind is ExpiryEventKind.SCAN_FAILED]
        return failed[0] if failed else None


@dataclass
class LastChecks:
    """Each project's latest preflight and expiry scan on this replica (replicas run both
    themselves, so each knows its own; a restart forgets them until the next run)."""

    preflights: dict[str, Preflighted] = field(default_factory=dict)
    scans: dict[str, ExpiryScanned] = field(default_factory=dict)

    def preflighted(self, checked: Checked, *, at: datetime) -> None:
        self.preflights[checked.project] = Preflighted(at, checked)

    def scanned(self, project: str, events: tuple[ExpiryEvent, ...], *, at: datetime) -> None:
        risky: dict[str, CachedTask] = {}
        for event in events:
            for task in event.at_risk:
                risky.setdefault(task.task_id, task)
        before = self.scans.get(project)
        failed = any(e.kind is ExpiryEventKind.SCAN_FAILED for e in events)
        if failed and not risky and before is not None:
            # The scan told nothing new: what the last one found still stands, as of then.
            self.scans[project] = ExpiryScanned(at, events, before.at_risk, before.seen_at)
            return
        seen_at = None if failed and not risky else at
        self.scans[project] = ExpiryScanned(at, events, tuple(risky.values()), seen_at)
