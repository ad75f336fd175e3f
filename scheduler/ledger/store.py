"""What every store of the ledger shares: the engine, one transaction helper and the upsert.

Also the checks of what callers pass in (aware times, positive leases, quarter-hour slots).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Engine, Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scheduler.common.redaction import scrub
from scheduler.cron.timing import format_slot, slot_of
from scheduler.ledger.connecting import WRITING
from scheduler.ledger.mapping import Record, to_record
from scheduler.ledger.models import (
    FireRow,
    IncidentRow,
    LetterRow,
    PauseRow,
    RemediationRow,
)
from scheduler.ledger.records import FireKind

UpsertInsert = postgresql.Insert | sqlite.Insert


class Store:
    """The base of every store: a session per call on one engine, thread-safe.

    The stores are mixins of the `Ledger` facade over this one base, so that a step that
    spans two concerns (a watch step and its notices, a pause and its audit row) runs in one
    transaction: the store that owns the step calls the other's session-level function.
    """

    def __init__(self, engine: Engine) -> None:
        """Use `Ledger.open`: this assumes the database is already migrated."""
        self._engine = engine

    @contextmanager
    def _transaction(self, *, writing: bool) -> Iterator[Session]:
        with Session(self._engine) as session, session.begin():
            # Set before the transaction begins: on SQLite a writing one takes the write lock.
            session.connection(execution_options={WRITING: writing})
            yield session

    def _records(self, record: type[Record], query: Select[Any], **given: Any) -> list[Record]:
        """The rows `query` selects (of one model), as `record`s, read in a transaction of their
        own. The fields `given` are not read. Rows are read as plain tuples of the columns: a
        page of the history builds no ORM objects it would throw away."""
        model = query.column_descriptions[0]["entity"]
        columns = [column for column in model.__table__.columns if column.name not in given]
        with self._transaction(writing=False) as session:
            rows = session.execute(query.with_only_columns(*columns))
            return [to_record(record, row, **given) for row in rows]


def given(**filters: object) -> dict[str, object]:
    """The filters asked for, for `Select.filter_by`: those that are not None (enumerations
    as the values the ledger stores)."""
    return {
        column: value.value if isinstance(value, Enum) else value
        for column, value in filters.items()
        if value is not None
    }


def upsert(
    session: Session, model: type[FireRow | RemediationRow | IncidentRow | LetterRow | PauseRow]
) -> UpsertInsert:
    """An INSERT with the backend's ON CONFLICT clauses (the same on both)."""
    return upsert_on(session.get_bind().dialect.name, model)


def upsert_on(
    dialect: str,
    table: Table | type[FireRow | RemediationRow | IncidentRow | LetterRow | PauseRow],
) -> UpsertInsert:
    """An INSERT with `dialect`'s ON CONFLICT clauses, for statements compiled once per backend
    and run with their rows as parameters."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def scrubbed(text: str | None) -> str | None:
    """Free text as the ledger stores it: whatever looks like a secret masked."""
    return None if text is None else scrub(text)


def aware(name: str, moment: datetime) -> datetime:
    """`moment` in UTC, so that what the ledger hands back (claims too) is always UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, not {moment!r}")
    return moment.astimezone(UTC)


def checked_slot(slot: datetime, kind: FireKind) -> datetime:
    """`slot`, checked: a slot that is off the quarter hour would escape the uniqueness check."""
    slot = aware("slot", slot)
    if kind is not FireKind.MANUAL and slot_of(slot) != slot:
        raise ValueError(
            f"{slot.isoformat()} is not a slot; slots are on the quarter hour in UTC, "
            f"like {format_slot(slot_of(slot))}"
        )
    return slot


def positive(name: str, duration: timedelta) -> timedelta:
    if duration <= timedelta(0):
        raise ValueError(f"{name} must be a positive duration, not {duration}")
    return duration
