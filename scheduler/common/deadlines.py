"""Waiting with a deadline: work still going on at its deadline is abandoned and raises
DeadlineExceededError naming the call and how long it was given; `Bounded` bounds every call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceededError(TimeoutError):
    """`call` was still going on after `after`, and was abandoned: what it did meanwhile (a
    request the other side received) is not known."""

    def __init__(self, call: str, after: timedelta) -> None:
        super().__init__(f"{call} was abandoned after {after.total_seconds():g} s")
        self.call = call
        self.after = after


async def within(deadline: timedelta, call: str, work: Awaitable[T]) -> T:
    """The result of `work` (the call named `call`), or DeadlineExceededError if it is still
    going on after `deadline`. A timeout inside `work` is its own, and passes unchanged."""
    return await _within(deadline.total_seconds(), deadline, call, work)


class _Expiry:
    """The timer of one wait, which cancels the waiting task at the deadline."""

    __slots__ = ("_expired", "_task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._expired = False

    def expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def withdrawn(self) -> bool:
        """Whether the timer had cancelled the task, that cancellation withdrawn (once)."""
        if not self._expired:
            return False
        self._expired = False
        self._task.uncancel()
        return True


# asyncio.timeout's way (cancel the task at the deadline; the cancellation is the deadline's
# only if no other one is pending), without its state machine: every Taskcluster call waits so,
# and the event loop is busiest when hundreds of calls start at once.
async def _within(seconds: float, deadline: timedelta, call: str, work: Awaitable[T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None, "a deadline is the waiting task's"
    cancelling = task.cancelling()
    expiry = _Expiry(task)
    timer = loop.call_at(loop.time() + seconds, expiry.expire)
    try:
        return await work
    except asyncio.CancelledError:
        if expiry.withdrawn() and task.cancelling() <= cancelling:
            raise DeadlineExceededError(call, deadline) from None
        raise
    finally:
        timer.cancel()
        # The work caught the deadline's cancellation and ended otherwise.
        expiry.withdrawn()


class Bounded:
    """`target` with each of its coroutine methods ended within `deadline` (see `within`),
    named `<name>.<method>`; its other attributes are its own, unchanged."""

    def __init__(self, name: str, target: Any, deadline: timedelta) -> None:
        self._name = name
        self._target = target
        self._deadline = deadline
        self._seconds = deadline.total_seconds()

    def __getattr__(self, attribute: str) -> Any:
        method = getattr(self._target, attribute)
        if not inspect.iscoroutinefunction(method):
            return method
        call = f"{self._name}.{attribute}"
        deadline, seconds = self._deadline, self._seconds

        @functools.wraps(method)
        async def bounded(*args: Any, **kwargs: Any) -> Any:
            return await _within(seconds, deadline, call, method(*args, **kwargs))

        # Kept as this object's own attribute: later reads find it without asking again.
        setattr(self, attribute, bounded)
        return bounded
