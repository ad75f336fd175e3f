"""Secret canaries: made-up secrets given to the service the ways real ones are, then looked
for in everything it writes or says.

The canaries: the Taskcluster access token, the Slack bot token, the Sentry DSN (its key), an
API token, the value of a secret-named environment variable (`MY_API_TOKEN`) that a broken
`.cron.yml` quotes, the password of a git URL (`fetch-from`), the password of the ledger's
PostgreSQL URL, and a repository URL with a password (a configuration error). The outputs: the
service's log, every command's output, the API's answers, the SQLite ledger's bytes, what the
fake Slack received, every Sentry item (exception values, local variables and breadcrumbs
included: the ledger is pulled from under a running service to make some) and the task
definitions Taskcluster holds (they are public).
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from scheduler.cron import format_slot
from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.emulator.sentry import FakeSentry
from tests.emulator.slack import FakeSlack
from tests.faults.harness import (
    Cli,
    Figures,
    environment,
    full_size,
    poll,
    report,
    run_cli,
    sqlite_url,
)
from tests.faults.worlds import EVERY_SLOT, TEMPLATE, project_entry, write_config
from tests.support.emulated import REPOSITORY_ROLES
from tests.support.ledger_backends import postgresql_schema_url
from tests.support.repos import Repository

# A leak may be cut short (Sentry cuts long values): a canary's first characters are enough.
PREFIX = 16


def _random(length: int = 32, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class Canaries:
    taskcluster_token: str = field(default_factory=lambda: _random(44))
    slack_token: str = field(
        default_factory=lambda: f"xoxb-{_random(12, string.digits)}-{_random(24)}"
    )
    sentry_key: str = field(default_factory=lambda: _random(32, "0123456789abcdef"))
    api_token: str = field(default_factory=lambda: _random(40))
    environment_secret: str = field(default_factory=lambda: _random(28))
    git_password: str = field(default_factory=lambda: _random(20))
    ledger_password: str = field(default_factory=lambda: _random(20))
    repository_password: str = field(default_factory=lambda: _random(20))

    def found_in(self, text: str) -> list[str]:
        """The names of the canaries `text` shows (whole, or their first characters)."""
        return [
            item.name
            for item in fields(self)
            if getattr(self, item.name)[:PREFIX] in text or getattr(self, item.name) in text
        ]


@dataclass
class Outputs:
    """Everything read back, by where it came from."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def add(self, source: str, content: Any) -> None:
        if isinstance(content, bytes):
            content = content.decode("latin-1")
        elif not isinstance(content, str):
            content = json.dumps(content, default=str)
        self.seen.append((source, content))

    def leaks(self, canaries: Canaries) -> list[str]:
        return [
            f"{name} in {source}: ...{_around(content, getattr(canaries, name))}..."
            for source, content in self.seen
            for name in canaries.found_in(content)
        ]


def _around(content: str, secret: str) -> str:
    at = content.find(secret[:PREFIX])
    return content[max(0, at - 80) : at + 80]


CRON = (
    "jobs:\n  - name: often\n"
    "    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}\n"
    f"    when: {EVERY_SLOT}\n"
)


def leaky_cron(secret: str) -> str:
    """A `.cron.yml` whose second job quotes `secret` where a minute belongs."""
    return CRON + (
        "  - name: leaky\n"
        "    job: {type: decision-task, treeherder-symbol: L, target-tasks-method: leaky}\n"
        f"    when: [{{minute: '{secret}'}}]\n"
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Canaries, Emulator, FakeSlack, FakeSentry]]:
    canaries = Canaries()
    with (
        Emulator(roles=REPOSITORY_ROLES, root_access_token=canaries.taskcluster_token) as tc,
        FakeSlack.running(token=canaries.slack_token, channels={"C0RELENG": "releng"}) as slack,
        FakeSentry.running(public_key=canaries.sentry_key) as sentry,
    ):
        yield canaries, tc, slack, sentry
        tc.assert_conforming()


def projects(tmp_path: Path, canaries: Canaries) -> list[str]:
    demo = Repository(tmp_path / "demo", {".cron.yml": CRON, ".taskcluster.yml": TEMPLATE})
    broken = Repository(
        tmp_path / "broken",
        {".cron.yml": leaky_cron(canaries.environment_secret), ".taskcluster.yml": TEMPLATE},
    )
    unreachable = f"https://bot:{canaries.git_password}@127.0.0.1:9/private.git"
    return [
        project_entry("demo", demo),
        project_entry("broken", broken),
        project_entry("private", unreachable),
    ]


def settings(
    tmp_path: Path, ledger: str, canaries: Canaries, slack: FakeSlack, api: str = "127.0.0.1:0"
) -> str:
    token = hash_token(canaries.api_token)
    return (
        f"ledger: {ledger}\nstate-dir: {tmp_path / 'state'}\nreplica: canaries\n"
        "watch-every: 1s\n"
        f"api: {{listen: '{api}', tokens: [{{name: ops, role: operator, sha256: {token}}}]}}\n"
        "notify:\n"
        f"  slack: {{api-url: '{slack.api_url}', channel: '#releng'}}\n"
        "  sentry: {environment: test, monitors: true}\n"
    )


def call_every_route(url: str, canaries: Canaries, outputs: Outputs) -> int:
    """Read and act through every route of the API; returns how many calls it made."""
    headers = {"Authorization": f"Bearer {canaries.api_token}"}
    calls = 0

    def call(method: str, path: str, **options: Any) -> httpx.Response:
        nonlocal calls
        calls += 1
        response = httpx.request(method, f"{url}{path}", timeout=120, **options)
        outputs.add(f"API {method} {path} ({response.status_code})", response.text)
        outputs.add(f"API {method} {path} headers", dict(response.headers))
        return response

    assert call("GET", "/api/v1/projects", headers=headers).status_code == 200
    for name in ("demo", "broken", "private"):
        call("GET", f"/api/v1/projects/{name}/jobs", headers=headers)
    for fire in call("GET", "/api/v1/fires?limit=100", headers=headers).json():
        call("GET", f"/api/v1/fires/{fire['id']}", headers=headers)
    fired = call("POST", "/api/v1/projects/demo/jobs/often/fire", headers=headers, json={})
    assert fired.status_code == 200, fired.text
    call("POST", "/api/v1/projects/demo/jobs/often/fire", headers=headers, json={})  # too soon
    call("POST", "/api/v1/projects/broken/jobs/leaky/fire", headers=headers, json={})
    call("POST", "/api/v1/projects/broken/pause", headers=headers, json={"reason": "a check"})
    call("DELETE", "/api/v1/projects/broken/pause", headers=headers)
    call("GET", "/api/v1/audit", headers=headers)
    call("GET", "/api/v1/projects/nothing/jobs", headers=headers)
    call("GET", "/api/v1/projects", headers={"Authorization": "Bearer not-a-token"})
    call("GET", "/openapi.json")
    return calls


def test_no_canary_reaches_any_output(
    world: tuple[Canaries, Emulator, FakeSlack, FakeSentry], tmp_path: Path
) -> None:
    canaries, emulator, slack, sentry = world
    outputs = Outputs()
    env = environment(
        emulator,
        SLACK_BOT_TOKEN=canaries.slack_token,
        SENTRY_DSN=sentry.dsn,
        MY_API_TOKEN=canaries.environment_secret,
    )
    ledger_path = tmp_path / "ledger.db"
    config = write_config(
        tmp_path / "service.yml",
        settings(tmp_path, sqlite_url(ledger_path), canaries, slack),
        *projects(tmp_path, canaries),
    )

    # The service: its start-up tick, a failed decision task reported, the API used.
    service = Cli(["run", "--config", str(config)], env)
    try:
        assert service.wait_for_event("serving the API"), service.text
        assert service.wait_for_event("slot evaluated", 3), service.text
        [fired] = [e for e in service.named("fired") if e.get("project") == "demo"]
        emulator.resolve_task(str(fired["task_id"]), "failed")
        poll(
            lambda: any(
                "failed" in (m.text or "") and "demo" in (m.text or "") for m in slack.messages
            ),
            "the failed decision task reported in Slack",
        )
        [serving] = service.named("serving the API")
        calls = call_every_route(str(serving["url"]), canaries, outputs)
    finally:
        assert service.stop() == 0, service.text
    outputs.add("the service's log", service.text)

    # The commands, on the same ledger.
    now = format_slot(emulator.clock.now())
    commands = [["tick", "--at", now], ["jobs", "broken"]]
    if full_size():  # each command is a process start: the quick form keeps to two tables
        commands += [
            ["history"],
            ["audit"],
            ["fire", "broken", "leaky"],
            ["notify", "test"],
            ["config", "check"],
        ]
    for command in commands:
        ran = run_cli([*command, "--config", str(config)], env)
        outputs.add(f"tc-scheduler {' '.join(command)}", ran.text)
    jobs_output = next(
        text for source, text in outputs.seen if source == "tc-scheduler jobs broken"
    )
    assert "minute" in jobs_output, "the broken job's error must be shown (masked)"

    # A repository URL with a password is a configuration error, which shows no password.
    with_password = write_config(
        tmp_path / "with-password.yml",
        f"ledger: {sqlite_url(tmp_path / 'other.db')}\n",
        "  - name: leaky-url\n"
        f"    repository: https://bot:{canaries.repository_password}@github.com/example/x\n"
        "    trust-domain: tcs\n",
    )
    refused = run_cli(["config", "check", "--no-preflight", "--config", str(with_password)], env)
    outputs.add("tc-scheduler config check (repository with a password)", refused.text)
    assert refused.process.returncode == 1, refused.text
    assert "fetch-from" in refused.text, refused.text

    # The ledger pulled from under a running service: its errors, tracebacks and their local
    # variables go to Sentry.
    exceptions = lose_the_ledger(tmp_path, canaries, slack, sentry, env, outputs)

    for path in sorted(tmp_path.glob("ledger.db*")):
        outputs.add(f"ledger file {path.name}", path.read_bytes())
    for message in slack.messages:
        outputs.add("Slack message", {"text": message.text, "blocks": message.blocks})
    for item in sentry.items:
        outputs.add(f"Sentry {item.type}", {"headers": item.headers, "payload": item.payload})
    for task in emulator.tasks():
        outputs.add(f"task {task.task_id}", task.definition)

    leaks = outputs.leaks(canaries)
    fires_made = len(emulator.tasks())
    report(
        Figures(
            "secret canaries",
            fires=fires_made,
            leaks=len(leaks),
            notes={
                "outputs": len(outputs.seen),
                "canaries": len(fields(canaries)),
                "api_calls": calls,
                "slack_messages": len(slack.messages),
                "sentry_items": len(sentry.items),
                "sentry_exceptions": exceptions,
            },
        )
    )
    assert slack.messages
    assert sentry.items
    assert exceptions, "no exception reached Sentry: its values and locals went unchecked"
    assert not leaks, "\n".join(leaks)


def lose_the_ledger(
    tmp_path: Path,
    canaries: Canaries,
    slack: FakeSlack,
    sentry: FakeSentry,
    env: dict[str, str],
    outputs: Outputs,
) -> int:
    """Run the service on a PostgreSQL ledger whose URL holds a password (the test server
    trusts 127.0.0.1, so any password passes), then take its schema away; its failing rounds
    log tracebacks, which go to Sentry. Returns how many exception events Sentry got."""
    before = _exception_events(sentry)
    with postgresql_schema_url() as url:
        # The password in its file, as the configuration must have it (never in the URL).
        password_file = tmp_path / "ledger-password"
        password_file.write_text(canaries.ledger_password + "\n")
        config = write_config(
            tmp_path / "lost-ledger.yml",
            settings(tmp_path / "lost", url, canaries, slack, api="off")
            + f"ledger-password-file: {password_file}\n",
            *projects(tmp_path / "lost", canaries)[:1],
        )
        service = Cli(["run", "--config", str(config)], env)
        schema = make_url(url).query["options"].removeprefix("-csearch_path=")
        admin = create_engine(make_url(url).difference_update_query(["options"]))
        try:
            assert service.wait_for_event("slot evaluated"), service.text
            with admin.begin() as connection:
                connection.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_lost"'))
            try:
                poll(lambda: _exception_events(sentry) > before, "an exception sent to Sentry")
            finally:
                with admin.begin() as connection:
                    connection.execute(text(f'ALTER SCHEMA "{schema}_lost" RENAME TO "{schema}"'))
        finally:
            service.stop()
            admin.dispose()
        outputs.add("the log of the service that lost its ledger", service.text)
    return _exception_events(sentry) - before


def _exception_events(sentry: FakeSentry) -> int:
    return sum(1 for event in sentry.events if event.get("exception"))
