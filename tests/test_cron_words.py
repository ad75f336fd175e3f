"""`when` in words: examples, properties over arbitrary schedules, and every job in the corpus.

The properties need no reference: the words must depend only on the slots a job fires at, so
writing the same slots another way (reordered, repeated, covered, spelt out) changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cron import Schedule, ScheduleError
from scheduler.cron.words import in_words
from tests.support.corpus import corpus_cron_files
from tests.support.loaded_corpus import corpus_cron

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MINUTES = (0, 15, 30, 45)


def when(*entries: dict[str, Any]) -> tuple[Schedule, ...]:
    return tuple(Schedule(**entry) for entry in entries)


@pytest.mark.parametrize(
    ("schedules", "expected"),
    [
        pytest.param((), "never", id="never"),
        pytest.param(when({}), "every 15 minutes", id="all-absent"),
        pytest.param(
            when(*({"minute": m} for m in MINUTES)), "every 15 minutes", id="every-minute-given"
        ),
        pytest.param(when({"minute": 0}), "hourly at :00", id="hourly"),
        pytest.param(when({"minute": 0}, {"minute": 30}), "hourly at :00 and :30", id="half"),
        pytest.param(
            when({"hour": 10, "minute": 0}, {"hour": 22, "minute": 0}),
            "daily at 10:00 and 22:00 UTC",
            id="daily",
        ),
        pytest.param(
            when({"weekday": "Monday", "hour": 3, "minute": 0}),
            "Mondays at 03:00 UTC",
            id="weekday",
        ),
        pytest.param(
            when(
                {"weekday": "Thursday", "hour": 3, "minute": 0},
                {"weekday": "Monday", "hour": 3, "minute": 0},
            ),
            "Mondays and Thursdays at 03:00 UTC",
            id="weekdays",
        ),
        pytest.param(
            when({"day": 1, "hour": 0, "minute": 0}),
            "on day 1 of the month at 00:00 UTC",
            id="day",
        ),
        pytest.param(
            when({"day": 13, "weekday": "Friday", "hour": 12, "minute": 0}),
            "on day 13 of the month if a Friday at 12:00 UTC",
            id="day-and-weekday",
        ),
        pytest.param(
            when({"hour": 10}), "every 15 minutes from 10:00 to 10:45 UTC", id="hour-only"
        ),
        pytest.param(
            when({"hour": 10}, {"hour": 11}, {"hour": 23}),
            "every 15 minutes from 10:00 to 11:45 and from 23:00 to 23:45 UTC",
            id="hours-only",
        ),
        pytest.param(
            when(
                {"day": 1, "hour": 0, "minute": 0},
                {"weekday": "Thursday", "hour": 3, "minute": 0},
                {"hour": 5, "minute": 0},
                {"weekday": "Monday", "hour": 3, "minute": 0},
            ),
            "daily at 05:00 UTC; Mondays and Thursdays at 03:00 UTC; "
            "on day 1 of the month at 00:00 UTC",
            id="clause-order",
        ),
        pytest.param(
            when({"hour": 10, "minute": 0}, {"hour": 10, "minute": 0, "weekday": "Friday"}),
            "daily at 10:00 UTC",
            id="covered-entry",
        ),
        pytest.param(
            when({"hour": 10, "minute": 0}, {"hour": 11, "minute": 0, "weekday": "Friday"}),
            "daily at 10:00 UTC; Fridays at 11:00 UTC",
            id="more-on-some-days",
        ),
        pytest.param(
            when(*({"weekday": w, "hour": 6, "minute": 0} for w in WEEKDAYS)),
            "daily at 06:00 UTC",
            id="every-weekday-is-daily",
        ),
        pytest.param(
            when(*({"hour": h, "minute": m} for h in (2, 14) for m in (0, 30))),
            "daily at 02:00, 02:30, 14:00 and 14:30 UTC",
            id="product-listed",
        ),
        pytest.param(
            when(*({"hour": h, "minute": 0} for h in range(12))),
            "daily at :00 past hours 0-11 UTC",
            id="many-times",
        ),
        pytest.param(
            when({"minute": 0}, {"hour": 10}),
            "hourly at :00, and every 15 minutes from 10:00 to 10:45 UTC",
            id="hourly-and-an-hour",
        ),
        pytest.param(
            when({"minute": 0}, {"weekday": "Sunday"}),
            "hourly at :00; Sundays, every 15 minutes",
            id="more-often-on-sundays",
        ),
        pytest.param(
            when(*({"day": d, "weekday": "Monday", "hour": 6, "minute": 0} for d in range(1, 8))),
            "on days 1-7 of the month if a Monday at 06:00 UTC",
            id="first-monday",
        ),
    ],
)
def test_examples(schedules: tuple[Schedule, ...], expected: str) -> None:
    assert in_words(schedules) == expected


# -- properties -----------------------------------------------------------------------------

schedules = st.builds(
    Schedule,
    minute=st.none() | st.sampled_from(MINUTES),
    hour=st.none() | st.integers(0, 23),
    day=st.none() | st.none() | st.integers(1, 31),
    weekday=st.none() | st.none() | st.sampled_from(WEEKDAYS),
)
schedule_tuples = st.lists(schedules, max_size=8).map(tuple)


@settings(max_examples=300, deadline=None)
@given(schedule_tuples, st.data())
def test_words_depend_only_on_the_entries_as_a_set(
    entries: tuple[Schedule, ...], data: st.DataObject
) -> None:
    words = in_words(entries)
    assert words
    assert words.strip() == words
    assert "None" not in words
    assert (words == "never") == (not entries)
    repeated = entries + tuple(data.draw(st.lists(st.sampled_from(entries)))) if entries else ()
    assert in_words(tuple(data.draw(st.permutations(repeated)))) == words


@st.composite
def narrower(draw: st.DrawFn, schedule: Schedule) -> Schedule:
    """`schedule` with some of its absent fields given: it fires at some of the same slots."""
    given_: dict[str, st.SearchStrategy[Any]] = {
        "minute": st.sampled_from(MINUTES),
        "hour": st.integers(0, 23),
        "day": st.integers(1, 31),
        "weekday": st.sampled_from(WEEKDAYS),
    }
    fields: dict[str, Any] = {
        k: draw(v)
        for k, v in given_.items()
        if getattr(schedule, k) is None and draw(st.booleans())
    }
    return replace(schedule, **fields)


@settings(max_examples=200, deadline=None)
@given(st.lists(schedules, min_size=1, max_size=6).map(tuple), st.data())
def test_covered_entries_add_no_words(entries: tuple[Schedule, ...], data: st.DataObject) -> None:
    extra = data.draw(narrower(data.draw(st.sampled_from(entries))))
    assert in_words((*entries, extra)) == in_words(entries)


ALL_VALUES: dict[str, tuple[Any, ...]] = {
    "minute": MINUTES,
    "hour": tuple(range(24)),
    "day": tuple(range(1, 32)),
    "weekday": WEEKDAYS,
}


@settings(max_examples=200, deadline=None)
@given(st.lists(schedules, min_size=1, max_size=6).map(tuple), st.data())
def test_spelling_a_field_out_changes_nothing(
    entries: tuple[Schedule, ...], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(entries) - 1))
    entry = entries[index]
    absent = [name for name in ALL_VALUES if getattr(entry, name) is None]
    if not absent:
        return
    name = data.draw(st.sampled_from(absent))
    spelt = tuple(replace(entry, **{name: value}) for value in ALL_VALUES[name])
    assert in_words((*entries[:index], *spelt, *entries[index + 1 :])) == in_words(entries)


# -- the corpus -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", corpus_cron_files(), ids=lambda path: path.name)
def test_every_corpus_job_has_words(path: Path) -> None:
    checked = 0
    for job in corpus_cron(path).jobs:
        for project in job.run_on_projects or ("mozilla-central",):
            try:
                entries = job.schedules_for(project)
            except ScheduleError:
                continue
            words = in_words(entries)
            assert words, (job.name, project)
            assert "None" not in words, (job.name, project, words)
            checked += 1
    assert checked or not corpus_cron(path).jobs
