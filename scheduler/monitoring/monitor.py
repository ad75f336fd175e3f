"""The running service's monitor: records what its ticks, recovery rounds and expiry scans did,
says whether it is ready (ledger, migrations, ticker), and renders its metrics when scraped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST

from scheduler.clock import Clock
from scheduler.common.wording import counted
from scheduler.cron.timing import SLOT_LENGTH
from scheduler.durations import format_duration
from scheduler.expiry.model import ExpiryEvent
from scheduler.ledger import AsyncLedger, MonitorLedger
from scheduler.monitoring.metrics import Metrics
from scheduler.outcomes import FireResult, SlotResult

# Ticks come every slot: two without one means the ticker has stopped (or hangs).
STALE_AFTER = 2 * SLOT_LENGTH
# A ledger that takes longer than this to answer a probe does not answer.
LEDGER_PATIENCE = timedelta(seconds=3)

Result = TypeVar("Result")


@dataclass
class Monitor:
    """The service's account of itself, on its ledger and clock (the one ticks are judged by).

    `ready` asks the ledger, and judges the ticker by when its last tick ended; the service's
    start counts as one, so that a service is given two slots for its first tick as for any.
    """

    ledger: AsyncLedger[MonitorLedger]
    clock: Clock
    metrics: Metrics = field(default_factory=Metrics)
    last_tick: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.last_tick = self.clock()

    def ticked(self, results: Sequence[SlotResult], *, seconds: float) -> None:
        """A tick ended, having evaluated `results`, after `seconds`."""
        now = self.clock()
        self.metrics.slots_evaluated(results, now=now)
        self.metrics.tick_took(seconds)
        self.last_tick = now

    def fired(self, fires: Sequence[FireResult]) -> None:
        """Fires made outside a tick: by a recovery round (or found claimed), or by hand."""
        self.metrics.fires_made(fires)

    def expiry_scanned(
        self, project: str, events: Sequence[ExpiryEvent], *, seconds: float
    ) -> None:
        self.metrics.expiry_scanned(project, events, seconds=seconds)

    async def readiness(self) -> dict[str, str | None]:
        """Each check (ledger, migrations, ticker) and what is wrong with it (None: nothing)."""
        checks: dict[str, str | None] = {"ledger": None, "migrations": None}
        try:
            pending = await self._ask(lambda ledger: ledger.pending_migrations())
        except Exception as error:
            checks["ledger"] = _unanswered(error)
            checks["migrations"] = "not known: the ledger does not answer"
        else:
            if pending:
                checks["migrations"] = (
                    f"{counted(len(pending), 'migration')} of the ledger's schema not applied "
                    f"({', '.join(reversed(pending))}); restarting the service applies them"
                )
        checks["ticker"] = self._ticker(self.clock())
        return checks

    async def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type; the outbox's gauges
        are read from the ledger now (left out if it does not answer)."""
        try:
            backlog = await self._ask(lambda ledger: ledger.backlog())
        except Exception:
            backlog = None
        self.metrics.outbox(backlog, now=self.clock())
        return self.metrics.exposition(), CONTENT_TYPE_LATEST

    def _ticker(self, now: datetime) -> str | None:
        since = now - self.last_tick
        if since <= STALE_AFTER:
            return None
        return (
            f"the last tick ended {format_duration(since)} ago ({self.last_tick:%Y-%m-%d %H:%M} "
            f"UTC), more than two slots: the ticker has stopped"
        )

    async def _ask(self, work: Callable[[MonitorLedger], Result]) -> Result:
        return await asyncio.wait_for(self.ledger.run(work), LEDGER_PATIENCE.total_seconds())


def _unanswered(error: Exception) -> str:
    """What a failed probe says: the kind of failure only (a driver's text may name hosts)."""
    if isinstance(error, TimeoutError):
        return f"the ledger did not answer within {format_duration(LEDGER_PATIENCE)}"
    return f"the ledger does not answer ({type(error).__name__})"
