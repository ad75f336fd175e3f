"""Remediations: the expiry watch's rebuilds of expiring cached tasks, one running per project.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_RUNNING_PREDICATE = "state = 'running'"


def upgrade() -> None:
    op.create_table(
        "remediations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("replica", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column(
            "expiring",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("task_group_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_remediations"),
        sa.CheckConstraint(
            "state IN ('running', 'succeeded', 'failed', 'dry-run')",
            name="ck_remediations_state",
        ),
    )
    op.create_index(
        "uq_remediations_running",
        "remediations",
        ["project"],
        unique=True,
        sqlite_where=sa.text(ONE_RUNNING_PREDICATE),
        postgresql_where=sa.text(ONE_RUNNING_PREDICATE),
    )
    op.create_index("ix_remediations_project_started_at", "remediations", ["project", "started_at"])


def downgrade() -> None:
    op.drop_table("remediations")
