"""The dashboard's reads: every project's health with the next fires across projects and the
last day's fires (`overview`), and one project's jobs, fire grid, pauses, expiry watch and
notices (`project_detail`); each fire with how its task went.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import islice

from scheduler.config.model import CatchUp, Project
from scheduler.cron import CronFile, Job, PlannedFire, in_words, next_fires
from scheduler.cron.model import ScheduleError
from scheduler.cron.timing import first_slot_at_or_after
from scheduler.durations import format_duration
from scheduler.engine import Engine
from scheduler.errors import SchedulerError
from scheduler.ledger import (
    AsyncLedger,
    Fire,
    Incident,
    OperationsLedger,
    Pause,
    SlotRecord,
    Watch,
)
from scheduler.operations.followed import NOTICES, notice_out
from scheduler.operations.health import assess, expiry_watch
from scheduler.operations.models import PauseOut, ProjectJobsOut
from scheduler.operations.overview import jobs_overview
from scheduler.operations.page_models import (
    GridRowOut,
    IncidentOut,
    OverviewOut,
    ProjectDetailOut,
    ProjectHealthOut,
    RecentFireOut,
    UpcomingFireOut,
)
from scheduler.operations.runs import fire_out, outcome_of
from scheduler.reports.reporter import CHECK_IN_KEYS

RECENT = timedelta(hours=24)
# The newest of the last day's fires the overview lists (a busy deployment makes thousands):
# failures also show as each project's incidents, and a project's page has its whole history.
RECENT_SHOWN = 100
NEXT_FIRES = 20
GRID_SLOTS = 24
GRID_FIRES = 1000


async def overview(engine: Engine, ledger: AsyncLedger[OperationsLedger]) -> OverviewOut:
    """Every configured project's health, the next fires across them, the last day's fires.

    A project's `.cron.yml` is the one the engine last read (no I/O); a project not read since
    the service started is read now, and one whose repository cannot be read says why.
    """
    now = engine.clock()
    projects = engine.config.projects
    names = [project.name for project in projects]
    slots, pauses, incidents, recent = await ledger.run(
        lambda port: _overview_rows(port, names, now)
    )
    crons = await asyncio.gather(*(_cron_of(engine, p.name) for p in projects))
    upcoming: list[Iterator[tuple[datetime, str, str, Job]]] = []
    healths = []
    for project, (cron, problem) in zip(projects, crons, strict=True):
        revision = engine.last_read(project.name)
        health = _health(
            project,
            revision[0] if revision else None,
            slots.get(project.name),
            pauses,
            incidents,
            problem,
        )
        healths.append(assess(health, engine.checks, now))
        if cron is not None:
            upcoming.append(_fires_of(cron, project.name, now))
    soonest = islice(heapq.merge(*upcoming, key=lambda fire: fire[:3]), NEXT_FIRES)
    return OverviewOut(
        now=now,
        root_url=engine.config.root_url,
        # The projects that need a look first, then by name.
        projects=sorted(healths, key=lambda h: (not h.attention, h.name)),
        next_fires=_upcoming(soonest),
        recent_fires=recent[:RECENT_SHOWN],
        recent_more=len(recent) > RECENT_SHOWN,
    )


async def project_detail(
    engine: Engine, ledger: AsyncLedger[OperationsLedger], name: str
) -> ProjectDetailOut:
    """The project's jobs (its `.cron.yml` at the branch head), its fires as a grid of jobs by
    recent slots, and the pauses in force. Raises UnknownProjectError."""
    project = engine.config.require_project(name)
    now = engine.clock()
    jobs: ProjectJobsOut | None
    try:
        jobs, problem = await jobs_overview(engine, ledger, name), None
    except SchedulerError as error:  # the repository cannot be read: the history still can
        jobs, problem = None, error.describe()
    slots, pauses, incidents, fires = await ledger.run(
        lambda port: (
            port.latest_slots([name]),
            port.pauses(project=name, at=now),
            port.incidents(open_only=True),
            port.fires(project=name, limit=GRID_FIRES, details=False),
        )
    )
    revision = engine.last_read(name)
    columns = sorted({fire.slot for fire in fires}, reverse=True)[:GRID_SLOTS]
    shown = {fire.id for fire in fires if fire.slot >= columns[-1]} if columns else set()
    shown |= {job.last_fire.id for job in jobs.jobs if job.last_fire} if jobs else set()
    watches, rebuilds, letters = await ledger.run(
        lambda port: (
            port.watches_of(shown),
            port.remediations(project=name, limit=1) if project.expiry_watched else [],
            port.letters_about(project=name, except_keys=CHECK_IN_KEYS, limit=NOTICES),
        )
    )
    job_names = [job.name for job in jobs.jobs] if jobs else []
    job_names += sorted({fire.job for fire in fires} - set(job_names))
    return ProjectDetailOut(
        now=now,
        root_url=engine.config.root_url,
        health=assess(
            _health(
                project,
                revision[0] if revision else None,
                slots.get(name),
                pauses,
                incidents,
                problem,
            ),
            engine.checks,
            now,
        ),
        jobs=jobs,
        catch_up={job: catch_up_in_words(project.catch_up_for(job)) for job in job_names},
        overlap={job: OVERLAP_IN_WORDS[project.overlap_for(job)] for job in job_names},
        slots=columns,
        grid=_grid(job_names, columns, fires, watches),
        pauses=[PauseOut.model_validate(pause) for pause in pauses],
        outcomes={
            fire_id: outcome
            for fire_id, watch in watches.items()
            if (outcome := outcome_of(watch)) is not None
        },
        expiry=expiry_watch(
            project, engine.checks.scans.get(name), rebuilds[0] if rebuilds else None, now
        )
        if project.expiry_watched
        else None,
        notices=[notice_out(letter) for letter in letters],
    )


# An overlap policy as the configuration would say it.
OVERLAP_IN_WORDS = {
    "allow": "allow: fires while its previous fire runs",
    "skip": "skip: not while its previous fire (or watched group) runs",
    "replace": "replace: cancels the previous fire's task group, then fires",
}


def catch_up_in_words(catch_up: CatchUp) -> str:
    """A catch-up policy as the configuration would say it."""
    lateness = format_duration(catch_up.max_lateness)
    if catch_up.policy == "none":
        return "none: missed slots are skipped"
    if catch_up.policy == "all":
        return f"all: every missed slot within {lateness}, at most {catch_up.max_slots}"
    return f"latest: the last missed slot, within {lateness}"


def _overview_rows(
    port: OperationsLedger, names: Sequence[str], now: datetime
) -> tuple[dict[str, SlotRecord], list[Pause], list[Incident], list[RecentFireOut]]:
    # The recent fires' rendered tasks stay in the ledger: only their task groups are shown.
    recent = port.fires(since=now - RECENT, limit=RECENT_SHOWN + 1, details=False)
    ids = [fire.id for fire in recent[:RECENT_SHOWN]]
    groups, watches = port.task_groups(ids), port.watches_of(ids)
    return (
        port.latest_slots(names),
        port.pauses(at=now),
        port.incidents(open_only=True),
        # One more than shown read: whether there were more.
        [_recent(fire, watches, groups.get(fire.id)) for fire in recent],
    )


async def _cron_of(engine: Engine, name: str) -> tuple[CronFile | None, str | None]:
    """The project's `.cron.yml` as last read, or read now; or why it cannot be."""
    known = engine.last_read(name)
    if known is not None:
        return known[1], None
    try:
        _, cron = await engine.head(name)
    except SchedulerError as error:
        return None, error.describe()
    return cron, None


def _fires_of(
    cron: CronFile, project: str, now: datetime
) -> Iterator[tuple[datetime, str, str, Job]]:
    """The project's next fires from `now` on, in the order the overview lists them across
    projects."""
    for fire in NEXT_FIRES_KNOWN.next_fires(cron, project, now):
        yield fire.slot, project, fire.job_name, fire.job


class NextFiresKnown:
    """Each project's next `NEXT_FIRES` fires, kept with what they were worked out from: the
    `.cron.yml` (the very object the engine read: a new revision is a new one) and the slot they
    start at. Either changing works them out anew; within a slot every view reads them back."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[CronFile, datetime, tuple[PlannedFire, ...]]] = {}

    def next_fires(self, cron: CronFile, project: str, now: datetime) -> tuple[PlannedFire, ...]:
        start = first_slot_at_or_after(now)
        known = self._known.get(project)
        if known is not None and known[0] is cron and known[1] == start:
            return known[2]
        fires = next_fires(cron, project, start, NEXT_FIRES).fires
        self._known[project] = (cron, start, fires)
        return fires


NEXT_FIRES_KNOWN = NextFiresKnown()


def _upcoming(fires: Iterable[tuple[datetime, str, str, Job]]) -> list[UpcomingFireOut]:
    found = []
    for slot, project, name, job in fires:
        try:
            schedule = in_words(job.schedules_for(project))
        except ScheduleError as error:  # next_fires leaves such jobs out: kept for safety
            schedule = error.message
        found.append(UpcomingFireOut(slot=slot, project=project, job=name, schedule=schedule))
    return found


def _health(
    project: Project,
    revision: str | None,
    slot: SlotRecord | None,
    pauses: Sequence[Pause],
    incidents: Sequence[Incident],
    problem: str | None,
) -> ProjectHealthOut:
    return ProjectHealthOut(
        name=project.name,
        repository=project.repository,
        branch=project.branch,
        revision=revision or (slot.revision if slot else None),
        last_slot=slot.slot if slot else None,
        last_outcome=str(slot.outcome) if slot else None,
        last_error=slot.error if slot else None,
        evaluated_at=slot.evaluated_at if slot else None,
        paused=[PauseOut.model_validate(p) for p in pauses if p.project == project.name],
        incidents=[
            IncidentOut.model_validate(incident)
            for incident in incidents
            if _concerns(incident.subject, project.name)
        ],
        problem=problem,
    )


def _concerns(subject: str, project: str) -> bool:
    """Whether an incident's subject (`job:P/J`, `project:P:aspect`, `expiry:P`) is about
    `project`."""
    return subject.startswith((f"job:{project}/", f"project:{project}:")) or (
        subject == f"expiry:{project}"
    )


def _recent(fire: Fire, watches: Mapping[int, Watch], group: str | None = None) -> RecentFireOut:
    """The fire as the pages list it, with its run's outcome and its task group (the watch's,
    else `group`, read from its rendered task)."""
    shown = fire_out(fire, watches.get(fire.id))
    outcome = shown["outcome"]
    group = (outcome.task_group_id if outcome else None) or group
    return RecentFireOut.model_validate({**shown, "task_group_id": group})


def _grid(
    jobs: Sequence[str],
    slots: Sequence[datetime],
    fires: Sequence[Fire],
    watches: Mapping[int, Watch],
) -> list[GridRowOut]:
    # Several fires of one job in one slot (a manual fire beside the scheduled one): the
    # newest shows, as the history lists it first.
    cells: dict[tuple[str, datetime], Fire] = {}
    for fire in fires:
        cells.setdefault((fire.job, fire.slot), fire)
    return [
        GridRowOut(
            job=job,
            cells=[
                _recent(cells[job, slot], watches) if (job, slot) in cells else None
                for slot in slots
            ],
        )
        for job in jobs
    ]
