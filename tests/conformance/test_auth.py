"""Auth: clients and roles, scope expansion, temporary credentials and authorizedScopes."""

from __future__ import annotations

from datetime import timedelta

import taskcluster

from tests.conformance.target import (
    CLIENT_PREFIX,
    ROLE_PREFIX,
    SCOPE_PREFIX,
    Clients,
    Target,
    expect_error,
    satisfies,
)


def scopes(target: Target, *names: str) -> list[str]:
    """Unique, role-free scopes (no `assume:`), so expansion leaves them exactly as they are."""
    base = target.unique(SCOPE_PREFIX)
    return [f"{base}:{name}" for name in names]


def temporary(
    credentials: dict[str, str],
    granted: list[str],
    *,
    start: timedelta,
    expiry: timedelta,
    target: Target,
    name: str | None = None,
) -> dict[str, str]:
    """`taskcluster.createTemporaryCredentials`, with times relative to the target's clock."""
    now = target.now()
    return taskcluster.createTemporaryCredentials(  # type: ignore[no-any-return]
        credentials["clientId"],
        credentials["accessToken"],
        now + start,
        now + expiry,
        granted,
        name=name,
    )


def fails_authentication(
    api: Clients, target: Target, credentials: dict[str, str], **options: object
) -> None:
    """Require a 401 on a route with scopes, `queue.status`.

    taskcluster-lib-api authenticates lazily, so an unscoped route such as `currentScopes` is
    no proof. The credentials hold no queue scopes, so accepting them would show as a 403.
    """
    task_id = target.create_task()
    expect_error(401, "AuthenticationFailed", api.queue(credentials, **options).status, task_id)


def test_current_scopes_are_the_clients_scopes(api: Clients, target: Target) -> None:
    """currentScopes gives the calling client's (expanded) scopes."""
    granted = scopes(target, "read", "write:*")
    credentials = target.make_client(granted)
    assert sorted(api.auth(credentials).currentScopes()["scopes"]) == sorted(granted)


def test_expand_scopes_follows_roles(api: Clients, target: Target) -> None:
    """expandScopes and currentScopes include what assumed roles (and their roles) grant."""
    outer, inner = target.unique(ROLE_PREFIX), target.unique(ROLE_PREFIX)
    granted = scopes(target, "outer", "inner")
    target.make_role(inner, [granted[1]])
    target.make_role(outer, [granted[0], f"assume:{inner}"])

    expanded = api.auth().expandScopes({"scopes": [f"assume:{outer}"]})["scopes"]
    for scope in (f"assume:{outer}", f"assume:{inner}", *granted):
        assert scope in expanded, scope

    credentials = target.make_client([f"assume:{outer}"])
    current = api.auth(credentials).currentScopes()["scopes"]
    assert set(granted) <= set(current)
    assert not satisfies(current, f"{granted[0]}-not-granted")


def test_create_client_gives_working_credentials(api: Clients, target: Target) -> None:
    """createClient answers an accessToken that authenticates as the new client."""
    granted = scopes(target, "a", "b")
    client_id = target.unique(CLIENT_PREFIX)
    reply = api.auth().createClient(client_id, target.client_request(granted))
    target.forget_client(client_id)
    assert reply["clientId"] == client_id
    assert sorted(reply["scopes"]) == sorted(granted)
    credentials = {"clientId": client_id, "accessToken": reply["accessToken"]}
    assert sorted(api.auth(credentials).currentScopes()["scopes"]) == sorted(granted)
    expect_error(
        409,
        "RequestConflict",
        api.auth().createClient,
        client_id,
        target.client_request(scopes(target, "other")),
    )


def test_client_describes_a_client_without_its_secret(api: Clients, target: Target) -> None:
    """`client` gives a client's scopes and expanded scopes, never its accessToken."""
    granted = scopes(target, "a")
    credentials = target.make_client(granted)
    described = api.auth().client(credentials["clientId"])
    assert described["clientId"] == credentials["clientId"]
    assert described["scopes"] == granted
    assert set(granted) <= set(described["expandedScopes"])
    assert "accessToken" not in described
    expect_error(404, "ResourceNotFound", api.auth().client, target.unique(CLIENT_PREFIX))


def test_reset_access_token(api: Clients, target: Target) -> None:
    """resetAccessToken gives a new token; the old one stops working."""
    granted = scopes(target, "a")
    old = target.make_client(granted)
    reply = api.auth().resetAccessToken(old["clientId"])
    assert reply["accessToken"] != old["accessToken"]
    new = {"clientId": old["clientId"], "accessToken": reply["accessToken"]}
    assert api.auth(new).currentScopes()["scopes"] == granted
    fails_authentication(api, target, old)


def test_create_client_needs_the_scopes_it_grants(api: Clients, target: Target) -> None:
    """A client may only create clients it names a scope for, with scopes it has itself."""
    held, not_held = scopes(target, "held"), scopes(target, "not-held")
    creator = target.make_client([f"auth:create-client:{CLIENT_PREFIX}*", *held])
    auth = api.auth(creator)

    client_id = target.unique(CLIENT_PREFIX)
    auth.createClient(client_id, target.client_request(held))
    target.forget_client(client_id)

    refused = target.unique(CLIENT_PREFIX)
    target.forget_client(refused)
    body = expect_error(
        403, "InsufficientScopes", auth.createClient, refused, target.client_request(not_held)
    )
    assert not_held[0] in body["message"]

    elsewhere = target.unique("project/tc-scheduler/elsewhere/")
    target.forget_client(elsewhere)
    body = expect_error(
        403, "InsufficientScopes", auth.createClient, elsewhere, target.client_request(held)
    )
    assert f"auth:create-client:{elsewhere}" in body["message"]


def test_create_role_needs_the_scopes_it_grants(api: Clients, target: Target) -> None:
    """createRole needs `auth:create-role:<roleId>` and every scope the role grants."""
    held, not_held = scopes(target, "held"), scopes(target, "not-held")
    creator = target.make_client([f"auth:create-role:{ROLE_PREFIX}*", *held])
    auth = api.auth(creator)

    role_id = target.unique(ROLE_PREFIX)
    target.forget_role(role_id)
    auth.createRole(role_id, target.role_request(held))
    assert held[0] in api.auth().expandScopes({"scopes": [f"assume:{role_id}"]})["scopes"]

    refused = target.unique(ROLE_PREFIX)
    target.forget_role(refused)
    body = expect_error(
        403, "InsufficientScopes", auth.createRole, refused, target.role_request(not_held)
    )
    assert not_held[0] in body["message"]


def test_temporary_credentials_carry_their_scopes(api: Clients, target: Target) -> None:
    """Temporary credentials act with the scopes of their certificate, a subset of the issuer's."""
    granted = scopes(target, "one", "two")
    issuer = target.make_client(granted)
    credentials = temporary(
        issuer, granted[:1], start=timedelta(0), expiry=timedelta(hours=1), target=target
    )
    assert credentials["clientId"] == issuer["clientId"]
    assert api.auth(credentials).currentScopes()["scopes"] == granted[:1]


def test_temporary_credentials_beyond_the_issuer_are_401(api: Clients, target: Target) -> None:
    """A certificate granting a scope its issuer lacks fails authentication."""
    granted = scopes(target, "one")
    issuer = target.make_client(granted)
    credentials = temporary(
        issuer,
        [*granted, *scopes(target, "more")],
        start=timedelta(0),
        expiry=timedelta(hours=1),
        target=target,
    )
    fails_authentication(api, target, credentials)


def test_expired_temporary_credentials_are_401(api: Clients, target: Target) -> None:
    """Temporary credentials whose expiry has passed fail authentication."""
    issuer = target.make_client(scopes(target, "one"))
    credentials = temporary(
        issuer, [], start=timedelta(hours=-3), expiry=timedelta(hours=-2), target=target
    )
    fails_authentication(api, target, credentials)


def test_temporary_credentials_stop_working_when_they_expire(api: Clients, target: Target) -> None:
    """Credentials valid now fail once the clock passes their expiry."""
    emulator = target.require_control()
    granted = scopes(target, "one")
    issuer = target.make_client(granted)
    credentials = temporary(
        issuer, granted, start=timedelta(0), expiry=timedelta(hours=1), target=target
    )
    assert api.auth(credentials).currentScopes()["scopes"] == granted
    emulator.clock.advance(timedelta(hours=2))
    fails_authentication(api, target, credentials)


def test_named_temporary_credentials(api: Clients, target: Target) -> None:
    """Named temporary credentials act under their own clientId; naming needs create-client."""
    granted = scopes(target, "one")
    name = target.unique(CLIENT_PREFIX)
    issuer = target.make_client([f"auth:create-client:{CLIENT_PREFIX}*", *granted])
    credentials = temporary(
        issuer, granted, start=timedelta(0), expiry=timedelta(hours=1), target=target, name=name
    )
    assert credentials["clientId"] == name
    assert api.auth(credentials).currentScopes()["scopes"] == granted
    # The deployment reports the caller by that name ("Client ID <name> does not have...").
    task_id = target.create_task()
    body = expect_error(403, "InsufficientScopes", api.queue(credentials).cancelTask, task_id)
    assert name in body["message"]

    unentitled = target.make_client(granted)
    credentials = temporary(
        unentitled, granted, start=timedelta(0), expiry=timedelta(hours=1), target=target, name=name
    )
    fails_authentication(api, target, credentials)


def test_authorized_scopes_restrict_a_request(api: Clients, target: Target) -> None:
    """`authorizedScopes` limits a request to those scopes; beyond the client's own it is 401."""
    granted = scopes(target, "one", "two")
    credentials = target.make_client(granted)
    limited = api.auth(credentials, authorizedScopes=granted[:1])
    assert limited.currentScopes()["scopes"] == granted[:1]

    root = api.queue(authorizedScopes=[f"queue:status:{target.unique()}"])
    task_id = target.new_task_id()
    body = expect_error(
        403, "InsufficientScopes", root.createTask, task_id, target.task_definition()
    )
    assert "queue:create-task" in body["message"] or "queue:scheduler-id" in body["message"]

    beyond = [*granted, *scopes(target, "three")]
    fails_authentication(api, target, credentials, authorizedScopes=beyond)
