"""`when` as one crontab: the expression fires at exactly the job's slots, or there is none.

The crontab evaluator here is naive and shares no code with `scheduler`: weekdays come from
`date.isoweekday()`, and the job's slots from the model's own `fires_at`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.cron import ByProject, Schedule
from scheduler.cron.crontab import crontab
from scheduler.cron.model import fires_at
from tests.support.corpus import corpus_cron_files
from tests.support.loaded_corpus import corpus_cron

TIMES = [(hour, minute) for hour in range(24) for minute in (0, 15, 30, 45)]


# -- a small crontab evaluator --------------------------------------------------------------


def _values(field: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in field.split(","):
        spec, _, step = part.partition("/")
        if spec == "*":
            first, last = low, high
        elif "-" in spec:
            first, last = (int(x) for x in spec.split("-"))
        else:
            first = last = int(spec)
        values.update(range(first, last + 1, int(step or 1)))
    return values


@functools.cache
def _parsed(expression: str) -> tuple[frozenset[int], ...]:
    """Minutes, hours, days of month, months and weekdays (0 is Sunday) of `expression`."""
    minute, hour, dom, month, dow = expression.split()
    return (
        frozenset(_values(minute, 0, 59)),
        frozenset(_values(hour, 0, 23)),
        frozenset(_values(dom, 1, 31)),
        frozenset(_values(month, 1, 12)),
        frozenset(value % 7 for value in _values(dow, 0, 7)),  # 0 and 7 are both Sunday.
    )


def cron_fires(expression: str, slot: datetime) -> bool:
    _, _, dom, _, dow = expression.split()
    minutes, hours, days, months, weekdays = _parsed(expression)
    on_dom = slot.day in days
    on_dow = slot.isoweekday() % 7 in weekdays
    # Vixie cron: with both day fields restricted, either one selects the day.
    on_day = on_dom or on_dow if dom != "*" and dow != "*" else on_dom and on_dow
    return slot.minute in minutes and slot.hour in hours and slot.month in months and on_day


def test_the_evaluator_itself() -> None:
    monday = datetime(2024, 4, 1, 10, 0, tzinfo=UTC)  # Monday the 1st.
    assert cron_fires("0 10 * * *", monday)
    assert not cron_fires("15 10 * * *", monday)
    assert cron_fires("0 10 * * 1", monday)
    assert not cron_fires("0 10 * * 0", monday)
    assert cron_fires("0 10 15 * 1", monday)  # OR: the weekday matches.
    assert cron_fires("0 10 1 * 0", monday)  # OR: the day matches.
    assert not cron_fires("0 10 2 * 0", monday)
    assert cron_fires("*/15 9-11 * * 7,1", monday)


# -- dates to compare on --------------------------------------------------------------------


def _representatives() -> dict[tuple[int, int], date]:
    """A date for every (day of month, ISO weekday) pair: between them, every kind of day."""
    found: dict[tuple[int, int], date] = {}
    day = date(2024, 1, 1)
    while len(found) < 31 * 7:
        found.setdefault((day.day, day.isoweekday()), day)
        day += timedelta(days=1)
    return found


REPRESENTATIVES = _representatives()


def _days_that_differ(schedules: tuple[Schedule, ...]) -> list[int]:
    """The days of the month the schedules name, and one they do not: days they do not name
    all behave alike, so these stand for every day."""
    named = sorted({s.day for s in schedules if s.day is not None})
    other = next((day for day in range(1, 32) if day not in named), None)
    return named + ([] if other is None else [other])


def dates_to_compare(schedules: tuple[Schedule, ...], start: date) -> list[date]:
    kinds = {(day, weekday) for day in _days_that_differ(schedules) for weekday in range(1, 8)}
    # Every day of the month once more, so a crontab naming a day it should not is caught.
    kinds |= {(day, (day % 7) + 1) for day in range(1, 32)}
    window = [start + timedelta(days=n) for n in range(15)]
    return sorted({REPRESENTATIVES[kind] for kind in kinds} | set(window))


def slots(day: date) -> Iterator[datetime]:
    for hour, minute in TIMES:
        yield datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def model_times(schedules: tuple[Schedule, ...], day: date) -> frozenset[tuple[int, int]]:
    return frozenset((s.hour, s.minute) for s in slots(day) if fires_at(schedules, s))


# -- examples -------------------------------------------------------------------------------


def when(*entries: dict[str, int | str]) -> tuple[Schedule, ...]:
    return tuple(Schedule(**entry) for entry in entries)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schedules", "expected"),
    [
        (when({"hour": 10, "minute": 0}, {"hour": 22, "minute": 0}), "0 10,22 * * *"),
        (when({"hour": 5, "minute": 0}), "0 5 * * *"),
        (when({"minute": 0}), "0 * * * *"),
        (when({}), "0,15,30,45 * * * *"),
        (when({"hour": 3}), "0,15,30,45 3 * * *"),
        (when({"hour": 4, "minute": 30, "weekday": "Sunday"}), "30 4 * * 0"),
        (
            when(
                {"weekday": "Monday", "hour": 6, "minute": 0},
                {"weekday": "Saturday", "hour": 6, "minute": 0},
            ),
            "0 6 * * 1,6",
        ),
        (when({"day": 1, "hour": 0, "minute": 0}), "0 0 1 * *"),
        (
            when(*({"hour": h, "minute": m} for h in (0, 12) for m in (0, 30))),
            "0,30 0,12 * * *",
        ),
        # Cron ORs day and weekday, and so do two entries.
        (
            when({"day": 1, "hour": 8, "minute": 0}, {"weekday": "Friday", "hour": 8, "minute": 0}),
            "0 8 1 * 5",
        ),
        # An entry covered by a broader one adds nothing.
        (
            when({"hour": 8, "minute": 0}, {"weekday": "Friday", "hour": 8, "minute": 0}),
            "0 8 * * *",
        ),
        (
            when(
                {"day": 13, "weekday": "Friday", "hour": 1, "minute": 0},
                {"day": 13, "hour": 1, "minute": 0},
            ),
            "0 1 13 * *",
        ),
    ],
)
def test_crontab_examples(schedules: tuple[Schedule, ...], expected: str) -> None:
    assert crontab(schedules) == expected


@pytest.mark.parametrize(
    "schedules",
    [
        pytest.param((), id="never"),
        pytest.param(
            when({"hour": 10, "minute": 0}, {"hour": 22, "minute": 30}), id="not-a-product"
        ),
        pytest.param(
            when(
                {"weekday": "Monday", "hour": 6, "minute": 0},
                {"weekday": "Tuesday", "hour": 7, "minute": 0},
            ),
            id="other-times-on-other-days",
        ),
        pytest.param(
            when({"day": 1, "hour": 6, "minute": 0}, {"hour": 7, "minute": 0}),
            id="more-times-on-some-days",
        ),
        pytest.param(
            when({"day": 13, "weekday": "Friday", "hour": 0, "minute": 0}), id="day-and-weekday"
        ),
    ],
)
def test_no_crontab_can(schedules: tuple[Schedule, ...]) -> None:
    assert crontab(schedules) is None


def _corpus_whens() -> Iterator[tuple[str, tuple[Schedule, ...]]]:
    for path in corpus_cron_files():
        for job in corpus_cron(path).jobs:
            alternatives = (
                job.when.alternatives if isinstance(job.when, ByProject) else {"": job.when}
            )
            for key, schedules in alternatives.items():
                yield f"{path.name}:{job.name}:{key}", schedules


CORPUS_WHENS = list(_corpus_whens())


@pytest.mark.parametrize(("name", "schedules"), CORPUS_WHENS, ids=[n for n, _ in CORPUS_WHENS])
def test_corpus_schedules(name: str, schedules: tuple[Schedule, ...]) -> None:
    expression = crontab(schedules)
    if not schedules:
        assert expression is None
        return
    if expression is None:
        pytest.skip(f"{name}: no crontab fires at these slots")  # Checked by the property.
    for day in dates_to_compare(schedules, date(2024, 2, 20)):
        for slot in slots(day):
            assert cron_fires(expression, slot) == fires_at(schedules, slot), (name, slot)


def test_most_corpus_jobs_have_a_crontab() -> None:
    scheduled = [schedules for _, schedules in CORPUS_WHENS if schedules]
    assert scheduled
    assert sum(crontab(schedules) is not None for schedules in scheduled) >= len(scheduled) * 0.8


# -- the property ---------------------------------------------------------------------------

# Few values per field, so that entries often line up into products and share days.
schedule_strategy = st.builds(
    Schedule,
    minute=st.none() | st.sampled_from([0, 15, 30, 45]),
    hour=st.none() | st.sampled_from([0, 5, 10, 22]),
    day=st.none() | st.none() | st.sampled_from([1, 13, 31]),
    weekday=st.none() | st.none() | st.sampled_from(["Monday", "Friday", "Sunday"]),
)


@st.composite
def products(draw: st.DrawFn) -> tuple[Schedule, ...]:
    """Entries that spell out a product of hours and minutes on some days, maybe with extras."""
    hours = draw(st.lists(st.sampled_from([0, 5, 10, 22]), min_size=1, max_size=3, unique=True))
    minutes = draw(st.lists(st.sampled_from([0, 15, 30, 45]), min_size=1, max_size=2, unique=True))
    days = draw(st.sampled_from([{}, {"day": 13}, {"weekday": "Friday"}]))
    entries = [Schedule(hour=h, minute=m, **days) for h in hours for m in minutes]  # type: ignore[arg-type]
    entries += draw(st.lists(schedule_strategy, max_size=1))
    return tuple(draw(st.permutations(entries)))


whens = st.lists(schedule_strategy, min_size=1, max_size=4).map(tuple) | products()


def _is_product(times: Iterable[tuple[int, int]]) -> bool:
    pairs = set(times)
    hours, minutes = {h for h, _ in pairs}, {m for _, m in pairs}
    return len(pairs) == len(hours) * len(minutes)


@given(whens, st.dates(date(2023, 1, 1), date(2030, 12, 31)))
def test_crontab_fires_at_exactly_the_slots_or_none_can(
    schedules: tuple[Schedule, ...], start: date
) -> None:
    expression = crontab(schedules)
    days = dates_to_compare(schedules, start)
    times_by_day = {day: model_times(schedules, day) for day in days}

    if expression is not None:
        for day in days:
            fired = frozenset(
                (slot.hour, slot.minute) for slot in slots(day) if cron_fires(expression, slot)
            )
            assert fired == times_by_day[day], (expression, day)
        return

    # None: some days fire at other times than others, the times are no product, or an entry
    # asks for a day of the month on a weekday, which cron cannot say.
    firing = {times for times in times_by_day.values() if times}
    assert (
        len(firing) != 1
        or not _is_product(next(iter(firing)))
        or any(s.day is not None and s.weekday is not None for s in schedules)
    ), schedules


@given(whens)
def test_without_day_and_weekday_together_only_times_stand_in_the_way(
    schedules: tuple[Schedule, ...],
) -> None:
    # Entries that restrict the day of the month or the weekday, never both, always select
    # days that cron can: the days named, the weekdays named, or either.
    schedules = tuple(s for s in schedules if s.day is None or s.weekday is None)
    same_times = tuple(Schedule(hour=5, minute=0, day=s.day, weekday=s.weekday) for s in schedules)
    if same_times:
        assert crontab(same_times) is not None
