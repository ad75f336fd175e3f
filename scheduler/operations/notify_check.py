"""The notification check: a test message through the real path (the outbox, then Slack) and a
test event to Sentry, with where each went or why it did not.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Protocol

from scheduler.engine import Engine
from scheduler.ledger import AsyncLedger, OperationsLedger
from scheduler.notify import sentry
from scheduler.notify.outbox import Postman
from scheduler.notify.routing import SLACK_PREFIX, channel_of
from scheduler.operations.models import DeliveryOut, NotifyTestOut
from scheduler.reports.reporter import Reporter


class Notifying(Protocol):
    """The parts of the service's notifier a test message goes through."""

    @property
    def reporter(self) -> Reporter: ...

    @property
    def postman(self) -> Postman: ...


async def send_test(
    engine: Engine,
    ledger: AsyncLedger[OperationsLedger],
    notifying: Notifying,
    channel: str | None,
) -> NotifyTestOut:
    """Queue a test notice (to `channel` instead of the routed channels, if given), deliver the
    outbox, and send Sentry a test event if Sentry is configured."""
    config = engine.config
    event = notifying.reporter.test(
        config.projects[0].name if config.projects else "tc-scheduler",
        replica=config.replica,
        now=engine.clock(),
    )
    if channel is not None:
        event = dataclasses.replace(event, destinations=(f"{SLACK_PREFIX}{channel}",))
    now = engine.clock()
    await ledger.run(lambda port: port.report([event], now=now))
    await notifying.postman.deliver()
    letters = await ledger.run(lambda port: port.letters(key=event.key))
    event_id = await asyncio.to_thread(sentry.test) if config.notify.sentry else None
    return NotifyTestOut(
        slack=[
            DeliveryOut(
                destination=channel_of(letter.destination) or "the incoming webhook",
                state=letter.state,
                error=letter.last_error,
            )
            for letter in letters
        ],
        sentry_event_id=event_id,
    )
