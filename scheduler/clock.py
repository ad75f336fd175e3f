"""The time the service judges and records by: UTC now, or a rehearsal's moved clock.

`TC_SCHEDULER_NOW` moves every command's clock to an instant that then advances with real time,
so a rehearsal (or a test, with the emulator's clock set alike) sees the day it asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from scheduler.cron import parse_instant

Clock = Callable[[], datetime]
NOW_VARIABLE = "TC_SCHEDULER_NOW"


def utc_now() -> datetime:
    """Real time, in UTC."""
    return datetime.now(UTC)


class ClockSettingError(ValueError):
    """`TC_SCHEDULER_NOW` is not a time; the message says what to write."""


def clock_from(environ: Mapping[str, str], real: Clock = utc_now) -> Clock:
    """The clock commands run on: `real`, moved to `TC_SCHEDULER_NOW` when it is set."""
    text = environ.get(NOW_VARIABLE, "").strip()
    if not text:
        return real
    try:
        start = parse_instant(text)
    except ValueError as error:
        raise ClockSettingError(
            f"{NOW_VARIABLE}={text!r} is not a time ({error}); write ISO 8601, like "
            "2026-12-06T02:00:00Z, or unset it to run on real time"
        ) from None
    offset = start - real()
    return lambda: real() + offset
