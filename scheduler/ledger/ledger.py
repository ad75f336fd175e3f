"""The ledger's facade: one `Ledger` over every store, opened (and migrated) from a URL.

Acts that span concerns (releasing all a replica held) live here, in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from scheduler.ledger.claims import release_fires_of
from scheduler.ledger.connecting import create_ledger_engine, unreachable
from scheduler.ledger.migrating import upgrade
from scheduler.ledger.outbox import release_letters_of
from scheduler.ledger.ports import (
    EngineLedger,
    MonitorLedger,
    NotifierLedger,
    OperationsLedger,
    OutboxLedger,
    WatcherLedger,
)
from scheduler.ledger.store import aware


class Ledger(
    EngineLedger, WatcherLedger, NotifierLedger, OutboxLedger, OperationsLedger, MonitorLedger
):
    """The service's record of claims, fires, slots, watches, notices, remediations, pauses
    and acts: each store's methods, on one engine.

    Synchronous and thread-safe (a session per call): asyncio code calls it through
    `AsyncLedger`. SQLite and PostgreSQL give the same guarantees. Every time passed in must
    be timezone-aware (any zone; stored as UTC) and every time handed back is aware UTC.
    """

    @classmethod
    def open(cls, url: str) -> Ledger:
        """Connect to the ledger at `url` and bring its schema up to date.

        `url` is `sqlite:///path/ledger.db` (the file and its directory are created) or
        `postgresql+psycopg://user@host:5432/database`. Safe when several processes open the
        same ledger at once. Raises LedgerURLError for a URL the ledger cannot use,
        LedgerUnreachableError when its database does not answer, and LedgerTooNewError when
        its schema is newer than this release knows.
        """
        engine = create_ledger_engine(url)
        try:
            _upgraded(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @staticmethod
    def upgrade(url: str) -> tuple[str | None, str]:
        """Bring the schema of the ledger at `url` up to date, as `open` does, and close it:
        (the revision it was at, None if new; the revision it is at now)."""
        engine = create_ledger_engine(url)
        try:
            return _upgraded(engine)
        finally:
            engine.dispose()

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Ledger on {self._engine.dialect.name}>"

    def release_replica(self, replica: str, *, now: datetime) -> tuple[int, int]:
        """Release every claim and outbox letter held under the name `replica`: a process
        starting under a name takes over at once what its dead predecessor held. Only for a
        name no other live process uses. The numbers of fires and letters released."""
        now = aware("now", now)
        with self._transaction(writing=True) as session:
            fires = release_fires_of(session, replica, now=now)
            letters = release_letters_of(session, replica)
        return fires, letters


def _upgraded(engine: Engine) -> tuple[str | None, str]:
    """`upgrade`, once the database answers (LedgerUnreachableError if it does not)."""
    try:
        # Only connecting: a failure later, in a migration, is not the database being away.
        engine.connect().close()
    except DBAPIError as error:
        raise unreachable(engine, error) from None
    return upgrade(engine)
