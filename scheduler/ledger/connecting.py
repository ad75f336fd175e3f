"""Engines for the ledger's two backends, set up so that both give the same guarantees.

SQLite: one file shared by threads and processes (WAL, busy timeout, writers lock on BEGIN).
PostgreSQL: psycopg 3 at READ COMMITTED, the isolation the claim statements are written for.
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from scheduler.common.redaction import redact, scrub
from scheduler.errors import Category, SchedulerError

# The execution option that marks a connection's transaction as one that will write.
WRITING = "ledger_writing"
# How long a SQLite writer waits for another (thread or process) before giving up.
SQLITE_BUSY_TIMEOUT = timedelta(seconds=30)
# How long connecting to PostgreSQL may take (unless the URL says): a host that drops packets
# is an attempt that fails, not a process that hangs.
POSTGRESQL_CONNECT_TIMEOUT = timedelta(seconds=10)


class LedgerURLError(SchedulerError, ValueError, category=Category.INVALID, code="bad-ledger-url"):
    """The ledger URL names a backend or database the ledger cannot use."""


class LedgerUnreachableError(
    SchedulerError, category=Category.UNAVAILABLE, code="ledger-unavailable"
):
    """The ledger's database does not answer (not running, not reachable, refusing us)."""


def unreachable(engine: Engine, error: DBAPIError) -> LedgerUnreachableError:
    """The error to show for failing to connect to `engine`: where, and what the driver said
    (its first line), with no password in either."""
    said = next(iter(str(error.orig).strip().splitlines()), "") or type(error.orig).__name__
    where = redact(engine.url.render_as_string(hide_password=True))
    return LedgerUnreachableError(f"the ledger at {where} does not answer: {scrub(said)}")


def create_ledger_engine(url: str) -> Engine:
    """An engine for `url`: `sqlite:///path/ledger.db` or `postgresql+psycopg://...`."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # The URL may hold a password: never echo it.
        raise LedgerURLError(
            "the ledger URL is not a database URL; write it like sqlite:///path/ledger.db "
            "or postgresql+psycopg://user@host:5432/database"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgresql_engine(parsed)
    raise LedgerURLError(
        f"the ledger runs on SQLite or PostgreSQL, not {backend!r} "
        f"({parsed.render_as_string(hide_password=True)})"
    )


def _sqlite_engine(url: URL) -> Engine:
    if url.drivername not in {"sqlite", "sqlite+pysqlite"}:
        raise LedgerURLError(
            f"the ledger uses SQLite through Python's sqlite3, not {url.drivername}"
        )
    database = url.database or ""
    if database in {"", ":memory:"} or url.query.get("mode") == "memory":
        raise LedgerURLError(
            "the ledger must be a file (sqlite:///path/ledger.db): an in-memory ledger is not "
            "shared by connections and forgets every claim when the process ends"
        )
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT.total_seconds()})
    event.listen(engine, "connect", _prepare_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _prepare_sqlite_connection(
    connection: sqlite3.Connection, _record: ConnectionPoolEntry
) -> None:
    # sqlite3's own transaction handling begins late and cannot take the write lock up front;
    # with it off, _begin_sqlite_transaction decides how each transaction begins.
    connection.isolation_level = None
    # WAL lets readers run while a writer writes, in this process and in others.
    _enable_wal(connection)
    # In WAL mode, NORMAL survives a killed process (only a power cut can lose the last commits)
    # and spares an fsync per claim; a lost claim cannot double a fire, whose task id is fixed.
    connection.execute("PRAGMA synchronous=NORMAL")


def _enable_wal(connection: sqlite3.Connection) -> None:
    # Switching a fresh database to WAL needs a moment of exclusive access, and SQLite answers
    # "locked" at once (not after the busy timeout) while another process has it; so retry.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT.total_seconds()
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)


def _begin_sqlite_transaction(connection: Connection) -> None:
    # A transaction that reads and then writes cannot wait for the write lock (SQLite answers
    # "database is locked" at once to avoid a deadlock); taking the lock on BEGIN means writers
    # queue on the busy timeout instead.
    writing = connection.get_execution_options().get(WRITING, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _postgresql_engine(url: URL) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername != "postgresql+psycopg":
        raise LedgerURLError(
            f"the ledger uses PostgreSQL through psycopg 3 (postgresql+psycopg://), "
            f"not {url.drivername}"
        )
    timeout = int(POSTGRESQL_CONNECT_TIMEOUT.total_seconds())
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": timeout}
    return create_engine(
        url, isolation_level="READ COMMITTED", pool_pre_ping=True, connect_args=connect_args
    )
