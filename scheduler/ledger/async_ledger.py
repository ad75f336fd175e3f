"""The one boundary between asyncio code and the synchronous ledger: work on it runs in a thread.

`AsyncLedger[EngineLedger]` hands the ledger, seen through a consumer's port, to work off the loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import scheduler.ledger.ports as port_protocols

Port_co = TypeVar("Port_co", covariant=True)
Params = ParamSpec("Params")
Result = TypeVar("Result")


class AsyncLedger(Generic[Port_co]):
    """Runs ledger work in a worker thread, so that the event loop never waits on the database.

    `await ledger.run(EngineLedger.finish_many, outcomes, now=now)` calls the ledger's
    `finish_many(outcomes, now=now)` in a thread, the arguments evaluated on the loop as a
    call's are; `await ledger.run(last_fires, project)` runs a function whose first
    parameter is the ledger (say, several reads in one go). mypy checks the arguments
    against the method or function, and offers only the port's methods.
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
        call: Callable[..., Result] = work
        if _is_port_method(work):
            # A port's method is only a signature: call the ledger's method of that name.
            call = getattr(type(self._ledger), work.__name__)
        return await asyncio.to_thread(call, self._ledger, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<AsyncLedger of {self._ledger!r}>"


def _is_port_method(work: Callable[..., Any]) -> bool:
    """Whether `work` is a method of one of the Protocols in `ports.py` (say
    `EngineLedger.finish_many`), not a function that does the work itself."""
    if not inspect.isfunction(work) or work.__module__ != port_protocols.__name__:
        return False
    owner, _, name = work.__qualname__.partition(".")
    return getattr(getattr(port_protocols, owner, None), name, None) is work
