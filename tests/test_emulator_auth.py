"""The emulator's Hawk authentication and scope checks, through the real taskcluster client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import mohawk
import pytest
import requests
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from tests.conftest import task_definition
from tests.emulator import Emulator


def test_wrong_access_token_is_401(emulator: Emulator) -> None:
    credentials = {"clientId": emulator.root_credentials["clientId"], "accessToken": "wrong" * 9}
    with pytest.raises(TaskclusterAuthFailure) as raised:
        taskcluster.Auth(emulator.options(credentials)).currentScopes()
    assert raised.value.status_code == 401
    assert raised.value.body["code"] == "AuthenticationFailed"
    assert credentials["accessToken"] not in raised.value.body["message"]


def test_unknown_client_is_401(emulator: Emulator) -> None:
    credentials = {"clientId": "nobody", "accessToken": "x" * 44}
    with pytest.raises(TaskclusterAuthFailure, match="nobody does not exist"):
        taskcluster.Auth(emulator.options(credentials)).currentScopes()


def test_anonymous_calls_get_the_anonymous_role(emulator: Emulator) -> None:
    task_id = slugid.nice()
    taskcluster.Queue(emulator.options()).createTask(task_id, task_definition(emulator.clock.now()))
    anonymous = taskcluster.Queue({"rootUrl": emulator.root_url})
    assert anonymous.status(task_id)["status"]["state"] == "pending"
    with pytest.raises(TaskclusterRestFailure) as raised:
        anonymous.createTask(slugid.nice(), task_definition(emulator.clock.now()))
    assert raised.value.status_code == 403
    assert raised.value.body["code"] == "InsufficientScopes"
    assert "unauthenticated" in raised.value.body["message"]


def test_insufficient_scopes_names_the_missing_ones(emulator: Emulator) -> None:
    credentials = emulator.add_client(
        "limited", ["queue:create-task:project:none", "queue:create-task:lowest:proj-test/worker"]
    )
    queue = taskcluster.Queue(emulator.options(credentials))
    with pytest.raises(TaskclusterRestFailure) as raised:
        queue.createTask(slugid.nice(), task_definition(emulator.clock.now(), routes=["index.x"]))
    body = raised.value.body
    assert raised.value.status_code == 403
    assert set(body) == {"code", "message", "requestInfo"}
    assert "queue:route:index.x" in body["message"]
    assert body["requestInfo"]["method"] == "createTask"
    assert not emulator.tasks()


def test_scopes_come_through_roles(emulator: Emulator) -> None:
    emulator.set_role("project:test", ["queue:create-task:*", "queue:scheduler-id:-"])
    credentials = emulator.add_client("via-role", ["assume:project:test"])
    queue = taskcluster.Queue(emulator.options(credentials))
    task_id = slugid.nice()
    assert (
        queue.createTask(task_id, task_definition(emulator.clock.now()))["status"]["taskId"]
        == task_id
    )
    auth = taskcluster.Auth(emulator.options(credentials))
    assert "queue:create-task:*" in auth.currentScopes()["scopes"]
    assert auth.expandScopes({"scopes": ["assume:project:test"]})["scopes"] == [
        "assume:project:test",
        "queue:create-task:*",
        "queue:scheduler-id:-",
    ]


def _temporary(emulator: Emulator, start: datetime, expiry: datetime, scopes: list[str], **kw: Any):
    root = emulator.root_credentials
    return taskcluster.createTemporaryCredentials(
        root["clientId"], root["accessToken"], start, expiry, scopes, **kw
    )


def test_temporary_credentials_carry_their_certificate_scopes(emulator: Emulator) -> None:
    now = datetime.now(UTC)
    temporary = _temporary(emulator, now, now + timedelta(hours=1), ["queue:get-task:*"])
    assert taskcluster.Auth(emulator.options(temporary)).currentScopes() == {
        "scopes": ["queue:get-task:*"]
    }


def test_named_temporary_credentials_use_their_name(emulator: Emulator) -> None:
    now = datetime.now(UTC)
    temporary = _temporary(
        emulator, now, now + timedelta(hours=1), ["queue:status:*"], name="my-temp"
    )
    assert temporary["clientId"] == "my-temp"
    assert taskcluster.Auth(emulator.options(temporary)).currentScopes()["scopes"] == [
        "queue:status:*"
    ]


def test_expired_temporary_credentials_are_401(emulator: Emulator) -> None:
    now = datetime.now(UTC)
    temporary = _temporary(emulator, now - timedelta(hours=2), now - timedelta(hours=1), ["a"])
    with pytest.raises(TaskclusterAuthFailure, match="expired"):
        taskcluster.Auth(emulator.options(temporary)).currentScopes()


def test_temporary_credentials_expire_on_the_emulator_clock(emulator: Emulator) -> None:
    now = datetime.now(UTC)
    temporary = _temporary(emulator, now, now + timedelta(hours=1), ["a"])
    auth = taskcluster.Auth(emulator.options(temporary))
    assert auth.currentScopes()["scopes"] == ["a"]
    emulator.clock.advance(timedelta(hours=2))
    with pytest.raises(TaskclusterAuthFailure, match="expired"):
        auth.currentScopes()


def test_temporary_credentials_beyond_the_issuer_are_401(emulator: Emulator) -> None:
    issuer = emulator.add_client("issuer", ["queue:status:*"])
    now = datetime.now(UTC)
    temporary = taskcluster.createTemporaryCredentials(
        issuer["clientId"], issuer["accessToken"], now, now + timedelta(hours=1), ["queue:*"]
    )
    with pytest.raises(TaskclusterAuthFailure, match="issuer issuer does not have: queue:\\*"):
        taskcluster.Auth(emulator.options(temporary)).currentScopes()


def test_tampered_certificate_is_401(emulator: Emulator) -> None:
    now = datetime.now(UTC)
    temporary = _temporary(emulator, now, now + timedelta(hours=1), ["queue:status:*"])
    temporary["certificate"] = temporary["certificate"].replace("queue:status:*", "*")
    with pytest.raises(TaskclusterAuthFailure, match="bad signature"):
        taskcluster.Auth(emulator.options(temporary)).currentScopes()


def test_authorized_scopes_narrow_and_cannot_widen(emulator: Emulator) -> None:
    narrowed = taskcluster.Auth(emulator.options(authorizedScopes=["queue:status:*"]))
    assert narrowed.currentScopes()["scopes"] == ["queue:status:*"]
    limited = emulator.add_client("limited", ["queue:status:*"])
    widened = taskcluster.Auth(emulator.options(limited, authorizedScopes=["queue:*"]))
    with pytest.raises(TaskclusterAuthFailure, match="oversteps"):
        widened.currentScopes()


def test_expired_client_is_401(emulator: Emulator) -> None:
    auth = taskcluster.Auth(emulator.options())
    created = auth.createClient(
        "short-lived",
        {"expires": taskcluster.stringDate(emulator.clock.now() + timedelta(hours=1))},
    )
    credentials = {"clientId": "short-lived", "accessToken": created["accessToken"]}
    assert taskcluster.Auth(emulator.options(credentials)).currentScopes() == {"scopes": []}
    emulator.clock.advance(timedelta(hours=2))
    with pytest.raises(TaskclusterAuthFailure):
        taskcluster.Auth(emulator.options(credentials)).currentScopes()


def _signed(emulator: Emulator, url: str, method: str, content: bytes) -> str:
    root = emulator.root_credentials
    sender = mohawk.Sender(
        {"id": root["clientId"], "key": root["accessToken"], "algorithm": "sha256"},
        url,
        method,
        content=content,
        content_type="application/json",
    )
    return str(sender.request_header)


def test_body_changed_after_signing_is_401(emulator: Emulator) -> None:
    url = f"{emulator.root_url}/api/auth/v1/scopes/expand"
    header = _signed(emulator, url, "POST", b'{"scopes": ["a"]}')
    response = requests.post(
        url,
        data=b'{"scopes": ["b"]}',
        headers={"Authorization": header, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["code"] == "AuthenticationFailed"


def test_replayed_request_is_401(emulator: Emulator) -> None:
    url = f"{emulator.root_url}/api/auth/v1/scopes/expand"
    header = _signed(emulator, url, "POST", b'{"scopes": ["a"]}')
    sent = {
        "data": b'{"scopes": ["a"]}',
        "headers": {"Authorization": header, "Content-Type": "application/json"},
        "timeout": 10,
    }
    assert requests.post(url, **sent).json() == {"scopes": ["a"]}
    replay = requests.post(url, **sent)
    assert replay.status_code == 401
    assert "replayed" in replay.json()["message"]


def test_garbage_authorization_header_is_401(emulator: Emulator) -> None:
    response = requests.get(
        f"{emulator.root_url}/api/auth/v1/scopes/current",
        headers={"Authorization": "Bearer something"},
        timeout=10,
    )
    assert response.status_code == 401
    assert set(response.json()) >= {"code", "message", "requestInfo"}


def test_signed_url_reaches_a_private_artifact(emulator: Emulator) -> None:
    queue = taskcluster.Queue(emulator.options())
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    emulator.add_artifact(task_id, "private/secret.txt", "hush")
    unsigned = queue.buildUrl("getLatestArtifact", task_id, "private/secret.txt")
    assert requests.get(unsigned, allow_redirects=False, timeout=10).status_code == 403
    signed = queue.buildSignedUrl("getLatestArtifact", task_id, "private/secret.txt")
    response = requests.get(signed, timeout=10)
    assert response.status_code == 200
    assert response.text == "hush"
    tampered = signed.replace("private%2Fsecret.txt", "private%2Fother.txt")
    assert requests.get(tampered, allow_redirects=False, timeout=10).status_code == 401
