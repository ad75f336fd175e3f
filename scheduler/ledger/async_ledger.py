"""The one boundary between asyncio code and the synchronous ledger: work on it runs in a thread.

A consumer holds `AsyncLedger[ItsPort]` and hands it work that takes the ledger as its port:

    await self.ledger.run(lambda ledger: ledger.finish_many(outcomes, now=now))

mypy gives the lambda's parameter the port's type, so only the port's methods type-check. The
composition root wraps its one `Ledger` in one `AsyncLedger`, which fits every consumer's port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Generic, TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay

from scheduler.durations import format_duration
from scheduler.ledger.connecting import LedgerUnreachableError
from scheduler.ledger.ledger import Ledger
from scheduler.retrying import retry_wait

log = structlog.get_logger("tc_scheduler.ledger")

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
async def open_async_ledger(
    url: str, *, wait: timedelta = timedelta(0), stop: asyncio.Event | None = None
) -> AsyncIterator[AsyncLedger[Ledger]]:
    """The ledger at `url`, opened (and migrated) and closed off the loop, behind the boundary.

    While its database does not answer, opening is tried again for up to `wait` (backing off as
    a failed fire does, `retrying.retry_wait`), each failed attempt logged as one line, unless
    `stop` is set meanwhile; then the last LedgerUnreachableError is raised, saying so.
    """
    ledger = await _patiently(lambda: Ledger.open(url), wait, stop or asyncio.Event())
    boundary = AsyncLedger(ledger)
    try:
        yield boundary
    finally:
        await boundary.run(lambda opened: opened.close())


async def upgrade_async_ledger(
    url: str, *, wait: timedelta = timedelta(0)
) -> tuple[str | None, str]:
    """`Ledger.upgrade` of the ledger at `url`, off the loop: (the revision it was at, None if
    new; the revision it is at now). A database that does not answer is waited for as
    `open_async_ledger` waits."""
    return await _patiently(lambda: Ledger.upgrade(url), wait, asyncio.Event())


async def _patiently(attempt: Callable[[], Result], wait: timedelta, stop: asyncio.Event) -> Result:
    """`attempt()` in a thread, tried again while the ledger's database does not answer, for
    up to `wait` or until `stop` is set."""
    patience = wait.total_seconds()
    waited_long_enough = stop_after_delay(patience)

    def pause(state: RetryCallState) -> float:
        # Never past the end of the wait: the last attempt comes at the end of it at latest.
        left = patience - (state.seconds_since_start or 0.0)
        return max(0.0, min(retry_wait(state.attempt_number).total_seconds(), left))

    async def sleep(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):  # a stop ends the pause at once
            await asyncio.wait_for(stop.wait(), seconds)

    attempts = AsyncRetrying(
        stop=lambda state: stop.is_set() or waited_long_enough(state),
        wait=pause,
        sleep=sleep,
        retry=retry_if_exception_type(LedgerUnreachableError),
        before_sleep=_log_attempt,
        reraise=True,
    )
    try:
        return await attempts(asyncio.to_thread, attempt)
    except LedgerUnreachableError as error:
        if stop.is_set():
            raise LedgerUnreachableError(f"{error}; stopped while waiting for it") from None
        if not patience:
            raise
        raise LedgerUnreachableError(
            f"{error}; gave up after waiting {format_duration(wait)} (ledger-wait in the "
            "configuration says how long)"
        ) from None


def _log_attempt(state: RetryCallState) -> None:
    """One line per failed attempt: what the database said (no password, no traceback)."""
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "the ledger does not answer; trying again",
        error=str(error),
        attempt=state.attempt_number,
        retry_in=format_duration(timedelta(seconds=round(wait))),
    )
