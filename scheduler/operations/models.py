"""What every operation answers, as the API's JSON and the command line's `--json` both show it:
one set of pydantic models, one set of (snake_case) field names, documented in the OpenAPI.
What only the dashboard's pages read is in `page_models.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scheduler.expiry.model import CachedTask
from scheduler.ledger import FireState, RunState
from scheduler.operations.audit import ActKind
from scheduler.outcomes import CLAIMED_ELSEWHERE

STATE_FILTER = (
    "Fires in this state or whose run is in it. A fire's state says how firing went "
    "(claimed, retrying, created, already-fired, dry-run, failed, skipped); its run's, how "
    "the task it made went, and the task group for a job whose group is watched (running, "
    "completed, failed, exception). `failed` is both: fires that could not make their task, "
    "and fires whose task or watched group failed."
)


class FireQuery(BaseModel):
    """Which fires to read: those matching every filter given, newest slot first, a page
    (`offset`, `limit`) at a time. The API takes it as query parameters."""

    model_config = ConfigDict(frozen=True)

    project: str | None = None
    job: str | None = None
    state: FireState | RunState | None = Field(default=None, description=STATE_FILTER)
    since: datetime | None = Field(default=None, description="Slots at or after this.")
    until: datetime | None = Field(default=None, description="Slots before this.")
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class TaskGroupOut(BaseModel):
    """A watched task group's tasks by how they stand: each counted in `total` and in one of
    the others."""

    total: int
    completed: int
    failed: int
    exception: int
    blocked: int = Field(description="Unscheduled behind a failed dependency: will never run.")
    unresolved: int = Field(description="Not resolved yet: unscheduled, pending or running.")
    summary: str = Field(description="The counts in words: `50 tasks: 47 completed, 3 failed`.")


class TaskOutcomeOut(BaseModel):
    """How the run a fire started went, as the watcher last saw it: its task and, for a job
    whose task group is watched, the group."""

    state: str = Field(
        description="The run: created (its task has not started, or was not looked at yet), "
        "running, completed, failed or exception (also: the queue no longer knows the task). "
        "For a watched group: running until every task resolved, then failed if any failed, "
        "else exception if any ended in exception (or is blocked), else completed."
    )
    label: str = Field(description="The run in words: its task's state, reason and group.")
    task_state: str = Field(
        description="The task's: waiting (not looked at yet), unscheduled, pending, running, "
        "completed, failed, exception or gone (the queue no longer knows it)."
    )
    reason: str | None = Field(default=None, description="Why the task resolved as it did.")
    task_group_id: str | None
    group: TaskGroupOut | None = Field(
        default=None, description="The watched task group's counts; null: not (yet) listed."
    )
    resolved_at: datetime | None
    group_running: bool = Field(description="Completed; the tasks of its group still run.")


class FireOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project: str
    job: str
    slot: datetime
    kind: str
    state: str
    task_id: str | None
    revision: str | None
    error: str | None
    replica: str | None = Field(description="The replica that holds or held the claim.")
    claimed_at: datetime | None
    finished_at: datetime | None
    outcome: TaskOutcomeOut | None = Field(
        default=None,
        description="How its run went: created → running → completed, failed or exception, "
        "with its watched task group's counts; null: it made no task, or nobody follows it.",
    )


class FireDetail(FireOut):
    details: dict[str, Any] | None = Field(description="The rendered task, or hook payload.")


class FiredOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    job: str
    slot: datetime
    kind: str
    state: str = Field(description=f"{CLAIMED_ELSEWHERE}: another replica holds the claim.")
    task_id: str | None
    error: str | None
    details: dict[str, Any] | None = Field(description="The rendered task, or hook payload.")
    fire_id: int | None = Field(
        default=None, description="Its id in the history (/api/v1/fires/<id>); null: not found."
    )
    decided_before: bool = Field(
        default=False,
        description="Decided before, by an earlier tick of the slot or another replica: state, "
        "task_id and error are what the ledger records; nothing was done now.",
    )

    @field_validator("state", mode="before")
    @classmethod
    def _claimed_elsewhere(cls, state: object) -> object:
        return CLAIMED_ELSEWHERE if state is None else state


class ActionOut(BaseModel):
    action: str
    hook_group_id: str
    hook_id: str
    decision_task_id: str
    payload: dict[str, Any]
    task_id: str | None = Field(description="The action task; null in a dry run.")
    dry_run: bool


class HookFiredOut(BaseModel):
    hook_group_id: str
    hook_id: str
    task_id: str | None = Field(description="Null in a dry run, or if the hook made no task.")
    dry_run: bool


class ExpiryEventOut(BaseModel):
    kind: str
    message: str
    at_risk: int = Field(description="How many cached tasks are expiring or expired.")
    task_group_id: str | None = Field(description="The rebuild's task group, once started.")
    failed: bool = Field(description="The scan, or the rebuild it follows, failed.")


class RemediationOut(BaseModel):
    project: str
    events: list[ExpiryEventOut] = Field(description="Empty: nothing at risk, nothing running.")


class PauseOut(BaseModel):
    """A job, or a whole project (`job` null), held from firing."""

    model_config = ConfigDict(from_attributes=True)

    project: str
    job: str | None
    reason: str
    until: datetime | None = Field(description="When it lifts by itself; null: when resumed.")
    paused_by: str
    paused_at: datetime
    summary: str = Field(description="The pause in words, as history and messages say it.")


class ResumedOut(BaseModel):
    resumed: bool
    lifted: PauseOut | None = Field(description="The pause lifted; null: none was in force.")
    still_paused: list[PauseOut] = Field(
        description="The pauses that still hold it (a project's pause holds its jobs)."
    )


class ProjectOut(BaseModel):
    name: str
    repository: str
    branch: str
    paused: list[PauseOut]


class JobOut(BaseModel):
    name: str
    kind: str = Field(description="decision-task or trigger-action.")
    target: str = Field(description="The target-tasks-method, or the action's name.")
    schedule: str = Field(description="When it fires on this project, in words (UTC).")
    crontab: str | None = Field(description="The same as a crontab, when one can say it.")
    runs_on_project: bool = Field(description="False: run-on-projects leaves this project out.")
    problem: str | None = Field(description="Why the job has no schedule on this project.")
    next_fires: list[datetime]
    last_fire: FireOut | None
    paused: PauseOut | None = Field(description="The pause holding it (its own or the project's).")
    overlap: str = Field(
        default="allow",
        description="Its overlap policy: allow (fire while its previous fire runs), skip (not "
        "while it runs) or replace (cancel the previous fire's task group, then fire).",
    )


class ProjectJobsOut(BaseModel):
    project: str
    revision: str = Field(description="The branch head whose .cron.yml this is.")
    paused: PauseOut | None = Field(description="A pause of the whole project.")
    jobs: list[JobOut]
    problems: list[str] = Field(description="The .cron.yml errors that left jobs out.")


class AuditOut(BaseModel):
    """One act of a person or a script, as the audit log keeps it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str = Field(description="Who: an API token's name, or the user and host of a command.")
    action: str = Field(description=f"What: {', '.join(ActKind)}.")
    target: str = Field(
        description="On what: a project, `project/job`, a hook (`group/id`), a hooks folder "
        "or the ledger."
    )
    input: dict[str, Any] | None = Field(description="What was given, secrets masked.")
    ok: bool = Field(description="Whether the act did what was asked.")
    result: str = Field(description="Its outcome in words, or the error it met.")


class SlotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    slot: datetime
    revision: str | None = Field(description="Null: the repository could not be read.")
    error: str | None
    fires: list[FiredOut]
    skipped: list[FiredOut]
    paused: list[FiredOut] = Field(description="Due fires held by a pause (recorded as skipped).")
    overlapping: list[FiredOut] = Field(
        default_factory=list,
        description="Due fires their job's overlap policy held, an earlier fire of the job not "
        "resolved (recorded as skipped, the reason naming it).",
    )


# The most fires one backfill makes unless asked for more, and the most it may be asked for.
MAX_FIRES = 1000
MAX_FIRES_LIMIT = 100_000


class BackfillOut(BaseModel):
    """What a backfill did (dry run: would do), a fire per slot and job of its range."""

    project: str
    revision: str = Field(description="The branch head the fires are made from, as catch-up's.")
    jobs: list[str] = Field(description="The jobs backfilled.")
    start: datetime = Field(description="The range's first slot (from, rounded up to a slot).")
    until: datetime = Field(description="The range's end, not in it: until, or now if earlier.")
    clamped: bool = Field(description="True: until was later than now, so the range ends now.")
    dry_run: bool = Field(description="True: nothing was claimed, created or recorded.")
    counts: dict[str, int] = Field(description="How many of the fires are in each state.")
    fires: list[FiredOut] = Field(
        description="In slot order, details left out (see /api/v1/fires/<fire_id>): created, "
        "already-fired (the slot's task exists), failed, skipped (paused now), dry-run, or as "
        "the ledger has it."
    )
    notes: list[str] = Field(description="The clamped range, jobs whose schedule is broken.")


class CachedTaskOut(BaseModel):
    project: str
    where: str = Field(description="The index namespace or task group it was found in.")
    task_id: str
    kind: str | None = Field(description="toolchain, docker-image, fetch, ... when known.")
    expires: datetime | None = Field(
        description="When what expires first expires; null: the task is gone already."
    )
    days_left: float
    health: str
    because: str = Field(description="What expires first: the index entry, the task, ...")

    @classmethod
    def of(
        cls, project: str, task: CachedTask, now: datetime, threshold: timedelta
    ) -> CachedTaskOut:
        """`task` of `project` as it stands at `now`, at risk within `threshold`."""
        return cls(
            project=project,
            where=task.where,
            task_id=task.task_id,
            kind=task.kind,
            # A gone task's index entry may live on for months: no date to wait for.
            expires=None if task.gone else task.expires,
            days_left=round(task.days_left(now), 2),
            health=str(task.health(now, threshold)),
            because=task.because,
        )


class ExpiryReportOut(BaseModel):
    at_risk: list[CachedTaskOut] = Field(description="Soonest first, project by project.")
    scanned: int = Field(description="How many cached tasks were scanned.")


class DeliveryOut(BaseModel):
    destination: str = Field(description="The Slack channel, or the incoming webhook.")
    state: str = Field(description="sent, failed (given up), or pending (queued, retried).")
    error: str | None = Field(description="Why it was not sent (yet).")


class NotifyTestOut(BaseModel):
    slack: list[DeliveryOut] = Field(description="One per channel that takes test messages.")
    sentry_event_id: str | None = Field(description="Null: Sentry is not configured.")


class HookPlanOut(BaseModel):
    hook: str = Field(description="GROUP/ID.")
    hook_group_id: str
    hook_id: str
    change: str = Field(description="create, update, unchanged or undeclared.")
    file: str | None = Field(description="The file declaring it; null: not declared.")
    fields: list[dict[str, Any]] = Field(description="What changes: {path, old?, new?}.")


class HookAppliedOut(HookPlanOut):
    outcome: str = Field(description="created, updated, removed, unchanged, kept or failed.")
    error: str | None


class PrunedOut(BaseModel):
    """What pruning the ledger removed (or, in a dry run, would remove): the rows past their
    retention that nothing still needs."""

    model_config = ConfigDict(from_attributes=True)

    dry_run: bool = Field(description="True: counted only, nothing removed.")
    fires: int
    watches: int = Field(description="Finished watches of the fires removed.")
    slots: int = Field(description="Slot evaluations (each project keeps its latest).")
    incidents: int = Field(description="Closed incidents.")
    letters: int = Field(description="Notifications sent or given up on.")
    audit: int = Field(description="Acts of the audit log.")
    sessions: int = Field(default=0, description="Dashboard sessions that have expired.")
    fires_before: datetime = Field(
        description="Fires and slots before this, and incidents closed before it, are past "
        "retention."
    )
    letters_before: datetime = Field(description="Letters queued before this are past it.")
    audit_before: datetime = Field(description="Acts before this are past it.")


class LedgerUpgradedOut(BaseModel):
    from_revision: str | None = Field(description="Null: the ledger was new.")
    to_revision: str = Field(description="The newest schema this release knows.")
    upgraded: bool = Field(description="False: it was up to date already.")
