"""Slots: the 15-minute UTC instants at which jobs fire, and ranges of them.

Times without a zone are taken as UTC; times in other zones are converted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from scheduler.durations import parse_duration

SLOT_LENGTH = timedelta(minutes=15)
# Times given by people are kept well inside what datetime can step through, so that planning
# a span (and looking years past it) never runs off the end of the calendar.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def slot_of(moment: datetime) -> datetime:
    """The slot `moment` falls in: UTC, rounded down to the quarter hour (build-decision's rule)."""
    moment = as_utc(moment)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def first_slot_at_or_after(moment: datetime) -> datetime:
    slot = slot_of(moment)
    return slot if slot == as_utc(moment) else slot + SLOT_LENGTH


def slots_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """Every slot in [start, end), oldest first."""
    slot, end = first_slot_at_or_after(start), as_utc(end)
    while slot < end:
        yield slot
        slot += SLOT_LENGTH


def format_slot(slot: datetime) -> str:
    """`2026-11-24T10:00:00Z`: the form slots take in output and in JSON."""
    return as_utc(slot).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant (`2026-11-24T10:00Z`, `2026-11-24`, with or without offset).

    Raises ValueError with a message that shows the expected form.
    """
    try:
        moment = as_utc(datetime.fromisoformat(text.strip()))
    except (ValueError, OverflowError):
        raise ValueError(
            f"{text!r} is not an ISO 8601 time; write it like 2026-11-24T10:00:00Z"
        ) from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(_outside(text))
    return moment


def parse_time(text: str, now: datetime, *, ahead: bool = False) -> datetime:
    """A time as people give one on a command line: an ISO 8601 instant (as `parse_instant`),
    or a duration from `now` as the configuration writes one (`2h`, `3d`, `1d12h`, `30m`).

    A bare duration counts back from `now` (`--since 2h`: two hours ago), or forward with
    `ahead` (`pause --until 2h`: two hours from now); a sign says which either way (`-2h`
    ago, `+2h` from now). Raises ValueError with a message that shows both forms.
    """
    text = text.strip()
    sign, length = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    later = sign == "+" or (not sign and ahead)
    try:
        span = parse_duration(length)
    except ValueError:
        if not sign and _is_iso(text):  # no ISO 8601 time starts with a sign
            return parse_instant(text)
        raise ValueError(_neither(text, ahead)) from None
    except OverflowError:  # more days than a timedelta holds
        raise ValueError(_outside(text)) from None
    try:
        moment = now + span if later else now - span
    except OverflowError:
        raise ValueError(_outside(text)) from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(_outside(text))
    return moment


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return False
    return True


def _neither(text: str, ahead: bool) -> str:
    relative = (
        "how long from now (like 2h, 3d or 1d12h; -2h: that long ago)"
        if ahead
        else "how long ago (like 2h, 3d or 1d12h)"
    )
    return f"{text!r} is neither an ISO 8601 time (like 2026-11-24T10:00:00Z) nor {relative}"


def _outside(text: str) -> str:
    return (
        f"{text!r} is outside the times tc-scheduler plans for "
        f"({EARLIEST.year} to {LATEST.year - 1})"
    )
