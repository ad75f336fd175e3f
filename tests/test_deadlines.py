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


def test_each_call_has_a_deadline_of_its_own() -> None:
    """A method is bounded the same way at every call, however often it is asked for."""
    bounded = Bounded("queue", Service(), SOON)

    async def twice() -> None:
        assert await bounded.ping(1) == 1
        with pytest.raises(DeadlineExceededError):
            await bounded.hang()
        assert await bounded.ping(2) == 2
        with pytest.raises(DeadlineExceededError):
            await bounded.hang()

    asyncio.run(twice())


def test_the_task_goes_on_after_a_deadline_as_if_never_cancelled() -> None:
    async def after_the_deadline() -> int:
        with pytest.raises(DeadlineExceededError):
            await within(SOON, "queue.task", never())
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # would raise if the task were still being cancelled
        return task.cancelling()

    assert asyncio.run(after_the_deadline()) == 0


def test_a_cancellation_from_outside_is_not_taken_for_the_deadline() -> None:
    async def cancelled_meanwhile() -> None:
        waiting = asyncio.create_task(within(timedelta(hours=1), "queue.task", never()))
        await asyncio.sleep(0)
        waiting.cancel()
        await waiting

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled_meanwhile())


def test_work_that_ends_otherwise_when_cancelled_at_its_deadline_is_its_own_answer() -> None:
    async def stops_politely() -> str:
        try:
            await never()
        except asyncio.CancelledError:
            return "stopped"
        return "never"

    async def politely() -> tuple[str, int]:
        answer = await within(SOON, "queue.task", stops_politely())
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)
        return answer, task.cancelling()

    assert asyncio.run(politely()) == ("stopped", 0)
