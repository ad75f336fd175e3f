"""The outbox: letters (one notice for one destination) taken for delivery under a lease, in
each destination's order, and settled as sent, retried or given up on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from scheduler.common.redaction import scrub
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import LetterRow
from scheduler.ledger.notice_records import Backlog, Letter, LetterState
from scheduler.ledger.store import Store, aware, given, positive


class OutboxStore(Store):
    """The letters waiting, being delivered, sent and given up on."""

    def letters(
        self,
        *,
        key: str | None = None,
        state: LetterState | None = None,
        destination: str | None = None,
        limit: int | None = None,
    ) -> list[Letter]:
        """The outbox, oldest first."""
        query = (
            select(LetterRow)
            .filter_by(**given(key=key, state=state, destination=destination))
            .order_by(LetterRow.id)
        )
        return self._records(Letter, query.limit(limit))

    def letters_about(
        self,
        *,
        fire_id: int | None = None,
        project: str | None = None,
        except_keys: str | None = None,
        limit: int = 50,
    ) -> list[Letter]:
        """The letters about the fire `fire_id` (queued by its watch), or about `project` (its
        events name it), newest first: what people were told; without those whose key starts
        with `except_keys` (the many check-ins, say)."""
        query = select(LetterRow).order_by(LetterRow.id.desc()).limit(limit)
        if fire_id is not None:
            query = query.where(LetterRow.fire_id == fire_id)
        if project is not None:
            query = query.where(LetterRow.event["project"].as_string() == project)
        if except_keys is not None:
            query = query.where(~LetterRow.key.startswith(except_keys, autoescape=True))
        return self._records(Letter, query)

    def backlog(self) -> list[Backlog]:
        """Each destination's letters waiting to be delivered (taken or not), and when the
        oldest was queued: one grouped read of the pending letters."""
        query = (
            select(LetterRow.destination, func.count(), func.min(LetterRow.created_at))
            .where(LetterRow.state == LetterState.PENDING.value)
            .group_by(LetterRow.destination)
            .order_by(LetterRow.destination)
        )
        with self._transaction(writing=False) as session:
            return [Backlog(*row) for row in session.execute(query)]

    def take_letters(
        self, *, replica: str, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[Letter]:
        """Claim the letters due for delivery, oldest first, for `replica` until `now + lease`.

        Each destination's letters go out in the order they were queued: a destination's
        letters are taken up to the first one that is not due (backing off) or is held by
        another replica. What a reply replies to comes with it, as `thread`, once it was sent.
        """
        now = aware("now", now)
        lease_until = now + positive("lease", lease)
        with self._transaction(writing=True) as session:
            # Each destination's oldest pending letter says whether the destination is open:
            # a backlog waiting on one destination must not hide the others' letters.
            heads = (
                select(func.min(LetterRow.id))
                .where(LetterRow.state == LetterState.PENDING.value)
                .group_by(LetterRow.destination)
            )
            open_destinations = [
                row.destination
                for row in session.scalars(select(LetterRow).where(LetterRow.id.in_(heads)))
                if _takeable(row, now)
            ]
            pending = session.scalars(
                select(LetterRow)
                .where(
                    LetterRow.state == LetterState.PENDING.value,
                    LetterRow.destination.in_(open_destinations),
                )
                .order_by(LetterRow.id)
                .limit(limit)
            ).all()
            blocked: set[str] = set()
            taken: list[Letter] = []
            for row in pending:
                if row.destination in blocked:
                    continue
                if not _takeable(row, now):
                    blocked.add(row.destination)
                    continue
                claimed = session.execute(
                    update(LetterRow)
                    .where(
                        LetterRow.id == row.id,
                        LetterRow.state == LetterState.PENDING.value,
                        LetterRow.attempts == row.attempts,
                        # Re-checked on the row as it is now: of two replicas, one takes it.
                        or_(LetterRow.lease_until.is_(None), LetterRow.lease_until <= now),
                    )
                    .values(replica=replica, lease_until=lease_until)
                    .returning(LetterRow.id)
                    .execution_options(synchronize_session=False)
                ).scalar_one_or_none()
                if claimed is None:
                    blocked.add(row.destination)
                    continue
                taken.append(to_record(Letter, row, replica=replica, lease_until=lease_until))
            threads = _threads(session, taken)
            return [
                replace(letter, thread=threads.get((letter.reply_to, letter.destination)))
                for letter in taken
            ]

    def letter_sent(
        self, letter: Letter, *, now: datetime, posted: dict[str, Any] | None = None
    ) -> bool:
        """Record a delivery; False if the letter was no longer ours (its lease was taken)."""
        return self._settle(
            letter,
            state=LetterState.SENT.value,
            sent_at=aware("now", now),
            posted=posted,
            attempts=letter.attempts + 1,
            last_error=None,
        )

    def letter_failed(self, letter: Letter, *, error: str, retry_at: datetime | None) -> bool:
        """Record a failed delivery: to be retried at `retry_at`, or given up on (None)."""
        values: dict[str, Any] = {"attempts": letter.attempts + 1, "last_error": scrub(error)}
        if retry_at is None:
            values["state"] = LetterState.FAILED.value
        else:
            values["next_attempt_at"] = aware("retry_at", retry_at)
        return self._settle(letter, **values)

    def renew_letters(
        self, letters: Sequence[Letter], *, now: datetime, lease: timedelta
    ) -> list[Letter]:
        """Extend the lease of letters being delivered to `now + lease`: those still held,
        as now held (a letter's lease is part of what says it is held)."""
        lease_until = aware("now", now) + positive("lease", lease)
        with self._transaction(writing=True) as session:
            renewed = []
            for letter in letters:
                held = session.execute(
                    update(LetterRow)
                    .where(*_held(letter))
                    .values(lease_until=lease_until)
                    .returning(LetterRow.id)
                ).scalar_one_or_none()
                if held is not None:
                    renewed.append(replace(letter, lease_until=lease_until))
            return renewed

    def release_letters(self, letters: Sequence[Letter]) -> None:
        """Give up claims on letters not attempted, so that they go out next, in order."""
        with self._transaction(writing=True) as session:
            for letter in letters:
                session.execute(
                    update(LetterRow).where(*_held(letter)).values(replica=None, lease_until=None)
                )

    def _settle(self, letter: Letter, **values: Any) -> bool:
        with self._transaction(writing=True) as session:
            settled = session.execute(
                update(LetterRow)
                .where(*_held(letter))
                .values(replica=None, lease_until=None, **values)
                .returning(LetterRow.id)
            ).scalar_one_or_none()
        return settled is not None


def release_letters_of(session: Session, replica: str) -> int:
    """Let the pending letters held under the name `replica` be taken; how many there were."""
    released = session.execute(
        update(LetterRow)
        .where(LetterRow.state == LetterState.PENDING.value, LetterRow.replica == replica)
        .values(replica=None, lease_until=None)
        .returning(LetterRow.id)
    ).all()
    return len(released)


def _threads(
    session: Session, letters: Sequence[Letter]
) -> dict[tuple[str | None, str], dict[str, Any]]:
    """What each destination answered when the messages these letters reply to were sent."""
    replies = {(row.reply_to, row.destination) for row in letters if row.reply_to is not None}
    if not replies:
        return {}
    sent = session.execute(
        select(LetterRow.key, LetterRow.destination, LetterRow.posted).where(
            LetterRow.key.in_({key for key, _ in replies}),
            LetterRow.state == LetterState.SENT.value,
        )
    )
    return {
        (key, destination): posted
        for key, destination, posted in sent
        if posted is not None and (key, destination) in replies
    }


def _takeable(row: LetterRow, now: datetime) -> bool:
    """Due, and held by no replica (or by one whose lease ran out)."""
    held = row.lease_until is not None and row.lease_until > now
    return not held and row.next_attempt_at <= now


def _held(letter: Letter) -> tuple[ColumnElement[bool], ...]:
    """The conditions under which `letter` is still held as it was taken: a replica whose
    lease ran out and was taken over can no longer settle or release it."""
    return (
        LetterRow.id == letter.id,
        LetterRow.state == LetterState.PENDING.value,
        LetterRow.attempts == letter.attempts,
        LetterRow.replica == letter.replica,
        LetterRow.lease_until == letter.lease_until,
    )
