"""Shared test fixtures: the research corpus, Taskcluster's own JSON schemas, the emulator and
ledgers on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from jsonschema import Draft7Validator
from referencing import Registry

from scheduler.clock import NOW_VARIABLE, offset_setting
from scheduler.ledger import Ledger
from tests import corpus
from tests.corpus import (
    CORPUS,
    REPOSITORY_ROOT,
    SCHEMA_BASE,
    corpus_cron_files,
    corpus_missing_message,
    corpus_templates,
)
from tests.emulator import Emulator
from tests.emulator.clock import format_time
from tests.ledger_backends import BACKENDS, fresh_ledger_url
from tests.repos import Repository

__all__ = ["CORPUS", "REPOSITORY_ROOT", "corpus_cron_files", "corpus_templates"]

# Properties are judged by what they find, never by how fast a loaded machine finds it: no
# per-example deadline, and no health check that fails when data generation is slow.
settings.register_profile(
    "tc-scheduler", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("tc-scheduler")


def pytest_configure(config: pytest.Config) -> None:
    problem = corpus_missing_message()
    if problem:
        raise pytest.UsageError(problem)


@pytest.fixture(scope="session")
def schema_registry() -> Registry:
    return corpus.schema_registry()


@pytest.fixture(scope="session")
def create_task_validator(schema_registry: Registry) -> Draft7Validator:
    uri = f"{SCHEMA_BASE}/schemas/queue/v1/create-task-request.json"
    return Draft7Validator(schema_registry.contents(uri), registry=schema_registry)


@pytest.fixture(scope="session")
def task_id_pattern(schema_registry: Registry) -> str:
    task = schema_registry.contents(f"{SCHEMA_BASE}/schemas/queue/v1/task.json")
    pattern: str = task["properties"]["taskGroupId"]["pattern"]
    return pattern


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty ledger database, once on each backend (SQLite and PostgreSQL)."""
    with fresh_ledger_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url) as opened:
        yield opened


# The test deployment's per-repository roles, `repo:<host>/<path>:*`: broadly what Firefox CI
# grants a repository's cron and decision tasks (create tasks in any queue, on any route, under
# any scheduler id; trigger hooks; name in-tree action hooks). Tests of least privilege make
# narrower ones.
REPOSITORY_ROLES = {
    "repo:*": [
        "queue:create-task:*",
        "queue:route:*",
        "queue:scheduler-id:*",
        "hooks:trigger-hook:*",
        "hooks:list-last-fires:*",
        "in-tree:hook-action:*",
    ]
}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh local Taskcluster with the repository roles; the test fails if any of its
    replies broke their schema."""
    with Emulator(roles=REPOSITORY_ROLES) as running:
        yield running
        running.assert_conforming()


def task_definition(now: datetime, **overrides: Any) -> dict[str, Any]:
    """A valid createTask request created at `now`, with `overrides` replacing its fields."""
    definition: dict[str, Any] = {
        "taskQueueId": "proj-test/worker",
        "created": format_time(now),
        "deadline": format_time(now + timedelta(hours=1)),
        "payload": {},
        "metadata": {
            "name": "test",
            "description": "a test task",
            "owner": "tests@example.com",
            "source": "https://example.com/tests",
        },
    }
    return definition | overrides


def write_service_config(
    tmp_path: Path,
    repository: Repository,
    *,
    project: str = "demo",
    ledger: str | None = None,
    extra: str = "",
) -> Path:
    """A service configuration of one project, whose tasks name
    https://github.com/example/<project> and whose git reads `repository`; `extra` is more of
    the project's entry (indented as it is). The ledger is SQLite in `tmp_path` by default."""
    ledger = ledger or f"sqlite:///{tmp_path / 'ledger.db'}"
    path = tmp_path / "service.yml"
    path.write_text(
        f"ledger: {ledger}\n"
        "projects:\n"
        f"  - name: {project}\n"
        f"    repository: https://github.com/example/{project}\n"
        f"    fetch-from: {repository.url}\n"
        "    trust-domain: tcs\n" + extra
    )
    return path


def taskcluster_environment(emulator: Emulator) -> dict[str, str]:
    """The variables that point a tc-scheduler process at the emulator, as its root client,
    on a clock running from the emulator's now (set the emulator's clock first)."""
    return {
        "TASKCLUSTER_ROOT_URL": emulator.root_url,
        "TASKCLUSTER_CLIENT_ID": emulator.root_credentials["clientId"],
        "TASKCLUSTER_ACCESS_TOKEN": emulator.root_credentials["accessToken"],
        NOW_VARIABLE: offset_setting(emulator.clock.now()),
    }
