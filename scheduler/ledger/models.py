"""The ledger's tables as typed SQLAlchemy models: the one description of the schema's shape.

The migrations under `migrations/` build the same schema; a test keeps the two in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from scheduler.ledger.notice_records import LetterState
from scheduler.ledger.records import FireKind, FireState, RemediationState, SlotOutcome, WatchPhase

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}


def allowed_values(
    column: str,
    values: type[FireKind | FireState | SlotOutcome | RemediationState | WatchPhase | LetterState],
) -> str:
    """A CHECK expression limiting `column` to an enumeration's values."""
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


# Manual fires may repeat a (project, job, slot); scheduled and catch-up fires may not.
UNIQUE_CLAIM_PREDICATE = f"kind <> '{FireKind.MANUAL}'"
# A fire is either open (claimed or retrying: leased, unfinished) or finished (no lease, a
# finish time).
_OPEN = f"'{FireState.CLAIMED}', '{FireState.RETRYING}'"
OPEN_IFF_CLAIMED = (
    f"(state IN ({_OPEN}) AND lease_until IS NOT NULL AND finished_at IS NULL)"
    f" OR (state NOT IN ({_OPEN}) AND lease_until IS NULL AND finished_at IS NOT NULL)"
)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored as UTC and always read back as an aware UTC datetime.

    Naive datetimes are refused: a time without a zone in the ledger is a bug somewhere else.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the ledger stores only timezone-aware times, not {value!r}")
        value = value.astimezone(UTC)
        # SQLite stores the text without an offset; with every value in UTC, text order is time
        # order, which comparisons and indexes rely on.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON on SQLite, JSONB on PostgreSQL; None is SQL NULL, not the JSON `null`.
JSON_DOCUMENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# A surrogate key: INTEGER on SQLite, so that it is the rowid and grows by itself.
ROW_ID = BigInteger().with_variant(Integer, "sqlite")


def unique_where(name: str, *columns: str, predicate: str) -> Index:
    """A partial unique index, the same on both backends: `columns` are unique among the rows
    `predicate` holds for (one open claim, one running rebuild, one active pause)."""
    where = text(predicate)
    return Index(name, *columns, unique=True, sqlite_where=where, postgresql_where=where)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class FireRow(Base):
    """One fire: scheduled, catch-up or manual; claimed, finished or skipped."""

    __tablename__ = "fires"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    project: Mapped[str] = mapped_column(Text)
    job: Mapped[str] = mapped_column(Text)
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    replica: Mapped[str] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(Text)
    task_id: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When an operator's act (a backfill) asked for the slot: max-lateness counts from then.
    asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(allowed_values("kind", FireKind), name="kind"),
        CheckConstraint(allowed_values("state", FireState), name="state"),
        CheckConstraint("attempt >= 0", name="attempt"),
        CheckConstraint(OPEN_IFF_CLAIMED, name="open_iff_claimed"),
        unique_where("uq_fires_claim", "project", "job", "slot", predicate=UNIQUE_CLAIM_PREDICATE),
        Index("ix_fires_project_job_slot", "project", "job", "slot"),
        Index("ix_fires_slot", "slot"),
        Index("ix_fires_state", "state"),
    )


class SlotRow(Base):
    """The latest evaluation of one project at one slot."""

    __tablename__ = "slots"

    project: Mapped[str] = mapped_column(Text, primary_key=True)
    slot: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    revision: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    replica: Mapped[str] = mapped_column(Text)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(allowed_values("outcome", SlotOutcome), name="outcome"),
        Index("ix_slots_slot", "slot"),
    )


# One remediation per project may run at a time, whichever replica started it.
ONE_RUNNING_PREDICATE = f"state = '{RemediationState.RUNNING}'"


class RemediationRow(Base):
    """A rebuild of a project's expiring cached tasks, from trigger to verdict."""

    __tablename__ = "remediations"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    project: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    replica: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    expiring: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql")
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    task_id: Mapped[str | None] = mapped_column(Text)
    task_group_id: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(allowed_values("state", RemediationState), name="state"),
        unique_where("uq_remediations_running", "project", predicate=ONE_RUNNING_PREDICATE),
        Index("ix_remediations_project_started_at", "project", "started_at"),
    )


class WatchRow(Base):
    """A fire the watcher follows until what it started resolved and was reported."""

    __tablename__ = "watches"

    fire_id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=False)
    project: Mapped[str] = mapped_column(Text)
    job: Mapped[str] = mapped_column(Text)
    phase: Mapped[str] = mapped_column(Text)
    task_kind: Mapped[str] = mapped_column(Text)
    follow_group: Mapped[bool] = mapped_column(Boolean)
    crontab: Mapped[str | None] = mapped_column(Text)
    project_broken: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    task_group_id: Mapped[str | None] = mapped_column(Text)
    task_state: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How the run stands once its task started (RunState); NULL before.
    run_state: Mapped[str | None] = mapped_column(Text)
    # The watched task group's counts as last listed (GroupCounts); NULL before.
    group_total: Mapped[int | None] = mapped_column(Integer)
    group_failed: Mapped[int | None] = mapped_column(Integer)
    group_exception: Mapped[int | None] = mapped_column(Integer)
    group_blocked: Mapped[int | None] = mapped_column(Integer)
    group_unresolved: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(allowed_values("phase", WatchPhase), name="phase"),
        Index("ix_watches_phase", "phase"),
    )


# One open incident per subject, whichever replica opened it.
OPEN_INCIDENT_PREDICATE = "closed_at IS NULL"


class IncidentRow(Base):
    """A subject's run of failures: opened by the first, closed by the first success after."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_by: Mapped[str] = mapped_column(Text)
    thread_key: Mapped[str] = mapped_column(Text)
    last_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        unique_where("uq_incidents_open", "subject", predicate=OPEN_INCIDENT_PREDICATE),
        Index("ix_incidents_subject_opened_at", "subject", "opened_at"),
    )


class LetterRow(Base):
    """The outbox: one notice for one destination, delivered in order, once."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    destination: Mapped[str] = mapped_column(Text)
    event: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    incident: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    reply_to: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    replica: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    posted: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The fire whose watch step queued the letter: kept while the letter is pending.
    fire_id: Mapped[int | None] = mapped_column(ROW_ID)

    __table_args__ = (
        CheckConstraint(allowed_values("state", LetterState), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        UniqueConstraint("key", "destination"),
        Index("ix_outbox_state_id", "state", "id"),
    )


# One pause in force at most per target; a project-wide pause has job ''.
ACTIVE_PAUSE_PREDICATE = "resumed_at IS NULL"


class PauseRow(Base):
    """A job, or a whole project (job ''), held from firing until resumed or `until`."""

    __tablename__ = "pauses"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    project: Mapped[str] = mapped_column(Text)
    job: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_by: Mapped[str] = mapped_column(Text)
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resumed_by: Mapped[str | None] = mapped_column(Text)
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        unique_where("uq_pauses_active", "project", "job", predicate=ACTIVE_PAUSE_PREDICATE),
    )


class AuditRow(Base):
    """The audit log: every act of an operator, whatever it asked and however it ended."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    input: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    ok: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_audit_at", "at"),)


class SessionRow(Base):
    """A dashboard sign-in: known by the SHA-256 of its id (the cookie's value, never kept),
    with the name, role and token hash it was made from, until it expires."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True)
    id_sha256: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    token_sha256: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'operator')", name="role"),
        UniqueConstraint("id_sha256"),
        Index("ix_sessions_expires_at", "expires_at"),
    )


# The tables that bulk statements (Core, no ORM objects) write and read.
FIRES = Base.metadata.tables[FireRow.__tablename__]
WATCHES = Base.metadata.tables[WatchRow.__tablename__]
SLOTS = Base.metadata.tables[SlotRow.__tablename__]
