"""Opening the ledger: a database that does not answer is waited for by `run` (one clean line per
attempt) and is one line of error for every other command; a schema newer than this release
knows is refused; `tc-scheduler ledger upgrade` migrates, audited."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from alembic import command
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from scheduler.cli import main
from scheduler.ledger import (
    Ledger,
    LedgerTooNewError,
    LedgerUnreachableError,
    open_async_ledger,
)
from scheduler.ledger.connecting import create_ledger_engine
from scheduler.ledger.migrating import alembic_config, current_revision, head_revision
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.waiting import HANG_GUARD

PASSWORD = "pw-" + secrets.token_urlsafe(16)


@pytest.fixture
def unreachable_url() -> str:
    """A PostgreSQL URL, with a password, at a port of 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://scheduler:{PASSWORD}@127.0.0.1:{port}/test"


def invoke(*arguments: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def ledger_config(tmp_path: Path, url: str, *lines: str) -> Path:
    config = tmp_path / "service.yml"
    config.write_text(
        f"taskcluster: {{root-url: https://tc.example.com}}\nledger: '{url}'\n"
        "api: {listen: 'off'}\nprojects: []\n" + "".join(f"{line}\n" for line in lines)
    )
    return config


# A database that does not answer


def test_opening_an_unreachable_ledger_says_where_and_why_without_the_password(
    unreachable_url: str,
) -> None:
    with pytest.raises(LedgerUnreachableError) as refused:
        Ledger.open(unreachable_url)

    message = str(refused.value)
    assert message.startswith("the ledger at postgresql+psycopg://***@127.0.0.1:")
    assert "does not answer" in message
    assert "refused" in message.lower()
    assert PASSWORD not in message
    assert "\n" not in message


def test_the_ledger_is_tried_again_until_the_wait_is_over(unreachable_url: str) -> None:
    async def open_it() -> None:
        async with open_async_ledger(unreachable_url, wait=timedelta(seconds=1)):
            pass

    with structlog.testing.capture_logs() as logged, pytest.raises(LedgerUnreachableError) as gave:
        asyncio.run(open_it())

    attempts = [line for line in logged if line["event"].startswith("the ledger does not answer")]
    assert len(attempts) >= 1
    assert all(PASSWORD not in str(line) for line in logged)
    assert attempts[0]["attempt"] == 1
    assert "does not answer" in attempts[0]["error"]
    assert "gave up after waiting 1s" in str(gave.value)


def test_a_stop_ends_the_wait_for_the_ledger(unreachable_url: str) -> None:
    async def open_it(stop: asyncio.Event) -> None:
        async with open_async_ledger(unreachable_url, wait=timedelta(hours=1), stop=stop):
            pass

    async def stop_while_waiting(logged: list[dict[str, Any]]) -> None:
        stop = asyncio.Event()
        opening = asyncio.create_task(open_it(stop))
        while not logged:  # the first attempt failed: it now waits 30 seconds for the next
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(opening, HANG_GUARD)

    with structlog.testing.capture_logs() as logged, pytest.raises(LedgerUnreachableError) as gave:
        asyncio.run(stop_while_waiting(logged))

    assert str(gave.value).endswith("; stopped while waiting for it")
    assert [line["attempt"] for line in logged] == [1]


def test_commands_reading_an_unreachable_ledger_fail_with_one_line(
    unreachable_url: str, tmp_path: Path
) -> None:
    config = ledger_config(tmp_path, unreachable_url)

    for command_line in (("history",), ("audit",), ("ledger", "prune"), ("ledger", "upgrade")):
        result = invoke(*command_line, "--config", str(config))

        assert result.exit_code == 1, (command_line, result.output)
        [line] = result.stderr.splitlines()
        assert line.startswith("error: the ledger at postgresql+psycopg://***@127.0.0.1:")
        assert PASSWORD not in result.output


@pytest.mark.process
def test_run_waits_for_the_ledger_logging_each_attempt_then_exits_cleanly(
    unreachable_url: str, tmp_path: Path
) -> None:
    config = ledger_config(tmp_path, unreachable_url, "ledger-wait: 2s")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}

    ran = subprocess.run(
        [sys.executable, "-m", "scheduler", "run", "--config", str(config)],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )

    assert ran.returncode == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    assert PASSWORD not in ran.stderr + ran.stdout
    *logged, last = ran.stderr.splitlines()
    lines = [json.loads(line) for line in logged]  # the log: one JSON object a line
    retries = [
        line for line in lines if line["event"] == "the ledger does not answer; trying again"
    ]
    assert retries, ran.stderr
    assert all(line["level"] == "warning" and "exception" not in line for line in retries)
    assert last.startswith("error: the ledger at postgresql+psycopg://***@127.0.0.1:")
    assert last.endswith(
        "gave up after waiting 2s (ledger-wait in the configuration says how long)"
    )


# Schema versions


def test_a_ledger_newer_than_this_release_is_refused_and_left_alone(ledger_url: str) -> None:
    Ledger.open(ledger_url).close()
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

        with pytest.raises(LedgerTooNewError) as refused:
            Ledger.open(ledger_url)

        assert "revision 9999" in str(refused.value)
        assert f"knows up to {head_revision()}" in str(refused.value)
        with engine.connect() as connection:
            assert current_revision(connection) == "9999"
    finally:
        engine.dispose()


def test_ledger_upgrade_migrates_an_older_ledger_then_finds_it_up_to_date(
    ledger_url: str, tmp_path: Path
) -> None:
    engine = create_ledger_engine(ledger_url)  # the SQLite file's directory made, as opening does
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0005")
    finally:
        engine.dispose()
    config = ledger_config(tmp_path, ledger_url)

    first = invoke("ledger", "upgrade", "--config", str(config))
    again = invoke("ledger", "upgrade", "--json", "--config", str(config))

    assert first.exit_code == 0, first.output
    assert first.stdout == f"ledger upgraded from 0005 to {head_revision()}\n"
    assert json.loads(again.stdout) == {
        "from_revision": head_revision(),
        "to_revision": head_revision(),
        "upgraded": False,
    }
    with Ledger.open(ledger_url) as ledger:
        results = [e.result for e in ledger.audit_log() if e.action == "ledger-upgrade"]
    assert sorted(results) == [f"schema from 0005 to {head_revision()}", "schema up to date"]


def test_ledger_upgrade_refuses_a_ledger_a_newer_release_upgraded(
    ledger_url: str, tmp_path: Path
) -> None:
    Ledger.open(ledger_url).close()
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()

    result = invoke("ledger", "upgrade", "--config", str(ledger_config(tmp_path, ledger_url)))

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: the ledger's schema is at revision 9999")
