"""The service's tick round in process: what the garbage collector looks at while it runs."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from pathlib import Path

from scheduler.ledger import FireState
from scheduler.monitoring import Monitor
from scheduler.outcomes import SlotResult
from scheduler.rounds import tick_and_report
from scheduler.service import open_service
from tests.emulator import Emulator
from tests.support.projects import DAY, HOURLY, make_config, own_project


class FreezeWatch(Monitor):
    """The service's monitor, which also notes how many objects the garbage collector left
    out of its collections (frozen) when the tick ended."""

    frozen_at_tick: int | None = None

    def ticked(self, results: Sequence[SlotResult], *, seconds: float) -> None:
        self.frozen_at_tick = gc.get_freeze_count()
        super().ticked(results, seconds=seconds)


def tick_watched(emulator: Emulator, tmp_path: Path) -> tuple[list[SlotResult], FreezeWatch]:
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY))
    emulator.clock.set(DAY, frozen=True)

    async def main() -> tuple[list[SlotResult], FreezeWatch]:
        async with open_service(config, clock=emulator.clock.now) as service:
            monitor = FreezeWatch(service.ledger, service.engine.clock)
            results = await tick_and_report(service.engine, service.notifier, DAY, monitor)
            return results, monitor

    return asyncio.run(main())


def test_a_tick_leaves_the_heap_it_began_with_out_of_collections_until_it_ends(
    emulator: Emulator, tmp_path: Path
) -> None:
    gc.unfreeze()  # what an earlier test's emulator seeding froze: a heap nothing froze

    [result], monitor = tick_watched(emulator, tmp_path)

    assert [(f.job, f.state) for f in result.fires] == [("hourly", FireState.CREATED)]
    # Everything alive when the tick began (the service, its repositories' files) was left
    # out while it ran, and is looked at again after.
    assert monitor.frozen_at_tick is not None
    assert monitor.frozen_at_tick > 10_000
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_before_a_tick_stays_frozen_after_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    gc.freeze()  # as a tick beside this one, or the emulator's seeding, would
    try:
        [result], _ = tick_watched(emulator, tmp_path)

        assert [(f.job, f.state) for f in result.fires] == [("hourly", FireState.CREATED)]
        # Still frozen (less what was freed meanwhile), for whoever froze it to thaw.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
