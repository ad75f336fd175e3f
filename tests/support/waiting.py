"""Waiting for what another thread or process does: the limit only ever guards against a hang,
so a slow or loaded machine waits longer and never fails for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

HANG_GUARD = 300.0  # seconds: far more than anything takes, however loaded the machine


def wait_until(condition: Callable[[], bool], timeout: float = HANG_GUARD) -> bool:
    """Poll `condition` until it holds (True), or until the hang guard gives up (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def until_while_running(condition: Callable[[], bool], running: asyncio.Task[None]) -> None:
    """Poll `condition` on the event loop beside the service task `running`, which must not
    end meanwhile (the hang guard only guards)."""
    for _ in range(int(HANG_GUARD / 0.05)):
        assert not running.done(), running.result()
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail("waited for as long as the hang guard allows")
