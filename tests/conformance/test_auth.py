"""Auth: clients and roles, scope expansion, temporary credentials and authorizedScopes.

Every call holds `assume:anonymous` besides its credentials' scopes, so replies that list scopes
are compared with `target.held(...)`, and tests whose outcome depends on what the anonymous role
grants ask `target.anonymous_may(...)` and run on both kinds of emulated deployment.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import taskcluster

from tests.conformance.target import (
    ANONYMOUS,
    CLIENT_PREFIX,
    ROLE_PREFIX,
    SCOPE_PREFIX,
    Api,
    Clients,
    Target,
    expect_error,
    expect_scope_needed,
    public_and_private,
    satisfies,
)

CURRENT = "auth:current-scopes"


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
    """Require a 401 on `queue.cancelTask`.

    taskcluster-lib-api authenticates lazily, only when a scope check needs the caller, so the
    route must have scopes; and no anonymous role grants cancelling, so credentials that were
    accepted would show as a 403, not a 401.
    """
    task_id = target.create_task()
    expect_error(401, "AuthenticationFailed", api.queue(credentials, **options).cancelTask, task_id)


def test_current_scopes_are_the_clients_and_the_anonymous_roles(
    api: Clients, target: Target
) -> None:
    """currentScopes gives the client's scopes and `assume:anonymous`, expanded."""
    granted = [*scopes(target, "read", "write:*"), CURRENT]
    current = api.auth(target.make_client(granted)).currentScopes()["scopes"]
    assert current == target.held(granted)
    assert set(granted) | {ANONYMOUS} <= set(current)


@public_and_private
def test_current_scopes_needs_its_scope(api: Clients, target: Target) -> None:
    """currentScopes needs `auth:current-scopes`, unless the anonymous role grants it."""
    granted = scopes(target, "read")
    auth = api.auth(target.make_client(granted))
    reply = expect_scope_needed(target, CURRENT, auth.currentScopes)
    if reply is not None:
        assert reply["scopes"] == target.held(granted)


@public_and_private
def test_expand_scopes_needs_its_scope(api: Clients, target: Target) -> None:
    """expandScopes needs `auth:expand-scopes`, unless the anonymous role grants it."""
    granted = scopes(target, "read")
    auth = api.auth(target.make_client(granted))
    reply = expect_scope_needed(
        target, "auth:expand-scopes", auth.expandScopes, {"scopes": granted}
    )
    if reply is not None:
        assert reply["scopes"] == granted


@public_and_private
def test_calls_without_credentials_hold_the_anonymous_role(api: Clients, target: Target) -> None:
    """A call without credentials holds exactly `assume:anonymous`, expanded."""
    anonymous = target.anonymous_scopes()
    assert ANONYMOUS in anonymous
    reply = expect_scope_needed(target, CURRENT, api.auth({}).currentScopes)
    if reply is not None:
        assert reply["scopes"] == anonymous
    task_id = target.create_task()
    reply = expect_scope_needed(target, f"queue:status:{task_id}", api.queue({}).status, task_id)
    if reply is not None:
        assert reply["status"]["taskId"] == task_id


@public_and_private
def test_reading_clients_and_roles_needs_scopes(api: Clients, target: Target) -> None:
    """`client` needs `auth:get-client:<clientId>`, `role` needs `auth:get-role:<roleId>`."""
    described = target.make_client(scopes(target, "a"))["clientId"]
    role_id = target.unique(ROLE_PREFIX)
    target.make_role(role_id, scopes(target, "b"))
    auth = api.auth(target.make_client([]))
    reply = expect_scope_needed(target, f"auth:get-client:{described}", auth.client, described)
    if reply is not None:
        assert reply["clientId"] == described
    reply = expect_scope_needed(target, f"auth:get-role:{role_id}", auth.role, role_id)
    if reply is not None:
        assert reply["roleId"] == role_id


def test_expand_scopes_follows_roles(api: Clients, target: Target) -> None:
    """expandScopes and currentScopes include what assumed roles (and their roles) grant."""
    outer, inner = target.unique(ROLE_PREFIX), target.unique(ROLE_PREFIX)
    granted = scopes(target, "outer", "inner")
    target.make_role(inner, [granted[1]])
    target.make_role(outer, [granted[0], f"assume:{inner}"])

    expanded = api.auth().expandScopes({"scopes": [f"assume:{outer}"]})["scopes"]
    for scope in (f"assume:{outer}", f"assume:{inner}", *granted):
        assert scope in expanded, scope

    credentials = target.make_client([f"assume:{outer}", CURRENT])
    current = api.auth(credentials).currentScopes()["scopes"]
    assert set(granted) <= set(current)
    assert not satisfies(current, f"{granted[0]}-not-granted")


def test_create_client_gives_working_credentials(api: Clients, target: Target) -> None:
    """createClient answers an accessToken that authenticates as the new client."""
    granted = [*scopes(target, "a", "b"), CURRENT]
    client_id = target.unique(CLIENT_PREFIX)
    reply = api.auth().createClient(client_id, target.client_request(granted))
    target.forget_client(client_id)
    assert reply["clientId"] == client_id
    assert sorted(reply["scopes"]) == sorted(granted)
    credentials = {"clientId": client_id, "accessToken": reply["accessToken"]}
    assert api.auth(credentials).currentScopes()["scopes"] == target.held(granted)
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
    granted = [*scopes(target, "a"), CURRENT]
    old = target.make_client(granted)
    reply = api.auth().resetAccessToken(old["clientId"])
    assert reply["accessToken"] != old["accessToken"]
    new = {"clientId": old["clientId"], "accessToken": reply["accessToken"]}
    assert api.auth(new).currentScopes()["scopes"] == target.held(granted)
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


def test_update_role_needs_only_the_scopes_it_adds(api: Clients, target: Target) -> None:
    """updateRole needs the scopes it adds to the role, not those the role already has."""
    kept, added, refused = scopes(target, "kept"), scopes(target, "added"), scopes(target, "no")
    role_id = target.unique(ROLE_PREFIX)
    target.make_role(role_id, kept)
    auth = api.auth(target.make_client([f"auth:update-role:{ROLE_PREFIX}*", *added]))

    reply = auth.updateRole(role_id, target.role_request([*kept, *added]))
    assert sorted(reply["scopes"]) == sorted([*kept, *added])
    body = expect_error(
        403,
        "InsufficientScopes",
        auth.updateRole,
        role_id,
        target.role_request([*kept, *added, *refused]),
    )
    assert refused[0] in body["message"]
    assert kept[0] not in body["message"]
    missing = target.unique(ROLE_PREFIX)
    expect_error(404, "ResourceNotFound", auth.updateRole, missing, target.role_request(added))


def test_temporary_credentials_carry_their_scopes(api: Clients, target: Target) -> None:
    """Temporary credentials act with the scopes of their certificate, a subset of the issuer's."""
    granted = scopes(target, "one", "two")
    issuer = target.make_client([*granted, CURRENT])
    certified = [granted[0], CURRENT]
    credentials = temporary(
        issuer, certified, start=timedelta(0), expiry=timedelta(hours=1), target=target
    )
    assert credentials["clientId"] == issuer["clientId"]
    assert api.auth(credentials).currentScopes()["scopes"] == target.held(certified)


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
    granted = [*scopes(target, "one"), CURRENT]
    issuer = target.make_client(granted)
    credentials = temporary(
        issuer, granted, start=timedelta(0), expiry=timedelta(hours=1), target=target
    )
    assert api.auth(credentials).currentScopes()["scopes"] == target.held(granted)
    emulator.clock.advance(timedelta(hours=2))
    fails_authentication(api, target, credentials)


def test_named_temporary_credentials(api: Clients, target: Target) -> None:
    """Named temporary credentials act under their own clientId; naming needs create-client."""
    granted = [*scopes(target, "one"), CURRENT]
    name = target.unique(CLIENT_PREFIX)
    issuer = target.make_client([f"auth:create-client:{CLIENT_PREFIX}*", *granted])
    credentials = temporary(
        issuer, granted, start=timedelta(0), expiry=timedelta(hours=1), target=target, name=name
    )
    assert credentials["clientId"] == name
    assert api.auth(credentials).currentScopes()["scopes"] == target.held(granted)
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
    """`authorizedScopes` limits a request to those scopes (and the anonymous role's)."""
    granted = [*scopes(target, "one", "two"), CURRENT]
    credentials = target.make_client(granted)
    authorized = [granted[0], CURRENT]
    limited = api.auth(credentials, authorizedScopes=authorized)
    assert limited.currentScopes()["scopes"] == target.held(authorized)

    root = api.queue(authorizedScopes=[f"queue:status:{target.unique()}"])
    task_id = target.new_task_id()
    body = expect_error(
        403, "InsufficientScopes", root.createTask, task_id, target.task_definition()
    )
    assert "queue:create-task" in body["message"] or "queue:scheduler-id" in body["message"]


def test_authorized_scopes_restrict_every_service(api: Clients, target: Target) -> None:
    """Root credentials restricted by `authorizedScopes` are refused on each service (403)."""
    only = scopes(target, "only")
    task_id = target.create_task()
    role_id = target.unique(ROLE_PREFIX)
    hook_id = target.unique("hook-")
    refused: list[tuple[Api, str, tuple[Any, ...]]] = [
        (api.queue(authorizedScopes=only), "cancelTask", (task_id,)),
        (api.index(authorizedScopes=only), "deleteTask", (f"{target.index_namespace()}.x",)),
        (api.hooks(authorizedScopes=only), "removeHook", ("tc-scheduler-conformance", hook_id)),
        (api.auth(authorizedScopes=only), "deleteRole", (role_id,)),
    ]
    for client, method, args in refused:
        expect_error(403, "InsufficientScopes", getattr(client, method), *args)
    assert api.queue().status(task_id)["status"]["state"] == "pending"


@public_and_private
def test_empty_authorized_scopes_leave_the_anonymous_role(api: Clients, target: Target) -> None:
    """`authorizedScopes: []` restricts a call to nothing but the anonymous role."""
    auth = api.auth(authorizedScopes=[])
    reply = expect_scope_needed(target, CURRENT, auth.currentScopes)
    if reply is not None:
        assert reply["scopes"] == target.anonymous_scopes()


@public_and_private
def test_authorized_scopes_may_name_the_anonymous_roles(api: Clients, target: Target) -> None:
    """The credentials must cover `authorizedScopes`; the anonymous role's scopes count too."""
    credentials = target.make_client(scopes(target, "own"))
    auth = api.auth(credentials, authorizedScopes=[CURRENT])
    if target.anonymous_may(CURRENT):
        assert auth.currentScopes()["scopes"] == target.held([CURRENT])
    else:
        fails_authentication(api, target, credentials, authorizedScopes=[CURRENT])


def test_authorized_scopes_beyond_the_credentials_are_401(api: Clients, target: Target) -> None:
    """`authorizedScopes` the credentials do not cover fail authentication on every service,
    though only where a call's scopes are checked: `ping` needs no credentials."""
    granted = scopes(target, "one")
    beyond = {"authorizedScopes": [*granted, *scopes(target, "three")]}
    credentials = target.make_client(granted)
    fails_authentication(api, target, credentials, **beyond)
    body = expect_error(401, "AuthenticationFailed", api.auth(credentials, **beyond).currentScopes)
    assert "authorizedScopes" in body["message"]
    namespace = f"{target.index_namespace()}.x"
    index = api.index(credentials, **beyond)
    expect_error(401, "AuthenticationFailed", index.findTask, namespace)
    hooks = api.hooks(credentials, **beyond)
    expect_error(401, "AuthenticationFailed", hooks.hook, "tc-scheduler-conformance", "h")
    for service in ("queue", "index", "hooks", "auth"):
        assert api.client(service, credentials, **beyond).ping()["alive"] is True


def test_malformed_authorized_scopes_are_401(api: Clients, target: Target) -> None:
    """`authorizedScopes` must be a list of scopes (printable ASCII), or the call is a 401."""
    credentials = target.make_client(scopes(target, "one"))
    for authorized in ("not-a-list", ["tab\tin-a-scope"]):
        fails_authentication(api, target, credentials, authorizedScopes=authorized)
