"""A job's `when` as one crontab expression, for monitors that take a schedule (Sentry Crons).

Pure: the expression fires at exactly the job's 15-minute UTC slots, or there is none.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable

from scheduler.cron.model import HOURS, Schedule
from scheduler.cron.schema import WEEKDAYS

DAYS = tuple(range(1, 32))

# Every date is one (day of the month, weekday) pair and every pair occurs on some date, so
# slots are the same as those of a crontab exactly when they agree on every pair.
_DATE_KINDS = tuple((day, weekday) for day in DAYS for weekday in WEEKDAYS)


@functools.lru_cache(maxsize=1024)  # pure, and asked once per fire with the same few schedules
def crontab(schedules: tuple[Schedule, ...]) -> str | None:
    """`M H DOM MON DOW` firing at exactly the slots of `schedules`, or None if no crontab can.

    A crontab fires at one product of minutes and hours on the days it selects, and selects
    days by day of month, by weekday, or by either of the two (cron ORs them where `when`
    ANDs them). So it exists when every firing day has the same times of day, those times are
    a product, and the firing days are some days of the month, some weekdays, or their union.
    """
    entries = [(schedule, frozenset(schedule.times_of_day())) for schedule in schedules]
    times_by_kind: dict[tuple[int, str], frozenset[tuple[int, int]]] = {}
    for day, weekday in _DATE_KINDS:
        times = frozenset().union(*(t for s, t in entries if _on(s, day, weekday)))
        if times:
            times_by_kind[(day, weekday)] = times
    if len(set(times_by_kind.values())) != 1:
        return None  # Never fires, or fires at different times on different days.
    times = next(iter(times_by_kind.values()))
    hours = {hour for hour, _ in times}
    minutes = {minute for _, minute in times}
    if len(times) != len(hours) * len(minutes):
        return None
    fields = _day_fields(set(times_by_kind))
    if fields is None:
        return None
    day_field, weekday_field = fields
    return " ".join(
        (
            # Never `*`: that is every minute, and slots are 15 minutes apart.
            _numbers(minutes),
            _field(hours, HOURS),
            day_field,
            "*",
            weekday_field,
        )
    )


def _on(schedule: Schedule, day: int, weekday: str) -> bool:
    return (schedule.day is None or schedule.day == day) and (
        schedule.weekday is None or schedule.weekday == weekday
    )


def _day_fields(firing: set[tuple[int, str]]) -> tuple[str, str] | None:
    """The DOM and DOW fields that select exactly the `firing` kinds of date, if any do."""
    days = {day for day in DAYS if all((day, weekday) in firing for weekday in WEEKDAYS)}
    weekdays = {weekday for weekday in WEEKDAYS if all((day, weekday) in firing for day in DAYS)}
    selected = {
        (day, weekday) for day, weekday in _DATE_KINDS if day in days or weekday in weekdays
    }
    if selected != firing:
        return None  # Such as the 13th when it is a Friday: cron cannot AND the two.
    if len(selected) == len(_DATE_KINDS):
        return "*", "*"
    # With both fields restricted cron fires on either; with one, `*` in the other.
    day_field = _field(days, DAYS) if days else "*"
    weekday_field = _numbers(_cron_weekday(weekday) for weekday in weekdays) if weekdays else "*"
    return day_field, weekday_field


def _cron_weekday(weekday: str) -> int:
    # WEEKDAYS starts on Monday, as date.weekday() does; cron counts from 0 = Sunday.
    return (WEEKDAYS.index(weekday) + 1) % 7


def _field(values: Collection[int], every: Collection[int]) -> str:
    return "*" if set(values) == set(every) else _numbers(values)


def _numbers(values: Iterable[int]) -> str:
    return ",".join(str(value) for value in sorted(values))
