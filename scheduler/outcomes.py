"""How fires and slots ended, and the errors a fire fails with: what notify, reports and the faces
read of the engine's work, without importing the engine, rendering or JSON-e.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scheduler.cron.slots import SkipReason
from scheduler.errors import Category, SchedulerError
from scheduler.ledger import FireKind, FireState

# The note of an already-fired fire whose task could not be read back.
UNCONFIRMED = "unconfirmed"
# How a fire whose claim another replica holds (state None) is shown and counted.
CLAIMED_ELSEWHERE = "claimed-elsewhere"


@dataclass(frozen=True)
class FireResult:
    project: str
    job: str
    slot: datetime
    kind: FireKind
    state: FireState | None  # None: another replica holds the claim
    task_id: str | None = None
    error: str | None = None
    details: dict[str, Any] | None = None  # the rendered task, or the hook and its payload
    project_broken: bool = False  # it failed for the project's files (its template)
    at: datetime | None = None  # when it ended: its task made, or its failure known
    taken_over: bool = False  # claimed from a replica that stopped (its lease ran out)
    skip_reason: SkipReason | None = None  # why a skipped fire was skipped
    fire_id: int | None = None  # its record in the ledger, where the caller needs it (by hand)
    # Decided before by another process (an earlier tick of the slot, another replica): the
    # state, task id and error are what the ledger records; this process did nothing.
    decided_before: bool = False


@dataclass(frozen=True)
class SlotResult:
    project: str
    slot: datetime
    revision: str | None
    fires: tuple[FireResult, ...] = ()
    skipped: tuple[FireResult, ...] = ()
    error: str | None = None
    # The `.cron.yml` problems that left jobs out (also in `error`).
    problems: tuple[str, ...] = ()
    # Due fires not fired because their job or project is paused (recorded as skipped).
    paused: tuple[FireResult, ...] = ()
    # Due fires not fired because an earlier fire of their job has not resolved, per the
    # job's overlap policy (recorded as skipped, the reason naming that fire).
    overlapping: tuple[FireResult, ...] = ()

    @property
    def unreachable(self) -> bool:
        """The repository could not be read: nothing was evaluated."""
        return self.revision is None

    @property
    def ok(self) -> bool:
        """Nothing failed: the slot's evaluation, nor any of its fires (those decided before
        included, as the ledger records them)."""
        return self.error is None and all(f.state is not FireState.FAILED for f in self.fires)

    @property
    def fired_here(self) -> tuple[FireResult, ...]:
        """The fires this process made (not those another holds, or decided before)."""
        return tuple(f for f in self.fires if f.state is not None and not f.decided_before)


class FireError(SchedulerError, code="cannot-fire"):
    """A fire failed; the message says what happened and what to do about it.

    `project_broken`: the cause breaks every job of the project (a missing or broken
    `.taskcluster.yml`), so it is reported once for the project, not once per job.
    `transient`: the cause may pass (Taskcluster down, an outcome not known yet), and trying
    again is safe: a scheduled fire is retried, not before `not_before` if that is set.
    `task_id`: the task the fire may have made all the same (whether it exists is not known).
    """

    def __init__(
        self,
        message: str,
        *,
        project_broken: bool = False,
        transient: bool = False,
        not_before: datetime | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.project_broken = project_broken
        self.transient = transient
        self.not_before = not_before
        self.task_id = task_id


class UnknownTargetError(FireError, category=Category.NOT_FOUND, code="not-found"):
    """No usable job of that name in the project's `.cron.yml` (an unknown project is an
    UnknownProjectError)."""


class UnknownJobError(
    SchedulerError, LookupError, category=Category.NOT_CONFIGURED, code="not-found"
):
    """An act named a job the project's `.cron.yml` does not have (or, for a backfill, does
    not run on the project): refused, naming the jobs there are, since a typo would otherwise
    leave the real job firing (or paused) as it was."""


class RepositoryUnreachableError(
    FireError, category=Category.REFUSED_UPSTREAM, code="repository-unreachable"
):
    """The project's repository could not be read, so its `.cron.yml` is not known."""


class FireTooSoonError(FireError, category=Category.TOO_SOON, code="too-soon"):
    """The job was fired by hand less than `manual-fire-interval` ago."""

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after
