"""Slots and history: each project's evaluated slots, and the reads of fires past and present.

What the engine, the CLI and the web read back; claims and skips write the fires themselves.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from scheduler.ledger.claims import same_fire
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import FireRow, SlotRow
from scheduler.ledger.records import Fire, FireKind, FireState, SlotOutcome, SlotRecord
from scheduler.ledger.store import Store, aware, checked_slot, given, scrubbed, upsert


class HistoryStore(Store):
    """The evaluated slots, and fires found by filters, by id or by (project, job, slot)."""

    def record_slot(
        self,
        project: str,
        slot: datetime,
        *,
        revision: str | None,
        outcome: SlotOutcome,
        error: str | None,
        replica: str,
        now: datetime,
    ) -> None:
        """Record the evaluation of `project` at `slot`, replacing an earlier one of that slot."""
        values = {
            "revision": revision,
            "outcome": outcome.value,
            "error": scrubbed(error),
            "replica": replica,
            "evaluated_at": aware("now", now),
        }
        with self._transaction(writing=True) as session:
            statement = upsert(session, SlotRow).values(
                **values, project=project, slot=checked_slot(slot, FireKind.SCHEDULED)
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["project", "slot"],
                    set_={name: statement.excluded[name] for name in values},
                )
            )

    def last_evaluated_slot(self, project: str) -> datetime | None:
        """The latest slot recorded for `project`, whatever its outcome."""
        with self._transaction(writing=False) as session:
            return session.scalar(select(func.max(SlotRow.slot)).where(SlotRow.project == project))

    def slots(
        self, *, project: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[SlotRecord]:
        """Slot evaluations matching every filter given, newest slot first."""
        query = (
            select(SlotRow)
            .filter_by(**given(project=project))
            .order_by(SlotRow.slot.desc(), SlotRow.project)
        )
        if since is not None:
            query = query.where(SlotRow.slot >= aware("since", since))
        return self._records(SlotRecord, query.limit(limit))

    def fires(
        self,
        *,
        project: str | None = None,
        job: str | None = None,
        state: FireState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Fire]:
        """Fires matching every filter given, newest slot first (then newest fire first).

        `since` keeps fires whose slot is at or after it, `until` those before it; `offset`
        skips that many of the matches (a page is `offset`, `limit`).
        """
        query = (
            select(FireRow)
            .filter_by(**given(project=project, job=job, state=state))
            .order_by(FireRow.slot.desc(), FireRow.id.desc())
        )
        if since is not None:
            query = query.where(FireRow.slot >= aware("since", since))
        if until is not None:
            query = query.where(FireRow.slot < aware("until", until))
        return self._records(Fire, query.offset(offset).limit(limit))

    def fire_by_id(self, fire_id: int) -> Fire | None:
        with self._transaction(writing=False) as session:
            row = session.get(FireRow, fire_id)
            return to_record(Fire, row) if row is not None else None

    def fire(self, project: str, job: str, slot: datetime) -> Fire | None:
        """The scheduled or catch-up fire (or skip) of `job` at `slot`, if there is one."""
        query = select(FireRow).where(
            *same_fire(project, job, checked_slot(slot, FireKind.SCHEDULED))
        )
        with self._transaction(writing=False) as session:
            row = session.scalars(query).one_or_none()
            return to_record(Fire, row) if row is not None else None
