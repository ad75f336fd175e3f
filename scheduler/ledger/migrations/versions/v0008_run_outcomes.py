"""Each run's outcome: how a fire's task (and its watched task group) stands, and the counts
of the group.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUP_COUNTS = tuple(
    f"group_{count}" for count in ("total", "failed", "exception", "blocked", "unresolved")
)

# The run state of the watches recorded before, from what they kept: a task seen running or its
# group followed is running; a resolved task is its state (a watched group's verdict was only
# told, its completed task stands for it); a task the queue lost is an exception. A fire that
# made no task keeps NULL: its own state (failed) says it.
BACKFILL = """
UPDATE watches SET run_state = CASE
    WHEN phase = 'group' THEN 'running'
    WHEN phase = 'task' AND task_state = 'running' THEN 'running'
    WHEN phase = 'done' AND task_state IN ('completed', 'failed', 'exception') THEN task_state
    WHEN phase = 'done' AND task_state IS NULL
        AND (SELECT state FROM fires WHERE fires.id = watches.fire_id) <> 'failed'
        THEN 'exception'
END
"""


def upgrade() -> None:
    op.add_column("watches", sa.Column("run_state", sa.Text(), nullable=True))
    for name in GROUP_COUNTS:
        op.add_column("watches", sa.Column(name, sa.Integer(), nullable=True))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("watches", recreate="auto") as watches:
        for name in ("run_state", *GROUP_COUNTS):
            watches.drop_column(name)
