"""The slot loop on a clock the test moves: each slot prepared its lead before the boundary,
ticked once the boundary has passed, never before; a prepare still running at the boundary is
cut off; a jump over several boundaries ticks once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.slot_loop import PREPARE_LEAD, SlotLoop

BOUNDARY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class MovedClock:
    """A clock standing still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _turn(_seconds: float) -> None:
    """The loop's wait: a turn of the event loop, whatever the time left (no real time)."""
    await asyncio.sleep(0)


def looping(clock: MovedClock, prepare: Any, tick: Any) -> asyncio.Task[None]:
    return asyncio.create_task(SlotLoop(clock, prepare, tick, sleep=_turn).run())


async def _settle() -> None:
    """Let the loop look at the clock, and what it started run, a good many times."""
    for _ in range(50):
        await asyncio.sleep(0)


def test_a_slot_is_prepared_its_lead_before_the_boundary_and_ticked_once_it_has_begun() -> None:
    clock = MovedClock(BOUNDARY - timedelta(minutes=5))
    events: list[tuple[str, datetime, datetime]] = []

    async def prepare(slot: datetime) -> None:
        events.append(("prepare", slot, clock()))

    def tick(moment: datetime) -> None:
        events.append(("tick", moment, clock()))

    async def scenario() -> None:
        loop = looping(clock, prepare, tick)
        await _settle()
        assert events == []
        clock.now = BOUNDARY - PREPARE_LEAD - timedelta(seconds=1)
        await _settle()
        assert events == []
        clock.now = BOUNDARY - PREPARE_LEAD
        await _settle()
        assert events == [("prepare", BOUNDARY, BOUNDARY - PREPARE_LEAD)]
        clock.now = BOUNDARY - timedelta(milliseconds=1)
        await _settle()
        assert [event[0] for event in events] == ["prepare"]
        clock.now = BOUNDARY
        await _settle()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    asyncio.run(scenario())
    assert events[1] == ("tick", BOUNDARY, BOUNDARY)
    assert len(events) == 2


def test_a_prepare_still_running_at_the_boundary_is_cut_off_and_a_long_jump_ticks_once() -> None:
    clock = MovedClock(BOUNDARY - PREPARE_LEAD)
    ticks: list[datetime] = []
    prepared: list[datetime] = []
    cut_off: list[datetime] = []

    async def prepare(slot: datetime) -> None:
        prepared.append(slot)
        try:
            await asyncio.Event().wait()  # never ends by itself
        except asyncio.CancelledError:
            cut_off.append(slot)
            raise

    async def scenario() -> None:
        loop = looping(clock, prepare, ticks.append)
        await _settle()
        clock.now = BOUNDARY + timedelta(hours=1, minutes=7)  # four boundaries at once
        await _settle()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    asyncio.run(scenario())
    assert prepared == [BOUNDARY]
    assert cut_off == [BOUNDARY]
    assert ticks == [BOUNDARY + timedelta(hours=1, minutes=7)]


def test_a_clock_set_back_after_a_tick_does_not_tick_that_boundary_again() -> None:
    clock = MovedClock(BOUNDARY - timedelta(seconds=1))
    ticks: list[datetime] = []

    async def prepare(slot: datetime) -> None:
        pass

    async def scenario() -> None:
        loop = looping(clock, prepare, ticks.append)
        await _settle()
        clock.now = BOUNDARY
        await _settle()
        clock.now = BOUNDARY - timedelta(seconds=30)  # stepped back (NTP), then on again
        await _settle()
        clock.now = BOUNDARY + timedelta(seconds=1)
        await _settle()
        clock.now = BOUNDARY + timedelta(minutes=15)
        await _settle()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    asyncio.run(scenario())
    assert ticks == [BOUNDARY, BOUNDARY + timedelta(minutes=15)]


def test_a_tick_that_raises_is_logged_and_the_next_boundary_still_ticks() -> None:
    clock = MovedClock(BOUNDARY - timedelta(seconds=1))
    ticks: list[datetime] = []

    def tick(moment: datetime) -> None:
        ticks.append(moment)
        if len(ticks) == 1:
            raise RuntimeError("a bug in starting the tick")

    async def scenario() -> None:
        loop = looping(clock, None, tick)
        await _settle()
        clock.now = BOUNDARY
        await _settle()
        clock.now = BOUNDARY + timedelta(minutes=15)
        await _settle()
        assert not loop.done()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    asyncio.run(scenario())
    assert ticks == [BOUNDARY, BOUNDARY + timedelta(minutes=15)]
