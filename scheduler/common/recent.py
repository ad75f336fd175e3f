"""A read that costs calls to another service, kept for a while: every asker within `fresh_for`
of the last read gets its answer, and askers at the same time share one read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentRead(Generic[T]):
    """The last answer of a costly read, fresh for `fresh_for` on the caller's clock."""

    def __init__(self, fresh_for: timedelta) -> None:
        self.fresh_for = fresh_for
        self._answer: tuple[datetime, T] | None = None
        self._reading = asyncio.Lock()

    async def get(self, now: datetime, read: Callable[[], Awaitable[T]]) -> T:
        """The answer read at most `fresh_for` before `now`, or `read()`'s, kept for the next."""
        async with self._reading:  # whoever waited here gets the answer just read
            if self._answer is not None and now - self._answer[0] < self.fresh_for:
                return self._answer[1]
            answer = await read()
            self._answer = (now, answer)
            return answer

    def forget(self) -> None:
        """The next asker reads anew (what was read has just changed)."""
        self._answer = None
