"""Initial ledger: fires (claims, outcomes and skips) and evaluated slots.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Scheduled and catch-up fires of a (project, job, slot) are unique; manual fires are not.
UNIQUE_CLAIM_PREDICATE = "kind <> 'manual'"


def upgrade() -> None:
    op.create_table(
        "fires",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("job", sa.Text(), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("replica", sa.Text(), nullable=False),
        sa.Column("revision", sa.Text(), nullable=True),
        sa.Column("task_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fires"),
        sa.CheckConstraint("kind IN ('scheduled', 'catch-up', 'manual')", name="ck_fires_kind"),
        sa.CheckConstraint(
            "state IN ('claimed', 'created', 'already-fired', 'dry-run', 'failed', 'skipped')",
            name="ck_fires_state",
        ),
        sa.CheckConstraint("attempt >= 0", name="ck_fires_attempt"),
        sa.CheckConstraint(
            "(state = 'claimed' AND lease_until IS NOT NULL AND finished_at IS NULL)"
            " OR (state <> 'claimed' AND lease_until IS NULL AND finished_at IS NOT NULL)",
            name="ck_fires_open_iff_claimed",
        ),
    )
    op.create_index(
        "uq_fires_claim",
        "fires",
        ["project", "job", "slot"],
        unique=True,
        sqlite_where=sa.text(UNIQUE_CLAIM_PREDICATE),
        postgresql_where=sa.text(UNIQUE_CLAIM_PREDICATE),
    )
    op.create_index("ix_fires_project_job_slot", "fires", ["project", "job", "slot"])
    op.create_index("ix_fires_slot", "fires", ["slot"])
    op.create_index("ix_fires_state", "fires", ["state"])

    op.create_table(
        "slots",
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("replica", sa.Text(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "slot", name="pk_slots"),
        sa.CheckConstraint(
            "outcome IN ('evaluated', 'failed', 'skipped')", name="ck_slots_outcome"
        ),
    )
    op.create_index("ix_slots_slot", "slots", ["slot"])


def downgrade() -> None:
    op.drop_table("slots")
    op.drop_table("fires")
