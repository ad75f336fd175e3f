"""The jobs overview: a project's `.cron.yml` at its branch head as an operator reads it, each
job's schedule, next fires, last fire (with how its run went), the pause holding it and its
overlap policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from scheduler.cron import CronFile, Job, Schedule, in_words, next_fires
from scheduler.cron.crontab import crontab
from scheduler.cron.model import ScheduleError
from scheduler.engine import Engine
from scheduler.ledger import AsyncLedger, Fire, OperationsLedger, Pause, Watch
from scheduler.operations.models import FireOut, JobOut, PauseOut, ProjectJobsOut
from scheduler.operations.runs import fire_out


async def jobs_overview(
    engine: Engine,
    ledger: AsyncLedger[OperationsLedger],
    project_name: str,
    *,
    upcoming: int = 3,
) -> ProjectJobsOut:
    """The project's jobs as its `.cron.yml` has them now: schedule, the next `upcoming` fires,
    the last fire, and the pause holding each. Raises UnknownProjectError or
    RepositoryUnreachableError."""
    project = engine.config.require_project(project_name)
    snapshot, cron = await engine.head(project.name)
    now = engine.clock()
    last_fires, watches, pauses = await ledger.run(
        lambda port: _history_of(port, project.name, cron, now)
    )
    project_pause = next((p for p in pauses if p.job is None), None)
    jobs = [
        _job_out(
            job,
            cron,
            project.name,
            now,
            upcoming,
            last_fires.get(job.name),
            watches,
            next((p for p in pauses if p.covers(job.name)), None),
            project.overlap_for(job.name),
        )
        for job in cron.jobs
    ]
    return ProjectJobsOut(
        project=project.name,
        revision=snapshot.revision,
        paused=_pause_out(project_pause),
        jobs=jobs,
        problems=[str(d) for d in cron.errors],
    )


def _job_out(
    job: Job,
    cron: CronFile,
    project: str,
    now: datetime,
    upcoming: int,
    last_fire: Fire | None,
    watches: Mapping[int, Watch],
    pause: Pause | None,
    overlap: str,
) -> JobOut:
    try:
        schedules: tuple[Schedule, ...] | None = job.schedules_for(project)
        problem = None
    except ScheduleError as error:
        schedules, problem = None, error.message
    runs_here = job.runs_on(project)
    planned = (
        next_fires(CronFile(cron.path, (job,), ()), project, now, upcoming).fires
        if runs_here and schedules is not None
        else ()
    )
    if not runs_here:
        schedule = "not on this project (run-on-projects)"
    elif schedules is None:
        schedule = "never: no schedule for this project"
    else:
        schedule = in_words(schedules)
    return JobOut(
        name=job.name,
        kind=job.kind.type,
        target=job.kind.target,
        schedule=schedule,
        crontab=crontab(schedules) if runs_here and schedules else None,
        runs_on_project=runs_here,
        problem=problem,
        next_fires=[fire.slot for fire in planned],
        last_fire=None
        if last_fire is None
        else FireOut.model_validate(fire_out(last_fire, watches.get(last_fire.id))),
        paused=_pause_out(pause),
        overlap=overlap,
    )


def _history_of(
    ledger: OperationsLedger, project: str, cron: CronFile, now: datetime
) -> tuple[dict[str, Fire], dict[int, Watch], list[Pause]]:
    """Each job's last fire, the watches of those (how their runs went), the pauses."""
    last = ledger.latest_fires(project, [job.name for job in cron.jobs])
    watches = ledger.watches_of([fire.id for fire in last.values()])
    return last, watches, ledger.pauses(project=project, at=now)


def _pause_out(pause: Pause | None) -> PauseOut | None:
    return None if pause is None else PauseOut.model_validate(pause)
