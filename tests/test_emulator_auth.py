"""The emulator's Hawk authentication and scope checks, through the real taskcluster client.

Exact scope lists are checked on a private deployment (no anonymous role), where a call holds
its own scopes and `assume:anonymous` only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import mohawk
import mohawk.util
import pytest
import requests
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from tests.emulator import Emulator
from tests.emulator.auth import ANONYMOUS_SCOPES
from tests.support.emulated import task_definition

CURRENT = "auth:current-scopes"


@pytest.fixture
def private() -> Iterator[Emulator]:
    """A private deployment: no `anonymous` role."""
    with Emulator(private=True) as running:
        yield running
        running.assert_conforming()


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
    assert raised.value.body["message"].startswith("This request requires Taskcluster credentials")


def test_the_public_anonymous_role_is_the_documented_one(emulator: Emulator) -> None:
    reply = taskcluster.Auth({"rootUrl": emulator.root_url}).currentScopes()
    assert reply["scopes"] == sorted(["assume:anonymous", *ANONYMOUS_SCOPES])
    assert taskcluster.Auth(emulator.options()).role("anonymous")["scopes"] == ANONYMOUS_SCOPES


def test_every_call_holds_the_anonymous_role(private: Emulator) -> None:
    private.set_role("anonymous", ["queue:status:*"])
    credentials = private.add_client("reader", [CURRENT])
    assert taskcluster.Auth(private.options(credentials)).currentScopes()["scopes"] == [
        "assume:anonymous",
        CURRENT,
        "queue:status:*",
    ]


def test_a_private_deployment_lets_anonymous_calls_do_nothing(private: Emulator) -> None:
    task_id = slugid.nice()
    taskcluster.Queue(private.options()).createTask(task_id, task_definition(private.clock.now()))
    anonymous = {"rootUrl": private.root_url}
    for call, args in (
        (taskcluster.Queue(anonymous).status, (task_id,)),
        (taskcluster.Auth(anonymous).currentScopes, ()),
    ):
        with pytest.raises(TaskclusterRestFailure) as raised:
            call(*args)
        assert raised.value.status_code == 403
    with pytest.raises(TaskclusterRestFailure):
        taskcluster.Auth(private.options()).role("anonymous")


def test_current_and_expand_scopes_need_their_scopes(private: Emulator) -> None:
    auth = taskcluster.Auth(private.options(private.add_client("nobody", [])))
    for call, args, scope in (
        (auth.currentScopes, (), CURRENT),
        (auth.expandScopes, ({"scopes": ["a"]},), "auth:expand-scopes"),
    ):
        with pytest.raises(TaskclusterRestFailure) as raised:
            call(*args)
        assert raised.value.status_code == 403
        assert f"```\n{scope}\n```" in raised.value.body["message"]


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


def test_temporary_credentials_carry_their_certificate_scopes(private: Emulator) -> None:
    now = private.clock.now()
    temporary = _temporary(private, now, now + timedelta(hours=1), ["queue:get-task:*", CURRENT])
    assert taskcluster.Auth(private.options(temporary)).currentScopes() == {
        "scopes": ["assume:anonymous", CURRENT, "queue:get-task:*"]
    }


def test_named_temporary_credentials_use_their_name(private: Emulator) -> None:
    now = private.clock.now()
    temporary = _temporary(
        private, now, now + timedelta(hours=1), ["queue:status:*", CURRENT], name="my-temp"
    )
    assert temporary["clientId"] == "my-temp"
    assert taskcluster.Auth(private.options(temporary)).currentScopes()["scopes"] == [
        "assume:anonymous",
        CURRENT,
        "queue:status:*",
    ]


def test_expired_temporary_credentials_are_401(emulator: Emulator) -> None:
    now = emulator.clock.now()
    temporary = _temporary(emulator, now - timedelta(hours=2), now - timedelta(hours=1), ["a"])
    with pytest.raises(TaskclusterAuthFailure, match="expired"):
        taskcluster.Auth(emulator.options(temporary)).currentScopes()


def test_temporary_credentials_expire_on_the_emulator_clock(private: Emulator) -> None:
    now = private.clock.now()
    temporary = _temporary(private, now, now + timedelta(hours=1), ["a", CURRENT])
    auth = taskcluster.Auth(private.options(temporary))
    assert auth.currentScopes()["scopes"] == ["a", "assume:anonymous", CURRENT]
    private.clock.advance(timedelta(hours=2))
    with pytest.raises(TaskclusterAuthFailure, match="expired"):
        auth.currentScopes()


def test_temporary_credentials_beyond_the_issuer_are_401(emulator: Emulator) -> None:
    issuer = emulator.add_client("issuer", ["queue:status:*"])
    now = emulator.clock.now()
    temporary = taskcluster.createTemporaryCredentials(
        issuer["clientId"], issuer["accessToken"], now, now + timedelta(hours=1), ["queue:*"]
    )
    with pytest.raises(TaskclusterAuthFailure, match="issuer issuer does not have: queue:\\*"):
        taskcluster.Auth(emulator.options(temporary)).currentScopes()


def test_tampered_certificate_is_401(emulator: Emulator) -> None:
    now = emulator.clock.now()
    temporary = _temporary(emulator, now, now + timedelta(hours=1), ["queue:status:*"])
    temporary["certificate"] = temporary["certificate"].replace("queue:status:*", "*")
    with pytest.raises(TaskclusterAuthFailure, match="bad signature"):
        taskcluster.Auth(emulator.options(temporary)).currentScopes()


def test_authorized_scopes_narrow_and_cannot_widen(private: Emulator) -> None:
    narrowed = taskcluster.Auth(private.options(authorizedScopes=["queue:status:*", CURRENT]))
    assert narrowed.currentScopes()["scopes"] == ["assume:anonymous", CURRENT, "queue:status:*"]
    limited = private.add_client("limited", ["queue:status:*", CURRENT])
    widened = taskcluster.Auth(private.options(limited, authorizedScopes=["queue:*"]))
    with pytest.raises(TaskclusterAuthFailure, match="do not satisfy authorizedScopes") as raised:
        widened.currentScopes()
    assert "```\nassume:anonymous\nauth:current-scopes\nqueue:status:*\n```" in str(raised.value)


def test_authorized_scopes_may_be_granted_by_the_anonymous_role(emulator: Emulator) -> None:
    credentials = emulator.add_client("own-only", ["own"])
    auth = taskcluster.Auth(emulator.options(credentials, authorizedScopes=[CURRENT]))
    assert auth.currentScopes()["scopes"] == sorted(["assume:anonymous", *ANONYMOUS_SCOPES])


def test_null_authorized_scopes_restrict_nothing_but_empty_ones_everything(
    private: Emulator,
) -> None:
    # The auth service tests ext members for JavaScript truthiness: [] counts, null does not.
    def current(authorized: list[str] | None) -> Any:
        return taskcluster.Auth(private.options(authorizedScopes=authorized)).currentScopes()

    assert current(None) == {"scopes": ["*"]}
    with pytest.raises(TaskclusterRestFailure) as raised:
        current([])
    assert raised.value.status_code == 403


def test_expired_client_is_401(private: Emulator) -> None:
    auth = taskcluster.Auth(private.options())
    created = auth.createClient(
        "short-lived",
        {
            "expires": taskcluster.stringDate(private.clock.now() + timedelta(hours=1)),
            "scopes": [CURRENT],
        },
    )
    credentials = {"clientId": "short-lived", "accessToken": created["accessToken"]}
    assert taskcluster.Auth(private.options(credentials)).currentScopes() == {
        "scopes": ["assume:anonymous", CURRENT]
    }
    private.clock.advance(timedelta(hours=2))
    with pytest.raises(TaskclusterAuthFailure):
        taskcluster.Auth(private.options(credentials)).currentScopes()


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


def test_content_type_changed_after_signing_is_401(emulator: Emulator) -> None:
    url = f"{emulator.root_url}/api/auth/v1/scopes/expand"
    header = _signed(emulator, url, "POST", b'{"scopes": ["a"]}')
    response = requests.post(
        url,
        data=b'{"scopes": ["a"]}',
        headers={"Authorization": header, "Content-Type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 401
    assert "payload hash" in response.json()["message"]


def test_stale_timestamp_is_401(emulator: Emulator) -> None:
    url = f"{emulator.root_url}/api/auth/v1/scopes/current"
    root = emulator.root_credentials
    header = mohawk.Sender(
        {"id": root["clientId"], "key": root["accessToken"], "algorithm": "sha256"},
        url,
        "GET",
        content=b"",
        content_type="",
        _timestamp=mohawk.util.utc_now() - 16 * 60,
    ).request_header
    response = requests.get(url, headers={"Authorization": header}, timeout=10)
    assert response.status_code == 401
    assert "timestamp" in response.json()["message"]


def test_header_without_a_nonce_is_401(emulator: Emulator) -> None:
    url = f"{emulator.root_url}/api/auth/v1/scopes/current"
    header = re.sub(r', nonce="[^"]*"', "", _signed(emulator, url, "GET", b""))
    response = requests.get(url, headers={"Authorization": header}, timeout=10)
    assert response.status_code == 401
    assert "not a valid Hawk header" in response.json()["message"]


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


def test_signed_url_of_temporary_credentials_carries_their_certificate(emulator: Emulator) -> None:
    queue = taskcluster.Queue(emulator.options())
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    emulator.add_artifact(task_id, "private/secret.txt", "hush")
    now = emulator.clock.now()
    temporary = _temporary(
        emulator, now, now + timedelta(hours=1), ["queue:get-artifact:private/*"]
    )
    signed = taskcluster.Queue(emulator.options(temporary)).buildSignedUrl(
        "getLatestArtifact", task_id, "private/secret.txt"
    )
    assert requests.get(signed, timeout=10).text == "hush"


def test_bewit_and_authorization_header_together_are_401(emulator: Emulator) -> None:
    queue = taskcluster.Queue(emulator.options())
    signed = queue.buildSignedUrl("status", slugid.nice())
    header = _signed(emulator, signed, "GET", b"")
    response = requests.get(signed, headers={"Authorization": header}, timeout=10)
    assert response.status_code == 401
    assert "two authentication schemes" in response.json()["message"]
