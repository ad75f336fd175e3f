"""The API while the service stops: from the stop on, acts are refused and `/readyz` says so,
reads are still answered, and the acts already running get a grace period, then are cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from scheduler.errors import Category, SchedulerError

# After the grace: acts cut off get this long to wind up (their audit written), then requests
# still running when the server closes (reads come in meanwhile) as long, before uvicorn
# cancels them.
WIND_UP = timedelta(seconds=5)
# The most that stopping the API takes beyond the grace it gives the acts running.
STOP_BEYOND_GRACE = 2 * WIND_UP

REFUSED = (
    "tc-scheduler is stopping and takes no new act; ask again in a moment (another replica, or "
    "this one once restarted, will answer)"
)
NOT_READY = "not ready: tc-scheduler is stopping (reads are answered until it closes)"
CUT_OFF = (
    "tc-scheduler stopped before this act finished, so it was cut off; its fire, if it made "
    "one, is in the history with what it did"
)


class ShuttingDownError(SchedulerError, category=Category.UNAVAILABLE, code="shutting-down"):
    """The service is stopping: an act is refused (or was cut off), and it is not ready."""


class Draining:
    """Whether the API still takes acts, and the acts running: each request that acts runs
    inside `act()`, which refuses it once `stop_taking_acts` was called."""

    def __init__(self) -> None:
        self.stopping = False
        self._running: set[asyncio.Task[Any]] = set()
        self._cutting_off = False
        self._idle = asyncio.Event()
        self._idle.set()

    def stop_taking_acts(self) -> None:
        self.stopping = True

    @asynccontextmanager
    async def act(self) -> AsyncIterator[None]:
        """Run one act, counted; ShuttingDownError if the service is stopping, or when it is
        cut off (`finish`)."""
        if self.stopping:
            raise ShuttingDownError(REFUSED)
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        self._idle.clear()
        try:
            yield
        except asyncio.CancelledError:
            if not self._cutting_off:
                raise
            # Cancelled by `finish`, not by whoever runs the request: the caller is answered.
            task.uncancel()
            raise ShuttingDownError(CUT_OFF) from None
        finally:
            self._running.discard(task)
            if not self._running:
                self._idle.set()

    async def finish(self, grace: timedelta, wind_up: timedelta) -> int:
        """Refuse new acts; wait for the running ones up to `grace`, then cut off those left and
        give them up to `wind_up` to end (their audit written). How many were cut off."""
        self.stop_taking_acts()
        if await self._settled(grace):
            return 0
        self._cutting_off = True
        left = list(self._running)
        for task in left:
            task.cancel()
        await self._settled(wind_up)
        return len(left)

    async def _settled(self, within: timedelta) -> bool:
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), within.total_seconds())
        except TimeoutError:
            return False
        return True
