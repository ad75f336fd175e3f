"""The operations layer: every act audited once with its actor, the command line and the API
answering the same JSON, reads that need the ledger alone, and each error category's status and
exit status."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.cli.setup import EXIT_STATUS
from scheduler.config.loading import read_config
from scheduler.config.model import ApiSettings, ApiToken
from scheduler.errors import Category
from scheduler.ledger import Act, Ledger
from scheduler.monitoring import Monitor
from scheduler.operations.acts import FireFailedError
from scheduler.operations.ledgered import InvalidPauseError
from scheduler.operations.models import FireQuery
from scheduler.outcomes import FireTooSoonError, UnknownJobError
from scheduler.service import open_service
from scheduler.web.app import STATUS
from scheduler.web.auth import hash_token
from scheduler.web.server import ApiServer
from tests.emulator import Emulator
from tests.support.emulated import taskcluster_environment
from tests.support.projects import (
    CRON_ROLE,
    GREEDY_TEMPLATE,
    HOURLY,
    OWN_TEMPLATE,
    make_config,
    project,
    write_service_config,
)
from tests.support.repos import Repository
from tests.support.waiting import HANG_GUARD

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
OPERATOR = "op-token-for-the-operations-tests"


def invoke(*arguments: str, env: Mapping[str, str | None]) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def test_every_category_has_a_status_and_an_exit_status() -> None:
    assert set(STATUS) == set(Category) == set(EXIT_STATUS)
    assert STATUS[Category.REFUSED_UPSTREAM] == 502
    assert STATUS[Category.TOO_SOON] == 429
    assert STATUS[Category.NOT_CONFIGURED] == STATUS[Category.NOT_FOUND] == 404
    assert EXIT_STATUS[Category.NOT_CONFIGURED] == EXIT_STATUS[Category.INVALID] == 2
    assert EXIT_STATUS[Category.NOT_FOUND] == EXIT_STATUS[Category.REFUSED_UPSTREAM] == 1


def test_every_act_is_audited_once_with_its_actor(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(NOW, frozen=True)
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(emulator, tmp_path, project("alpha", repository))

    async def acts() -> None:
        async with open_service(config, clock=emulator.clock.now) as service:
            ops = service.operations()
            await ops.fire_job("ann", "alpha", "hourly")
            with pytest.raises(FireTooSoonError):
                await ops.fire_job("bob", "alpha", "hourly")
            with pytest.raises(UnknownJobError):
                await ops.fire_job("cy", "alpha", "nope")
            await ops.ledger.pause("dee", "alpha", None, reason="tree closed", until=None)
            with pytest.raises(InvalidPauseError):
                await ops.ledger.pause("eve", "alpha", None, reason=" ", until=None)
            assert (await ops.ledger.resume("fay", "alpha", None)).resumed
            assert await ops.ledger.history(FireQuery(project="alpha"))  # reads are not acts

    asyncio.run(acts())
    with Ledger.open(config.ledger_url) as ledger:
        log = ledger.audit_log()
    assert [(e.actor, e.action, e.target, e.ok) for e in reversed(log)] == [
        ("ann", "fire", "alpha/hourly", True),
        ("bob", "fire", "alpha/hourly", False),
        ("cy", "fire", "alpha/nope", False),
        ("dee", "pause", "alpha", True),
        ("fay", "resume", "alpha", True),
    ]


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "repo", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE})


def test_jobs_answer_the_same_json_from_the_command_line_and_the_api(
    emulator: Emulator, tmp_path: Path, repository: Repository
) -> None:
    emulator.clock.set(NOW)
    environment = taskcluster_environment(emulator)
    path = str(write_service_config(tmp_path, repository))
    assert invoke("fire", "demo", "hourly", "--config", path, env=environment).exit_code == 0
    held = invoke("pause", "demo", "hourly", "--reason", "flaky", "--config", path, env=environment)
    assert held.exit_code == 0, held.output
    command = invoke("jobs", "demo", "--json", "--config", path, env=environment)
    assert command.exit_code == 0, command.output

    config = read_config(Path(path), environment)
    config = replace(config, api=ApiSettings(host="127.0.0.1", port=0, public_reads=True))

    async def ask() -> httpx.Response:
        async with open_service(config, clock=emulator.clock.now) as service:
            monitor = Monitor(service.ledger, service.engine.clock)
            server = ApiServer(service.operations(), config.api, monitor)
            server.start()
            assert server.url is not None
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    return await client.get("/api/v1/projects/demo/jobs")
            finally:
                await server.stop()

    answer = asyncio.run(ask())
    assert answer.status_code == 200, answer.text
    shown = json.loads(command.stdout)
    assert shown == answer.json()
    [job] = shown["jobs"]
    assert (job["last_fire"]["kind"], job["paused"]["reason"]) == ("manual", "flaky")
    assert len(job["next_fires"]) == 3


def test_reads_need_no_taskcluster_slack_or_sentry_settings(
    emulator: Emulator, tmp_path: Path, repository: Repository
) -> None:
    emulator.clock.set(NOW)
    path = write_service_config(tmp_path, repository)
    full = taskcluster_environment(emulator)
    assert invoke("fire", "demo", "hourly", "--config", str(path), env=full).exit_code == 0
    # A configuration that demands credentials, a Slack token and a Sentry DSN to run.
    path.write_text(
        path.read_text()
        + "dry-run: false\nnotify:\n  slack: {channel: '#ops'}\n  sentry: {environment: test}\n"
    )
    bare: dict[str, str | None] = dict.fromkeys(
        (
            "TASKCLUSTER_ROOT_URL",
            "TASKCLUSTER_CLIENT_ID",
            "TASKCLUSTER_ACCESS_TOKEN",
            "SLACK_BOT_TOKEN",
            "SLACK_WEBHOOK_URL",
            "SENTRY_DSN",
        )
    )
    refused = invoke("fire", "demo", "hourly", "--config", str(path), env=bare)
    assert refused.exit_code == 1, "acting still needs them"
    history = invoke("history", "--json", "--config", str(path), env=bare)
    assert history.exit_code == 0, history.output
    [fire] = json.loads(history.stdout)
    assert (fire["job"], fire["kind"], fire["state"]) == ("hourly", "manual", "created")
    audit = invoke("audit", "--json", "--config", str(path), env=bare)
    assert audit.exit_code == 0, audit.output
    assert [entry["action"] for entry in json.loads(audit.stdout)] == ["fire"]


def test_reads_mask_the_secrets_the_configuration_names(
    tmp_path: Path, repository: Repository
) -> None:
    """history and audit read only the ledger, yet what the ledger holds is masked with every
    secret the configuration names, here a credentials file's access token."""
    token = secrets.token_urlsafe(24)  # new to this process: only the command can mask it
    path = write_service_config(tmp_path, repository)
    (tmp_path / "credentials.json").write_text(
        json.dumps({"clientId": "tc-scheduler", "accessToken": token})
    )
    path.write_text(path.read_text() + "taskcluster:\n  credentials-file: credentials.json\n")
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        act = Act("someone", "fire", "demo/hourly", {"note": f"token {token}"})
        ledger.record_act(act, ok=False, result=f"refused: token {token} leaked", now=NOW)
    bare = dict.fromkeys(("TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN"))
    audit = invoke("audit", "--json", "--config", str(path), env=bare)
    assert audit.exit_code == 0, audit.output
    [entry] = json.loads(audit.stdout)
    assert entry["result"].startswith("refused: token ")
    assert token not in audit.output


@pytest.fixture
def deployment() -> Iterator[Emulator]:
    """A deployment whose cron role for the greedy project grants no secrets."""
    with Emulator(roles={"repo:github.com/example/greedy:cron:*": CRON_ROLE}) as emulator:
        yield emulator


def test_a_fire_taskcluster_refuses_is_a_502(deployment: Emulator, tmp_path: Path) -> None:
    deployment.clock.set(NOW, frozen=True)
    greedy = Repository(
        tmp_path / "greedy", {".cron.yml": HOURLY, ".taskcluster.yml": GREEDY_TEMPLATE}
    )
    config = make_config(deployment, tmp_path, project("greedy", greedy))
    api = ApiSettings(
        host="127.0.0.1", port=0, tokens=(ApiToken("sheriffs", "operator", hash_token(OPERATOR)),)
    )
    config = replace(config, api=api)

    async def fire() -> httpx.Response:
        async with open_service(config, clock=deployment.clock.now) as service:
            monitor = Monitor(service.ledger, service.engine.clock)
            server = ApiServer(service.operations(), config.api, monitor)
            server.start()
            assert server.url is not None
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    return await client.post(
                        "/api/v1/projects/greedy/jobs/hourly/fire",
                        json={},
                        headers={"Authorization": f"Bearer {OPERATOR}"},
                    )
            finally:
                await server.stop()

    answer = asyncio.run(fire())
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert body["error"] == "fire-failed"
    assert "403 InsufficientScopes" in body["message"]
    assert (body["fire"]["job"], body["fire"]["state"]) == ("hourly", "failed")
    with Ledger.open(config.ledger_url) as ledger:
        log = ledger.audit_log()
    assert [(e.actor, e.action, e.ok) for e in log] == [("sheriffs (api)", "fire", False)]
    assert "403 InsufficientScopes" in log[0].result
    with Ledger.open(config.ledger_url) as ledger:
        [refused] = ledger.fires(project="greedy")
    assert (refused.kind, refused.state) == ("manual", "failed")


def test_a_fire_its_own_template_breaks_is_refused_and_shown(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Not Taskcluster's failure but the project's: the command line shows the failed fire
    (as JSON with --json) and exits 1; the category is `refused` (the API's 400)."""
    emulator.clock.set(NOW)
    broken = Repository(
        tmp_path / "broken", {".cron.yml": HOURLY, ".taskcluster.yml": "tasks: [{$if: '"}
    )
    path = write_service_config(tmp_path, broken)
    answer = invoke(
        "fire",
        "demo",
        "hourly",
        "--json",
        "--config",
        str(path),
        env=taskcluster_environment(emulator),
    )
    assert answer.exit_code == EXIT_STATUS[Category.REFUSED] == 1, answer.output
    fire = json.loads(answer.stdout)
    assert (fire["job"], fire["kind"], fire["state"]) == ("hourly", "manual", "failed")
    assert "the fire failed" in answer.stderr

    async def fire_again() -> FireFailedError:
        config = make_config(emulator, tmp_path, project("demo", broken))
        async with open_service(config, clock=emulator.clock.now) as service:
            with pytest.raises(FireFailedError) as failed:
                await service.operations().fire_job("someone", "demo", "hourly", dry_run=True)
            return failed.value

    assert (asyncio.run(fire_again()).category, STATUS[Category.REFUSED]) == (
        Category.REFUSED,
        400,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can take a uid that has no name")
def test_an_actor_whose_uid_has_no_name_is_its_uid() -> None:
    """In a container run as an arbitrary uid there is no passwd entry: acts still have an
    actor, and the command does not fail."""
    nameless = 54_321
    assert not any(entry.pw_uid == nameless for entry in pwd.getpwall())
    # Imported first: after setuid, this uid may not read the interpreter's own files.
    program = (
        "import os; from scheduler.cli.setup import actor; "
        f"os.setgid({nameless}); os.setuid({nameless}); print(actor())"
    )
    environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"uid {nameless}@")
