"""The one boundary between asyncio code and the synchronous ledger: work on it runs in a thread.

`AsyncLedger[EngineLedger]` hands the ledger, seen through a consumer's port, to work off the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Concatenate, Generic, ParamSpec, TypeVar

Port_co = TypeVar("Port_co", covariant=True)
Params = ParamSpec("Params")
Result = TypeVar("Result")


class AsyncLedger(Generic[Port_co]):
    """Runs ledger work in a worker thread, so that the event loop never waits on the database.

    `await ledger.run(EngineLedger.finish_many, outcomes, now=now)` calls
    `finish_many(outcomes, now=now)` on the ledger in a thread (the arguments are evaluated
    on the loop, as the call's are); `await ledger.run(read_both, project)` runs a function
    whose first parameter is the ledger, for several reads in one go. Typed end to end: mypy
    checks the arguments against the method, and only the port's methods are offered.
    """

    def __init__(self, ledger: Port_co) -> None:
        self._ledger = ledger

    async def run(
        self,
        work: Callable[Concatenate[Port_co, Params], Result],
        /,
        *args: Params.args,
        **kwargs: Params.kwargs,
    ) -> Result:
        """`work(ledger, *args, **kwargs)`, run in a thread (contextvars carried over)."""
        return await asyncio.to_thread(work, self._ledger, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<AsyncLedger of {self._ledger!r}>"
