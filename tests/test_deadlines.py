"""Waiting with a deadline (common/deadlines.py): work past it is abandoned and named, a timeout
of the work's own passes unchanged, and `Bounded` bounds every call of what it wraps."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from scheduler.common.deadlines import Bounded, DeadlineExceededError, within

SOON = timedelta(milliseconds=10)


async def never() -> None:
    await asyncio.Event().wait()


class Service:
    root_url = "https://tc.example.com"

    async def ping(self, answer: Any) -> Any:
        return answer

    async def hang(self) -> None:
        await never()


def test_work_past_its_deadline_is_abandoned_and_named() -> None:
    with pytest.raises(DeadlineExceededError) as raised:
        asyncio.run(within(SOON, "queue.createTask", never()))
    assert (raised.value.call, raised.value.after) == ("queue.createTask", SOON)
    assert isinstance(raised.value, TimeoutError)


def test_a_timeout_of_the_works_own_is_not_taken_for_the_deadline() -> None:
    async def own_timeout() -> None:
        raise TimeoutError("the socket's")

    with pytest.raises(TimeoutError, match="the socket's") as raised:
        asyncio.run(within(timedelta(hours=1), "queue.task", own_timeout()))
    assert not isinstance(raised.value, DeadlineExceededError)


def test_bounded_bounds_each_call_and_leaves_the_rest_alone() -> None:
    bounded = Bounded("queue", Service(), SOON)
    assert bounded.root_url == Service.root_url
    assert asyncio.run(bounded.ping(42)) == 42
    assert bounded.hang.__qualname__ == "Service.hang"
    with pytest.raises(DeadlineExceededError) as raised:
        asyncio.run(bounded.hang())
    assert raised.value.call == "queue.hang"
