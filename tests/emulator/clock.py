"""The emulator's notion of now: real time by default, set or moved by tests.

Everything with a lifetime (task deadlines and expiry, index entries, artifacts, temporary
credentials) is judged against this clock, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None
        if start is not None:
            self.set(start, frozen=frozen)
        elif frozen:
            self._frozen_at = _real_now()

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return _real_now() + self._offset

    def set(self, when: datetime, *, frozen: bool | None = None) -> None:
        """Jump to `when`; a frozen clock stays there, a running one ticks on from there."""
        if when.tzinfo is None:
            raise ValueError("the emulator clock needs an aware datetime")
        with self._lock:
            freeze = self._frozen_at is not None if frozen is None else frozen
            if freeze:
                self._frozen_at = when.astimezone(UTC)
            else:
                self._frozen_at = None
                self._offset = when - _real_now()

    def advance(self, delta: timedelta) -> datetime:
        self.set(self.now() + delta)
        return self.now()


def _real_now() -> datetime:
    return datetime.now(UTC)


def format_time(when: datetime) -> str:
    """Taskcluster's JSON time format: UTC, milliseconds, `Z`."""
    utc = when.astimezone(UTC)
    # What strftime("%Y-%m-%dT%H:%M:%S.") gave (the year unpadded), in half its time.
    return (
        f"{utc.year}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
