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
    scope = asyncio.timeout(deadline.total_seconds())
    try:
        async with scope:
            return await work
    except TimeoutError:
        if scope.expired():
            raise DeadlineExceededError(call, deadline) from None
        raise


class Bounded:
    """`target` with each of its coroutine methods ended within `deadline` (see `within`),
    named `<name>.<method>`; its other attributes are its own, unchanged."""

    def __init__(self, name: str, target: Any, deadline: timedelta) -> None:
        self._name = name
        self._target = target
        self._deadline = deadline

    def __getattr__(self, attribute: str) -> Any:
        method = getattr(self._target, attribute)
        if not inspect.iscoroutinefunction(method):
            return method
        call = f"{self._name}.{attribute}"
        deadline = self._deadline

        @functools.wraps(method)
        async def bounded(*args: Any, **kwargs: Any) -> Any:
            return await within(deadline, call, method(*args, **kwargs))

        # Kept as this object's own attribute: later reads find it without asking again.
        setattr(self, attribute, bounded)
        return bounded
