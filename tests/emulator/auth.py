"""The emulated auth service: clients, roles, and the routes that manage and inspect them.

The corpus has no auth API reference, so its routes are declared here, after the real service's
(services/auth/src/api.js), scopes included.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.emulator import scopes
from tests.emulator.api import ApiError, Call, Handler
from tests.emulator.clock import format_time, parse_time
from tests.emulator.hawk import Credentials
from tests.emulator.scopes import Roles

_SCOPES_GRANTED = {"for": "scope", "in": "scopes", "each": "<scope>"}

# name, method, route, scopes — the subset of the auth reference the emulator implements.
REFERENCE: list[dict[str, Any]] = [
    {"name": "ping", "method": "get", "route": "/ping"},
    {
        "name": "client",
        "method": "get",
        "route": "/clients/<clientId>",
        "scopes": "auth:get-client:<clientId>",
    },
    {
        "name": "createClient",
        "method": "put",
        "route": "/clients/<clientId>",
        "scopes": {"AllOf": ["auth:create-client:<clientId>", _SCOPES_GRANTED]},
    },
    {
        "name": "deleteClient",
        "method": "delete",
        "route": "/clients/<clientId>",
        "scopes": "auth:delete-client:<clientId>",
    },
    {
        "name": "resetAccessToken",
        "method": "post",
        "route": "/clients/<clientId>/reset",
        "scopes": "auth:reset-access-token:<clientId>",
    },
    {
        "name": "role",
        "method": "get",
        "route": "/roles/<roleId>",
        "scopes": "auth:get-role:<roleId>",
    },
    {
        "name": "createRole",
        "method": "put",
        "route": "/roles/<roleId>",
        "scopes": {"AllOf": ["auth:create-role:<roleId>", _SCOPES_GRANTED]},
    },
    {
        "name": "updateRole",
        "method": "post",
        "route": "/roles/<roleId>",
        "scopes": {
            "AllOf": [
                "auth:update-role:<roleId>",
                {"for": "scope", "in": "scopesAdded", "each": "<scope>"},
            ]
        },
    },
    {
        "name": "deleteRole",
        "method": "delete",
        "route": "/roles/<roleId>",
        "scopes": "auth:delete-role:<roleId>",
    },
    {
        "name": "expandScopes",
        "method": "post",
        "route": "/scopes/expand",
        "scopes": "auth:expand-scopes",
    },
    {
        "name": "currentScopes",
        "method": "get",
        "route": "/scopes/current",
        "scopes": "auth:current-scopes",
    },
]

# The `anonymous` role of a public deployment (Firefox CI's is the same): the list in
# Taskcluster's deploying docs (ui/docs/manual/deploying/anonymous-role.mdx). Every call holds
# `assume:anonymous`, so these are what anyone may do, with credentials or without.
ANONYMOUS_SCOPES = [
    "auth:current-scopes",
    "auth:expand-scopes",
    "auth:get-client:*",
    "auth:get-role:*",
    "auth:list-clients",
    "auth:list-roles",
    "github:get-badge:*",
    "github:get-repository:*",
    "github:latest-status:*",
    "github:list-builds",
    "hooks:get:*",
    "hooks:list-hooks:*",
    "hooks:list-last-fires:*",
    "hooks:status:*",
    "index:find-task:*",
    "index:list-namespaces:*",
    "index:list-tasks:*",
    "purge-cache:all-purge-requests",
    "purge-cache:purge-requests:*",
    "queue:get-artifact:public/*",
    "queue:get-provisioner:*",
    "queue:get-task:*",
    "queue:get-worker-type:*",
    "queue:get-worker:*",
    "queue:list-artifacts:*",
    "queue:list-dependent-tasks:*",
    "queue:list-provisioners",
    "queue:list-task-group:*",
    "queue:list-worker-types:*",
    "queue:list-workers:*",
    "queue:pending-count:*",
    "queue:status:*",
    "secrets:list-secrets",
    "web:read-pulse",
    "worker-manager:get-worker-pool:*",
    "worker-manager:get-worker:*",
    "worker-manager:list-providers",
    "worker-manager:list-worker-pool-errors:*",
    "worker-manager:list-worker-pools",
    "worker-manager:list-workers:*",
    "worker-manager:should-worker-terminate:*",
]


@dataclass
class Client:
    client_id: str
    access_token: str
    scopes: list[str]
    description: str
    created: datetime
    expires: datetime
    last_modified: datetime
    delete_on_expiration: bool = False
    disabled: bool = False
    last_rotated: datetime | None = None


@dataclass
class Auth:
    """Clients and roles. Static ones are given at start-up; the API adds more."""

    roles: Roles = field(default_factory=Roles)
    clients: dict[str, Client] = field(default_factory=dict)
    role_details: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_client(
        self,
        client_id: str,
        scopes: Sequence[str],
        now: datetime,
        access_token: str | None = None,
        *,
        expires: datetime | None = None,
        description: str = "",
    ) -> Client:
        client = Client(
            client_id=client_id,
            access_token=access_token or _new_access_token(),
            scopes=list(scopes),
            description=description,
            created=now,
            expires=expires or now + timedelta(days=3650),
            last_modified=now,
            last_rotated=now,
        )
        self.clients[client_id] = client
        return client

    def credentials(self, client_id: str, now: datetime) -> Credentials | None:
        client = self.clients.get(client_id)
        if client is None or client.disabled or client.expires < now:
            return None
        return Credentials(client.client_id, client.access_token, client.scopes)

    def expand(self, scopes: Sequence[str]) -> list[str]:
        return self.roles.expand(scopes)

    def set_role(
        self, role_id: str, scopes: Sequence[str], now: datetime, description: str = ""
    ) -> None:
        self.roles.set(role_id, scopes)
        created = self.role_details.get(role_id, {}).get("created", now)
        self.role_details[role_id] = {
            "description": description,
            "created": created,
            "lastModified": now,
        }

    # -- handlers -------------------------------------------------------------------------

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "client": self.get_client,
            "createClient": self.create_client,
            "deleteClient": self.delete_client,
            "resetAccessToken": self.reset_access_token,
            "role": self.get_role,
            "createRole": self.create_role,
            "updateRole": self.update_role,
            "deleteRole": self.delete_role,
            "expandScopes": self.expand_scopes,
            "currentScopes": self.current_scopes,
        }

    def _client(self, client_id: str) -> Client:
        client = self.clients.get(client_id)
        if client is None:
            raise ApiError("ResourceNotFound", f"Client {client_id} not found")
        return client

    def _client_json(self, client: Client, *, with_token: bool = False) -> dict[str, Any]:
        reply = {
            "clientId": client.client_id,
            "description": client.description,
            "expires": format_time(client.expires),
            "created": format_time(client.created),
            "lastModified": format_time(client.last_modified),
            "lastDateUsed": format_time(client.created),
            "lastRotated": format_time(client.last_rotated or client.created),
            "deleteOnExpiration": client.delete_on_expiration,
            "disabled": client.disabled,
            "scopes": client.scopes,
            "expandedScopes": self.expand(client.scopes),
        }
        if with_token:
            reply["accessToken"] = client.access_token
        return reply

    def get_client(self, call: Call) -> Any:
        return self._client_json(self._client(call.params["clientId"]))

    def create_client(self, call: Call) -> Any:
        body = _object(call.body)
        granted = _scope_list(body.get("scopes", []))
        call.authorize(scopes=granted)
        client_id = call.params["clientId"]
        if client_id in self.clients:
            raise ApiError("RequestConflict", f"Client {client_id} already exists")
        expires = _time_field(body, "expires")
        client = self.add_client(
            client_id,
            granted,
            call.now,
            expires=expires,
            description=str(body.get("description", "")),
        )
        client.delete_on_expiration = bool(body.get("deleteOnExpiration", False))
        return self._client_json(client, with_token=True)

    def delete_client(self, call: Call) -> Any:
        call.authorize()
        self.clients.pop(call.params["clientId"], None)
        call.status = 204
        return None

    def reset_access_token(self, call: Call) -> Any:
        call.authorize()
        client = self._client(call.params["clientId"])
        client.access_token = _new_access_token()
        client.last_rotated = client.last_modified = call.now
        return self._client_json(client, with_token=True)

    def _role_json(self, role_id: str) -> dict[str, Any]:
        scopes = self.roles.get(role_id)
        if scopes is None:
            raise ApiError("ResourceNotFound", f"Role {role_id} not found")
        details = self.role_details.get(role_id, {})
        return {
            "roleId": role_id,
            "scopes": scopes,
            "description": details.get("description", ""),
            "created": format_time(details.get("created", _EPOCH)),
            "lastModified": format_time(details.get("lastModified", _EPOCH)),
            "expandedScopes": self.expand([f"assume:{role_id}"]),
        }

    def get_role(self, call: Call) -> Any:
        return self._role_json(call.params["roleId"])

    def create_role(self, call: Call) -> Any:
        body = _object(call.body)
        granted = _scope_list(body.get("scopes", []))
        call.authorize(scopes=granted)
        role_id = call.params["roleId"]
        if self.roles.get(role_id) is not None:
            existing = self._role_json(role_id)
            if existing["scopes"] == granted and existing["description"] == body.get(
                "description", ""
            ):
                return existing
            raise ApiError("RequestConflict", f"Role {role_id} already exists")
        self.set_role(role_id, granted, call.now, str(body.get("description", "")))
        return self._role_json(role_id)

    def update_role(self, call: Call) -> Any:
        body = _object(call.body)
        granted = _scope_list(body.get("scopes", []))
        role_id = call.params["roleId"]
        former = self.expand(self._role_json(role_id)["scopes"])
        # The caller needs only the scopes the update adds, not those the role already has.
        added = [scope for scope in granted if not scopes.satisfies(former, scope)]
        call.authorize(scopesAdded=added)
        self.set_role(role_id, granted, call.now, str(body.get("description", "")))
        return self._role_json(role_id)

    def delete_role(self, call: Call) -> Any:
        call.authorize()
        self.roles.remove(call.params["roleId"])
        self.role_details.pop(call.params["roleId"], None)
        call.status = 204
        return None

    def expand_scopes(self, call: Call) -> Any:
        return {"scopes": self.expand(_scope_list(_object(call.body).get("scopes")))}

    def current_scopes(self, call: Call) -> Any:
        return {"scopes": call.identity.scopes}


_EPOCH = parse_time("1970-01-01T00:00:00Z")


def _new_access_token() -> str:
    return secrets.token_urlsafe(33)[:44]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError("InputValidationError", "the request body must be a JSON object")
    return body


def _scope_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(scope, str) for scope in value):
        raise ApiError("InputValidationError", "scopes must be a list of strings")
    return value


def _time_field(body: Mapping[str, Any], name: str) -> datetime:
    try:
        return parse_time(str(body[name]))
    except (KeyError, ValueError):
        raise ApiError("InputValidationError", f"{name} must be a date-time") from None
