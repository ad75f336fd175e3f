"""Every command that talks to Taskcluster says what happened: a 503 is a 503, a 403 names the
missing scopes, and only a connection that failed is "could not reach Taskcluster"."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import slugid
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.config.model import CallBounds
from scheduler.taskcluster import connect
from scheduler.taskcluster_calls import Call
from scheduler.taskcluster_failures import Restriction, TaskclusterError, missing_scopes
from tests.emulator import Emulator
from tests.support.emulated import taskcluster_environment
from tests.support.projects import DAY, NIGHTLY, OWN_TEMPLATE, write_service_config
from tests.support.repos import Repository

# Each command, and the call whose failure it must report.
COMMANDS = {
    "tick": (["tick", "--at", "2026-12-01T02:00:00Z", "--json"], "queue.createTask"),
    "fire": (["fire", "demo", "nightly"], "queue.createTask"),
    "action": (["action", "demo", "rebuild"], "index.findTask"),
    "hooks fire": (["hooks", "fire", "project-tcs/rebuild"], "hooks.hook"),
    "hooks list": (["hooks", "list"], "hooks.listHooks"),
    "expiry report": (["expiry", "report"], "index.listNamespaces"),
    "expiry remediate": (["expiry", "remediate", "demo"], "index.listNamespaces"),
    "preflight": (["preflight"], "auth.expandScopes"),
}
# What the output must say for each fault.
SAYS = {
    "503": ["Taskcluster answered 503 Service Unavailable, still after 5 retries"],
    "reset": ["could not reach Taskcluster", "the connection was reset"],
    "403": ["403 InsufficientScopes", "missing scope"],
}


@pytest.fixture
def setting(tmp_path: Path) -> tuple[Path, Path]:
    repository = Repository(
        tmp_path / "demo", {".cron.yml": NIGHTLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    hooks = tmp_path / "hooks"
    (hooks / "project-tcs").mkdir(parents=True)
    return write_service_config(tmp_path, repository, extra="    expiry: {}\n"), hooks


def run(
    emulator: Emulator,
    command: str,
    config: Path,
    hooks: Path,
    credentials: dict[str, str] | None = None,
) -> Result:
    arguments, _ = COMMANDS[command]
    if command == "hooks list":
        arguments = [*arguments, "--hooks-dir", str(hooks)]
    env = taskcluster_environment(emulator)
    if credentials is not None:
        env["TASKCLUSTER_CLIENT_ID"] = credentials["clientId"]
        env["TASKCLUSTER_ACCESS_TOKEN"] = credentials["accessToken"]
    return CliRunner().invoke(main, [*arguments, "--config", str(config)], env=env)


@pytest.mark.parametrize("fault", ["503", "reset"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_failing_service_is_named_for_what_it_did(
    setting: tuple[Path, Path], command: str, fault: str
) -> None:
    config, hooks = setting
    _, call = COMMANDS[command]
    with Emulator() as emulator:
        emulator.clock.set(DAY.replace(hour=2, minute=1), frozen=True)
        emulator.faults.add(call, error_rate=1.0, errors=[fault])
        result = run(emulator, command, config, hooks)
    assert emulator.faults.injected, "the fault must be injected to mean anything"
    for words in SAYS[fault]:
        assert words in result.output, (command, result.output)
    if fault == "503":
        assert "could not reach" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "hooks fire"])
def test_a_refusal_names_the_missing_scopes(setting: tuple[Path, Path], command: str) -> None:
    """A private deployment, whose project role may create tasks in no queue and on no route,
    and a service client that holds the project's role and nothing else."""
    config, hooks = setting
    role = "repo:github.com/example/demo:cron:*"
    with Emulator(private=True, roles={role: ["queue:create-task:project:*"]}) as emulator:
        emulator.clock.set(DAY.replace(hour=2, minute=1), frozen=True)
        narrow = emulator.add_client("project/tc-scheduler/narrow", [f"assume:{role}"])
        result = run(emulator, command, config, hooks, narrow)
    for words in SAYS["403"]:
        assert words in result.output, (command, result.output)
    assert "could not reach" not in result.output
    assert "Traceback" not in result.output


def test_a_hook_fire_beyond_the_services_client_is_named(setting: tuple[Path, Path]) -> None:
    """An operator's hook fire carries only that hook's scopes; a client that lacks them is
    refused at authentication (401), and the message says whose scopes are missing."""
    config, _ = setting
    with Emulator() as emulator:
        narrow = emulator.add_client("project/tc-scheduler/narrow", ["hooks:get:*"])
        env = {
            **taskcluster_environment(emulator),
            "TASKCLUSTER_CLIENT_ID": narrow["clientId"],
            "TASKCLUSTER_ACCESS_TOKEN": narrow["accessToken"],
        }
        result = CliRunner().invoke(
            main, ["hooks", "fire", "project-tcs/rebuild", "--config", str(config)], env=env
        )
    assert result.exit_code == 1
    assert "hooks.hook(project-tcs/rebuild) failed: 401 AuthenticationFailed" in result.output
    assert (
        "the service's client does not hold the scopes of the hook fire of project-tcs/rebuild"
        in result.output
    )
    assert "hooks:trigger-hook:project-tcs/rebuild" in result.output


def test_missing_scopes_are_read_from_the_services_message() -> None:
    message = (
        "Client ID x does not have sufficient scopes and is missing the following scopes:\n\n"
        '```\n{\n  "AllOf": [\n    "queue:route:checks",\n    {"AnyOf": ["a:b", "a:c"]}\n  ]\n}\n'
        "```\n\nThis request requires the client to satisfy the following scope expression:"
    )
    assert missing_scopes(message) == ("queue:route:checks", "a:b")
    plain = 'is missing the following scopes:\n\n```\n"secrets:get:x"\n```'
    assert missing_scopes(plain) == ("secrets:get:x",)
    assert missing_scopes("something else") == ()
    assert Restriction("project demo", ("assume:repo:x:cron:*",)).acting_for == "project demo"


def test_a_5xx_to_the_last_retry_is_an_answer_not_an_unreachable_service(
    setting: tuple[Path, Path],
) -> None:
    """Taskcluster answering 500 to every attempt is reported as that answer, by `fire` too."""
    config, hooks = setting
    with Emulator() as emulator:
        emulator.clock.set(DAY.replace(hour=2, minute=1), frozen=True)
        emulator.faults.add("queue.createTask", script=["500"] * 10)
        result = run(emulator, "fire", config, hooks)
    assert ("queue.createTask", "500") in emulator.faults.injected
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # the table wraps long messages
    assert "Taskcluster answered 500 Internal Server Error, still after 5 retries" in said
    assert "could not reach" not in said
    assert "Traceback" not in result.output


def explained(emulator: Emulator, calls: int = 1) -> list[TaskclusterError]:
    """What each of `calls` calls for one task, one after the other in one asyncio task, that
    fail to their last retry are explained as."""

    async def call() -> list[TaskclusterError]:
        task_id = slugid.nice()
        errors = []
        async with connect(emulator.root_url, emulator.root_credentials) as clients:
            for _ in range(calls):
                try:
                    await clients.queue.task(task_id)
                except Exception as error:
                    errors.append(clients.explain(error, "queue.task"))
        assert len(errors) == calls, "every call was meant to fail"
        return errors

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("script", "says", "status"),
    [
        (["503"] * 6, "Taskcluster answered 503 Service Unavailable, still after 5 retries", 503),
        # Answers first, then a dropped connection at the last retry: the service is up, and
        # failing; saying it could not be reached would send people to the network.
        (
            ["502", "reset", "500", "500", "500", "reset"],
            "Taskcluster answered 500 Internal Server Error, still after 5 retries (the last "
            "one: the connection was reset in the middle of the answer)",
            500,
        ),
        (["reset"] * 6, "could not reach Taskcluster after 5 retries", None),
    ],
)
def test_what_the_last_answer_was_decides_what_a_failure_says(
    script: list[str], says: str, status: int | None
) -> None:
    with Emulator() as emulator:
        emulator.faults.add("queue.task", script=script)
        [error] = explained(emulator)
    assert [outcome for _, outcome in emulator.faults.injected] == script
    assert says in error.message
    assert error.status == status
    if status is not None:
        assert "could not reach" not in error.message


def test_an_answer_to_an_earlier_call_is_not_taken_for_this_ones() -> None:
    """A 5xx noted for one call is forgotten once that call is explained, even when the next
    call asks the same URL in the same asyncio task."""
    with Emulator() as emulator:
        emulator.faults.add("queue.task", script=["500"] * 6 + ["reset"] * 6)
        first, second = explained(emulator, calls=2)
    assert "answered 500" in first.message
    assert "could not reach Taskcluster" in second.message


@pytest.mark.parametrize("signed", [True, False])
def test_a_5xx_is_the_last_answer_of_a_call_abandoned_while_a_retry_waits(signed: bool) -> None:
    """A retry that never gets its headers (abandoned at the call's deadline) leaves the 5xx
    the attempt before it was answered as what the call met, signed or anonymous; each attempt
    is told once, the abandoned one without an answer."""
    calls: list[Call] = []

    async def call(emulator: Emulator) -> TaskclusterError:
        # The deadline leaves the first retry's backoff (0.1 s or so) time to spare.
        bounds = CallBounds(deadline=timedelta(seconds=3))
        credentials = emulator.root_credentials if signed else None
        async with connect(
            emulator.root_url, credentials, bounds=bounds, observe=calls.append
        ) as c:
            try:
                await c.queue.task(slugid.nice())
            except Exception as error:
                return c.explain(error, "queue.task")
            finally:
                emulator.faults.release()
        raise AssertionError("the call was meant to fail")

    with Emulator() as emulator:
        emulator.faults.add("queue.task", script=["503", "hold"])
        error = asyncio.run(call(emulator))
    assert [outcome for _, outcome in emulator.faults.injected] == ["503", "hold"]
    assert "timed out after 3s" in error.message
    assert "its last answer was 503 Service Unavailable" in error.message
    assert [(c.service, c.method, c.status) for c in calls] == [
        ("queue", "task", "503"),
        ("queue", "task", "no-answer"),
    ]
