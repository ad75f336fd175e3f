"""Alembic's entry point for the ledger: runs the migrations on the connection it is handed.

Only `scheduler.ledger.migrating.upgrade` runs it; there is no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from scheduler.ledger.models import Base


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "the ledger's migrations run only through scheduler.ledger (Ledger.open), "
            "which hands them a connection"
        )
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
