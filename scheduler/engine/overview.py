"""The jobs of a project as an operator sees them: schedule in words and as a crontab, the next
fires, the last fire and the pause holding each (a read model, over `.cron.yml` and the ledger).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from scheduler.config.model import Project
from scheduler.cron import CronFile, Job, Schedule, in_words, next_fires
from scheduler.cron.crontab import crontab
from scheduler.cron.model import ScheduleError
from scheduler.git.source import Snapshot
from scheduler.ledger import Fire, Ledger, Pause


@dataclass(frozen=True)
class JobOverview:
    """A job as an operator sees it: when it fires here, what it did last, what holds it."""

    job: Job
    runs_on_project: bool
    schedules: tuple[Schedule, ...] | None  # None: `when` has no schedule for this project
    problem: str | None
    next_fires: tuple[datetime, ...]
    last_fire: Fire | None
    pause: Pause | None

    @property
    def schedule(self) -> str:
        """When it fires on the project, in words."""
        if not self.runs_on_project:
            return "not on this project (run-on-projects)"
        if self.schedules is None:
            return "never: no schedule for this project"
        return in_words(self.schedules)

    @property
    def crontab(self) -> str | None:
        """The same as a crontab, when one can say it."""
        if not self.runs_on_project or not self.schedules:
            return None
        return crontab(self.schedules)


@dataclass(frozen=True)
class ProjectOverview:
    project: Project
    revision: str
    jobs: tuple[JobOverview, ...]
    problems: tuple[str, ...]  # the `.cron.yml` errors that left jobs out
    pause: Pause | None  # a pause of the whole project


async def project_overview(
    ledger: Ledger,
    project: Project,
    snapshot: Snapshot,
    cron: CronFile,
    *,
    now: datetime,
    upcoming: int,
) -> ProjectOverview:
    """The project's jobs as `cron` (its `.cron.yml` at `snapshot`) has them at `now`:
    schedule, the next `upcoming` fires, the last fire, and the pause holding each."""
    last_fires, pauses = await asyncio.to_thread(_history_of, ledger, project.name, cron, now)
    project_pause = next((p for p in pauses if p.job is None), None)
    jobs = []
    for job in cron.jobs:
        try:
            schedules: tuple[Schedule, ...] | None = job.schedules_for(project.name)
            problem = None
        except ScheduleError as error:
            schedules, problem = None, error.message
        runs_here = job.runs_on(project.name)
        single = CronFile(cron.path, (job,), ())
        planned = (
            next_fires(single, project.name, now, upcoming).fires
            if runs_here and schedules is not None
            else ()
        )
        jobs.append(
            JobOverview(
                job=job,
                runs_on_project=runs_here,
                schedules=schedules,
                problem=problem,
                next_fires=tuple(fire.slot for fire in planned),
                last_fire=last_fires.get(job.name),
                pause=next((p for p in pauses if p.covers(job.name)), None),
            )
        )
    problems = tuple(str(d) for d in cron.errors)
    return ProjectOverview(project, snapshot.revision, tuple(jobs), problems, project_pause)


def _history_of(
    ledger: Ledger, project: str, cron: CronFile, now: datetime
) -> tuple[dict[str, Fire], list[Pause]]:
    last = {}
    for job in cron.jobs:
        found = ledger.fires(project=project, job=job.name, limit=1)
        if found:
            last[job.name] = found[0]
    return last, ledger.pauses(project=project, at=now)
