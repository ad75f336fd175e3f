"""The fake Slack and Sentry every test shares: one of each for the whole run (tests/conftest.py
registers this module as a plugin), emptied before each test that asks for it.

`slack` is the fake Slack Web API (and incoming webhook), with a bot token and two channels;
`fake_sentry` the fake ingest endpoint, in a Sentry scope of the test's own. The tokens are
secrets like real ones: tests check they never leak. A test that needs other tokens or channels
starts its own `FakeSlack.running(...)`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import sentry_sdk

from tests.emulator.sentry import FakeSentry
from tests.emulator.slack import FakeSlack

SLACK_TOKEN = "xoxb-4242-test-" + secrets.token_hex(12)
SLACK_WEBHOOK_SECRET = "hook0secret0" + secrets.token_hex(12)
SLACK_CHANNELS = {"C0RELENG": "releng", "C0NIGHTLY": "nightly"}
SENTRY_KEY = secrets.token_hex(16)


@pytest.fixture(scope="session")
def slack_server() -> Iterator[FakeSlack]:
    with FakeSlack.running(
        token=SLACK_TOKEN, channels=SLACK_CHANNELS, webhook_secret=SLACK_WEBHOOK_SECRET
    ) as fake:
        yield fake


@pytest.fixture
def slack(slack_server: FakeSlack) -> FakeSlack:
    """The fake Slack with no messages, calls or pending faults."""
    slack_server.reset()
    return slack_server


@pytest.fixture(scope="session")
def sentry_server() -> Iterator[FakeSentry]:
    with FakeSentry.running(public_key=SENTRY_KEY, project_id=1) as fake:
        yield fake


@pytest.fixture
def fake_sentry(sentry_server: FakeSentry) -> Iterator[FakeSentry]:
    """The fake Sentry with nothing received and no pending faults."""
    sentry_server.reset()
    # Tags, breadcrumbs and the trace outlast a client: keep this test's to itself.
    with sentry_sdk.isolation_scope() as scope:
        scope.set_new_propagation_context()
        yield sentry_server
