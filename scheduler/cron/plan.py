"""Planning: which jobs of a `.cron.yml` fire on a project, at one slot or over a span of time.

Spans are enumerated day by day from each schedule, not slot by slot, and the fires of each
kind of day the schedules tell apart are worked out once, so a year is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice

from scheduler.common.diagnostics import Diagnostic, Severity
from scheduler.cron.model import CronFile, Job, Schedule, ScheduleError, fires_at
from scheduler.cron.timing import as_utc, first_slot_at_or_after, slot_of

# How far past its last find `next_fires` keeps looking. The longest gap between two fires of
# any schedule is 609 days (`day: 31` with a weekday), so after four years without a fire
# there is none to come.
LOOKAHEAD = timedelta(days=4 * 366)
DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class PlannedFire:
    slot: datetime
    job_name: str
    job: Job = field(compare=False, repr=False)


@dataclass(frozen=True)
class Plan:
    """Fires in slot order (then job name), and the errors of the jobs left out of them."""

    fires: tuple[PlannedFire, ...]
    problems: tuple[Diagnostic, ...] = ()


JobSchedules = list[tuple[Job, tuple[Schedule, ...]]]


def due_jobs(cron: CronFile, project: str, moment: datetime) -> Plan:
    """The jobs that fire on `project` in the slot `moment` falls in."""
    slot = slot_of(moment)
    schedules, problems = _schedules_for(cron, project)
    fires = [
        PlannedFire(slot, job.name, job)
        for job, job_schedules in schedules
        if fires_at(job_schedules, slot)
    ]
    return Plan(tuple(sorted(fires)), problems)


def fires_between(
    cron: CronFile, project: str, start: datetime, end: datetime, *, limit: int | None = None
) -> Plan:
    """Every fire on `project` with a slot in [start, end), or only the first `limit` of them:
    a caller that refuses more than n asks for n + 1, and a long span is not walked past them."""
    first, end = first_slot_at_or_after(start), as_utc(end)
    schedules, problems = _schedules_for(cron, project)
    fires: list[PlannedFire] = []
    for midnight, day_fires in _fires_by_day(schedules, first.date()):
        if midnight >= end or (limit is not None and len(fires) >= limit):
            break
        if first <= midnight and end - midnight >= DAY:
            fires.extend(day_fires)
        else:  # the span's first or last day
            fires.extend(fire for fire in day_fires if first <= fire.slot < end)
    return Plan(tuple(fires[:limit]), problems)


def next_fires(cron: CronFile, project: str, start: datetime, count: int) -> Plan:
    """The first `count` fires on `project` at or after `start` (fewer if the jobs stop firing)."""
    schedules, problems = _schedules_for(cron, project)
    return Plan(tuple(islice(_fires_from(schedules, start), count)), problems)


def _fires_from(schedules: JobSchedules, start: datetime) -> Iterator[PlannedFire]:
    """The fires at or after `start`, in order, worked out a day at a time as they are taken."""
    first = first_slot_at_or_after(start)
    last_found = first
    for midnight, day_fires in _fires_by_day(schedules, first.date()):
        if midnight - last_found >= LOOKAHEAD:
            return
        for fire in day_fires:
            if fire.slot >= first:
                last_found = fire.slot
                yield fire


def _schedules_for(cron: CronFile, project: str) -> tuple[JobSchedules, tuple[Diagnostic, ...]]:
    schedules: JobSchedules = []
    problems: list[Diagnostic] = []
    for job in cron.jobs:
        if not job.runs_on(project):
            continue
        try:
            schedules.append((job, job.schedules_for(project)))
        except ScheduleError as error:
            problems.append(
                Diagnostic(cron.path, error.position, Severity.ERROR, error.message, job.name)
            )
    return schedules, tuple(problems)


def _fires_by_day(
    schedules: JobSchedules, day: date
) -> Iterator[tuple[datetime, list[PlannedFire]]]:
    """Each day's midnight and fires in order, from `day` on, to the end of the calendar."""
    # A day's fires depend only on its day of the month and weekday, and only on those that
    # some entry names: each kind of day (one, when no entry names either) is worked out once.
    entries = [schedule for _, job_schedules in schedules for schedule in job_schedules]
    by_day = any(schedule.day is not None for schedule in entries)
    by_weekday = any(schedule.weekday is not None for schedule in entries)
    by_kind: dict[tuple[int, int], list[tuple[timedelta, str, int, Job]]] = {}
    while True:
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        kind = (day.day if by_day else 0, day.weekday() if by_weekday else 0)
        times = by_kind.get(kind)
        if times is None:
            times = by_kind[kind] = _day_times(day, schedules)
        yield midnight, [PlannedFire(midnight + time, name, job) for time, name, _, job in times]
        if day == date.max:
            return
        day += DAY


def _day_times(day: date, schedules: JobSchedules) -> list[tuple[timedelta, str, int, Job]]:
    """When after midnight each job fires on `day`, in slot then job-name order (the job's
    index breaks a tie, so jobs are never compared)."""
    return sorted(
        (timedelta(hours=hour, minutes=minute), job.name, index, job)
        for index, (job, job_schedules) in enumerate(schedules)
        for hour, minute in _times_on(day, job_schedules)
    )


def _times_on(day: date, schedules: tuple[Schedule, ...]) -> set[tuple[int, int]]:
    """The times of day a job fires on `day`; entries that coincide fire once."""
    return {
        time
        for schedule in schedules
        if schedule.matches_day(day)
        for time in schedule.times_of_day()
    }
