"""What the dashboard's pages read: each project's health, the next and recent fires, a
project's grid and expiry watch, a fire's page, the hooks against the deployment.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from scheduler.operations.models import (
    CachedTaskOut,
    FireDetail,
    FireOut,
    PauseOut,
    ProjectJobsOut,
    TaskOutcomeOut,
)


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


class RecentFireOut(FireOut):
    task_group_id: str | None = Field(
        default=None, description="The task group of the task sent, if known."
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
    recent_more: bool = Field(
        default=False, description="True: the last day had more fires than are listed."
    )


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
    overlap: dict[str, str] = Field(
        default_factory=dict, description="Each job's overlap policy, in words."
    )
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
