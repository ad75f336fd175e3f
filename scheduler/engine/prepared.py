"""Slots prepared ahead: before a boundary, each project's head read, its due fires planned and
their decision tasks rendered, kept in memory for the boundary's fires to use instead of rendering.

Only a cache of renders. Nothing is claimed, recorded or created ahead: `Engine.tick` still
refuses a slot that has not begun, and at the boundary reads the head, the pauses and the ledger
again and decides as it always did. A claim taken ahead would be recorded before the boundary,
would have to be given back when a pause came meanwhile, and a replica that died holding it
would keep every other replica from the fire until its lease ran out; a render kept in memory
costs none of that, and a replica that prepared and died leaves nothing behind. A render is a
pure function of its inputs (the template, revision, project, job, slot, and `now`, which is the
slot itself for a fire made within `render.SLOT_TIME_WINDOW` of it): one made ahead is used only
where every input is equal, so it is byte-identical to the one the boundary would make.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from scheduler.config.model import Config, Project
from scheduler.cron import CronFile, DecisionTask, Job, PlannedFire
from scheduler.cron.plan import due_jobs
from scheduler.engine.decision_task import TASKCLUSTER_YML, render_arguments, render_in
from scheduler.engine.fires import FireRequest
from scheduler.git.source import Snapshot
from scheduler.ledger import FireKind
from scheduler.outcomes import RepositoryUnreachableError
from scheduler.render import RenderedTask, RenderError

log = structlog.get_logger("tc_scheduler.engine")

_Key = tuple[str, str, datetime, str]  # project, job, slot, revision


@dataclass(frozen=True)
class _Prepared:
    """A render made ahead, with every input it was made from besides its key."""

    root_url: str
    project: Project
    snapshot: Snapshot
    job: Job
    now: datetime
    rendered: RenderedTask


class PreparedRenders:
    """Decision tasks rendered ahead, by (project, job, slot, revision)."""

    def __init__(self) -> None:
        self._renders: dict[_Key, _Prepared] = {}

    def __len__(self) -> int:
        return len(self._renders)

    def keep(
        self,
        root_url: str,
        project: Project,
        snapshot: Snapshot,
        job: Job,
        slot: datetime,
        rendered: RenderedTask,
    ) -> None:
        """Keep `rendered`, the task of `job`'s fire at `slot` rendered with `now` the slot."""
        key = (project.name, job.name, slot, snapshot.revision)
        self._renders[key] = _Prepared(root_url, project, snapshot, job, slot, rendered)

    def rendered_for(
        self, request: FireRequest, root_url: str, now: datetime
    ) -> RenderedTask | None:
        """The task rendered ahead for `request`, if one was made from the very inputs it would
        be rendered from at `now`; None otherwise (render it). Manual fires are never kept:
        their task ids are their own."""
        if request.kind is FireKind.MANUAL or request.cron_input:
            return None
        key = (request.project.name, request.job.name, request.slot, request.snapshot.revision)
        found = self._renders.get(key)
        if (
            found is None
            or found.now != now
            or found.root_url != root_url
            or found.job != request.job
            or found.project != request.project
            or found.snapshot != request.snapshot
        ):
            return None
        return found.rendered

    def forget_before(self, slot: datetime) -> None:
        """Drop what was prepared for slots before `slot`: they are past."""
        self._renders = {key: kept for key, kept in self._renders.items() if key[2] >= slot}

    def kept(self, project: str, job: str, slot: datetime, revision: str) -> RenderedTask | None:
        """What was prepared for `job` of `project` at `slot` and `revision`, if anything."""
        found = self._renders.get((project, job, slot, revision))
        return None if found is None else found.rendered


class PrepareSetting(Protocol):
    """What a slot is prepared with (an `Engine`)."""

    @property
    def config(self) -> Config: ...

    @property
    def render_pool(self) -> Executor | None: ...

    @property
    def prepared(self) -> PreparedRenders: ...

    async def head(self, project_name: str) -> tuple[Snapshot, CronFile]: ...


@dataclass(frozen=True)
class Preparation:
    """What preparing a slot did: the projects whose heads were read, the tasks rendered."""

    slot: datetime
    projects: int
    rendered: int
    unreachable: tuple[str, ...]
    seconds: float


async def prepare_slot(setting: PrepareSetting, slot: datetime) -> Preparation:
    """Read every project's head, plan `slot` there and render each due decision task, kept in
    `setting.prepared`; what was kept for earlier slots is dropped. Never raises for a project:
    one whose head cannot be read, or whose template does not render, is rendered (and its
    failure recorded) at the boundary as it would be without preparing."""
    started = time.perf_counter()
    setting.prepared.forget_before(slot)
    projects = setting.config.projects
    counts = await asyncio.gather(*(_prepare(setting, project, slot) for project in projects))
    return Preparation(
        slot,
        sum(1 for count in counts if count is not None),
        sum(count or 0 for count in counts),
        tuple(
            project.name for project, count in zip(projects, counts, strict=True) if count is None
        ),
        time.perf_counter() - started,
    )


async def _prepare(setting: PrepareSetting, project: Project, slot: datetime) -> int | None:
    """The number of tasks rendered ahead for `project` (None: its head could not be read)."""
    try:
        snapshot, cron = await setting.head(project.name)
    except RepositoryUnreachableError as error:
        log.info("slot not prepared", project=project.name, error=str(error))
        return None
    template = snapshot.files.get(TASKCLUSTER_YML)
    jobs = _decision_jobs(due_jobs(cron, project.name, slot).fires)
    if template is None or not jobs:
        return 0
    root_url, rendered = setting.config.root_url, 0
    for job in jobs:
        arguments = render_arguments(root_url, project, snapshot, job, slot, now=slot)
        try:
            task = await render_in(setting.render_pool, template, **arguments)
        except RenderError:
            continue  # rendered again at the boundary, where its failure is recorded
        setting.prepared.keep(root_url, project, snapshot, job, slot, task)
        rendered += 1
        if setting.render_pool is None:
            await asyncio.sleep(0)  # renders on the loop: let the service answer meanwhile
    return rendered


def _decision_jobs(fires: Sequence[PlannedFire]) -> list[Job]:
    return [fire.job for fire in fires if isinstance(fire.job.kind, DecisionTask)]
