"""Bringing a ledger database to the current schema with Alembic, safely from several processes,
and saying which migrations it still lacks.

There is no alembic.ini: the configuration is built here and the scripts live in `migrations/`.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from scheduler.errors import Category, SchedulerError
from scheduler.ledger.connecting import WRITING
from scheduler.ledger.store import Store

MIGRATIONS = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock held while migrating, so that replicas starting together migrate one
# after the other ("tcsledgr" as a big-endian 64-bit integer).
MIGRATION_LOCK = int.from_bytes(b"tcsledgr", "big")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # env.py runs the migrations on this connection, inside the caller's transaction.
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once: they change only with the code."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError(f"no ledger migrations found in {MIGRATIONS}")
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class LedgerTooNewError(SchedulerError, category=Category.REFUSED, code="ledger-too-new"):
    """The ledger's schema is at a revision this tc-scheduler does not know: a newer release
    migrated it, and this one could misread or damage what that one writes."""


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every migration not yet applied; a no-op on a database that is up to date.
    (revision before, revision after); None before: a database the ledger never used.

    One transaction holds the migration lock (PostgreSQL: an advisory lock; SQLite: the write
    lock) from before reading the schema's revision until the new one is committed, so a second
    process opening the ledger at the same time waits and then finds nothing to do. Raises
    LedgerTooNewError, and changes nothing, if the schema is newer than this release knows.
    """
    with engine.connect() as connection:
        connection.execution_options(**{WRITING: True})
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            config = alembic_config(connection)
            before = current_revision(connection)
            _check_known(config, before)
            command.upgrade(config, "head")
    return before, head_revision()


def _check_known(config: Config, revision: str | None) -> None:
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(config).get_revision(revision)
    except CommandError:
        raise LedgerTooNewError(
            f"the ledger's schema is at revision {revision}, which this tc-scheduler does not "
            f"know (it knows up to {head_revision()}): a newer release has upgraded it; run "
            "that release (or newer), never an older one, on this ledger"
        ) from None


class SchemaStore(Store):
    """The schema's state: the migrations this code has that the database lacks."""

    def pending_migrations(self) -> list[str]:
        """The revisions not applied yet, newest first; none when the database is at this
        code's head, or past it (a newer version migrated it: not this one's to apply)."""
        with self._engine.connect() as connection:
            current = current_revision(connection)
        try:
            return [script.revision for script in _scripts().iterate_revisions("heads", current)]
        except ResolutionError:
            return []
