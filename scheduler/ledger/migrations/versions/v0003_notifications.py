"""Notifications: the watcher's fires, incidents (a subject's run of failures) and the outbox.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_INCIDENT_PREDICATE = "closed_at IS NULL"


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _json(name: str) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql"),
        nullable=True,
    )


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "watches",
        sa.Column(
            "fire_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("task_kind", sa.Text(), nullable=False),
        sa.Column("follow_group", sa.Boolean(), nullable=False),
        sa.Column("crontab", sa.Text(), nullable=True),
        sa.Column("project_broken", sa.Boolean(), nullable=False),
        _time("created_at", nullable=False),
        sa.Column("task_group_id", sa.Text(), nullable=True),
        sa.Column("task_state", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _time("resolved_at", nullable=True),
        sa.PrimaryKeyConstraint("fire_id", name="pk_watches"),
        sa.CheckConstraint("phase IN ('report', 'task', 'group', 'done')", name="ck_watches_phase"),
    )
    op.create_index("ix_watches_phase", "watches", ["phase"])

    op.create_table(
        "incidents",
        _id(),
        sa.Column("subject", sa.Text(), nullable=False),
        _time("opened_at", nullable=False),
        sa.Column("opened_by", sa.Text(), nullable=False),
        sa.Column("thread_key", sa.Text(), nullable=False),
        sa.Column("last_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        _time("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index(
        "uq_incidents_open",
        "incidents",
        ["subject"],
        unique=True,
        sqlite_where=sa.text(OPEN_INCIDENT_PREDICATE),
        postgresql_where=sa.text(OPEN_INCIDENT_PREDICATE),
    )
    op.create_index("ix_incidents_subject_opened_at", "incidents", ["subject", "opened_at"])

    op.create_table(
        "outbox",
        _id(),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column(
            "event",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True), "postgresql"
            ),
            nullable=False,
        ),
        _json("incident"),
        sa.Column("reply_to", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _time("created_at", nullable=False),
        _time("next_attempt_at", nullable=False),
        sa.Column("replica", sa.Text(), nullable=True),
        _time("lease_until", nullable=True),
        _json("posted"),
        _time("sent_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", "destination", name="uq_outbox_key_destination"),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name="ck_outbox_state"),
        sa.CheckConstraint("attempts >= 0", name="ck_outbox_attempts"),
    )
    op.create_index("ix_outbox_state_id", "outbox", ["state", "id"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("incidents")
    op.drop_table("watches")
