"""The service's calls are signed by its session, not by the client library: Taskcluster (the
emulator, which checks every Hawk signature and payload hash with mohawk) accepts them, with
the scopes they were limited to, and the ext is byte for byte the library's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from scheduler.taskcluster import Clients, connect
from scheduler.taskcluster_signing import hawk_ext
from tests.emulator import Emulator
from tests.support.emulated import task_definition

ROOT_URL = "https://tc.example.com"
SCOPES = ["queue:create-task:*", "queue:scheduler-id:-", "auth:current-scopes"]


def called(
    emulator: Emulator,
    credentials: dict[str, str] | None,
    call: Callable[[Clients], Awaitable[Any]],
) -> Any:
    async def calling() -> Any:
        async with connect(emulator.root_url, credentials) as clients:
            return await call(clients)

    return asyncio.run(calling())


def temporary_credentials(emulator: Emulator, scopes: list[str]) -> dict[str, str]:
    now = emulator.clock.now()
    root = emulator.root_credentials
    temporary: dict[str, str] = taskcluster.createTemporaryCredentials(
        root["clientId"], root["accessToken"], now, now + timedelta(hours=1), scopes
    )
    return temporary


@pytest.mark.parametrize("authorized_scopes", [None, [], SCOPES])
@pytest.mark.parametrize("temporary", [False, True])
def test_the_ext_is_the_client_librarys(
    authorized_scopes: list[str] | None, temporary: bool
) -> None:
    with Emulator() as emulator:
        credentials = (
            temporary_credentials(emulator, ["queue:*"])
            if temporary
            else dict(emulator.root_credentials)
        )
    options: dict[str, Any] = {"rootUrl": ROOT_URL, "credentials": dict(credentials)}
    if authorized_scopes is not None:
        options["authorizedScopes"] = authorized_scopes
    library = taskcluster.Queue(options).makeHawkExt().decode()
    assert hawk_ext(credentials, authorized_scopes) == library


def test_calls_with_a_body_and_without_are_accepted_with_the_scopes_they_carry() -> None:
    async def create_then_read(clients: Clients) -> tuple[Any, Any, Any]:
        restricted = clients.restricted("project demo", SCOPES)
        task_id = slugid.nice()
        await restricted.queue.createTask(task_id, task_definition(emulator.clock.now()))
        status = await clients.queue.status(task_id)
        return (
            status["status"]["state"],
            await restricted.auth.currentScopes(),
            await clients.auth.currentScopes(),
        )

    with Emulator() as emulator:
        state, restricted_scopes, own_scopes = called(
            emulator, emulator.root_credentials, create_then_read
        )
    assert state == "pending"
    assert set(restricted_scopes["scopes"]) >= set(SCOPES)
    assert "*" not in restricted_scopes["scopes"]
    assert own_scopes["scopes"] == ["*"]


def test_a_call_beyond_the_scopes_it_carries_is_refused() -> None:
    async def beyond(clients: Clients) -> Any:
        return await clients.restricted("project demo", ["auth:current-scopes"]).queue.createTask(
            slugid.nice(), task_definition(emulator.clock.now())
        )

    with Emulator() as emulator, pytest.raises(TaskclusterRestFailure, match="create-task"):
        called(emulator, emulator.root_credentials, beyond)


def test_temporary_credentials_sign_with_their_certificate() -> None:
    async def current(clients: Clients) -> Any:
        return await clients.auth.currentScopes()

    with Emulator() as emulator:
        temporary = temporary_credentials(emulator, ["auth:current-scopes", "queue:status:*"])
        scopes = called(emulator, temporary, current)
    assert "queue:status:*" in scopes["scopes"]
    assert "*" not in scopes["scopes"]


def test_a_wrong_key_is_refused_and_no_credentials_sign_nothing() -> None:
    async def current(clients: Clients) -> Any:
        return await clients.auth.currentScopes()

    with Emulator() as emulator:
        anonymous = called(emulator, None, current)
        wrong = {**emulator.root_credentials, "accessToken": "not-the-token-" * 3}
        with pytest.raises(TaskclusterAuthFailure):
            called(emulator, wrong, current)
    assert "*" not in anonymous["scopes"]
