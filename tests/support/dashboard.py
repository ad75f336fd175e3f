"""Signing an HTTP client in to the dashboard and reading the CSRF token its pages carry, as
a browser would, for the tests that act from the dashboard's forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from scheduler.clock import Clock
from scheduler.config.model import Config
from scheduler.monitoring import Monitor
from scheduler.operations.acts import Operations
from scheduler.service import Notifier, open_service
from scheduler.web.server import ApiServer
from scheduler.web.sessions import COOKIE


async def sign_in(client: httpx.AsyncClient, token: str) -> str:
    """Sign in with `token` (ending the session the client had); the session id the cookie
    carries."""
    response = await client.post("/sign-in", data={"token": token})
    assert response.status_code == 303, response.text
    session_id = client.cookies.get(COOKIE)
    assert session_id
    return session_id


async def csrf_token(client: httpx.AsyncClient, path: str) -> str:
    """The CSRF token of the client's session, as the page at `path` carries it in its forms."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found, "a signed-in page carries its session's CSRF token"
    return found.group(1)


@asynccontextmanager
async def serving_pages(
    config: Config, clock: Clock
) -> AsyncIterator[tuple[httpx.AsyncClient, Operations, Notifier]]:
    """The service of `config` on `clock`, its API and pages served on a free port: an HTTP
    client of them, the operations, and the service's notifier (whose round moves the watches
    on and delivers the notices)."""
    async with open_service(config, clock=clock) as (engine, notifier, ledger):
        operations = Operations(engine, ledger)
        server = ApiServer(operations, engine.config.api, Monitor(ledger, engine.clock))
        server.start()
        assert server.url is not None
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                yield client, operations, notifier
        finally:
            await server.stop()
