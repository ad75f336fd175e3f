"""Waiting for what another thread or process does: the limit only ever guards against a hang,
so a slow or loaded machine waits longer and never fails for it."""

from __future__ import annotations

import time
from collections.abc import Callable

HANG_GUARD = 300.0  # seconds: far more than anything takes, however loaded the machine


def wait_until(condition: Callable[[], bool], timeout: float = HANG_GUARD) -> bool:
    """Poll `condition` until it holds (True), or until the hang guard gives up (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
