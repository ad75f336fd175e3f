"""The one boundary between asyncio code and the synchronous ledger: work on it runs in a thread.

A consumer holds `AsyncLedger[ItsPort]` and hands it work that takes the ledger as its port:

    await self.ledger.run(lambda ledger: ledger.finish_many(outcomes, now=now))

mypy gives the lambda's parameter the port's type, so only the port's methods type-check. The
composition root wraps its one `Ledger` in one `AsyncLedger`, which fits every consumer's port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from scheduler.ledger.ledger import Ledger

# Covariant: an `AsyncLedger[Ledger]` is an `AsyncLedger[EngineLedger]`, and so on.
Port_co = TypeVar("Port_co", covariant=True)
Result = TypeVar("Result")


class AsyncLedger(Generic[Port_co]):
    """Runs ledger work in a worker thread, so that the event loop never waits on the database.

    `await ledger.run(work)` calls `work(ledger)` in a thread and answers what it returns (or
    raises what it raises); contextvars are carried over. Compute what the work needs (the
    time, say) before, on the loop: the work itself should only call the ledger. Several calls
    in one `work` run one after the other in the same thread, each in its own transaction.
    """

    def __init__(self, ledger: Port_co) -> None:
        self._ledger = ledger

    async def run(self, work: Callable[[Port_co], Result], /) -> Result:
        """`work(ledger)`, run in a worker thread (contextvars carried over)."""
        return await asyncio.to_thread(work, self._ledger)

    def __repr__(self) -> str:
        return f"<AsyncLedger of {self._ledger!r}>"


@asynccontextmanager
async def open_async_ledger(url: str) -> AsyncIterator[AsyncLedger[Ledger]]:
    """The ledger at `url`, opened (and migrated) and closed off the loop, behind the boundary."""
    ledger = await asyncio.to_thread(Ledger.open, url)
    boundary = AsyncLedger(ledger)
    try:
        yield boundary
    finally:
        await boundary.run(lambda opened: opened.close())
