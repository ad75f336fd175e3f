"""Retention: the rows the ledger forgets once they are past their cutoff and nothing still needs
them, removed in bounded batches (a transaction each) or only counted (a dry run).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, false, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from scheduler.ledger.models import (
    AuditRow,
    FireRow,
    IncidentRow,
    LetterRow,
    SessionRow,
    SlotRow,
    WatchRow,
)
from scheduler.ledger.notice_records import LetterState
from scheduler.ledger.records import OPEN_STATES, Cutoffs, Pruned, WatchPhase
from scheduler.ledger.store import Store, aware

# Rows of one kind removed per transaction: SQLite's write lock and PostgreSQL's row locks are
# held for one batch, never for a whole year of history.
PRUNE_BATCH = 500

# The rows the conditions look at besides the one judged (aliases, so that a count that joins
# the judged table keeps the two apart).
_watch = aliased(WatchRow, name="following")
_pending = aliased(LetterRow, name="pending")
_open_incident = aliased(IncidentRow, name="open_incident")
_newer = aliased(SlotRow, name="newer")

Conditions = tuple[ColumnElement[bool], ...]


class RetentionStore(Store):
    """Prunes what is past retention: fires and their finished watches, slots, closed
    incidents, delivered letters and acts, each kept while something still needs it; and the
    dashboard sessions that expired."""

    def prune(self, cutoffs: Cutoffs, *, limit: int = PRUNE_BATCH) -> Pruned:
        """Remove at most `limit` rows of each kind that are past `cutoffs` and needed by
        nothing (see `prunable_fires` and the others), each kind in a transaction of its own;
        how many went. Call again while a kind reached `limit` (`Pruned.largest() >= limit`).

        Safe from several processes at once: what one removed, the others find gone, and each
        counts only what it removed.
        """
        cutoffs = _checked(cutoffs)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        fires, watches = self._prune_fires(cutoffs.fires, limit)
        return Pruned(
            fires=fires,
            watches=watches,
            slots=self._prune_slots(cutoffs.fires, limit),
            incidents=self._prune_by_id(IncidentRow, closed_incidents(cutoffs.fires), limit),
            letters=self._prune_by_id(LetterRow, delivered_letters(cutoffs.letters), limit),
            audit=self._prune_by_id(AuditRow, (AuditRow.at < cutoffs.audit,), limit),
            sessions=self._prune_by_id(SessionRow, expired_sessions(cutoffs.sessions), limit),
        )

    def prunable(self, cutoffs: Cutoffs) -> Pruned:
        """How many rows `prune` would remove, all batches together: a dry run."""
        cutoffs = _checked(cutoffs)
        fires = select(FireRow.id).where(*prunable_fires(cutoffs.fires))
        with self._transaction(writing=False) as session:
            return Pruned(
                fires=_count(session, FireRow, prunable_fires(cutoffs.fires)),
                watches=_count(session, WatchRow, (WatchRow.fire_id.in_(fires),)),
                slots=_count(session, SlotRow, prunable_slots(cutoffs.fires)),
                incidents=_count(session, IncidentRow, closed_incidents(cutoffs.fires)),
                letters=_count(session, LetterRow, delivered_letters(cutoffs.letters)),
                audit=_count(session, AuditRow, (AuditRow.at < cutoffs.audit,)),
                sessions=_count(session, SessionRow, expired_sessions(cutoffs.sessions)),
            )

    def _prune_fires(self, before: datetime, limit: int) -> tuple[int, int]:
        """(fires, watches) removed: a batch of fires, and the finished watches of those."""
        conditions = prunable_fires(before)
        with self._transaction(writing=True) as session:
            ids = _first(session, select(FireRow.id).where(*conditions), FireRow.id, limit)
            if not ids:
                return 0, 0
            # The conditions again: on PostgreSQL another transaction may have moved a row on.
            gone = _removed(session, FireRow, (FireRow.id.in_(ids), *conditions), FireRow.id)
            watches = _removed(session, WatchRow, (WatchRow.fire_id.in_(gone),), WatchRow.fire_id)
        return len(gone), len(watches)

    def _prune_slots(self, before: datetime, limit: int) -> int:
        conditions = prunable_slots(before)
        key = tuple_(SlotRow.project, SlotRow.slot)
        with self._transaction(writing=True) as session:
            rows = session.execute(
                select(SlotRow.project, SlotRow.slot)
                .where(*conditions)
                .order_by(SlotRow.slot, SlotRow.project)
                .limit(limit)
            ).all()
            if not rows:
                return 0
            keys = [tuple(row) for row in rows]
            return len(_removed(session, SlotRow, (key.in_(keys), *conditions), SlotRow.project))

    def _prune_by_id(
        self,
        model: type[IncidentRow | LetterRow | AuditRow | SessionRow],
        conditions: Conditions,
        limit: int,
    ) -> int:
        with self._transaction(writing=True) as session:
            ids = _first(session, select(model.id).where(*conditions), model.id, limit)
            if not ids:
                return 0
            return len(_removed(session, model, (model.id.in_(ids), *conditions), model.id))


def prunable_fires(before: datetime) -> Conditions:
    """Fires past retention: finished, with their slot and finish before `before`, and needed
    by nothing: no watch still follows them and no pending letter is about them."""
    return (
        FireRow.slot < before,
        FireRow.finished_at < before,
        FireRow.state.not_in([state.value for state in OPEN_STATES]),
        ~exists().where(_watch.fire_id == FireRow.id, _watch.phase != WatchPhase.DONE.value),
        ~exists().where(
            _pending.fire_id == FireRow.id, _pending.state == LetterState.PENDING.value
        ),
    )


def prunable_slots(before: datetime) -> Conditions:
    """Slot evaluations before `before`, except each project's latest: the engine's catch-up
    starts from it, however long ago it was."""
    return (
        SlotRow.slot < before,
        exists().where(_newer.project == SlotRow.project, _newer.slot > SlotRow.slot),
    )


def closed_incidents(before: datetime) -> Conditions:
    """Incidents closed before `before`: an open one still counts failures and keeps its thread."""
    return (IncidentRow.closed_at.is_not(None), IncidentRow.closed_at < before)


def delivered_letters(before: datetime) -> Conditions:
    """Letters sent or given up on, queued before `before`, except those a reply still needs:
    a pending letter replies to it, or an open incident's recovery will (its thread)."""
    return (
        LetterRow.state.in_([LetterState.SENT.value, LetterState.FAILED.value]),
        LetterRow.created_at < before,
        ~exists().where(
            _pending.reply_to == LetterRow.key, _pending.state == LetterState.PENDING.value
        ),
        ~exists().where(
            _open_incident.thread_key == LetterRow.key, _open_incident.closed_at.is_(None)
        ),
    )


def expired_sessions(before: datetime | None) -> Conditions:
    """Dashboard sessions expired before `before` (None: none): signed out by time already."""
    return (false(),) if before is None else (SessionRow.expires_at <= before,)


def _checked(cutoffs: Cutoffs) -> Cutoffs:
    return Cutoffs(
        fires=aware("cutoffs.fires", cutoffs.fires),
        letters=aware("cutoffs.letters", cutoffs.letters),
        audit=aware("cutoffs.audit", cutoffs.audit),
        sessions=None if cutoffs.sessions is None else aware("cutoffs.sessions", cutoffs.sessions),
    )


def _first(session: Session, query: Select[Any], order: Any, limit: int) -> Sequence[Any]:
    """The first `limit` values `query` selects, in `order` (so a batch is the oldest rows)."""
    return session.scalars(query.order_by(order).limit(limit)).all()


def _removed(
    session: Session, model: type[Any], conditions: Conditions, returned: Any
) -> Sequence[Any]:
    """Delete the rows of `model` that meet `conditions`; the `returned` column of each."""
    statement = (
        delete(model)
        .where(*conditions)
        .returning(returned)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(statement).all()


def _count(session: Session, model: type[Any], conditions: Conditions) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
