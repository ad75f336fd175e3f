"""One fire as a job type sees it: what to fire (`FireRequest`), what it is made with
(`FireMeans`) and how it ended (`Dispatched`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from scheduler.clock import Clock
from scheduler.config.model import Project
from scheduler.cron import Job
from scheduler.cron.overlap import RunningFire
from scheduler.git.source import Snapshot
from scheduler.ledger import AsyncLedger, Claim, EngineLedger, FireKind, FireState
from scheduler.render import RenderedTask
from scheduler.taskcluster import Clients


@dataclass(frozen=True)
class FireRequest:
    """One fire being made: what it fires, for which slot, and with what input."""

    project: Project
    snapshot: Snapshot
    job: Job
    slot: datetime
    kind: FireKind
    cron_input: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # when a manual fire was asked for
    dry_run: bool = False  # this fire only; the configuration can make every fire one
    # The fires whose task groups are cancelled before this one is made (overlap: replace).
    replaces: tuple[RunningFire, ...] = ()


class Prepared(Protocol):
    """Tasks rendered before their slot began (`prepared.PreparedRenders`)."""

    def rendered_for(
        self, request: FireRequest, root_url: str, now: datetime
    ) -> RenderedTask | None: ...


@dataclass(frozen=True)
class FireMeans:
    """What a job type makes a fire with."""

    clients: Clients  # limited to the scopes of the fire's project
    ledger: AsyncLedger[EngineLedger]
    clock: Clock
    root_url: str
    dry_run: bool  # render or prepare, record, send nothing
    render_pool: Executor | None = None  # worker processes for JSON-e, if any
    prepared: Prepared | None = None  # tasks rendered ahead, used where their inputs are equal


class Dispatched(NamedTuple):
    """How a fire ended: its state, the task it made (if any; failed, the task it may have
    made, whether that exists not being known), what was sent, what failed."""

    state: FireState
    task_id: str | None
    details: dict[str, Any] | None
    error: str | None
    project_broken: bool = False  # the failure is the project's (its template), not the job's
    transient: bool = False  # the failure may pass: a scheduled fire is tried again
    not_before: datetime | None = None  # not tried again before this


# A job type: makes the fire a claim holds; raises FireError when it fails.
JobType = Callable[[FireRequest, Claim, FireMeans], Awaitable[Dispatched]]
