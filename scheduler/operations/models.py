"""What every operation answers, as the API's JSON and the command line's `--json` both show it:
one set of pydantic models, one set of (snake_case) field names, documented in the OpenAPI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from scheduler.ledger import FireState
from scheduler.outcomes import CLAIMED_ELSEWHERE


class FireQuery(BaseModel):
    """Which fires to read: those matching every filter given, newest slot first, a page
    (`offset`, `limit`) at a time. The API takes it as query parameters."""

    model_config = ConfigDict(frozen=True)

    project: str | None = None
    job: str | None = None
    state: FireState | None = None
    since: datetime | None = Field(default=None, description="Slots at or after this.")
    until: datetime | None = Field(default=None, description="Slots before this.")
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


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
    action: str = Field(
        description="What: fire, action, hook-fire, hooks-apply, pause, resume, "
        "expiry-remediate, ledger-prune or ledger-upgrade."
    )
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


class CachedTaskOut(BaseModel):
    project: str
    where: str = Field(description="The index namespace or task group it was found in.")
    task_id: str
    kind: str | None = Field(description="toolchain, docker-image, fetch, ... when known.")
    expires: datetime = Field(description="When what expires first expires.")
    days_left: float
    health: str
    because: str = Field(description="What expires first: the index entry, the task, ...")


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


class HookDriftOut(BaseModel):
    """One field a deployed hook has otherwise than its file, each side as one line of JSON
    (`(absent)`: that side has no such field), secrets masked."""

    path: str
    declared: str
    deployed: str


class HookLastFireOut(BaseModel):
    task_id: str | None
    fired_at: datetime | None
    fired_by: str
    result: str = Field(description="success or error, as the Hooks service says.")
    error: str | None
    task_state: str | None


class HookOut(BaseModel):
    """One hook of the folder, or of a group it manages, and how it stands in the deployment."""

    hook: str = Field(description="GROUP/ID.")
    hook_group_id: str
    hook_id: str
    state: str = Field(
        description="in-sync, drift, missing (declared, not deployed), undeclared (deployed in "
        "a managed group, no file) or unknown (the deployment could not be read)."
    )
    file: str | None = Field(description="The file declaring it; null: not declared.")
    name: str | None
    description: str | None
    schedule: str | None = Field(description="When the Hooks service fires it, in words.")
    trigger_schema: str = Field(description="The payload its triggerSchema asks for, in short.")
    trigger_schema_json: str = Field(description="The triggerSchema, as indented JSON.")
    example_payload: str = Field(description="A payload to start from, as indented JSON.")
    drift: list[HookDriftOut]
    last_fires: list[HookLastFireOut]
    last_fires_problem: str | None = Field(description="Why its last fires are not shown.")
    deployed: bool


class HooksOverviewOut(BaseModel):
    """The hooks page: the folder's hooks against the deployment's, and what stands in the way
    of reading either (each bad file with its line; a deployment that does not answer)."""

    now: datetime
    root_url: str
    folder: str | None = Field(description="The hooks folder (hooks-dir); null: none set.")
    hooks: list[HookOut]
    folder_problems: list[str]
    deployment_problem: str | None


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


class IncidentOut(BaseModel):
    """A run of failures of one thing (a job, a project's repository, its expiry watch)."""

    model_config = ConfigDict(from_attributes=True)

    subject: str = Field(description="job:PROJECT/JOB, project:PROJECT:ASPECT or expiry:PROJECT.")
    opened_at: datetime
    failures: int


class FindingOut(BaseModel):
    job: str | None = Field(description="Null: the project's, not one job's.")
    severity: str = Field(description="error (Taskcluster would refuse it) or warning.")
    message: str


class PreflightOut(BaseModel):
    checked_at: datetime
    revision: str | None = Field(description="Null: the repository could not be read.")
    findings: list[FindingOut]


class ProjectHealthOut(BaseModel):
    """A project as the dashboard's overview shows it: where its branch is, how its last
    slot went, what holds it and what is failing."""

    name: str
    repository: str
    branch: str
    revision: str | None = Field(description="The branch head last read; null: never read.")
    last_slot: datetime | None = Field(description="The latest slot evaluated.")
    last_outcome: str | None = Field(description="evaluated, failed or skipped.")
    last_error: str | None
    evaluated_at: datetime | None = Field(description="When that slot was evaluated.")
    paused: list[PauseOut]
    incidents: list[IncidentOut] = Field(description="Open incidents, newest first.")
    problem: str | None = Field(description="Why its .cron.yml could not be read now.")
    stale: str | None = Field(
        default=None, description="Why its ticks look stalled: not evaluated for two ticks."
    )
    preflight: PreflightOut | None = Field(
        default=None, description="Its latest preflight on this replica; null: not run yet."
    )
    attention: list[str] = Field(
        default_factory=list, description="What needs a look, in words; empty: healthy."
    )


class UpcomingFireOut(BaseModel):
    slot: datetime
    project: str
    job: str
    schedule: str = Field(description="When the job fires, in words (UTC).")


class TaskOutcomeOut(BaseModel):
    """How the task a fire made went, as the watcher last saw it."""

    state: str = Field(
        description="waiting (not looked at yet), unscheduled, pending, running, completed, "
        "failed, exception or gone (the queue no longer knows it)."
    )
    label: str = Field(description="The state in words, with the reason it resolved.")
    task_group_id: str | None
    resolved_at: datetime | None
    group_running: bool = Field(description="Completed; the tasks of its group still run.")


class RecentFireOut(FireOut):
    task_group_id: str | None = Field(
        default=None, description="The task group of the task sent, if known."
    )
    outcome: TaskOutcomeOut | None = Field(
        default=None, description="How its task went; null: it made no task, or nobody follows it."
    )


class RebuildOut(BaseModel):
    """A rebuild of expiring cached tasks, as the ledger records it."""

    model_config = ConfigDict(from_attributes=True)

    state: str = Field(description="running, succeeded, failed or dry-run.")
    action: str
    started_at: datetime
    finished_at: datetime | None
    task_id: str | None = Field(description="The action task.")
    task_group_id: str | None = Field(description="The group the rebuilt tasks are made in.")
    error: str | None
    expiring: int = Field(description="How many cached tasks it was started for.")


class ExpiryWatchOut(BaseModel):
    """A project's expiry watch: its latest scan on this replica and its latest rebuild."""

    scanned_at: datetime | None = Field(description="Null: not scanned since the start.")
    failure: str | None = Field(description="Why the latest scan failed, if it did.")
    seen_at: datetime | None = Field(description="When the at-risk tasks shown were found.")
    messages: list[str] = Field(description="What the latest scan said.")
    at_risk: list[CachedTaskOut] = Field(description="Fewest days left first.")
    rebuild: RebuildOut | None = Field(description="The latest rebuild, running or not.")


class NoticeOut(BaseModel):
    """A notice queued for a destination (Slack, Sentry), and whether it went out."""

    kind: str
    title: str
    destination: str
    state: str = Field(description="pending, sent or failed (given up).")
    queued_at: datetime
    sent_at: datetime | None
    error: str | None = Field(description="Why it was not delivered (yet).")
    fire_id: int | None = Field(description="The fire it is about, if one.")


class OverviewOut(BaseModel):
    """Every project's health, the next fires across them, and the fires of the last day."""

    now: datetime
    root_url: str = Field(description="The Taskcluster deployment tasks are linked to.")
    projects: list[ProjectHealthOut]
    next_fires: list[UpcomingFireOut] = Field(description="Soonest first.")
    recent_fires: list[RecentFireOut] = Field(description="Newest slot first.")


class GridRowOut(BaseModel):
    job: str
    cells: list[RecentFireOut | None] = Field(description="The job's fire at each slot, or null.")


class ProjectDetailOut(BaseModel):
    """A project's page: its jobs, its fire history as a grid (jobs by slots), its pauses."""

    now: datetime
    root_url: str
    health: ProjectHealthOut
    jobs: ProjectJobsOut | None = Field(description="Null: its .cron.yml could not be read.")
    catch_up: dict[str, str] = Field(description="Each job's catch-up policy, in words.")
    slots: list[datetime] = Field(description="The grid's columns, newest first.")
    grid: list[GridRowOut]
    pauses: list[PauseOut]
    outcomes: dict[int, TaskOutcomeOut] = Field(
        default_factory=dict, description="How the task of each job's last fire went, by fire."
    )
    expiry: ExpiryWatchOut | None = Field(
        default=None, description="Null: the project's expiry is not watched."
    )
    notices: list[NoticeOut] = Field(
        default_factory=list, description="The latest notices about it, newest first."
    )


class FirePageOut(BaseModel):
    """A fire's page: its record, how its task went, its retries and the notices about it."""

    fire: FireDetail
    task_group_id: str | None
    outcome: TaskOutcomeOut | None
    attempt: int = Field(description="How many times it was claimed (a take-over adds one).")
    lease_until: datetime | None = Field(description="Set while open: held, or retried from.")
    sent_at: datetime | None = Field(description="When its request was last sent.")
    notices: list[NoticeOut] = Field(description="Newest first.")
