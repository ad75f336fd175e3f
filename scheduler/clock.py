"""The time the service judges and records by: UTC now, or a rehearsal's moved clock.

`TC_SCHEDULER_NOW` moves every command's clock, as libfaketime's FAKETIME does: an instant
(the clock starts there when the command starts) or an offset from real time (`-86400s`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from scheduler.cron import parse_instant

Clock = Callable[[], datetime]
NOW_VARIABLE = "TC_SCHEDULER_NOW"
_OFFSET = re.compile(r"^[+-]\d+(?:\.\d+)?s$")


def utc_now() -> datetime:
    """Real time, in UTC."""
    return datetime.now(UTC)


class ClockSettingError(ValueError):
    """`TC_SCHEDULER_NOW` is neither a time nor an offset; the message says what to write."""


def clock_from(environ: Mapping[str, str], real: Clock = utc_now) -> Clock:
    """The clock commands run on: `real`, moved as `TC_SCHEDULER_NOW` says when it is set."""
    text = environ.get(NOW_VARIABLE, "").strip()
    if not text:
        return real
    if _OFFSET.match(text):
        offset = timedelta(seconds=float(text[:-1]))
    else:
        try:
            offset = parse_instant(text) - real()
        except ValueError as error:
            raise ClockSettingError(
                f"{NOW_VARIABLE}={text!r} is not a time ({error}) nor an offset from real time "
                "in seconds, like -86400s; unset it to run on real time"
            ) from None
    return lambda: real() + offset


def offset_setting(now: datetime, real: Clock = utc_now) -> str:
    """The `TC_SCHEDULER_NOW` value that puts a command's clock at `now` and keeps it running
    in step with real time from there."""
    return f"{(now - real()).total_seconds():+.6f}s"
