"""What the ledger hands out and takes in: fire kinds and states, claims, fires and slot records.

Plain immutable values; every time in them is a timezone-aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from scheduler.ledger.notice_records import Notice


class FireKind(StrEnum):
    SCHEDULED = "scheduled"
    CATCH_UP = "catch-up"
    MANUAL = "manual"


class FireState(StrEnum):
    CLAIMED = "claimed"
    """Claimed by a replica that has not finished it yet."""
    RETRYING = "retrying"
    """An attempt failed for a passing reason (Taskcluster down, an unknown outcome): tried
    again from `lease_until` by any replica, with the same task id, while within max-lateness."""
    CREATED = "created"
    """We created the task or triggered the hook."""
    ALREADY_FIRED = "already-fired"
    """An earlier attempt (or another replica) made the task: createTask answered 409, or a
    trigger whose outcome was unknown was found to have made its task."""
    DRY_RUN = "dry-run"
    """Rendered and recorded, not sent."""
    FAILED = "failed"
    """`error` holds a message a person can act on."""
    SKIPPED = "skipped"
    """The catch-up policy skipped the slot; `error` holds the reason."""


class SlotOutcome(StrEnum):
    EVALUATED = "evaluated"
    """The project's jobs due at the slot were worked out (and claimed or skipped)."""
    FAILED = "failed"
    """The project could not be evaluated at the slot (say, its .cron.yml could not be read)."""
    SKIPPED = "skipped"
    """The slot was missed and the catch-up policy did not evaluate it."""


class RemediationState(StrEnum):
    RUNNING = "running"
    """The rebuild action was triggered (or is being triggered); its tasks have not all ended."""
    SUCCEEDED = "succeeded"
    """The rebuilt tasks completed and the cache no longer points at expiring tasks."""
    FAILED = "failed"
    """`error` says why: the action could not be triggered, its tasks failed, or nothing changed."""
    DRY_RUN = "dry-run"
    """What would have been triggered was recorded, nothing was sent."""


@dataclass(frozen=True)
class Remediation:
    """One rebuild of a project's expiring cached tasks (at most one running per project)."""

    id: int
    project: str
    state: RemediationState
    replica: str
    action: str
    expiring: list[dict[str, Any]]
    started_at: datetime
    finished_at: datetime | None
    task_id: str | None
    task_group_id: str | None
    error: str | None


@dataclass(frozen=True)
class Claim:
    """The right to fire one fire, held by `replica` until `lease_until` unless renewed.

    `attempt` counts the claims of the fire; a take-over increments it, so (fire_id, attempt)
    names one holder and a holder that lost its claim can no longer finish it.
    """

    fire_id: int
    project: str
    job: str
    slot: datetime
    kind: FireKind
    replica: str
    lease_until: datetime
    attempt: int
    asked_at: datetime | None = None  # see `Fire.asked_at`


# The states of a fire not finished yet: held by a claim, or waiting for its next attempt.
OPEN_STATES = frozenset({FireState.CLAIMED, FireState.RETRYING})


@dataclass(frozen=True)
class Outcome:
    """How a claimed fire ended (or, RETRYING, how this attempt ended), for
    `Ledger.finish_many`. `retry_at` is when a RETRYING fire may be tried again."""

    claim: Claim
    state: FireState
    task_id: str | None = None
    revision: str | None = None
    error: str | None = None
    details: dict[str, Any] | None = None
    watch: WatchSpec | None = None  # follow the fire's task (or report its failure)
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Fire:
    """One row of fire history: a claimed, finished or skipped fire.

    `lease_until` is set only while the fire is open (claimed, or retrying: when its next
    attempt may start), `finished_at` only once it is not. A skipped fire has attempt 0: nobody
    ever held it. `sent_at`: when its request (createTask, triggerHook) was last sent.
    """

    id: int
    project: str
    job: str
    slot: datetime
    kind: FireKind
    state: FireState
    attempt: int
    replica: str
    revision: str | None
    task_id: str | None
    error: str | None
    details: dict[str, Any] | None
    claimed_at: datetime
    lease_until: datetime | None
    finished_at: datetime | None
    sent_at: datetime | None = None
    asked_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class SlotRecord:
    """The latest evaluation of a project at a slot."""

    project: str
    slot: datetime
    revision: str | None
    outcome: SlotOutcome
    error: str | None
    replica: str
    evaluated_at: datetime


class WatchPhase(StrEnum):
    """Where the watcher is with a fire: what it waits for next."""

    REPORT = "report"
    """The fire failed before any task existed: only its report is due."""
    TASK = "task"
    """Waiting for the fire's task to resolve."""
    GROUP = "group"
    """The task completed; waiting for every task of its group to resolve."""
    DONE = "done"
    """Resolved and reported."""


class RunState(StrEnum):
    """How the run a fire started stands once its task has started, as the watcher last saw
    it: its task's state or, for a job whose task group is watched, the group's verdict.
    Before (a task not running yet) the fire's own state says it: `created`."""

    RUNNING = "running"
    """The task runs (or ran and is retried), or it completed and its watched group runs."""
    COMPLETED = "completed"
    """The task completed and, if its group is watched, so did every task of the group."""
    FAILED = "failed"
    """The task failed, or a task of its watched group did."""
    EXCEPTION = "exception"
    """The task resolved as exception (canceled, deadline exceeded, ...), or the queue no
    longer knows it; or a task of its watched group did (none failed), or is blocked."""


@dataclass(frozen=True)
class GroupCounts:
    """A task group's tasks by how they stand: every task is counted once, in `total` and in
    one of completed, failed, exception, blocked or unresolved."""

    total: int
    failed: int
    exception: int
    blocked: int  # unscheduled behind a dependency that did not complete: will never run
    unresolved: int  # unscheduled (not blocked), pending or running

    @property
    def completed(self) -> int:
        return self.total - self.failed - self.exception - self.blocked - self.unresolved


@dataclass(frozen=True)
class WatchSpec:
    """What to follow after a fire, given with its outcome to `Ledger.finish_many`."""

    task_kind: str = "decision"  # what the fire started: a "decision" or an "action" task
    follow_group: bool = False
    crontab: str | None = None  # the job's schedule as one crontab, for a Sentry monitor
    # The fire failed for a reason that breaks every job of the project (its template).
    project_broken: bool = False


@dataclass(frozen=True)
class UnresolvedFire:
    """A fire whose work may still be going on, as far as the ledger knows: being made
    (claimed or retrying: its task may not exist yet), or made and its task, or the task group
    its watch follows, not seen resolved by the watcher yet."""

    fire_id: int
    project: str
    job: str
    slot: datetime
    kind: FireKind
    state: FireState
    task_id: str | None
    task_group_id: str | None  # as the watcher saw it, else as the rendered task names it
    phase: WatchPhase | None  # None: no watch (being made, or recorded without one)
    task_state: str | None  # the task's state when the watcher last looked (None: not yet)
    task_kind: str | None  # "decision" or "action", as the watch says
    follow_group: bool = False  # its watch follows the task group, not only the task

    @property
    def being_made(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class Watch:
    """A fire the watcher follows until its task (and maybe its task group) resolves."""

    fire_id: int
    project: str
    job: str
    slot: datetime
    kind: FireKind
    fire_state: FireState
    revision: str | None
    task_id: str | None
    error: str | None
    task_kind: str
    follow_group: bool
    crontab: str | None
    project_broken: bool
    phase: WatchPhase
    created_at: datetime
    task_group_id: str | None = None
    task_state: str | None = None
    reason: str | None = None
    resolved_at: datetime | None = None
    run_state: RunState | None = None  # None: no task has started (or none was made)
    group: GroupCounts | None = None  # the watched task group's counts, once listed
    attempt: int = 1  # the fire's; with asked_at, a backfill's rerun is told apart
    asked_at: datetime | None = None


@dataclass(frozen=True)
class WatchStep:
    """A move of `watch` from the phase, task state and group counts it was read in, to
    `phase` (maybe the same), recording what is given (None: kept), with the notices it calls
    for: for `Ledger.advance_watches`."""

    watch: Watch
    phase: WatchPhase
    notices: Sequence[Notice] = ()
    task_state: str | None = None
    reason: str | None = None  # recorded with `task_state` (a state without one clears it)
    task_group_id: str | None = None
    run_state: RunState | None = None
    group: GroupCounts | None = None


@dataclass(frozen=True)
class Pause:
    """A job (or, with `job` None, a whole project) that does not fire until resumed.

    In force while not resumed and before `until` (if set): `until` lifts it by itself.
    """

    id: int
    project: str
    job: str | None
    reason: str
    until: datetime | None
    paused_by: str
    paused_at: datetime
    resumed_by: str | None = None
    resumed_at: datetime | None = None

    def covers(self, job: str) -> bool:
        return self.job is None or self.job == job

    @property
    def summary(self) -> str:
        """Why a slot did not fire, in the words history and messages show."""
        target = "the project" if self.job is None else "the job"
        until = f" until {self.until:%Y-%m-%d %H:%M} UTC" if self.until else ""
        return f"paused: {target} was paused by {self.paused_by}{until}: {self.reason}"


@dataclass(frozen=True)
class Act:
    """An act of a person or a script as the audit log keeps it: who, what, on what, with
    which input (its outcome is written with it)."""

    actor: str
    action: str
    target: str
    input: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class AuditEntry(Act):
    """An act as the audit log has it: when, and its outcome."""

    id: int
    at: datetime
    ok: bool
    result: str


@dataclass(frozen=True)
class SignIn:
    """A dashboard session as the ledger keeps it: who signed in (the token's name and role,
    and the hash of the token it was made from), when, and until when. Its id is never kept."""

    name: str
    role: str
    token_sha256: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Cutoffs:
    """Where retention ends for each kind of row: what is older goes, unless still needed.

    `fires`: fires (with their finished watches) and slots before it, incidents closed before
    it; `letters`: letters sent or given up on, queued before it; `audit`: acts before it.
    """

    fires: datetime
    letters: datetime
    audit: datetime
    # Dashboard sessions that expired before it (None: keep them all).
    sessions: datetime | None = None


@dataclass(frozen=True)
class Pruned:
    """How many rows of each kind a prune removed (or, in a dry run, would remove)."""

    fires: int = 0
    watches: int = 0
    slots: int = 0
    incidents: int = 0
    letters: int = 0
    audit: int = 0
    sessions: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(**{kind: count + getattr(other, kind) for kind, count in self.counts()})

    def counts(self) -> list[tuple[str, int]]:
        """(kind, count) for each kind of row, in the order above."""
        return [(kind.name, getattr(self, kind.name)) for kind in fields(self)]

    def largest(self) -> int:
        """The count of the kind with most rows (a batch that reached its limit is full)."""
        return max(count for _, count in self.counts())
