"""The commands' clock: real time, or moved by TC_SCHEDULER_NOW to an instant or by an offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.clock import NOW_VARIABLE, ClockSettingError, clock_from, offset_setting


class FakeReal:
    """Real time as a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


REAL = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


def test_unset_is_real_time() -> None:
    real = FakeReal(REAL)
    assert clock_from({}, real) is real
    assert clock_from({NOW_VARIABLE: "  "}, real) is real


def test_an_instant_starts_the_clock_there_and_it_runs_on() -> None:
    real = FakeReal(REAL)
    clock = clock_from({NOW_VARIABLE: "2026-11-24T10:05:00Z"}, real)
    assert clock() == datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
    real.now += timedelta(minutes=3)
    assert clock() == datetime(2026, 11, 24, 10, 8, tzinfo=UTC)


def test_an_offset_keeps_successive_commands_in_step_with_real_time() -> None:
    real = FakeReal(REAL)
    setting = offset_setting(datetime(2026, 11, 24, 10, 5, tzinfo=UTC), real)
    first = clock_from({NOW_VARIABLE: setting}, real)
    real.now += timedelta(minutes=3)
    second = clock_from({NOW_VARIABLE: setting}, real)
    assert first() == second() == datetime(2026, 11, 24, 10, 8, tzinfo=UTC)
    assert clock_from({NOW_VARIABLE: "+90s"}, real)() == real.now + timedelta(seconds=90)


@pytest.mark.parametrize("text", ["yesterday", "-3d", "2026-13-01", "90"])
def test_anything_else_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(ClockSettingError, match="like -86400s"):
        clock_from({NOW_VARIABLE: text}, FakeReal(REAL))
