"""The service's slot timing: a tick at each 15-minute boundary and the slot prepared a lead
before it, on the service's clock (which tests and benchmarks move), not on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from scheduler.clock import Clock
from scheduler.cron.timing import SLOT_LENGTH, slot_of

# How long before a boundary its slot is prepared (heads read, tasks rendered): far more than
# preparing takes, little enough that most heads read then are still the heads at the boundary.
PREPARE_LEAD = timedelta(minutes=1)
# The longest a wait goes without looking at the clock: a clock moved ahead (a test's, a
# benchmark's) is seen this soon. On a clock that runs as real time does, each wait ends on its
# instant, not up to this much after it.
LOOK_EVERY = timedelta(seconds=1)

log = structlog.get_logger("tc_scheduler.service")


# How a wait passes the time: real seconds, or (in tests) a turn of the event loop.
Sleep = Callable[[float], Awaitable[None]]


async def wait_until(
    clock: Clock,
    instant: datetime,
    *,
    look_every: timedelta = LOOK_EVERY,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Return once `clock` reads `instant` or later, looking at it at least every
    `look_every`."""
    while (left := (instant - clock()).total_seconds()) > 0:
        await sleep(min(left, look_every.total_seconds()))


@dataclass
class SlotLoop:
    """Prepares each slot `lead` before it begins and starts its tick once it has.

    `prepare(slot)`, if given, is awaited in a task of its own, cancelled at the boundary if
    still running (the tick needs the machine then, and uses whatever was prepared).
    `tick(moment)` starts the boundary's tick and must not wait for it: a slow tick does not
    hold the next one back; an exception it raises is logged, and the next boundary ticks.
    A clock moved past several boundaries at once gets one tick, which catches up.
    """

    clock: Clock
    prepare: Callable[[datetime], Awaitable[object]] | None
    tick: Callable[[datetime], object]
    lead: timedelta = PREPARE_LEAD
    look_every: timedelta = LOOK_EVERY
    sleep: Sleep = asyncio.sleep

    async def run(self) -> None:
        """Until cancelled."""
        preparing: asyncio.Task[object] | None = None
        try:
            while True:
                boundary = slot_of(self.clock()) + SLOT_LENGTH
                if self.prepare is not None:
                    await self._wait_until(boundary - self.lead)
                    preparing = asyncio.create_task(self._prepare(self.prepare, boundary))
                await self._wait_until(boundary)
                if preparing is not None:
                    preparing.cancel()
                try:
                    self.tick(self.clock())
                except Exception:
                    # This loop is the service's only source of ticks: a bug in starting one
                    # must not end it (nobody awaits it until shutdown).
                    log.exception("the slot's tick could not be started")
        finally:
            if preparing is not None:
                preparing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await preparing

    async def _wait_until(self, instant: datetime) -> None:
        await wait_until(self.clock, instant, look_every=self.look_every, sleep=self.sleep)

    @staticmethod
    async def _prepare(prepare: Callable[[datetime], Awaitable[object]], slot: datetime) -> object:
        return await prepare(slot)
