"""When a failed fire is tried again, and when it is given up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.retrying import LONGEST_WAIT, ROUND_GRACE, next_attempt_at, overdue, retry_wait

SLOT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_waits_double_from_thirty_seconds_up_to_five_minutes() -> None:
    waits = [retry_wait(attempt).total_seconds() for attempt in range(1, 8)]
    assert waits == [30, 60, 120, 240, 300, 300, 300]
    assert retry_wait(1000) == LONGEST_WAIT


def test_the_next_attempt_stays_within_max_lateness_and_none_comes_after_it() -> None:
    assert next_attempt_at(SLOT, 1, SLOT, HOUR) == SLOT + timedelta(seconds=30)
    near_the_end = SLOT + HOUR - timedelta(seconds=10)
    assert next_attempt_at(SLOT, 5, near_the_end, HOUR) == SLOT + HOUR
    assert next_attempt_at(SLOT, 6, SLOT + HOUR, HOUR) is None


def test_a_retry_due_at_the_limit_is_made_by_a_round_a_little_late() -> None:
    a_bit_late = SLOT + HOUR + ROUND_GRACE / 2
    assert not overdue(SLOT, a_bit_late, HOUR, retrying=True)
    assert overdue(SLOT, a_bit_late, HOUR, retrying=False)
    assert overdue(SLOT, SLOT + HOUR + ROUND_GRACE + timedelta(seconds=1), HOUR, retrying=True)
