"""The ledger's backends for tests: a fresh SQLite file or a fresh PostgreSQL schema per test (or
a PostgreSQL database of its own, for a test that takes the ledger away).

Also what child processes run in the ledger's multi-process tests (they must be importable).
"""

from __future__ import annotations

import getpass
import multiprocessing
import os
import queue
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from scheduler.ledger import FireKind, Ledger
from tests.support.waiting import HANG_GUARD

BACKENDS = ("sqlite", "postgresql")
POSTGRES_URL = os.environ.get(
    "TC_SCHEDULER_TEST_POSTGRES",
    f"postgresql+psycopg://{getpass.getuser()}@127.0.0.1:5432/test",
)
# Only a hang guard: on a loaded machine spawning a Python process and importing SQLAlchemy
# takes seconds, and racing processes wait at the barrier for the slowest.
PROCESS_TIMEOUT_SECONDS = HANG_GUARD


@contextmanager
def fresh_ledger_url(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database on `backend`; nothing is migrated yet."""
    if backend == "sqlite":
        # A directory that does not exist yet: opening the ledger must create it.
        yield f"sqlite:///{directory / 'state' / 'ledger.db'}"
    elif backend == "postgresql":
        with postgresql_schema_url() as url:
            yield url
    else:
        raise ValueError(f"unknown ledger backend {backend!r}")


@contextmanager
def _created(create: str, drop: str) -> Iterator[Engine]:
    """The test server's admin engine, with `create` run on it first and `drop` at the end
    (a schema or database of the test's own); a server that does not answer fails the test."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as connection:
                connection.execute(text(create))
        except OperationalError as error:
            pytest.fail(
                f"PostgreSQL does not answer at {make_url(POSTGRES_URL)!r} "
                f"(run `make postgres`, or set TC_SCHEDULER_TEST_POSTGRES): {error.orig}"
            )
        try:
            yield admin
        finally:
            with admin.connect() as connection:
                connection.execute(text(drop))
    finally:
        admin.dispose()


@contextmanager
def postgresql_schema_url() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema, which is dropped afterwards.

    The schema is chosen by the connection's search_path (libpq's `options`), so the ledger,
    Alembic's version table included, needs no knowledge of it.
    """
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with _created(f'CREATE SCHEMA "{schema}"', f'DROP SCHEMA "{schema}" CASCADE'):
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)


@dataclass
class PostgresDatabase:
    """A database of its own on the test server, which a test can take away and bring back."""

    name: str
    url: str
    admin: Engine

    @contextmanager
    def unreachable(self) -> Iterator[None]:
        """While inside: the database refuses connections, and those it had are ended."""
        with self.admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.name},
            )
        try:
            yield
        finally:
            with self.admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))

    def execute(self, statement: str, **parameters: object) -> None:
        """Run `statement` in the database itself, committed."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(statement), parameters)
        finally:
            engine.dispose()


@contextmanager
def postgresql_database() -> Iterator[PostgresDatabase]:
    """A new, empty PostgreSQL database, dropped afterwards (its connections ended)."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with _created(f'CREATE DATABASE "{name}"', f'DROP DATABASE "{name}" WITH (FORCE)') as admin:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        yield PostgresDatabase(name, url, admin)


def run_in_processes(
    target: Callable[..., None], arguments: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """Run `target(*args, start, results)` in one new process per `args`; what they put in results.

    `start` is a barrier for all of them, so that they really do race; a process that fails
    breaks the barrier for the others, and this raises.
    """
    context = multiprocessing.get_context("spawn")  # no inherited connections or locks
    start = context.Barrier(len(arguments), timeout=PROCESS_TIMEOUT_SECONDS)
    results = context.Queue()
    processes = [context.Process(target=target, args=(*args, start, results)) for args in arguments]
    for process in processes:
        process.start()
    try:
        return _collect(results, processes)
    except BaseException:
        start.abort()  # the others stop waiting for the one that failed
        raise
    finally:
        for process in processes:
            process.join(timeout=PROCESS_TIMEOUT_SECONDS)
            if process.is_alive():
                process.kill()


def _collect(results: Any, processes: list[Any]) -> list[Any]:
    collected: list[Any] = []
    deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
    while len(collected) < len(processes):
        try:
            collected.append(results.get(timeout=0.05))
        except queue.Empty:
            failed = [process.exitcode for process in processes if process.exitcode]
            assert not failed, f"a racing process failed (exit codes {failed}); see its stderr"
            assert time.monotonic() < deadline, "the racing processes did not finish in time"
    return collected


def open_at_once(url: str, start: Barrier, results: Any) -> None:
    """Open (and so migrate) the ledger at the same moment as the other processes."""
    start.wait()
    with Ledger.open(url) as ledger:
        results.put(ledger.fires(limit=1))


def race_for_claims(
    url: str,
    replica: str,
    keys: list[tuple[str, datetime]],
    first_now: datetime,
    later_now: datetime,
    lease: timedelta,
    start: Barrier,
    results: Any,
) -> None:
    """Claim every (job, slot) in `keys` at `first_now`, then take them over at `later_now`.

    Puts (replica, keys claimed, keys taken over).
    """
    with Ledger.open(url) as ledger:

        def claimed_at(now: datetime) -> list[tuple[str, datetime]]:
            start.wait()
            return [
                (job, slot)
                for job, slot in keys
                if ledger.claim(
                    "race",
                    job,
                    slot,
                    kind=FireKind.SCHEDULED,
                    replica=replica,
                    now=now,
                    lease=lease,
                )
            ]

        first = claimed_at(first_now)
        later = claimed_at(later_now)
    results.put((replica, first, later))


def race_for_claims_at_once(
    url: str,
    replica: str,
    keys: list[tuple[str, str, datetime]],
    first_now: datetime,
    later_now: datetime,
    lease: timedelta,
    start: Barrier,
    results: Any,
) -> None:
    """`race_for_claims` with every (project, job, slot) of `keys` in one `claim_all`, in an
    order of this replica's own. Puts (replica, keys claimed, keys taken over)."""
    order = sorted(keys, key=lambda key: hash((replica, key)))
    with Ledger.open(url) as ledger:

        def claimed_at(now: datetime) -> list[tuple[str, str, datetime]]:
            start.wait()
            claims = ledger.claim_all(
                [(*key, FireKind.SCHEDULED) for key in order],
                replica=replica,
                now=now,
                lease=lease,
            )
            return [key for key, claim in zip(order, claims, strict=True) if claim]

        first = claimed_at(first_now)
        later = claimed_at(later_now)
    results.put((replica, first, later))
