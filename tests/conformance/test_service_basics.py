"""What every service shares: `ping`, the error body, and Hawk authentication failures.

Authentication failures are provoked on a route with scopes (`queue.status`): taskcluster-lib-api
authenticates lazily, so a route without scopes (such as `ping`) does not reject bad credentials
at all.
"""

from __future__ import annotations

import pytest
import slugid

from tests.conformance.target import SERVICES, Clients, Target, expect_error


@pytest.mark.parametrize("service", SERVICES)
def test_ping_says_alive(api: Clients, service: str) -> None:
    """`ping` of each service answers `{alive: true, uptime}`, without credentials."""
    for credentials in (None, {}):
        reply = api.client(service, credentials).ping()
        assert reply["alive"] is True
        assert isinstance(reply["uptime"], int | float)
        assert reply["uptime"] >= 0


@pytest.mark.parametrize("service", SERVICES)
def test_routes_without_scopes_ignore_bad_credentials(
    api: Clients, target: Target, service: str
) -> None:
    """`ping` has no scopes, so it never authenticates: wrong credentials do not matter."""
    credentials = target.make_client([])
    wrong = {**credentials, "accessToken": credentials["accessToken"][::-1]}
    assert api.client(service, wrong).ping()["alive"] is True


def test_error_body_has_code_message_and_request_info(api: Clients) -> None:
    """An error is `{code, message, requestInfo}` naming the method, its params and the time."""
    task_id = slugid.nice()
    body = expect_error(404, "ResourceNotFound", api.queue().task, task_id)
    assert body["requestInfo"]["params"] == {"taskId": task_id}
    assert body["requestInfo"]["method"] == "task"
    assert body["requestInfo"]["time"].endswith("Z")


def test_wrong_access_token_is_401(api: Clients, target: Target) -> None:
    """A request signed with the wrong accessToken fails authentication (401), not scopes."""
    credentials = target.make_client(["queue:status:*"])
    wrong = {**credentials, "accessToken": credentials["accessToken"][::-1]}
    task_id = target.create_task()
    assert api.queue(credentials).status(task_id)["status"]["taskId"] == task_id
    expect_error(401, "AuthenticationFailed", api.queue(wrong).status, task_id)


def test_unknown_client_is_401(api: Clients, target: Target) -> None:
    """A request from a clientId the deployment does not know fails authentication."""
    stranger = {"clientId": target.unique("project/tc-scheduler/nobody/"), "accessToken": "x" * 44}
    expect_error(401, "AuthenticationFailed", api.queue(stranger).status, target.create_task())


def test_deleted_client_is_401(api: Clients, target: Target) -> None:
    """Once `auth.deleteClient` removed a client, its credentials stop working."""
    credentials = target.make_client(["queue:status:*"])
    task_id = target.create_task()
    assert api.queue(credentials).status(task_id)["status"]["taskId"] == task_id
    target.root("auth").deleteClient(credentials["clientId"])
    expect_error(401, "AuthenticationFailed", api.queue(credentials).status, task_id)


def test_error_body_has_nothing_but_code_message_and_request_info(
    api: Clients, target: Target
) -> None:
    """Clients can rely on `code`, `message` and `requestInfo` only; there is nothing else."""
    credentials = target.make_client([])
    task_id = target.create_task()
    body = expect_error(403, "InsufficientScopes", api.queue(credentials).cancelTask, task_id)
    assert set(body) == {"code", "message", "requestInfo"}
    assert set(body["requestInfo"]) == {"method", "params", "payload", "time"}


def test_scopes_are_checked_before_the_request_body(api: Clients, target: Target) -> None:
    """Where the URL alone names the scopes, a call is refused (401, 403) before its body is
    validated (400)."""
    path = f"{target.index_namespace()}.x"
    credentials = target.make_client([])
    wrong = {**credentials, "accessToken": credentials["accessToken"][::-1]}
    body = {"not": "an insertTask request"}
    expect_error(403, "InsufficientScopes", api.index(credentials).insertTask, path, body)
    expect_error(401, "AuthenticationFailed", api.index(wrong).insertTask, path, body)
    expect_error(400, "InputValidationError", api.index().insertTask, path, body)
