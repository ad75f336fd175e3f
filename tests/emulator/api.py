"""The emulated services' API surface: routes from the API references, errors, and each call's context.

Routes, methods, scope templates and schema names come from Taskcluster's own references in the
corpus; handlers in queue.py, index.py, hooks.py and auth.py implement them by name.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from tests.emulator import scopes

T = TypeVar("T")
_PARAMETER = re.compile(r"<([^<>]+)>")

# The error codes of taskcluster-lib-api, with their HTTP statuses.
ERROR_STATUS = {
    "MalformedPayload": 400,
    "InvalidRequestArguments": 400,
    "InputValidationError": 400,
    "InputError": 400,
    "AuthenticationFailed": 401,
    "InsufficientScopes": 403,
    "ResourceNotFound": 404,
    "RequestConflict": 409,
    "ResourceExpired": 410,
    "InputTooLarge": 413,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "NotImplemented": 501,
    "BadGateway": 502,
    "ServiceUnavailable": 503,
}


class ApiError(Exception):
    """An error reply in Taskcluster's shape: `{code, message, requestInfo}`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.status = ERROR_STATUS[code]
        self.message = message


@dataclass(frozen=True)
class Reply:
    """What goes back to the client: status, JSON-able body (or bytes), extra headers."""

    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Route:
    """One entry of an API reference."""

    service: str
    name: str
    method: str
    pattern: tuple[str, ...]
    scopes: Any
    input_schema: str | None
    output_schema: str | None
    query: tuple[str, ...]

    @classmethod
    def from_entry(cls, service: str, entry: Mapping[str, Any]) -> Route:
        return cls(
            service=service,
            name=entry["name"],
            method=entry["method"].upper(),
            pattern=tuple(entry["route"].strip("/").split("/")) if entry["route"] != "/" else (),
            scopes=entry.get("scopes"),
            input_schema=_schema_path(service, entry.get("input")),
            output_schema=_schema_path(service, entry.get("output")),
            query=tuple(entry.get("query", ())),
        )

    @property
    def params(self) -> list[str]:
        return [part[1:-1] for part in self.pattern if part.startswith("<")]

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Route parameters from the request path's (still encoded) segments, or None.

        A trailing parameter takes the rest of the path, so names like `public/actions.json`
        work whether the client encodes the slash as %2F or not.
        """
        if not self.pattern:
            return {} if not segments else None
        if len(segments) == len(self.pattern) - 1 and self.pattern[-1].startswith("<"):
            # The client strips a trailing slash, so an empty last parameter arrives missing.
            segments = [*segments, ""]
        if len(segments) < len(self.pattern):
            return None
        if len(segments) > len(self.pattern) and not self.pattern[-1].startswith("<"):
            return None
        params: dict[str, str] = {}
        for index, part in enumerate(self.pattern):
            if part.startswith("<"):
                last = index == len(self.pattern) - 1
                raw = "/".join(segments[index:]) if last else segments[index]
                if not raw and not last:
                    return None
                params[part[1:-1]] = urllib.parse.unquote(raw)
            elif segments[index] != part:
                return None
        return params

    @functools.cached_property
    def template_params(self) -> frozenset[str]:
        """Parameters the scope template needs; handlers must supply those not in the path."""
        names: set[str] = set()
        loop_variables: set[str] = set()

        def visit(node: Any) -> None:
            if isinstance(node, str):
                names.update(_PARAMETER.findall(node))
            elif "for" in node:
                names.add(node["in"])
                loop_variables.add(node["for"])
                visit(node["each"])
            elif "if" in node:
                names.add(node["if"])
                visit(node["then"])
            else:
                for operand in next(iter(node.values())):
                    visit(operand)

        if self.scopes is not None:
            visit(self.scopes)
        return frozenset(names - loop_variables)


def _schema_path(service: str, reference: Any) -> str | None:
    if not isinstance(reference, str):
        return None
    name = reference.split("#")[0].removeprefix("v1/")
    return f"/schemas/{service}/v1/{name}"


@dataclass
class Identity:
    """Who is calling and what they may do (expanded scopes)."""

    client_id: str | None
    scopes: list[str]


def known(identity: Identity) -> Callable[[], Identity]:
    """The `authenticate` of a call whose caller is already known (the emulator's own calls)."""
    return lambda: identity


@dataclass
class Call:
    """One API call as a handler sees it.

    The caller is authenticated when the call first needs it, as taskcluster-lib-api does: a
    call whose scope expression is empty (a public artifact) succeeds even with bad credentials.
    """

    route: Route
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    authenticate: Callable[[], Identity]
    now: datetime
    authorized: bool = False
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    _identity: Identity | None = field(default=None, init=False, repr=False)

    @property
    def identity(self) -> Identity:
        """The caller; raises the 401 `AuthenticationFailed` if its credentials fail."""
        if self._identity is None:
            self._identity = self.authenticate()
        return self._identity

    def authorize(self, **values: Any) -> None:
        """Check the route's scope expression, with these values added to the route params."""
        expression = scopes.render(self.route.scopes, {**self.params, **values})
        assert not isinstance(expression, list)
        # No expression (an `{if, then}` that does not apply) is a public request: no caller.
        if expression is not None:
            missing = scopes.unsatisfied(expression, self.identity.scopes)
            if missing is not None:
                raise ApiError(
                    "InsufficientScopes",
                    insufficient_scopes_message(self.identity.client_id, missing, expression),
                )
        self.authorized = True

    def limit(self, default: int = 1000, maximum: int = 1000) -> int:
        text = self.query.get("limit")
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError("InvalidRequestArguments", "limit must be an integer") from None
        if value < 1:
            raise ApiError("InvalidRequestArguments", "limit must be at least 1")
        return min(value, maximum)


def insufficient_scopes_message(client_id: str | None, missing: Any, required: Any) -> str:
    """taskcluster-lib-api's words; a call without credentials is told what it would need."""
    if client_id is None:
        return (
            "This request requires Taskcluster credentials that satisfy the following scope "
            f"expression:\n\n```\n{_shown(required)}\n```"
        )
    return (
        f"Client ID {client_id} does not have sufficient scopes and is missing the following "
        f"scopes:\n\n```\n{_shown(missing)}\n```\n\n"
        "This request requires the client to satisfy the following scope expression:\n\n"
        f"```\n{_shown(required)}\n```"
    )


def _shown(expression: Any) -> str:
    # A single scope is shown bare, an expression as indented JSON, as the real messages do.
    return expression if isinstance(expression, str) else json.dumps(expression, indent=2)


Handler = Callable[[Call], Any]


def paginate(
    call: Call, items: Sequence[T], *, default_limit: int = 1000
) -> tuple[list[T], str | None]:
    """One page of `items` per the call's `limit` and opaque `continuationToken`."""
    token = call.query.get("continuationToken")
    start = 0
    if token:
        try:
            start = int(
                base64.urlsafe_b64decode(token.encode() + b"==").decode().removeprefix("o:")
            )
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise ApiError("InvalidRequestArguments", "continuationToken is not valid") from None
        if start < 0:
            raise ApiError("InvalidRequestArguments", "continuationToken is not valid")
    limit = call.limit(default=default_limit)
    page = list(items[start : start + limit])
    end = start + len(page)
    if end >= len(items):
        return page, None
    return page, base64.urlsafe_b64encode(f"o:{end}".encode()).decode().rstrip("=")
