"""The emulator's port of cron-parser, on cases whose answers came from Taskcluster 106's hooks
service (createHook's 400 messages, and getHookStatus's nextScheduledDate from this reference)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.emulator import cron_parser

# A Sunday evening; every next date below is the first time after it.
REFERENCE = datetime(2026, 12, 6, 18, 49, 0, 500_000, tzinfo=UTC)

NEXT = {
    "0 0 * * * *": "2026-12-06T19:00:00",
    "0 0 * * *": "2026-12-07T00:00:00",  # five fields: seconds 0
    "* * * *": "2026-12-06T19:00:00",  # four fields: `* 0 * * * *`, every second of minute 0
    "1 1 1": "2027-01-01T00:00:00",  # `* * 0 1 1 1`: 1 January, or a Monday in January
    "": "2026-12-06T18:50:00",  # every minute
    "*/15 * * * * *": "2026-12-06T18:49:15",
    "@weekdays": "2026-12-07T00:00:00",
    "0 0 0 * * 7": "2026-12-13T00:00:00",  # 7 is Sunday too
    "0 0 0 * * mon#2": "2026-12-14T00:00:00",
    "0 0 0 * * *#2": "2026-12-08T00:00:00",  # any day of the month's second week
    "0 0 0 L * *": "2026-12-31T00:00:00",
    "0 0 0 2L * *": "2026-12-31T00:00:00",  # digits before a day-of-month L change nothing
    "0 0 0 * * 5L": "2026-12-25T00:00:00",  # the last Friday
    "0 0 0 29 2 *": "2028-02-29T00:00:00",
    "0 0 0 30 2 1": "2027-02-01T00:00:00",  # day of month OR day of week: Mondays in February
    "0 0 0 * mon *": "2027-01-01T00:00:00",  # a weekday name in the month field is a number
    "0 1-2-3 * * * *": "2026-12-06T19:01:00",  # a range reads its first two numbers
    "0 0,0 * * * *": "2026-12-06T19:00:00",  # a repeated 0 is let through
    "0 0 0 31 2,4 *": "2054-04-22T00:00:00",  # never: cron-parser stops after its loop limit
}

REFUSED = {
    "0 0 0 * * * *": "Invalid cron expression, too many fields",
    "1 1": "Constraint error, got value 0 expected range 1-31",
    "   ": "Constraint error, got value 0 expected range 1-12",
    "@midnight": "Constraint error, got value 0 expected range 1-12",
    "0 0 24 * * *": "Constraint error, got value 24 expected range 0-23",
    "0 0 0 * * 8": "Constraint error, got value 8 expected range 0-7",
    "0 0 0 * * 1#6": "Constraint error, invalid dayOfWeek occurrence number (#)",
    "0 0 0 * * 1#2,3": (
        "Constraint error, invalid dayOfWeek `#` and `,` special characters are incompatible"
    ),
    "0 0 0 * * #2": "Invalid characters, got value: ",
    "0 0 0 LW * *": "Invalid characters, got value: LW",
    "0 a * * * *": "Invalid characters, got value: a",
    "0 */0 * * * *": "Constraint error, cannot repeat at every 0 time.",
    "0 5/ * * * *": "Constraint error, cannot repeat at every NaN time.",
    "0 /5 * * * *": "Constraint error, got range NaN-59 expected range 0-59",
    "0 10-5 * * * *": "Invalid range: 10-5, min(10) > max(5)",
    "0 1/2/3 * * * *": "Invalid repeat: 1/2/3",
    "0 1,,2 * * * *": "Invalid list value format",
    "0 0 0 30 2 *": "Invalid explicit day of month definition",
    "0 0 0 30 feb *": "Invalid explicit day of month definition",
    "0 0 0 * * 1,1": "CronDayOfWeek Validation error, duplicate values found: 1",
    "0 0 0 * * 1-3,2": "CronDayOfWeek Validation error, duplicate values found: 2",
    "0 0 0 L,L * *": "CronDayOfMonth Validation error, duplicate values found: L",
    "0 0 0 * * L2": "CronDayOfWeek Validation error, got value L2 expected range 0-7 or chars L",
    "0 0 0 * jan,feb,xyz *": 'Validation error, cannot resolve alias "xyz"',
}


@pytest.mark.parametrize("entry", NEXT)
def test_next_date_is_cron_parsers(entry: str) -> None:
    scheduled = cron_parser.next_date([entry], REFERENCE)
    assert scheduled.strftime("%Y-%m-%dT%H:%M:%S") == NEXT[entry]


@pytest.mark.parametrize("entry", REFUSED)
def test_refusals_are_cron_parsers(entry: str) -> None:
    with pytest.raises(cron_parser.CronError) as raised:
        cron_parser.parse(entry)
    assert str(raised.value) == REFUSED[entry]


def test_the_next_date_of_several_entries_is_the_earliest() -> None:
    entries = ["0 0 0 * * *", "0 30 18 * * *", "0 0 19 * * *"]
    assert cron_parser.next_date(entries, REFERENCE) == datetime(2026, 12, 6, 19, tzinfo=UTC)
    assert cron_parser.next_date([], REFERENCE) == cron_parser.FUTURE


def test_an_entry_matching_now_is_next_a_period_later() -> None:
    midnight = datetime(2026, 12, 7, tzinfo=UTC)
    assert cron_parser.next_date(["@daily"], midnight) == datetime(2026, 12, 8, tzinfo=UTC)


def test_hashed_values_are_stable_for_an_entry() -> None:
    """`H` is random in cron-parser; seeded by the entry here, so a hook's times do not wander."""
    first = cron_parser.next_date(["0 H * * * *"], REFERENCE)
    assert cron_parser.next_date(["0 H * * * *"], REFERENCE) == first
    assert first.second == 0
    assert REFERENCE < first <= REFERENCE + timedelta(hours=1)


def test_a_bare_last_weekday_parses_but_cannot_be_searched() -> None:
    cron_parser.parse("0 0 0 * * L")
    with pytest.raises(cron_parser.NextDateError, match="Invalid last weekday"):
        cron_parser.next_date(["0 0 0 * * L"], REFERENCE)
