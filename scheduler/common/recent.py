"""A read that costs calls to another service, kept for a while: every asker within `fresh_for`
of the last read gets its answer; a later asker gets it too while it is read anew behind them
(stale while revalidating), and only the first asker ever waits for a read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("tc_scheduler.recent")


class RecentRead(Generic[T]):
    """The last answer of a costly read, fresh for `fresh_for` on the caller's clock."""

    def __init__(self, fresh_for: timedelta) -> None:
        self.fresh_for = fresh_for
        self._answer: tuple[datetime, T] | None = None
        self._first = asyncio.Lock()
        self._renewing: asyncio.Task[None] | None = None
        self._generation = 0  # forget() starts a new one: older reads are not kept

    async def get(self, now: datetime, read: Callable[[], Awaitable[T]]) -> T:
        """The latest answer, renewed behind the asker once older than `fresh_for`; with no
        answer yet, `read()`'s (askers at the same time share that one read)."""
        if self._answer is None:
            async with self._first:
                read_meanwhile = self._latest()  # by another asker, while this one waited
                if read_meanwhile is not None:
                    return read_meanwhile[1]
                generation = self._generation
                answer = await read()
                if generation == self._generation:  # not forgotten while it was read
                    self._answer = (now, answer)
                return answer
        at, answer = self._answer
        if now - at >= self.fresh_for and self._renewing is None:
            self._renewing = asyncio.create_task(self._renew(now, read))
        return answer

    def _latest(self) -> tuple[datetime, T] | None:
        return self._answer

    async def settled(self) -> None:
        """Once the renewal under way, if any, has ended."""
        if self._renewing is not None:
            await asyncio.shield(self._renewing)

    def forget(self) -> None:
        """The next asker reads anew, and waits for it (what was read has just changed)."""
        self._answer = None
        self._generation += 1

    async def _renew(self, now: datetime, read: Callable[[], Awaitable[T]]) -> None:
        generation = self._generation
        try:
            answer = await read()
            if generation == self._generation:
                self._answer = (now, answer)
        except Exception:  # the last answer stands; the next asker tries again
            log.exception("a read behind the pages failed")
        finally:
            self._renewing = None
