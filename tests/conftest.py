"""Shared test fixtures: Taskcluster's own JSON schemas, the emulator, ledgers on both backends,
the fake Slack and Sentry (tests/support/fakes.py); and each test's tier, marked as collected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings
from jsonschema import Draft7Validator
from referencing import Registry

from scheduler.ledger import Ledger
from tests.emulator import Emulator
from tests.support import corpus
from tests.support.corpus import SCHEMA_BASE, corpus_missing_message
from tests.support.emulated import REPOSITORY_ROLES
from tests.support.ledger_backends import BACKENDS, fresh_ledger_url
from tests.support.tiers import add_fast_option, holds_no_fast_test, mark_tiers

pytest_plugins = ["tests.support.fakes"]

# Properties are judged by what they find, never by how fast a loaded machine finds it: no
# per-example deadline, and no health check that fails when data generation is slow.
settings.register_profile(
    "tc-scheduler", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("tc-scheduler")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_fast_option(parser)


def pytest_configure(config: pytest.Config) -> None:
    problem = corpus_missing_message()
    if problem:
        raise pytest.UsageError(problem)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if holds_no_fast_test(collection_path, config) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_tiers(config, items)


@pytest.fixture(autouse=True)
def structlog_defaults() -> Iterator[None]:
    """Each test starts from structlog's defaults. A command run in this process (CliRunner)
    configures logging for the whole process, and the level it chose (warning, for most
    commands) would keep a later test's info lines from `structlog.testing.capture_logs`."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


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


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh local Taskcluster with the repository roles; the test fails if any of its
    replies broke their schema."""
    with Emulator(roles=REPOSITORY_ROLES) as running:
        yield running
        running.assert_conforming()
