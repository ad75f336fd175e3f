"""The expiry scan: pages through a project's index namespaces and task groups, with bounded
concurrency and memory, for each cached task's earliest expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from scheduler.config.model import ExpiryWatch, Project, TaskGroupWatch
from scheduler.cron.timing import parse_instant
from scheduler.expiry.model import (
    CachedTask,
    ExpiryReport,
    at_risk,
    default_namespaces,
    kind_of_namespace,
)
from scheduler.taskcluster import Clients
from scheduler.taskcluster_failures import TaskclusterError

STATUS_BATCH = 1000

T = TypeVar("T")


@dataclass
class Scanner:
    """Finds a project's cached tasks and when they expire, through the Taskcluster APIs."""

    clients: Clients
    concurrency: int = 20
    progress: Callable[[int], None] | None = None  # called with the entries seen so far
    _limit: asyncio.Semaphore = field(init=False)
    _seen: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._limit = asyncio.Semaphore(self.concurrency)

    async def report(self, project: Project, watch: ExpiryWatch, now: datetime) -> ExpiryReport:
        found = await self.scan(project, watch)
        return ExpiryReport(
            project.name,
            len(found),
            watch.threshold,
            now,
            at_risk(found.values(), now, watch.threshold),
        )

    async def scan(self, project: Project, watch: ExpiryWatch) -> dict[str, CachedTask]:
        """Every watched cached task, by task id, with its earliest expiry."""
        walk = _Walk()
        namespaces = watch.namespaces or default_namespaces(project)
        try:
            await _together(self._walk(namespace, walk) for namespace in namespaces)
            walk.flush(self._statuses)
            checked = await _together(walk.status_checks)
        except BaseException:
            await _cancel(walk.status_checks)  # a failed scan leaves no call running
            raise
        found = {
            task_id: CachedTask(
                task_id,
                namespace,
                kind_of_namespace(namespace),
                parse_instant(expires),
                "index entry",
            )
            for task_id, (expires, namespace) in walk.indexed.items()
        }
        for known in checked:
            _apply_statuses(found, known)
        await _together(self._group(group, found) for group in watch.task_groups)
        if watch.artifacts:
            await _together(self._check_artifacts(task, found) for task in list(found.values()))
        return found

    async def _call(self, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """One listing call, within the scan's concurrency; failures as TaskclusterError."""
        async with self._limit:
            try:
                return await method(*args, **kwargs)
            except Exception as error:
                raise self.clients.explain(error, call_name(method, args)) from None

    async def _pages(
        self, method: Callable[..., Awaitable[Any]], *args: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Each page of a listing, following continuation tokens; one page held at a time."""
        query: dict[str, str] = {}
        while True:
            page = await self._call(method, *args, query=query)
            yield page
            token = page.get("continuationToken")
            if not token:
                return
            query = {"continuationToken": token}

    def _count(self, entries: int) -> None:
        self._seen += entries
        if self.progress is not None:
            self.progress(self._seen)

    async def _walk(self, namespace: str, walk: _Walk) -> None:
        """The tasks indexed under `namespace` and, concurrently, under its child namespaces."""
        await _together((self._children(namespace, walk), self._entries(namespace, walk)))

    async def _children(self, namespace: str, walk: _Walk) -> None:
        children: list[asyncio.Task[None]] = []
        try:
            async for page in self._pages(self.clients.index.listNamespaces, namespace):
                for child in page.get("namespaces", []):
                    children.append(asyncio.create_task(self._walk(child["namespace"], walk)))
        except BaseException:
            await _cancel(children)
            raise
        await _together(children)

    async def _entries(self, namespace: str, walk: _Walk) -> None:
        async for page in self._pages(self.clients.index.listTasks, namespace):
            entries = page.get("tasks", [])
            for entry in entries:
                walk.saw(entry["taskId"], entry["expires"], entry["namespace"])
            self._count(len(entries))
            walk.check_full_batches(self._statuses)

    async def _statuses(self, task_ids: list[str]) -> dict[str, datetime | None]:
        """Each task's expiry, or None for a task the queue no longer has."""
        expires: dict[str, datetime | None] = dict.fromkeys(task_ids)
        query: dict[str, str] = {}
        while True:
            page = await self._call(
                self.clients.queue.statuses, payload={"taskIds": task_ids}, query=query
            )
            for item in page.get("statuses", []):
                expires[item["taskId"]] = parse_instant(item["status"]["expires"])
            token = page.get("continuationToken")
            if not token:
                return expires
            query = {"continuationToken": token}

    async def _group(self, group: TaskGroupWatch, found: dict[str, CachedTask]) -> None:
        where = f"task-group {group.task_group_id}"
        async for page in self._pages(self.clients.queue.listTaskGroup, group.task_group_id):
            tasks = page.get("tasks", [])
            for item in tasks:
                task, status = item["task"], item["status"]
                kind = (task.get("tags") or {}).get("kind")
                label = (task.get("tags") or {}).get("label") or task["metadata"]["name"]
                if group.kinds and kind not in group.kinds:
                    continue
                if group.label_prefix and not str(label).startswith(group.label_prefix):
                    continue
                seen = CachedTask(
                    status["taskId"], where, kind, parse_instant(status["expires"]), "task"
                )
                found[seen.task_id] = _earlier(found.get(seen.task_id), seen)
            self._count(len(tasks))

    async def _check_artifacts(self, task: CachedTask, found: dict[str, CachedTask]) -> None:
        if task.gone:
            return
        try:
            async for page in self._pages(self.clients.queue.listLatestArtifacts, task.task_id):
                for artifact in page.get("artifacts", []):
                    expires = parse_instant(artifact["expires"])
                    if expires < found[task.task_id].expires:
                        found[task.task_id] = replace(
                            found[task.task_id],
                            expires=expires,
                            because=f"artifact {artifact['name']}",
                        )
        except TaskclusterError as error:
            if error.status != 404:  # no runs yet: no artifacts to lose
                raise


@dataclass
class _Walk:
    """What a walk of the index has found so far, and the status checks it has started.

    Each task keeps its earliest-expiring entry as (expires, namespace): the index writes every
    time in one ISO format, so the text compares as the time does and parsing waits until each
    task has one entry left. Task statuses are asked for a thousand at a time while the walk
    goes on, so the queue's answers overlap the index's.
    """

    indexed: dict[str, tuple[str, str]] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)
    status_checks: list[asyncio.Future[dict[str, datetime | None]]] = field(default_factory=list)

    def saw(self, task_id: str, expires: str, namespace: str) -> None:
        known = self.indexed.get(task_id)
        if known is None:
            self.unchecked.append(task_id)
        if known is None or (expires, namespace) < known:
            self.indexed[task_id] = (expires, namespace)

    def check_full_batches(
        self, statuses: Callable[[list[str]], Awaitable[dict[str, datetime | None]]]
    ) -> None:
        while len(self.unchecked) >= STATUS_BATCH:
            batch, self.unchecked = self.unchecked[:STATUS_BATCH], self.unchecked[STATUS_BATCH:]
            self.status_checks.append(asyncio.ensure_future(statuses(batch)))

    def flush(self, statuses: Callable[[list[str]], Awaitable[dict[str, datetime | None]]]) -> None:
        self.check_full_batches(statuses)
        if self.unchecked:
            self.status_checks.append(asyncio.ensure_future(statuses(self.unchecked)))
            self.unchecked = []


async def _together(work: Iterable[Awaitable[T]]) -> list[T]:
    """All of `work`, concurrently; the first failure cancels the rest and is raised, so no
    call of a failed scan goes on (or fails later, unheard)."""
    tasks = [asyncio.ensure_future(each) for each in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        await _cancel(tasks)
        raise


async def _cancel(tasks: Iterable[asyncio.Future[Any]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def call_name(method: Callable[..., Awaitable[Any]], args: Iterable[Any]) -> str:
    """`index.listNamespaces(gecko.cache.level-3)`: a call as its failure names it."""
    # `Index.listNamespaces`, whether the client's method or the same bounded (taskcluster.py).
    service, _, name = getattr(method, "__qualname__", "a call").rpartition(".")
    return f"{service.lower()}.{name}({', '.join(map(str, args))})"


def _apply_statuses(found: dict[str, CachedTask], known: dict[str, datetime | None]) -> None:
    """Fold the queue's answer into what the index said; a task it does not know is gone."""
    for task_id, expires in known.items():
        entry = found[task_id]
        if expires is None:
            found[task_id] = replace(entry, because="task is gone", gone=True)
        elif expires < entry.expires:
            found[task_id] = replace(entry, expires=expires, because="task")


def _earlier(current: CachedTask | None, candidate: CachedTask) -> CachedTask:
    if current is None or candidate.expires < current.expires:
        return candidate
    return current
