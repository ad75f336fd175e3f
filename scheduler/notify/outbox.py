"""Delivering the ledger's outbox: each destination's letters in order, once, retried with backoff.

Runs beside scheduling, never in its way: a slow or absent Slack delays messages, not fires.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
import tenacity

from scheduler.ledger import AsyncLedger, Letter, OutboxLedger
from scheduler.notify import sentry
from scheduler.notify.events import Event
from scheduler.notify.routing import SENTRY, Router, channel_of
from scheduler.notify.slack import DeliveryError, Posted
from scheduler.notify.slack_message import SlackMessage, render

log = structlog.get_logger("tc_scheduler.notify")

# Between attempts of one letter: 10 s, 20 s, 40 s ... up to 10 minutes, with jitter, so a
# Slack that is back is used within minutes and one that is down is not hammered.
BACKOFF = tenacity.wait_exponential(multiplier=5, max=600) + tenacity.wait_random(0, 5)
# Letters being delivered are leased this long and renewed every third of it: a replica that
# dies mid-send holds its letters back for about a minute, not more.
LEASE = timedelta(minutes=1)


@dataclass
class _Held:
    """A round's letters not settled yet, as last renewed; `lock` keeps a renewal and a
    settlement of one letter from crossing (a letter's lease is part of what says it is held)."""

    letters: dict[int, Letter]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def settle(self, letter: Letter) -> Letter:
        """`letter` as now held, no longer renewed (call under `lock`)."""
        current = self.letters.pop(letter.id, letter)
        return replace(letter, lease_until=current.lease_until)


class SlackPoster(Protocol):
    def post(
        self, message: SlackMessage, *, channel: str | None, thread_ts: str | None = None
    ) -> Posted: ...


@dataclass(frozen=True)
class Round:
    """What one delivery round did."""

    sent: int = 0
    retrying: int = 0
    given_up: int = 0


@dataclass
class Postman:
    ledger: AsyncLedger[OutboxLedger]
    router: Router
    root_url: str
    replica: str
    clock: Callable[[], datetime]
    slack: SlackPoster | None = None
    give_up_after: timedelta = timedelta(days=2)
    batch: int = 100

    async def deliver(self) -> Round:
        """Send what is due, each destination's letters in the order they were queued."""
        now = self.clock()
        letters = await self.ledger.run(
            lambda ledger: ledger.take_letters(
                replica=self.replica, now=now, lease=LEASE, limit=self.batch
            )
        )
        by_destination: dict[str, list[Letter]] = {}
        for letter in letters:
            by_destination.setdefault(letter.destination, []).append(letter)
        counts = {"sent": 0, "retrying": 0, "given_up": 0}
        held = _Held({letter.id: letter for letter in letters})
        renewing = asyncio.create_task(self._keep_leases(held))
        try:
            await asyncio.gather(
                *(self._in_order(ls, held, counts) for ls in by_destination.values())
            )
        finally:
            renewing.cancel()
        return Round(**counts)

    async def _keep_leases(self, held: _Held) -> None:
        """Renew the leases of this round's letters not settled yet, every third of a lease."""
        while held.letters:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            async with held.lock:
                for letter in await self._renew(list(held.letters.values())):
                    held.letters[letter.id] = letter

    async def _in_order(
        self, letters: Sequence[Letter], held: _Held, counts: dict[str, int]
    ) -> None:
        threads: dict[str, dict[str, Any]] = {}
        for index, taken in enumerate(letters):
            letter = taken
            if taken.reply_to is not None and taken.thread is None:
                # What it replies to went out earlier in this same round.
                letter = replace(taken, thread=threads.get(taken.reply_to))
            try:
                posted = await asyncio.to_thread(self._send, letter)
            except Exception as failure:
                error = failure if isinstance(failure, DeliveryError) else _internal(letter)
                async with held.lock:
                    current = held.settle(letter)
                    retrying = await self._record_failure(current, error)
                    counts["retrying" if retrying else "given_up"] += 1
                    if retrying:
                        # Later letters wait behind this one, so that order holds.
                        later = [held.settle(later) for later in letters[index + 1 :]]
                        await self._release(later)
                        return
                continue
            if posted is not None:
                threads[letter.key] = posted
            async with held.lock:
                await self._sent(held.settle(letter), posted)
            counts["sent"] += 1
            log.info("notified", key=letter.key, destination=letter.destination)

    async def _renew(self, letters: Sequence[Letter]) -> list[Letter]:
        """Renew the leases of `letters`: those still held, as renewed."""
        now = self.clock()
        return await self.ledger.run(
            lambda ledger: ledger.renew_letters(letters, now=now, lease=LEASE)
        )

    async def _release(self, letters: Sequence[Letter]) -> None:
        """Give `letters` back to the outbox untried, for a later round."""
        await self.ledger.run(lambda ledger: ledger.release_letters(letters))

    async def _sent(self, letter: Letter, posted: dict[str, Any] | None) -> None:
        """Record that `letter` went out (`posted`: where, for replies to thread under it)."""
        now = self.clock()
        await self.ledger.run(lambda ledger: ledger.letter_sent(letter, now=now, posted=posted))

    async def _record_failure(self, letter: Letter, error: DeliveryError) -> bool:
        """Record a failed attempt; whether the letter will be tried again."""
        retry_at = self._retry_at(letter, error)
        await self.ledger.run(
            lambda ledger: ledger.letter_failed(letter, error=error.message, retry_at=retry_at)
        )
        about = {
            "key": letter.key,
            "destination": letter.destination,
            "attempts": letter.attempts + 1,
            "error": error.message,
        }
        if retry_at is None:
            log.error("notification given up", **about)
            return False
        log.warning(
            "notification not delivered; will retry", retry_at=retry_at.isoformat(), **about
        )
        return True

    def _retry_at(self, letter: Letter, error: DeliveryError) -> datetime | None:
        """When a letter whose attempt failed with `error` is tried again; None: never."""
        now = self.clock()
        if not error.retryable or now - letter.created_at >= self.give_up_after:
            return None
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = letter.attempts + 1
        return now + timedelta(seconds=max(BACKOFF(state), error.retry_after or 0.0))

    def _send(self, letter: Letter) -> dict[str, Any] | None:
        if letter.destination == SENTRY:
            _check_in(letter.event)
            return None
        if self.slack is None:
            raise DeliveryError(
                f"{letter.destination}: Slack is not configured any more; set notify.slack",
                retryable=False,
            )
        event = _with_incident(Event.from_json(letter.event), letter.incident)
        message = render(event, root_url=self.root_url, mentions=self.router.mentions(event))
        thread_ts = (letter.thread or {}).get("ts")
        posted = self.slack.post(
            message, channel=channel_of(letter.destination), thread_ts=thread_ts
        )
        return {"channel": posted.channel, "ts": posted.ts} if posted.ts else None


def _internal(letter: Letter) -> DeliveryError:
    """A bug building or sending one letter costs that letter only, never the ones after it."""
    log.exception("notification failed in tc-scheduler", key=letter.key)
    return DeliveryError("internal error in tc-scheduler; see its log", retryable=False)


def _with_incident(event: Event, incident: dict[str, Any] | None) -> Event:
    """A recovery, with how long and how often it failed."""
    if not incident:
        return event
    since = datetime.fromisoformat(incident["opened_at"])
    facts = (
        ("Failing since", since.strftime("%Y-%m-%d %H:%M UTC")),
        ("Failures", str(incident["failures"])),
    )
    return replace(event, facts=(*event.facts, *facts))


def _check_in(payload: dict[str, Any]) -> None:
    slug = sentry.monitor_slug(payload["project"], payload["job"])
    sentry.check_in(
        slug,
        payload["status"],
        # Its run: the fire, or its rerun (letters queued before runs were named: the fire).
        check_in_id=sentry.check_in_id_for(f"fire-{payload.get('run', payload['fire'])}"),
        schedule=payload.get("schedule"),
    )
