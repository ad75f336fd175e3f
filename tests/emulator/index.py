"""The emulated index: namespaced pointers to tasks, with ranks, expiry and paged listings.

Kept as sorted name lists per namespace so that 100,000 entries list page by page cheaply.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.emulator.api import ApiError, Call, Handler, paginate
from tests.emulator.clock import format_time, parse_time


@dataclass
class Entry:
    namespace: str
    task_id: str
    rank: float
    data: dict[str, Any]
    expires: datetime

    def describe(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "taskId": self.task_id,
            "rank": self.rank,
            "data": self.data,
            "expires": _formatted(self.expires),
        }


@dataclass
class _Children:
    """The direct children of one namespace, names kept sorted for paging."""

    names: list[str] = field(default_factory=list)
    expires: dict[str, datetime] = field(default_factory=dict)

    def add(self, name: str, expires: datetime) -> None:
        if name not in self.expires:
            bisect.insort(self.names, name)
            self.expires[name] = expires
        else:
            self.expires[name] = max(self.expires[name], expires)

    def remove(self, name: str) -> None:
        if self.expires.pop(name, None) is not None:
            self.names.pop(bisect.bisect_left(self.names, name))


class Index:
    def __init__(self, queue_artifact_url: Callable[[str, str], str]) -> None:
        self.entries: dict[str, Entry] = {}
        self._tasks: dict[str, _Children] = {}
        self._namespaces: dict[str, _Children] = {}
        self._queue_artifact_url = queue_artifact_url

    def insert(
        self,
        namespace: str,
        task_id: str,
        *,
        rank: float = 0,
        data: dict[str, Any] | None = None,
        expires: datetime,
    ) -> Entry:
        existing = self.entries.get(namespace)
        if existing is not None and existing.rank > rank:
            return existing
        entry = Entry(namespace, task_id, rank, data or {}, expires)
        self.entries[namespace] = entry
        parent, name = _split(namespace)
        self._tasks.setdefault(parent, _Children()).add(name, expires)
        self._tasks[parent].expires[name] = expires
        parts = namespace.split(".")
        for depth in range(1, len(parts)):
            above = ".".join(parts[: depth - 1])
            self._namespaces.setdefault(above, _Children()).add(parts[depth - 1], expires)
        return entry

    def find(self, namespace: str, now: datetime) -> Entry:
        entry = self.entries.get(namespace)
        if entry is None or entry.expires <= now:
            raise ApiError("ResourceNotFound", f"Indexed task not found at {namespace}")
        return entry

    def delete(self, namespace: str) -> None:
        if self.entries.pop(namespace, None) is not None:
            parent, name = _split(namespace)
            self._tasks[parent].remove(name)

    # -- handlers -------------------------------------------------------------------------

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "insertTask": self.insert_task,
            "findTask": self.find_task,
            "deleteTask": self.delete_task,
            "listNamespaces": self.list_namespaces,
            "listTasks": self.list_tasks,
            "findArtifactFromTask": self.find_artifact_from_task,
            "findTasksAtIndex": self.find_tasks_at_index,
        }

    def insert_task(self, call: Call) -> Any:
        body = call.body
        try:
            expires = parse_time(body["expires"])
        except ValueError:
            raise ApiError("InputError", "expires is not a valid date-time") from None
        entry = self.insert(
            call.params["namespace"],
            body["taskId"],
            rank=body["rank"],
            data=body["data"],
            expires=expires,
        )
        return entry.describe()

    def find_task(self, call: Call) -> Any:
        return self.find(call.params["indexPath"], call.now).describe()

    def delete_task(self, call: Call) -> Any:
        self.delete(call.params["namespace"])
        return {}

    def list_namespaces(self, call: Call) -> Any:
        namespace = call.params.get("namespace", "")
        children = self._namespaces.get(namespace, _Children())
        page, token = paginate(call, children.names)
        reply: dict[str, Any] = {
            "namespaces": [
                {
                    "namespace": _join(namespace, name),
                    "name": name,
                    "expires": format_time(children.expires[name]),
                }
                for name in page
                if children.expires[name] > call.now
            ]
        }
        if token:
            reply["continuationToken"] = token
        return reply

    def list_tasks(self, call: Call) -> Any:
        namespace = call.params.get("namespace", "")
        children = self._tasks.get(namespace, _Children())
        page, token = paginate(call, children.names)
        entries = (self.entries[_join(namespace, name)] for name in page)
        reply: dict[str, Any] = {
            "tasks": [entry.describe() for entry in entries if entry.expires > call.now]
        }
        if token:
            reply["continuationToken"] = token
        return reply

    def find_artifact_from_task(self, call: Call) -> Any:
        entry = self.find(call.params["indexPath"], call.now)
        location = self._queue_artifact_url(entry.task_id, call.params["name"])
        call.status = 303
        call.headers["Location"] = location
        call.headers["Content-Type"] = "text/plain; charset=utf-8"
        # Express's res.redirect body, which the clients return as {"response": ...}.
        return f"See Other. Redirecting to {location}".encode()

    def find_tasks_at_index(self, call: Call) -> Any:
        paths = call.body["indexes"]
        call.authorize(indexPaths=paths)
        found = [self.entries.get(path) for path in paths]
        live = [entry.describe() for entry in found if entry and entry.expires > call.now]
        page, token = paginate(call, live)
        reply: dict[str, Any] = {"tasks": page}
        if token:
            reply["continuationToken"] = token
        return reply


@functools.lru_cache(maxsize=4096)
def _formatted(moment: datetime) -> str:
    # Listings format the same few expiry times thousands of times a page.
    return format_time(moment)


def _split(namespace: str) -> tuple[str, str]:
    parent, _, name = namespace.rpartition(".")
    return parent, name


def _join(namespace: str, name: str) -> str:
    return f"{namespace}.{name}" if namespace else name
