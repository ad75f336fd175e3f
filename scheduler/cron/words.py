"""A job's `when` in plain English, for operators reading a dashboard or the API.

Pure: the words depend only on the slots the schedules fire at, not on how the entries are written.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from scheduler.common.wording import plural
from scheduler.cron.model import HOURS, Schedule
from scheduler.cron.schema import MINUTES, WEEKDAYS

DAYS = tuple(range(1, 32))
LISTED = 8  # Listed as HH:MM up to this many times of day; summarised beyond it.

Times = frozenset[tuple[int, int]]
K = TypeVar("K")
V = TypeVar("V", bound=Hashable)


@functools.lru_cache(maxsize=1024)  # pure, and asked for every job on every dashboard refresh
def in_words(schedules: tuple[Schedule, ...]) -> str:
    """The UTC times at which `schedules` fire, in English: "daily at 10:00 and 22:00 UTC".

    Each kind of date (a day of the month that is a given weekday) fires at some times of day;
    times common to every date are said as daily, those common to a weekday or to a day of the
    month on their own, and what remains as "on day 13 of the month if a Friday". Weekdays and
    days with the same times share one clause; clauses are joined with "; ", daily first, then
    weekdays, days of the month and both. Entries that coincide or cover one another therefore
    add no words, and the order of entries does not matter. "never" when nothing fires.
    """
    entries = [(schedule, frozenset(schedule.times_of_day())) for schedule in set(schedules)]
    # Every (day of month, weekday) pair occurs on some date, so these are all the dates there are.
    kinds: dict[tuple[int, str], Times] = {
        (day, weekday): frozenset().union(*(t for s, t in entries if _on(s, day, weekday)))
        for day in DAYS
        for weekday in WEEKDAYS
    }
    daily = _common(kinds.values())
    by_weekday = {w: _common(kinds[d, w] for d in DAYS) - daily for w in WEEKDAYS}
    by_day = {d: _common(kinds[d, w] for w in WEEKDAYS) - daily for d in DAYS}
    clauses: list[tuple[tuple[int, ...], str, Times]] = []
    if daily:
        clauses.append(((0,), "daily", daily))
    for weekdays, times in _grouped(by_weekday):
        plural = _listed([f"{weekday}s" for weekday in weekdays])
        clauses.append(((1, WEEKDAYS.index(weekdays[0])), plural, times))
    for days, times in _grouped(by_day):
        clauses.append(((2, days[0]), f"on {_numbers('day', days)} of the month", times))
    # Both day and weekday: grouped into products of days and weekdays with the same times.
    products: dict[tuple[tuple[int, ...], Times], list[str]] = {}
    for weekday in WEEKDAYS:
        left = {d: kinds[d, weekday] - daily - by_weekday[weekday] - by_day[d] for d in DAYS}
        for days, times in _grouped(left):
            products.setdefault((tuple(days), times), []).append(weekday)
    for (days_, times), weekdays in products.items():
        either = _listed(weekdays, "or")
        prefix = f"on {_numbers('day', days_)} of the month if a {either}"
        clauses.append(((3, days_[0], WEEKDAYS.index(weekdays[0])), prefix, times))
    if not clauses:
        return "never"
    clauses.sort(key=lambda clause: clause[0])
    return "; ".join(_clause(prefix, times, daily) for _, prefix, times in clauses)


def _on(schedule: Schedule, day: int, weekday: str) -> bool:
    return (schedule.day is None or schedule.day == day) and (
        schedule.weekday is None or schedule.weekday == weekday
    )


def _common(sets: Iterable[Times]) -> Times:
    return functools.reduce(frozenset.intersection, sets)


def _grouped(values: Mapping[K, V]) -> list[tuple[list[K], V]]:
    """The keys with each non-empty value, in the order the keys first come."""
    groups: dict[V, list[K]] = {}
    for key, value in values.items():
        if value:
            groups.setdefault(value, []).append(key)
    return [(keys, value) for value, keys in groups.items()]


def _clause(prefix: str, times: Times, daily: Times) -> str:
    # The daily times hold on these days too, and saying them again can be shorter:
    # "Mondays, every 15 minutes" rather than "Mondays, hourly at :15, :30 and :45".
    words = min(_times(times), _times(times | daily), key=len)
    if words.startswith("at "):
        return f"{prefix} {words}"
    return words if prefix == "daily" else f"{prefix}, {words}"


def _times(times: Times) -> str:
    """Times of day: minutes every hour, whole hours, then the rest, listed or by minute."""
    hourly = [m for m in MINUTES if all((h, m) in times for h in HOURS)]
    if len(hourly) == len(MINUTES):
        return "every 15 minutes"
    whole = [h for h in HOURS if all((h, m) in times for m in MINUTES)]
    rest = sorted((h, m) for h, m in times if m not in hourly and h not in whole)
    parts = [f"hourly at {_minutes(hourly)}"] if hourly else []
    if whole:
        runs = _runs(whole)
        spans = [f"from {first:02}:00 to {last:02}:45" for first, last in runs]
        over = _listed(spans) if len(runs) <= 3 else f"during {_numbers('hour', whole)}"
        parts.append(f"every 15 minutes {over}")
    if 0 < len(rest) <= LISTED:
        parts.append("at " + _listed([f"{h:02}:{m:02}" for h, m in rest]))
    elif rest:
        minutes_in = {h: frozenset(m for hour, m in rest if hour == h) for h in HOURS}
        for hours, minutes in _grouped(minutes_in):
            parts.append(f"at {_minutes(minutes)} past {_numbers('hour', hours)}")
    return ", and ".join(parts) + (" UTC" if whole or rest else "")


def _minutes(minutes: Iterable[int]) -> str:
    return _listed([f":{m:02}" for m in sorted(minutes)])


def _numbers(noun: str, values: Sequence[int]) -> str:
    """Such as "day 1", "days 1 and 15", "hours 0-11 and 14": runs of three or more as ranges."""
    pieces: list[str] = []
    for first, last in _runs(values):
        span = range(first, last + 1)
        pieces.extend([f"{first}-{last}"] if len(span) >= 3 else [str(v) for v in span])
    return f"{plural(len(values), noun)} {_listed(pieces)}"


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted distinct `values` as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _listed(words: list[str], conjunction: str = "and") -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"
