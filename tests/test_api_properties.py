"""Property-based: Schemathesis drives every operation of /openapi.json with an operator token.

No response is a 5xx, and every response matches the document (status, content type, schema).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from scheduler.config.model import ApiSettings, ApiToken, Config
from scheduler.monitoring import Monitor
from scheduler.operations.acts import Operations
from scheduler.service import open_service
from scheduler.web.auth import hash_token
from scheduler.web.server import ApiServer
from tests.emulator import Emulator
from tests.support.emulated import REPOSITORY_ROLES
from tests.support.projects import HOURLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository

OPERATOR = "op-" + secrets.token_urlsafe(24)
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)


class Background:
    """The service's engine and API in a thread of their own, serving on a free port."""

    def __init__(self, config: Config, emulator: Emulator) -> None:
        self.config = config
        self.emulator = emulator
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Background:
        self._thread.start()
        assert self._ready.wait(timeout=60), "the API did not start"
        return self

    def __exit__(self, *_: Any) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with open_service(self.config, clock=self.emulator.clock.now) as (engine, _, ledger):
            monitor = Monitor(ledger, engine.clock)
            server = ApiServer(Operations(engine, ledger), engine.config.api, monitor)
            server.start()
            assert server.url is not None
            self.url = server.url
            self._ready.set()
            await self._stop.wait()
            await server.stop()


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp_path: Path = tmp_path_factory.mktemp("api")
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        repository = Repository(
            tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
        )
        config = make_config(emulator, tmp_path, project("alpha", repository))
        token = ApiToken("fuzzer", "operator", hash_token(OPERATOR))
        config = replace(config, api=ApiSettings(port=0, tokens=(token,)))
        with Background(config, emulator) as background:
            yield schemathesis.openapi.from_url(f"{background.url}/openapi.json")


def test_every_operation_answers_within_its_document(api_schema: Any) -> None:
    # Driven by hand rather than through `schema.parametrize()`: Schemathesis's pytest plugin
    # does not know this pytest's test items.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 13, [op.label for op in operations]
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
            derandomize=True,  # the same examples every run: CI must not flake on luck
        )
        def answers_within_its_document(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        answers_within_its_document()
