"""A costly read kept for a while (scheduler/common/recent.py): one read for askers at the same
time, the last answer while it is read anew behind them, and the last answer kept when that
read fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from scheduler.common.recent import RecentRead

T = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
FRESH = timedelta(seconds=30)


class Reads:
    """A read that answers how many times it was made, or fails when told to."""

    def __init__(self) -> None:
        self.made = 0
        self.failing = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> int:
        self.made += 1
        await self.gate.wait()
        if self.failing:
            raise RuntimeError("the service did not answer")
        return self.made


def test_askers_at_once_share_the_first_read() -> None:
    async def main() -> None:
        reads, kept = Reads(), RecentRead[int](FRESH)
        reads.gate.clear()
        askers = [asyncio.create_task(kept.get(T, reads)) for _ in range(5)]
        await asyncio.sleep(0)  # every asker is waiting on the one read
        reads.gate.set()
        assert await asyncio.gather(*askers) == [1] * 5
        assert reads.made == 1

    asyncio.run(main())


def test_a_stale_answer_is_given_while_it_is_read_again_behind() -> None:
    async def main() -> None:
        reads, kept = Reads(), RecentRead[int](FRESH)
        assert await kept.get(T, reads) == 1
        assert await kept.get(T + FRESH - timedelta(microseconds=1), reads) == 1
        assert reads.made == 1
        # Stale: the asker gets the last answer; one read starts, however many ask.
        assert await kept.get(T + FRESH, reads) == 1
        assert await kept.get(T + FRESH, reads) == 1
        await kept.settled()
        assert reads.made == 2
        assert await kept.get(T + FRESH, reads) == 2

    asyncio.run(main())


def test_a_failed_renewal_keeps_the_last_answer_and_the_next_asker_tries_again() -> None:
    async def main() -> None:
        reads, kept = Reads(), RecentRead[int](FRESH)
        assert await kept.get(T, reads) == 1
        reads.failing = True
        assert await kept.get(T + FRESH, reads) == 1
        await kept.settled()
        assert await kept.get(T + FRESH, reads) == 1  # and it tries again
        await kept.settled()
        assert reads.made == 3
        reads.failing = False
        assert await kept.get(T + FRESH, reads) == 1
        await kept.settled()
        assert await kept.get(T + FRESH, reads) == 4

    asyncio.run(main())


def test_forgetting_makes_the_next_asker_wait_for_a_new_read() -> None:
    async def main() -> None:
        reads, kept = Reads(), RecentRead[int](FRESH)
        assert await kept.get(T, reads) == 1
        kept.forget()
        assert await kept.get(T, reads) == 2

    asyncio.run(main())


def test_a_renewal_begun_before_forget_does_not_overwrite_the_fresher_answer() -> None:
    async def main() -> None:
        kept, gate = RecentRead[str](FRESH), asyncio.Event()
        deployed = ["before the fire"]

        async def read() -> str:
            seen = deployed[0]  # what the deployment says as the read starts
            await gate.wait()  # its calls take a while
            return seen

        gate.set()
        assert await kept.get(T, read) == "before the fire"
        gate.clear()
        assert await kept.get(T + FRESH, read) == "before the fire"  # renewal under way
        await asyncio.sleep(0)  # the renewal has begun its read
        deployed[0] = "after the fire"
        kept.forget()  # a hook fired from the page
        gate.set()
        assert await kept.get(T + FRESH, read) == "after the fire"
        await kept.settled()
        assert await kept.get(T + FRESH, read) == "after the fire"

    asyncio.run(main())


def test_a_first_read_begun_before_forget_is_not_kept_as_fresh() -> None:
    async def main() -> None:
        kept, gate = RecentRead[str](FRESH), asyncio.Event()
        deployed = ["before the fire"]

        async def read() -> str:
            seen = deployed[0]
            await gate.wait()
            return seen

        warm = asyncio.create_task(kept.get(T, read))  # the service's read at start
        await asyncio.sleep(0)
        deployed[0] = "after the fire"
        kept.forget()  # a hook fired from the page meanwhile
        gate.set()
        assert await warm == "before the fire"
        assert await kept.get(T, read) == "after the fire"  # within FRESH of the first read

    asyncio.run(main())
