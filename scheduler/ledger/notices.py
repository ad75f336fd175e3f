"""Notices and incidents: what is queued in the outbox for each notice, once per destination,
and each subject's run of failures (opened by a failure, closed by the success after it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from scheduler.common.redaction import scrub_data
from scheduler.ledger.models import IncidentRow, LetterRow
from scheduler.ledger.notice_records import Health, Incident, LetterState, Notice
from scheduler.ledger.store import Store, aware, given, upsert


class NoticeStore(Store):
    """Queues notices as letters, keeping one open incident per failing subject."""

    def report(self, notices: Sequence[Notice], *, now: datetime) -> list[str]:
        """Queue what `notices` call for, in one transaction; the keys of the notices queued.

        A notice already queued (same key and destination) is not queued again. A failing
        notice opens its subject's incident and is queued, or, while one is open, is only
        counted, unless its fingerprint differs (say, a new revision is broken too). A healthy
        notice closes the open incident and is queued as a reply to its latest message.
        """
        with self._transaction(writing=True) as session:
            return queue_notices(session, notices, aware("now", now))

    def incidents(self, *, subject: str | None = None, open_only: bool = False) -> list[Incident]:
        """Incidents, newest first."""
        query = (
            select(IncidentRow)
            .filter_by(**given(subject=subject))
            .order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
        )
        if open_only:
            query = query.where(IncidentRow.closed_at.is_(None))
        return self._records(Incident, query)


def queue_notices(
    session: Session, notices: Sequence[Notice], now: datetime, *, fire_id: int | None = None
) -> list[str]:
    """`NoticeStore.report` inside the caller's transaction (say, with the watch step that
    calls for the notices: its letters then name the watch's fire, `fire_id`)."""
    return queue_notices_of(session, [(notice, fire_id) for notice in notices], now)


def queue_notices_of(
    session: Session, notices: Sequence[tuple[Notice, int | None]], now: datetime
) -> list[str]:
    """`queue_notices` for the notices of several fires (a watcher round's), each with the
    fire its letters name. A healthy notice whose subject has no open incident (the common
    case: nothing to recover from) costs no statement: one read tells them all apart."""
    maybe_open = _maybe_open(session, [notice for notice, _ in notices])
    queued = []
    for notice, fire_id in notices:
        if notice.health is Health.NONE:
            sent = _queue(session, notice, now, fire_id=fire_id)
        elif notice.health is Health.FAILING:
            sent = _failing(session, notice, now, fire_id)
        elif notice.subject is not None and notice.subject not in maybe_open:
            sent = False
        else:
            sent = _healthy(session, notice, now, fire_id)
        if sent:
            queued.append(notice.key)
    return queued


def _maybe_open(session: Session, notices: Sequence[Notice]) -> set[str]:
    """The subjects of healthy `notices` that have an open incident, or may have one by the
    time their notice comes (a failing notice before it may open it)."""
    healthy = {n.subject for n in notices if n.health is Health.HEALTHY and n.subject}
    if not healthy:
        return set()
    failing = {n.subject for n in notices if n.health is Health.FAILING and n.subject}
    found = session.scalars(
        select(IncidentRow.subject).where(
            IncidentRow.subject.in_(healthy), IncidentRow.closed_at.is_(None)
        )
    )
    return set(found) | (healthy & failing)


def _failing(session: Session, notice: Notice, now: datetime, fire_id: int | None) -> bool:
    assert notice.subject is not None, "a failing notice needs a subject"
    opened = session.execute(
        upsert(session, IncidentRow)
        .values(
            subject=notice.subject,
            opened_at=now,
            opened_by=notice.key,
            thread_key=notice.key,
            last_key=notice.key,
            fingerprint=notice.fingerprint,
            failures=1,
        )
        .on_conflict_do_nothing()
        .returning(IncidentRow.id)
    ).scalar_one_or_none()
    if opened is not None:
        return _queue(session, notice, now, fire_id=fire_id)
    incident = session.scalars(
        select(IncidentRow)
        .where(IncidentRow.subject == notice.subject, IncidentRow.closed_at.is_(None))
        .with_for_update()
    ).one_or_none()
    if incident is None:  # closed between the two statements: by a success, which wins
        return False
    if incident.last_key == notice.key:  # the same failure, reported twice
        return False
    incident.failures += 1
    incident.last_key = notice.key
    if notice.fingerprint is None or notice.fingerprint == incident.fingerprint:
        return False
    incident.fingerprint = notice.fingerprint
    queued = _queue(session, notice, now, fire_id=fire_id)
    if queued:  # a recovery replies to the latest message that was sent about it
        incident.thread_key = notice.key
    return queued


def _healthy(session: Session, notice: Notice, now: datetime, fire_id: int | None) -> bool:
    assert notice.subject is not None, "a healthy notice needs a subject"
    closed = session.scalars(
        update(IncidentRow)
        .where(IncidentRow.subject == notice.subject, IncidentRow.closed_at.is_(None))
        .values(closed_at=now)
        .returning(IncidentRow)
    ).one_or_none()
    if closed is None:
        return False
    return _queue(
        session,
        notice,
        now,
        incident={
            "opened_at": closed.opened_at.isoformat(),
            "failures": closed.failures,
            "opened_by": closed.opened_by,
        },
        reply_to=closed.thread_key,
        fire_id=fire_id,
    )


def _queue(
    session: Session,
    notice: Notice,
    now: datetime,
    *,
    incident: dict[str, Any] | None = None,
    reply_to: str | None = None,
    fire_id: int | None = None,
) -> bool:
    queued = False
    for destination in notice.destinations:
        inserted = session.execute(
            upsert(session, LetterRow)
            .values(
                key=notice.key,
                destination=destination,
                event=scrub_data(notice.event),
                incident=incident,
                reply_to=reply_to,
                state=LetterState.PENDING.value,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
                fire_id=fire_id,
            )
            .on_conflict_do_nothing()
            .returning(LetterRow.id)
        ).scalar_one_or_none()
        queued = queued or inserted is not None
    return queued
