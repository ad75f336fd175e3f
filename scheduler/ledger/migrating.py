"""Bringing a ledger database to the current schema with Alembic, safely from several processes,
and saying which migrations it still lacks.

There is no alembic.ini: the configuration is built here and the scripts live in `migrations/`.
"""

# Alembic (and Mako under it) is imported only to migrate or to list the migrations missing: a
# ledger already at this code's head, as at every start but the first after an upgrade, is
# told so by one query, and `tick` starts some 100 ms sooner.

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from scheduler.errors import Category, SchedulerError
from scheduler.ledger.connecting import WRITING
from scheduler.ledger.store import Store

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
# Each migration is `versions/vNNNN_what.py`, revision NNNN, revising the one numbered before it
# (tests/test_ledger_start.py checks the files against Alembic's own reading of them).
_MIGRATION_FILE = re.compile(r"v(\d{4})_\w+\.py")
VERSION_TABLE = "alembic_version"
# PostgreSQL advisory lock held while migrating, so that replicas starting together migrate one
# after the other ("tcsledgr" as a big-endian 64-bit integer).
MIGRATION_LOCK = int.from_bytes(b"tcsledgr", "big")


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the top

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # env.py runs the migrations on this connection, inside the caller's transaction.
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once: they change only with the code."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the top

    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def head_revision() -> str:
    """This code's newest migration: the highest number of `versions/vNNNN_*.py`."""
    numbers = [
        match[1]
        for path in (MIGRATIONS / "versions").iterdir()
        if (match := _MIGRATION_FILE.fullmatch(path.name))
    ]
    if not numbers:
        raise RuntimeError(f"no ledger migrations found in {MIGRATIONS}")
    return max(numbers)


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - see the top

    return MigrationContext.configure(connection).get_current_revision()


def _at_head(engine: Engine) -> bool:
    """Whether the schema is at this code's head, read without Alembic (a database the ledger
    never used has no version table)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return False
        stamped = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    return [row[0] for row in stamped] == [head_revision()]


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
    if _at_head(engine):
        return head_revision(), head_revision()
    from alembic import command  # noqa: PLC0415 - see the top

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
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the top
    from alembic.util import CommandError  # noqa: PLC0415

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
        from alembic.script.revision import ResolutionError  # noqa: PLC0415 - see the top

        if _at_head(self._engine):
            return []
        with self._engine.connect() as connection:
            current = current_revision(connection)
        try:
            return [script.revision for script in _scripts().iterate_revisions("heads", current)]
        except ResolutionError:
            return []
