"""Each request to Taskcluster, named and timed: the service and API method it calls (by the
client library's own route table), its status and how long it took. Does no I/O itself: the
session the client library is given (taskcluster_session) tells it of each request.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import taskcluster.aio
from yarl import URL

NO_ANSWER = "no-answer"
UNKNOWN = "unknown"
# Requests outside `/api/`: an artifact's content, where the queue stores it.
ARTIFACTS = "artifacts"

Route = tuple[str, re.Pattern[str], str]  # HTTP method, path pattern, API method


@dataclass(frozen=True)
class Call:
    """One request to Taskcluster (each retry is one) and how it ended: names, never ids."""

    service: str  # queue, index, hooks, auth, ...; `artifacts` for where artifacts are stored
    method: str  # the API method (createTask); `unknown` for a route the client lacks
    status: str  # the HTTP status, or `no-answer`
    seconds: float


CallObserver = Callable[[Call], None]


def timed(method: str, url: URL, status: str, started: float) -> Call:
    """A request to `url` that ended now with `status` (or NO_ANSWER), sent at `started`
    (`time.monotonic()`), named by `call_name`."""
    service, api_method = call_name(method, url)
    return Call(service, api_method, status, time.monotonic() - started)


def call_name(method: str, url: URL) -> tuple[str, str]:
    """The service and API method of a request (`queue`, `createTask`): its path,
    `/api/<service>/<version>/<route>`, matched against the client library's routes."""
    parts = url.raw_path.split("/")
    if "api" not in parts[:-2]:
        return ARTIFACTS, method.lower()
    at = parts.index("api")
    routes = _routes().get(parts[at + 1])
    if routes is None:
        return "other", UNKNOWN
    route = "/" + "/".join(parts[at + 3 :]).rstrip("/")
    named = (name for verb, pattern, name in routes if verb == method and pattern.match(route))
    return parts[at + 1], next(named, UNKNOWN)


@functools.cache
def _routes() -> dict[str, list[Route]]:
    """Every service the client library knows, with its routes, the most literal one first
    (`/task/<taskId>/status` is not `/task/<taskId>`, as the patterns match whole paths)."""
    entries: dict[str, list[Mapping[str, Any]]] = {}
    clients: list[Any] = [c for c in vars(taskcluster.aio).values() if isinstance(c, type)]
    for client in clients:
        # Each service's API methods (its events' clients, like QueueEvents, have none).
        if getattr(client, "funcinfo", None):
            entries.setdefault(client.serviceName, []).extend(client.funcinfo.values())
    return {service: _routes_of(listed) for service, listed in entries.items()}


def _routes_of(entries: Iterable[Mapping[str, Any]]) -> list[Route]:
    routes = []
    for entry in entries:
        pieces = re.split(r"(<[^>]+>)", entry["route"])
        pattern = "".join("[^/]+" if p.startswith("<") else re.escape(p) for p in pieces)
        literal = sum(len(p) for p in pieces if not p.startswith("<"))
        routes.append((literal, entry["method"].upper(), re.compile(pattern + "$"), entry["name"]))
    routes.sort(key=lambda route: -route[0])
    return [(verb, pattern, name) for _, verb, pattern, name in routes]
