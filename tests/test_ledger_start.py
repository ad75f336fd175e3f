"""Opening the ledger: a database that does not answer is waited for by `run` and `ledger upgrade`
(one clean line per attempt) and is one line of error for every other command; `run`'s last
word is a JSON line of its log off a terminal, a readable one on it; a schema newer than this
release knows is refused; `tc-scheduler ledger upgrade` migrates, audited when it did."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import pty
import secrets
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import structlog
from alembic import command
from alembic.script import ScriptDirectory
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
from tests.support.ledger_backends import postgresql_database
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


def read_terminal(terminal: int) -> str:
    """What was written to the terminal whose other end `terminal` is, once every writer
    closed it (Linux answers EIO then)."""
    written = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            chunk = b""
        if not chunk:
            return written.decode()
        written += chunk


def run_piped(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`tc-scheduler run --config CONFIG` as a process whose output is piped (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "scheduler", "run", "--config", str(config)],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )


def ledger_config(tmp_path: Path, url: str, *lines: str) -> Path:
    """A configuration of the ledger at `url`, whose password (never written in the file) is
    in the file ledger-password-file names."""
    parts = urlsplit(url)
    if parts.password is not None:
        (tmp_path / "ledger-password").write_text(unquote(parts.password))
        url = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", "@")).geturl()
        lines = ("ledger-password-file: ledger-password", *lines)
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

    for command_line in (("history",), ("audit",), ("ledger", "prune")):
        result = invoke(*command_line, "--config", str(config))

        assert result.exit_code == 1, (command_line, result.output)
        [line] = result.stderr.splitlines()
        assert line.startswith("error: the ledger at postgresql+psycopg://***@127.0.0.1:")
        assert PASSWORD not in result.output


def test_ledger_upgrade_waits_for_the_ledger_then_says_so_in_one_json_line(
    unreachable_url: str, tmp_path: Path
) -> None:
    config = ledger_config(tmp_path, unreachable_url, "ledger-wait: 1h")

    # Not a terminal here: every line is one of the log, the last one the error.
    result = invoke("ledger", "upgrade", "--wait", "1s", "--config", str(config))

    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    *attempts, last = [json.loads(line) for line in result.stderr.splitlines()]
    assert attempts, result.stderr
    assert all(line["event"] == "the ledger does not answer; trying again" for line in attempts)
    assert (last["level"], last["error"]) == ("error", "ledger-unavailable")
    assert last["event"].startswith("the ledger at postgresql+psycopg://***@127.0.0.1:")
    assert "gave up after waiting 1s" in last["event"]
    assert "exception" not in last
    assert PASSWORD not in result.output


def test_ledger_upgrade_with_no_wait_tries_once(unreachable_url: str, tmp_path: Path) -> None:
    config = ledger_config(tmp_path, unreachable_url)

    result = invoke("ledger", "upgrade", "--wait", "0s", "--config", str(config))
    refused = invoke("ledger", "upgrade", "--wait", "soon", "--config", str(config))

    assert result.exit_code == 1, result.output
    [line] = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["error"] == "ledger-unavailable"
    assert "gave up" not in line["event"]
    assert refused.exit_code == 2
    assert "'soon' is not a duration like 30s, 5m or 1h" in refused.stderr


@pytest.mark.process
def test_ledger_upgrade_waits_for_a_ledger_that_comes_back_and_upgrades_it(
    tmp_path: Path,
) -> None:
    # At the level it logs by (warning): each attempt is a line.
    env = {k: v for k, v in os.environ.items() if k != "TC_SCHEDULER_LOG_LEVEL"}
    with postgresql_database() as database:
        config = ledger_config(tmp_path, database.url)  # ledger-wait: the default 10 minutes
        upgrading: subprocess.Popen[str] | None = None
        try:
            with database.unreachable():
                upgrading = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "scheduler",
                        "ledger",
                        "upgrade",
                        "--config",
                        str(config),
                    ],
                    cwd=REPOSITORY_ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                assert upgrading.stderr is not None
                first = json.loads(upgrading.stderr.readline())  # blocks until it tried once
                assert first["event"] == "the ledger does not answer; trying again", first
            # The database answers again: the next attempt (30 s after the first) upgrades it.
            out, err = upgrading.communicate(timeout=HANG_GUARD)
        finally:
            if upgrading is not None:
                upgrading.kill()

        assert upgrading.returncode == 0, err
        assert out == f"ledger upgraded from nothing to {head_revision()}\n"
        with Ledger.open(database.url) as ledger:
            [act] = ledger.audit_log()
        assert (act.action, act.ok) == ("ledger-upgrade", True)
        assert act.result == f"schema from a new ledger to {head_revision()}"


@pytest.mark.process
def test_run_waits_for_the_ledger_logging_each_attempt_then_exits_cleanly(
    unreachable_url: str, tmp_path: Path
) -> None:
    config = ledger_config(tmp_path, unreachable_url, "ledger-wait: 2s")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}

    ran = run_piped(config, env)

    assert ran.returncode == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    assert PASSWORD not in ran.stderr + ran.stdout
    # The log, its last word included: one JSON object a line.
    *lines, last = [json.loads(line) for line in ran.stderr.splitlines()]
    retries = [
        line for line in lines if line["event"] == "the ledger does not answer; trying again"
    ]
    assert retries, ran.stderr
    assert all(line["level"] == "warning" and "exception" not in line for line in retries)
    assert (last["level"], last["error"], last["logger"]) == (
        "error",
        "ledger-unavailable",
        "tc_scheduler.cli",
    )
    assert "exception" not in last
    assert last["event"].startswith("the ledger at postgresql+psycopg://***@127.0.0.1:")
    assert last["event"].endswith(
        "gave up after waiting 2s (ledger-wait in the configuration says how long)"
    )


@pytest.mark.process
def test_run_on_a_terminal_ends_with_a_readable_error(unreachable_url: str, tmp_path: Path) -> None:
    config = ledger_config(tmp_path, unreachable_url, "ledger-wait: 0s")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    terminal, stderr = pty.openpty()
    try:
        ran = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "run", "--config", str(config)],
            cwd=REPOSITORY_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        os.close(stderr)  # the process holds the terminal now: read until it closes it
        written = read_terminal(terminal)
        ran.wait(timeout=HANG_GUARD)
    finally:
        os.close(terminal)

    assert ran.returncode == 1, written
    last = written.splitlines()[-1]
    assert last.startswith("error: the ledger at postgresql+psycopg://***@127.0.0.1:"), written
    assert PASSWORD not in written


@pytest.mark.process
def test_run_with_a_configuration_it_cannot_use_says_so_in_one_json_line(tmp_path: Path) -> None:
    config = tmp_path / "service.yml"
    config.write_text("projects:\n  - name: demo\n    level: 7\n")

    ran = run_piped(config)

    assert ran.returncode == 1, ran.stderr
    [line] = [json.loads(line) for line in ran.stderr.splitlines()]
    assert (line["level"], line["error"]) == ("error", "invalid-config")
    assert line["event"].startswith(f"{config} cannot be used (")
    assert any("level must be 1, 2 or 3 (got 7)" in problem for problem in line["details"])


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
    # Audited once: finding the schema up to date (as every replica's start does) is no act.
    with Ledger.open(ledger_url) as ledger:
        results = [e.result for e in ledger.audit_log() if e.action == "ledger-upgrade"]
    assert results == [f"schema from 0005 to {head_revision()}"]


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
    [line] = [json.loads(line) for line in result.stderr.splitlines()]  # not a terminal: the log's
    assert line["error"] == "ledger-too-new"
    assert line["event"].startswith("the ledger's schema is at revision 9999")


def test_the_head_read_from_the_file_names_is_alembics() -> None:
    """A ledger at the head starts without Alembic, which is told by the scripts' file names:
    each `vNNNN_*.py` is revision NNNN, revising the one before, and the last is the head."""
    scripts = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == scripts.get_current_head()
    for script in scripts.walk_revisions():
        assert script.path is not None
        number = Path(script.path).name[1:5]
        assert script.revision == number
        previous = f"{int(number) - 1:04d}" if int(number) > 1 else None
        assert script.down_revision == previous
