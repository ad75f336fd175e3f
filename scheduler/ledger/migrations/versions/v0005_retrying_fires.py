"""Fires retried after a transient failure (state `retrying`), and when a fire's request was sent.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "'claimed', 'retrying', 'created', 'already-fired', 'dry-run', 'failed', 'skipped'"
OPEN = "'claimed', 'retrying'"


def upgrade() -> None:
    # SQLite changes a CHECK constraint only by copying the table: batch mode does that.
    with op.batch_alter_table("fires", recreate="auto") as fires:
        fires.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        fires.drop_constraint("ck_fires_state", type_="check")
        fires.drop_constraint("ck_fires_open_iff_claimed", type_="check")
        fires.create_check_constraint("ck_fires_state", f"state IN ({STATES})")
        fires.create_check_constraint(
            "ck_fires_open_iff_claimed",
            f"(state IN ({OPEN}) AND lease_until IS NOT NULL AND finished_at IS NULL)"
            f" OR (state NOT IN ({OPEN}) AND lease_until IS NULL AND finished_at IS NOT NULL)",
        )


def downgrade() -> None:
    with op.batch_alter_table("fires", recreate="auto") as fires:
        fires.drop_constraint("ck_fires_open_iff_claimed", type_="check")
        fires.drop_constraint("ck_fires_state", type_="check")
        fires.create_check_constraint(
            "ck_fires_state",
            "state IN ('claimed', 'created', 'already-fired', 'dry-run', 'failed', 'skipped')",
        )
        fires.create_check_constraint(
            "ck_fires_open_iff_claimed",
            "(state = 'claimed' AND lease_until IS NOT NULL AND finished_at IS NULL)"
            " OR (state <> 'claimed' AND lease_until IS NULL AND finished_at IS NOT NULL)",
        )
        fires.drop_column("sent_at")
