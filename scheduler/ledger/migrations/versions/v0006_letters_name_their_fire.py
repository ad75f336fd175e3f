"""Letters name the fire whose watch step queued them, so that pruning keeps what they need.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Letters queued before this name no fire: they were delivered or given up on long before
    # any of their fires is old enough to be pruned.
    op.add_column(
        "outbox",
        sa.Column("fire_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox", recreate="auto") as outbox:
        outbox.drop_column("fire_id")
