"""The log: every line, the service's and the libraries', one JSON object off a terminal, at the
level asked for, carrying the running fire's values; `--log-level` and its mistakes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.common import logs
from scheduler.cron import slot_of
from tests.emulator import Emulator
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import taskcluster_environment
from tests.support.projects import write_service_config
from tests.support.repos import Repository
from tests.support.service import Service
from tests.support.waiting import wait_until

EVERY_SLOT = """\
jobs:
  - name: often
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
"""
# A project whose repository cannot be listed: git fails, is retried, and gives up.
UNREACHABLE = """\
  - name: broken
    repository: https://github.com/example/broken
    fetch-from: file:///nonexistent/tc-scheduler-test/broken.git
    trust-domain: tcs
"""
FIELDS = {"event", "level", "logger", "timestamp"}


# -- the service's log, from a process -----------------------------------------------------


def run_service(emulator: Emulator, tmp_path: Path, *options: str, **variables: str) -> Service:
    """`tc-scheduler [options] run` on two projects, `demo` (fine) and `broken` (its git fails),
    whose first createTask Taskcluster answers with a 500 (the client retries it)."""
    emulator.clock.set(slot_of(emulator.clock.now()) + timedelta(minutes=7, seconds=30))
    emulator.faults.add("queue.createTask", script=["500"])
    repository = Repository(
        tmp_path / "repo",
        {
            ".cron.yml": EVERY_SLOT,
            ".taskcluster.yml": (REPOSITORY_ROOT / ".taskcluster.yml").read_text(),
        },
    )
    config = write_service_config(tmp_path, repository, extra=UNREACHABLE)
    config.write_text(f"api: {{listen: '127.0.0.1:0'}}\n{config.read_text()}")
    inherited = {k: v for k, v in os.environ.items() if k != "TC_SCHEDULER_LOG_LEVEL"}
    env = {**inherited, **taskcluster_environment(emulator), **variables}
    command = [sys.executable, "-m", "scheduler", *options, "run", "--config", str(config)]
    return Service(command, env)


def git_failures(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines about the broken project's git: its retries (warnings), then the slot's and
    preflight's failures (errors)."""
    return [line for line in lines if "could not list branch" in _said(line)]


def _said(line: dict[str, Any]) -> str:
    return " ".join(str(line.get(key)) for key in ("event", "error", "message"))


def taskcluster_retries(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if str(line.get("logger")).startswith("taskcluster.")
        and "Retrying" in str(line.get("event"))
    ]


def run_until_both_failures(service: Service, emulator: Emulator) -> list[dict[str, Any]]:
    """Run until the broken project's slot failed and demo's task was created after its retry;
    stop; every line written, each parsed as JSON (the assertion names a line that is not)."""

    # Waited for in the raw text: a line that is not JSON fails the asserts, not the wait.
    def both_failed() -> bool:
        text = "".join(service.raw)
        return bool(emulator.tasks()) and all(
            said in text for said in ("project slot failed", "Retrying because of")
        )

    try:
        assert wait_until(lambda: both_failed() or service.process.poll() is not None)
        assert both_failed(), "".join(service.raw)
    finally:
        assert service.stop() == 0, "".join(service.raw[-40:])
    parsed = []
    for raw in service.raw:
        try:
            line = json.loads(raw)
        except ValueError:
            pytest.fail(f"a line of the log is not JSON: {raw!r}")
        assert isinstance(line, dict), raw
        assert set(line) >= FIELDS, raw
        parsed.append(line)
    assert parsed
    return parsed


@pytest.mark.process
def test_every_line_of_run_is_one_json_object_ours_and_the_libraries(
    emulator: Emulator, tmp_path: Path
) -> None:
    service = run_service(emulator, tmp_path)
    lines = run_until_both_failures(service, emulator)

    # git, through the standard library: each retry (the tick's and preflight's), then the
    # slot's failure, each naming the project whose repository it is.
    failures = git_failures(lines)
    assert {line.get("project") for line in failures} == {"broken"}
    loggers = {line["logger"] for line in failures}
    assert "tc_scheduler.engine" in loggers, failures
    assert any(name.startswith("scheduler.git") for name in loggers), failures
    assert {line["level"] for line in failures} == {"warning", "error"}
    # The tick's retries carry its slot too.
    assert any(line["logger"].startswith("scheduler.git") and "slot" in line for line in failures)
    # The Taskcluster client's retry, inside demo's fire: it carries the fire's values.
    [retry] = taskcluster_retries(lines)
    assert retry["logger"] == "taskcluster.aio.retry"
    assert retry["level"] == "warning"
    assert (retry["project"], retry["job"]) == ("demo", "often")
    [fired] = [line for line in lines if line["event"] == "fired"]
    assert fired["task_id"] == emulator.tasks()[0].task_id
    # info is the service's default: its own info lines, no library's below warning.
    levels = {(line["logger"].split(".")[0], line["level"]) for line in lines}
    assert ("tc_scheduler", "info") in levels
    assert not [line for line in lines if line["level"] == "debug"]
    assert not [
        line
        for line in lines
        if line["level"] == "info" and line["logger"].split(".")[0] not in logs.OWN_LOGGERS
    ]
    assert emulator.root_credentials["accessToken"] not in "".join(service.raw)


@pytest.mark.process
def test_log_level_warning_drops_the_info_lines(emulator: Emulator, tmp_path: Path) -> None:
    service = run_service(emulator, tmp_path, "--log-level", "warning")
    lines = run_until_both_failures(service, emulator)

    assert {line["level"] for line in lines} <= {"warning", "error", "critical"}
    assert git_failures(lines)
    assert taskcluster_retries(lines)


@pytest.mark.process
def test_log_level_debug_from_the_environment_lets_every_library_speak(
    emulator: Emulator, tmp_path: Path
) -> None:
    service = run_service(emulator, tmp_path, TC_SCHEDULER_LOG_LEVEL="DEBUG")
    lines = run_until_both_failures(service, emulator)

    debug = {line["logger"].split(".")[0] for line in lines if line["level"] == "debug"}
    assert "taskcluster" in debug, debug
    # uvicorn's own lines (it serves the API) are JSON objects like any other.
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert emulator.root_credentials["accessToken"] not in "".join(service.raw)


# -- the command line -----------------------------------------------------------------------


def test_an_unknown_level_is_a_usage_error() -> None:
    runner = CliRunner()
    given = runner.invoke(main, ["--log-level", "loud", "check"])
    assert given.exit_code == 2
    assert "'loud' is not one of 'debug', 'info', 'warning', 'error'" in given.stderr
    from_environment = runner.invoke(main, ["check"], env={"TC_SCHEDULER_LOG_LEVEL": "verbose"})
    assert from_environment.exit_code == 2
    assert "TC_SCHEDULER_LOG_LEVEL" in from_environment.stderr
    assert "'verbose' is not one of" in from_environment.stderr


# -- the setup, in this process -------------------------------------------------------------


@pytest.fixture
def log_to() -> Iterator[Callable[..., io.StringIO]]:
    """`configure(level)` on a fresh stream, which it returns; logging as it was afterwards."""
    root = logging.getLogger()
    levels = [logging.getLogger(name).level for name in (None, *logs.OWN_LOGGERS)]
    hook = sys.excepthook
    # Whoever restored `warnings.showwarning` since an earlier test's capture (pytest does)
    # left logging believing it still captures: start afresh.
    logging.captureWarnings(False)

    def configure(level: str = "info") -> io.StringIO:
        stream = io.StringIO()
        logs.configure(stream=stream, json=True, level=level)
        return stream

    yield configure
    structlog.reset_defaults()
    sys.excepthook = hook
    for handler in list(root.handlers):
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            root.removeHandler(handler)
    for name, level in zip((None, *logs.OWN_LOGGERS), levels, strict=True):
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_a_library_traceback_stays_inside_its_one_line(log_to: Callable[..., io.StringIO]) -> None:
    stream = log_to()
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logging.getLogger("apscheduler.executors.default").exception("Job raised an exception")

    [line] = parsed(stream)
    assert line["logger"] == "apscheduler.executors.default"
    assert line["level"] == "error"
    assert line["event"] == "Job raised an exception"
    assert "ConnectionResetError: peer went away" in line["exception"]


def test_the_level_is_the_services_own_and_libraries_speak_from_warning(
    log_to: Callable[..., io.StringIO],
) -> None:
    stream = log_to("info")
    ours = structlog.get_logger("tc_scheduler.engine")
    ours.debug("not shown")
    ours.info("ticked")
    logging.getLogger("scheduler.git.source").info("fetched")
    logging.getLogger("apscheduler.executors.default").info("Running job")
    logging.getLogger("taskcluster.aio.retry").warning("Retrying because of: 503")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)

    shown = [(line["logger"], line["level"], line["event"]) for line in parsed(stream)]
    assert shown[:3] == [
        ("tc_scheduler.engine", "info", "ticked"),
        ("scheduler.git.source", "info", "fetched"),
        ("taskcluster.aio.retry", "warning", "Retrying because of: 503"),
    ]
    [(logger, level, event)] = shown[3:]
    assert (logger, level) == ("py.warnings", "warning")
    assert "a library's deprecation" in event

    stream = log_to("error")
    ours.warning("not shown either")
    logging.getLogger("taskcluster.aio.retry").warning("nor this")
    ours.error("shown")
    assert [line["event"] for line in parsed(stream)] == ["shown"]


def test_a_library_line_carries_the_values_the_running_fire_bound(
    log_to: Callable[..., io.StringIO],
) -> None:
    stream = log_to()
    library = logging.getLogger("taskcluster.aio.retry")

    async def fire() -> None:
        with structlog.contextvars.bound_contextvars(project="demo", job="nightly"):
            library.warning("Retrying because of: 500")
            # A task one fire starts for all of them does not carry that fire's values.
            await asyncio.create_task(renew(), context=logs.unbound())

    async def renew() -> None:
        library.warning("renewing")

    asyncio.run(fire())

    first, second = parsed(stream)
    assert (first["project"], first["job"]) == ("demo", "nightly")
    assert "project" not in second
    assert "job" not in second


def test_configuring_again_replaces_the_handler(log_to: Callable[..., io.StringIO]) -> None:
    first = log_to()
    second = log_to()
    logging.getLogger("taskcluster").warning("once")
    assert first.getvalue() == ""
    assert [line["event"] for line in parsed(second)] == ["once"]


def test_a_crash_is_one_more_json_line(log_to: Callable[..., io.StringIO]) -> None:
    stream = log_to()
    try:
        raise RuntimeError("the ledger went away")
    except RuntimeError as error:
        sys.excepthook(type(error), error, error.__traceback__)

    [line] = parsed(stream)
    assert line["level"] == "critical"
    assert line["logger"] == "tc_scheduler"
    assert "RuntimeError: the ledger went away" in line["exception"]
