"""Group commit: ledger writes asked for while one is under way go together in the next, so a
tick's projects, each claiming and recording on its own, share a few transactions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from scheduler.common import logs

log = structlog.get_logger("tc_scheduler.engine")

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class GroupCommit(Generic[Item, Answer]):
    """Calls `write` with the items of every caller waiting, and hands each caller its part.

    A caller alone waits only for the event loop's next turn; callers that arrive while a write
    is under way wait for it and then go together, as a database's group commit does: no timer,
    no caller held back for another. `write` answers one value per item, in order. If a shared
    write fails, each caller's items are written alone, so one caller's bad item (or a failure
    that passes) never fails another's; a caller gets the error of its own write.
    """

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Answer]]]) -> None:
        self._write = write
        self._waiting: list[tuple[Sequence[Item], asyncio.Future[list[Answer]]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, items: Sequence[Item]) -> list[Answer]:
        """`write(items)`, shared with whoever else asks meanwhile."""
        if not items:
            return []
        answer: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, answer))
        if self._writer is None or self._writer.done():
            # Not the caller's context: the writer works for every caller, not this one's fire.
            self._writer = asyncio.create_task(self._drain(), context=logs.unbound())
        return await answer

    async def settled(self) -> None:
        """Until everything asked for so far is written (or has failed). A caller cancelled
        while it waited still has its items written: on shutdown, wait for them before the
        loop and the ledger close (closing would cancel the writer and drop them)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})  # neither raises nor, if we go, cancels it

    async def _drain(self) -> None:
        group: list[tuple[Sequence[Item], asyncio.Future[list[Answer]]]] = []
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._write_group(group)
        except BaseException:
            # Cancelled (the loop is closing): no caller is left waiting for an answer.
            for _, answer in [*group, *self._waiting]:
                answer.cancel()
            self._waiting = []
            raise

    async def _write_group(
        self, group: list[tuple[Sequence[Item], asyncio.Future[list[Answer]]]]
    ) -> None:
        if len(group) > 1:
            try:
                answers = await self._write([item for items, _ in group for item in items])
            except Exception as error:
                log.warning(
                    "a shared ledger write failed; writing each caller's alone", error=str(error)
                )
            else:
                start = 0
                for items, answer in group:
                    if not answer.done():
                        answer.set_result(answers[start : start + len(items)])
                    start += len(items)
                return
        for items, answer in group:
            try:
                result = await self._write(list(items))
            except Exception as error:  # the caller's own write: its error is the caller's
                if not answer.done():
                    answer.set_exception(error)
            else:
                if not answer.done():
                    answer.set_result(result)
