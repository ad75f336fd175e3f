"""Group commit: callers arriving together share one write, those arriving during a write share
the next, each gets its own answers, and a failing shared write costs no caller but the one
whose items fail."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.engine.group_commit import GroupCommit


class Ledgerish:
    """A write that answers each item doubled, records what each write was given, can be held
    open, and refuses any item that is negative."""

    def __init__(self) -> None:
        self.writes: list[list[int]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def write(self, items: list[int]) -> list[int]:
        self.writes.append(list(items))
        await self.hold.wait()
        if any(item < 0 for item in items):
            raise ValueError(f"refused {items}")
        return [item * 2 for item in items]


def test_callers_arriving_together_share_one_write_and_each_gets_its_part() -> None:
    async def scenario() -> tuple[list[list[int]], list[list[int]]]:
        ledger = Ledgerish()
        commit = GroupCommit(ledger.write)
        answers = await asyncio.gather(commit([1, 2]), commit([3]), commit([4, 5, 6]))
        return list(answers), ledger.writes

    answers, writes = asyncio.run(scenario())
    assert answers == [[2, 4], [6], [8, 10, 12]]
    assert writes == [[1, 2, 3, 4, 5, 6]]


def test_callers_arriving_during_a_write_go_together_in_the_next() -> None:
    async def scenario() -> tuple[list[list[int]], list[list[int]]]:
        ledger = Ledgerish()
        ledger.hold.clear()
        commit = GroupCommit(ledger.write)
        first = asyncio.ensure_future(commit([1]))
        for _ in range(100):  # until the first write is under way, held open
            if ledger.writes:
                break
            await asyncio.sleep(0)
        later = [asyncio.ensure_future(commit([n])) for n in (2, 3)]
        await asyncio.sleep(0)
        assert ledger.writes == [[1]]  # nobody joined a write already under way
        ledger.hold.set()
        return [await first, *[await one for one in later]], ledger.writes

    answers, writes = asyncio.run(scenario())
    assert answers == [[2], [4], [6]]
    assert writes == [[1], [2, 3]]


def test_a_failing_shared_write_is_written_again_caller_by_caller() -> None:
    async def scenario() -> list[list[int] | BaseException]:
        ledger = Ledgerish()
        commit = GroupCommit(ledger.write)
        answers = await asyncio.gather(
            commit([1]), commit([-1, 2]), commit([3]), return_exceptions=True
        )
        assert ledger.writes == [[1, -1, 2, 3], [1], [-1, 2], [3]]
        return answers

    good, bad, other = asyncio.run(scenario())
    assert (good, other) == ([2], [6])
    assert isinstance(bad, ValueError)
    assert "refused [-1, 2]" in str(bad)


def test_a_caller_alone_writes_alone_and_nothing_is_written_for_nothing() -> None:
    async def scenario() -> tuple[list[int], list[int], list[list[int]]]:
        ledger = Ledgerish()
        commit = GroupCommit(ledger.write)
        return await commit([7]), await commit([]), ledger.writes

    alone, nothing, writes = asyncio.run(scenario())
    assert (alone, nothing, writes) == ([14], [], [[7]])


def test_a_single_callers_error_is_its_own() -> None:
    async def scenario() -> None:
        commit = GroupCommit(Ledgerish().write)
        with pytest.raises(ValueError, match="refused"):
            await commit([-3])
        assert await commit([4]) == [8]  # the next write is not held back by the failed one

    asyncio.run(scenario())


def test_a_cancelled_callers_items_are_still_written_and_settled_waits_for_them() -> None:
    """A fire cancelled at shutdown while its outcomes wait for the next shared write: they
    are written all the same, and `settled` (release_all's) returns only once they are."""

    async def scenario() -> list[list[int]]:
        ledger = Ledgerish()
        ledger.hold.clear()
        commit = GroupCommit(ledger.write)
        first = asyncio.ensure_future(commit([1]))
        for _ in range(100):
            if ledger.writes:
                break
            await asyncio.sleep(0)
        gone = asyncio.ensure_future(commit([2]))  # waits for the next write
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        settled = asyncio.ensure_future(commit.settled())
        await asyncio.sleep(0)
        assert not settled.done()  # the first write is still held open
        ledger.hold.set()
        await settled
        assert await first == [2]
        return ledger.writes

    assert asyncio.run(scenario()) == [[1], [2]]
