"""What the ledger hands out and takes in about notices: what a notice says and to whom, the
incidents that hold repeated failures back, and the outbox's letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Health(StrEnum):
    """What a notice says about its subject's health."""

    NONE = "none"
    """Not about health: always sent (once per key)."""
    FAILING = "failing"
    """Sent if it opens an incident, or if its fingerprint differs from the open one's."""
    HEALTHY = "healthy"
    """Sent, as a recovery in the incident's thread, only if it closes an open incident."""


@dataclass(frozen=True)
class Notice:
    """An event to deliver to `destinations`, once per (key, destination).

    `subject` (say `job:project/nightly`) groups the notices about one thing's health: while
    its incident is open, further failures are counted instead of sent.
    """

    key: str
    event: dict[str, Any]
    destinations: tuple[str, ...]
    subject: str | None = None
    health: Health = Health.NONE
    fingerprint: str | None = None


@dataclass(frozen=True)
class Incident:
    """A subject's run of failures, from the first failure to the first success after it."""

    id: int
    subject: str
    opened_at: datetime
    opened_by: str  # the key of the notice that opened it
    thread_key: str  # the key of the latest message sent about it: recoveries reply there
    fingerprint: str | None
    failures: int
    closed_at: datetime | None


class LetterState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    """Given up on: a permanent error, or retried for longer than the outbox allows."""


@dataclass(frozen=True)
class Letter:
    """One notice for one destination in the outbox.

    `incident` is the closed incident a recovery reports; `thread` is where a reply goes: what
    the destination answered when the message it replies to was sent (say Slack's ts).
    `replica` and `lease_until` say who holds a letter `take_letters` handed out, and until when.
    `fire_id` names the fire a letter is about (queued by a step of its watch): while the letter
    is pending, the fire is kept.
    """

    id: int
    key: str
    destination: str
    event: dict[str, Any]
    state: LetterState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    reply_to: str | None = None
    incident: dict[str, Any] | None = None
    thread: dict[str, Any] | None = None
    posted: dict[str, Any] | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    replica: str | None = None
    lease_until: datetime | None = None
    fire_id: int | None = None  # the fire whose watch step queued it, if one did


@dataclass(frozen=True)
class Backlog:
    """The letters of one destination not delivered yet, and when the oldest was queued."""

    destination: str
    letters: int
    oldest: datetime
