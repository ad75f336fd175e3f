"""The notifier: reports what the engine and the expiry watch did, follows what they started
(the watcher) and delivers the outbox (the postman), built from the service configuration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from scheduler.config.model import Config
from scheduler.engine import Engine
from scheduler.expiry.model import ExpiryEvent
from scheduler.findings import Checked
from scheduler.ledger import AsyncLedger, Ledger, Notice, NotifierLedger
from scheduler.notify.outbox import Postman
from scheduler.notify.routing import Router
from scheduler.notify.slack import SlackSender
from scheduler.outcomes import SlotResult
from scheduler.reports.reporter import Reporter
from scheduler.watcher import Watcher

log = structlog.get_logger("tc_scheduler.service")


@dataclass
class Notifier:
    """Reports what the engine and the expiry watch did, follows what they started, and
    delivers the outbox: the service's half of notifications."""

    ledger: AsyncLedger[NotifierLedger]
    reporter: Reporter
    watcher: Watcher
    postman: Postman
    clock: Callable[[], datetime]
    # Ticks, scans and the interval job all ask for rounds; one at a time is enough.
    _round: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    async def slots_evaluated(self, results: Sequence[SlotResult]) -> None:
        now = self.clock()
        notices = [n for result in results for n in self.reporter.slot_evaluated(result, now)]
        await self._queue(notices, now)

    async def preflight_checked(self, checked: Checked) -> None:
        """A project's preflight: what Taskcluster would refuse, once per revision."""
        now = self.clock()
        await self._queue(self.reporter.preflight_checked(checked, now), now)

    async def expiry_scanned(self, project: str, events: Sequence[ExpiryEvent]) -> None:
        """The events of one expiry scan of `project` (one says so if the scan failed)."""
        now = self.clock()
        await self._queue(self.reporter.expiry_scanned(project, events, now), now)

    async def _queue(self, notices: Sequence[Notice], now: datetime) -> None:
        """Queue `notices` in the outbox (incidents kept), to be delivered by the postman."""
        await self.ledger.run(lambda ledger: ledger.report(notices, now=now))

    async def round(self, *, reads: bool = True) -> None:
        """Follow what was started one step, then send what is due. Failures are logged.
        Without `reads`, the step makes no Taskcluster call (see Watcher.step)."""
        async with self._round:
            try:
                await self.watcher.step(reads=reads)
            except Exception:
                log.exception("watching failed; trying again next round")
            try:
                await self.postman.deliver()
            except Exception:
                log.exception("delivering notifications failed; trying again next round")


def open_notifier(config: Config, engine: Engine, ledger: AsyncLedger[Ledger]) -> Notifier:
    """The notifier of a service whose engine is `engine`, on its `ledger`."""
    router = Router(config.notify)
    reporter = Reporter(
        router,
        canceled=config.notify.canceled,
        deadline_exceeded=config.notify.deadline_exceeded,
    )
    slack = config.notify.slack
    sender = (
        SlackSender(token=slack.token, webhook_url=slack.webhook_url, base_url=slack.api_url)
        if slack is not None
        else None
    )
    postman = Postman(
        ledger,
        router,
        config.root_url,
        config.replica,
        engine.clock,
        slack=sender,
        give_up_after=config.notify.give_up_after,
    )
    watcher = Watcher(engine.clients_of, ledger, reporter, engine.clock)
    return Notifier(ledger, reporter, watcher, postman, engine.clock)
