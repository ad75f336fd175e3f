"""Expiry watch: the cached tasks (toolchains, docker images, fetches) that expire soon.

The scan pages through index namespaces and task groups with bounded concurrency and memory;
what counts as expiring is decided by the pure functions at the top. The remediator rebuilds.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from scheduler.actions import latest_decision_index_path
from scheduler.config import ExpiryWatch, Project, TaskGroupWatch, format_duration
from scheduler.cron.model import TriggerAction
from scheduler.cron.timing import parse_instant
from scheduler.ledger import Ledger, Remediation, RemediationState
from scheduler.taskcluster import Clients, TaskclusterError
from scheduler.triggering import Triggered, TriggerError, prepare_trigger, send

# Index namespaces name the cache type in taskgraph's words; reports use the kind's name.
CACHE_TYPES = {
    "docker-images": "docker-image",
    "toolchains": "toolchain",
    "content": "fetch",
    "fetches": "fetch",
}
STATUS_BATCH = 1000

log = structlog.get_logger("tc_scheduler.expiry")

T = TypeVar("T")


class Health(enum.StrEnum):
    EXPIRED = "expired"
    EXPIRING = "expiring"
    HEALTHY = "healthy"


@dataclass(frozen=True)
class CachedTask:
    """One cached task and the earliest moment something a run needs of it goes away."""

    task_id: str
    where: str  # the index namespace it was found under, or `task-group <id>`
    kind: str | None
    expires: datetime
    because: str  # what expires first: "index entry", "task", "artifact <name>"
    gone: bool = False  # the index points at a task the queue no longer has

    def days_left(self, now: datetime) -> float:
        return 0.0 if self.gone else (self.expires - now) / timedelta(days=1)

    def health(self, now: datetime, threshold: timedelta) -> Health:
        if self.gone or self.expires <= now:
            return Health.EXPIRED
        return Health.EXPIRING if self.expires - now <= threshold else Health.HEALTHY


@dataclass(frozen=True)
class ExpiryReport:
    project: str
    scanned: int
    threshold: timedelta
    now: datetime
    at_risk: tuple[CachedTask, ...]  # expired or expiring, soonest first

    def health(self, task: CachedTask) -> Health:
        return task.health(self.now, self.threshold)

    @property
    def expired(self) -> tuple[CachedTask, ...]:
        return tuple(t for t in self.at_risk if self.health(t) is Health.EXPIRED)

    @property
    def expiring(self) -> tuple[CachedTask, ...]:
        return tuple(t for t in self.at_risk if self.health(t) is Health.EXPIRING)


def default_namespaces(project: Project) -> tuple[str, ...]:
    """Where taskgraph indexes a project's cached tasks: `<trust-domain>.cache.level-<N>`."""
    return (f"{project.trust_domain}.cache.level-{project.level}",)


def kind_of_namespace(namespace: str) -> str | None:
    """`gecko.cache.level-3.toolchains.v3.linux64-clang.hash.ab12` -> `toolchain`."""
    parts = namespace.split(".")
    if "cache" not in parts:
        return None
    after = parts[parts.index("cache") + 1 :]
    cache_type = after[1] if len(after) > 1 and after[0].startswith("level-") else None
    return CACHE_TYPES.get(cache_type or "", cache_type)


def at_risk(
    tasks: Iterable[CachedTask], now: datetime, threshold: timedelta
) -> tuple[CachedTask, ...]:
    """The expired and expiring tasks, soonest first."""
    risky = (t for t in tasks if t.health(now, threshold) is not Health.HEALTHY)
    return tuple(sorted(risky, key=lambda t: (not t.gone, t.expires, t.task_id)))


def _earlier(current: CachedTask | None, candidate: CachedTask) -> CachedTask:
    if current is None or candidate.expires < current.expires:
        return candidate
    return current


# -- scanning ----------------------------------------------------------------------------------


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
                raise self.clients.explain(error, _doing(method, args)) from None

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


def _doing(method: Callable[..., Awaitable[Any]], args: Iterable[Any]) -> str:
    """`index.listNamespaces(gecko.cache.level-3)`: a call as its failure names it."""
    service = type(getattr(method, "__self__", None)).__name__.lower()
    name = getattr(method, "__name__", "a call")
    return f"{service}.{name}({', '.join(map(str, args))})"


def _apply_statuses(found: dict[str, CachedTask], known: dict[str, datetime | None]) -> None:
    """Fold the queue's answer into what the index said; a task it does not know is gone."""
    for task_id, expires in known.items():
        entry = found[task_id]
        if expires is None:
            found[task_id] = replace(entry, because="task is gone", gone=True)
        elif expires < entry.expires:
            found[task_id] = replace(entry, expires=expires, because="task")


# -- remediation -------------------------------------------------------------------------------

RESOLVED = ("completed", "failed", "exception")
# A remediation still without its action task after this long lost its replica mid-trigger.
TRIGGER_GRACE = timedelta(minutes=10)


class EventKind(enum.StrEnum):
    """What the expiry watch has to say; the notification layer turns these into messages."""

    STARTED = "remediation-started"
    SUCCEEDED = "remediation-succeeded"
    NOTHING_REBUILT = "remediation-nothing-rebuilt"  # the action completed and made no task
    FAILED = "remediation-failed"
    DRY_RUN = "remediation-dry-run"
    WAITING = "remediation-waiting"  # at risk, but one is running or the cooldown holds
    EXPIRING = "expiring-found"
    EXPIRED = "already-expired"
    SCAN_FAILED = "expiry-scan-failed"  # Taskcluster failed a call of the scan or the step


@dataclass(frozen=True)
class Event:
    kind: EventKind
    project: str
    message: str
    at_risk: tuple[CachedTask, ...] = ()
    remediation_id: int | None = None
    # The rebuilt tasks' group: what a pipeline adds to its `previous_group_ids`.
    task_group_id: str | None = None

    @property
    def failed(self) -> bool:
        """The scan, or the rebuild, failed: somebody has to look."""
        return self.kind in (EventKind.FAILED, EventKind.SCAN_FAILED)


def findings(report: ExpiryReport) -> list[Event]:
    """What a scan found, as events: what has already expired, and what expires soon."""
    events = []
    if report.expired:
        names = ", ".join(f"{t.where} ({t.because})" for t in report.expired[:5])
        events.append(
            Event(
                EventKind.EXPIRED,
                report.project,
                f"{len(report.expired)} cached tasks have expired or are gone: {names}",
                report.expired,
            )
        )
    if report.expiring:
        soonest = report.expiring[0]
        events.append(
            Event(
                EventKind.EXPIRING,
                report.project,
                f"{len(report.expiring)} cached tasks expire within "
                f"{format_duration(report.threshold)}; the first, {soonest.where}, in "
                f"{soonest.days_left(report.now):.1f} days",
                report.expiring,
            )
        )
    return events


def rebuild_decision_index_path(project: Project) -> str:
    """The decision task whose action rebuilds: configured, or the project's latest one."""
    return project.expiry.decision_index or latest_decision_index_path(
        project.trust_domain, project.name
    )


@dataclass
class Remediator:
    """Rebuilds a project's expiring cached tasks through its decision task's action.

    One step per scan: follow the running remediation to its verdict, or start one when
    something is at risk. The ledger keeps it to one at a time across replicas.
    """

    clients: Clients
    ledger: Ledger
    replica: str
    clock: Callable[[], datetime]

    async def step(self, project: Project, report: ExpiryReport, *, dry_run: bool) -> Event | None:
        running = await asyncio.to_thread(self.ledger.running_remediation, project.name)
        if running is not None:
            return await self._follow(project, running, report)
        if not report.at_risk:
            return None
        return await self._start(project, report, dry_run=dry_run)

    async def _start(self, project: Project, report: ExpiryReport, *, dry_run: bool) -> Event:
        watch = project.expiry
        expiring = [
            {"taskId": t.task_id, "where": t.where, "expires": t.expires.isoformat()}
            for t in report.at_risk
        ]
        kind = TriggerAction(action_name=watch.action, extra_input=dict(watch.action_input))
        prepared: Triggered | None = None
        refused: TriggerError | None = None  # the action itself is wrong: a real failure
        try:
            prepared = await prepare_trigger(
                self.clients, rebuild_decision_index_path(project), kind
            )
        except TriggerError as error:
            if error.transient:
                # Nothing was started: the next scan tries again, with no cooldown to wait out.
                return Event(
                    EventKind.SCAN_FAILED,
                    project.name,
                    f"the rebuild could not start, and is tried again at the next scan: {error}",
                    report.at_risk,
                )
            refused = error
        started = await asyncio.to_thread(
            self.ledger.start_remediation,
            project.name,
            action=watch.action,
            expiring=expiring,
            replica=self.replica,
            now=self.clock(),
            cooldown=watch.cooldown,
        )
        if started is None:
            return Event(
                EventKind.WAITING,
                project.name,
                f"{len(report.at_risk)} cached tasks at risk; a rebuild is running or ran "
                f"within the cooldown ({format_duration(watch.cooldown)})",
                report.at_risk,
            )
        if refused is not None or prepared is None:
            return await self._finish(
                project, started.id, RemediationState.FAILED, f"could not start: {refused}", report
            )
        try:
            triggered = (
                prepared if dry_run else await send(self.clients, prepared, sent_at=self.clock())
            )
        except TriggerError as error:
            return await self._finish(
                project, started.id, RemediationState.FAILED, f"could not start: {error}", report
            )
        if dry_run:
            trigger = triggered.trigger
            return await self._finish(
                project,
                started.id,
                RemediationState.DRY_RUN,
                f"would trigger {trigger.action_name} ({trigger.hook_group_id}/"
                f"{trigger.hook_id}) on decision task {triggered.decision_task_id}",
                report,
            )
        if triggered.task_id is None:
            return await self._finish(
                project,
                started.id,
                RemediationState.FAILED,
                f"the hook {triggered.trigger.hook_group_id}/{triggered.trigger.hook_id} of "
                f"action {watch.action} made no task, so "
                "nothing was rebuilt; check the hook's task template",
                report,
            )
        # Taskgraph's action task runs the rebuild in a task group named after itself.
        await asyncio.to_thread(
            self.ledger.remediation_triggered,
            started.id,
            task_id=triggered.task_id,
            task_group_id=triggered.task_id,
        )
        return Event(
            EventKind.STARTED,
            project.name,
            f"rebuilding {len(report.at_risk)} expiring cached tasks with {watch.action} "
            f"(task group {triggered.task_id}; add it to previous_group_ids)",
            report.at_risk,
            started.id,
            triggered.task_id,
        )

    async def _follow(
        self, project: Project, running: Remediation, report: ExpiryReport
    ) -> Event | None:
        """The running rebuild's verdict, if it has one: first from its action task, which
        may end without making any task, then from the tasks of its group."""
        action_task = running.task_id or running.task_group_id
        if action_task is None:
            if self.clock() - running.started_at < TRIGGER_GRACE:
                return None  # another replica is triggering it right now
            return await self._finish(
                project,
                running.id,
                RemediationState.FAILED,
                "the action was triggered but its task was never recorded (the replica stopped)",
                report,
            )
        status = await self._queue_call(self.clients.queue.status, action_task)
        if status is None:
            return await self._finish(
                project,
                running.id,
                RemediationState.FAILED,
                f"the queue does not know the action task {action_task} any more, so the "
                "rebuild cannot be judged; a new one can start after the cooldown "
                f"({format_duration(project.expiry.cooldown)})",
                report,
            )
        action_state = status["status"]["state"]
        if action_state in ("failed", "exception"):
            runs = status["status"].get("runs") or [{}]
            reason = runs[-1].get("reasonResolved") or action_state
            how = action_state if reason == action_state else f"{action_state} ({reason})"
            return await self._finish(
                project,
                running.id,
                RemediationState.FAILED,
                f"the action task {action_task} resolved {how}; look at its log and fix the "
                "cause: a new rebuild can start after the cooldown "
                f"({format_duration(project.expiry.cooldown)})",
                report,
            )
        if action_state != "completed":
            return None  # the action task has not run to its end yet
        group = running.task_group_id or action_task
        states = await self._group_states(group)
        states.pop(action_task, None)  # an action whose group is its own lists itself
        if not states:
            return await self._nothing_rebuilt(project, running, action_task, report)
        if any(state not in RESOLVED for state in states.values()):
            return None  # still rebuilding
        failed = sorted(task for task, state in states.items() if state != "completed")
        if failed:
            return await self._finish(
                project,
                running.id,
                RemediationState.FAILED,
                f"{len(failed)} rebuild tasks of group {group} did not complete "
                f"({', '.join(failed[:5])}); look at their logs, then fix and rerun the action",
                report,
            )
        still = self._still_at_risk(running, report)
        if still:
            return await self._finish(
                project,
                running.id,
                RemediationState.FAILED,
                f"the rebuild completed but {len(still)} cache entries still point at the "
                f"expiring tasks ({', '.join(still[:5])}); check that the action "
                "rebuilds these kinds and indexes them",
                report,
            )
        return await self._finish(
            project,
            running.id,
            RemediationState.SUCCEEDED,
            "the cache now points at new tasks",
            report,
        )

    async def _nothing_rebuilt(
        self, project: Project, running: Remediation, action_task: str, report: ExpiryReport
    ) -> Event:
        """The action completed without making any task: done, but nothing was rebuilt."""
        still = self._still_at_risk(running, report)
        if still:
            after = (
                f"{len(still)} of the cached tasks it was started for are still at risk "
                f"({', '.join(still[:5])}); check the action and its input "
                f"(expiry `action`, `input`): a new rebuild can start after the cooldown "
                f"({format_duration(project.expiry.cooldown)})"
            )
        else:
            after = "none of the cached tasks it was started for is at risk any more"
        message = (
            f"the action task {action_task} completed without creating any task: nothing was "
            f"rebuilt; {after}"
        )
        await asyncio.to_thread(
            self.ledger.finish_remediation,
            running.id,
            state=RemediationState.SUCCEEDED,
            now=self.clock(),
        )
        return Event(
            EventKind.NOTHING_REBUILT,
            project.name,
            message,
            report.at_risk,
            running.id,
            running.task_group_id,
        )

    @staticmethod
    def _still_at_risk(running: Remediation, report: ExpiryReport) -> list[str]:
        """The tasks the rebuild was started for that the scan still finds at risk."""
        return sorted({t.task_id for t in report.at_risk} & {e["taskId"] for e in running.expiring})

    async def _queue_call(
        self, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        """One queue call of the remediation step; None if the queue answers 404, any other
        failure as a TaskclusterError (a failed scan, not a failed rebuild)."""
        try:
            return await method(*args, **kwargs)
        except Exception as error:
            explained = self.clients.explain(error, _doing(method, args))
            if explained.status == 404:
                return None
            raise explained from None

    async def _group_states(self, task_group_id: str) -> dict[str, str]:
        """Each task of the group by its state; none if the queue knows no such group."""
        states: dict[str, str] = {}
        query: dict[str, str] = {}
        while True:
            page = await self._queue_call(
                self.clients.queue.listTaskGroup, task_group_id, query=query
            )
            if page is None:  # no task was ever created in it
                return states
            for item in page.get("tasks", []):
                states[item["status"]["taskId"]] = item["status"]["state"]
            token = page.get("continuationToken")
            if not token:
                return states
            query = {"continuationToken": token}

    async def _finish(
        self,
        project: Project,
        remediation_id: int,
        state: RemediationState,
        message: str,
        report: ExpiryReport,
    ) -> Event:
        error = None if state in (RemediationState.SUCCEEDED, RemediationState.DRY_RUN) else message
        await asyncio.to_thread(
            self.ledger.finish_remediation,
            remediation_id,
            state=state,
            now=self.clock(),
            error=error,
        )
        kind = {
            RemediationState.SUCCEEDED: EventKind.SUCCEEDED,
            RemediationState.DRY_RUN: EventKind.DRY_RUN,
        }.get(state, EventKind.FAILED)
        return Event(kind, project.name, message, report.at_risk, remediation_id)


async def scan_and_remediate(
    clients: Clients,
    ledger: Ledger,
    project: Project,
    *,
    replica: str,
    clock: Callable[[], datetime],
    dry_run: bool,
) -> list[Event]:
    """One expiry scan of `project` and the remediation step it calls for, as events.

    Any failure of either is an `expiry-scan-failed` event, never an exception (a Taskcluster
    failure says which call failed and how); the findings of a scan that worked are kept when
    following the rebuild failed.
    """
    bound = log.bind(project=project.name)
    try:
        scanner = Scanner(clients, concurrency=project.expiry.concurrency)
        report = await scanner.report(project, project.expiry, clock())
    except Exception as error:
        return [_scan_failed(bound, project.name, error)]
    bound.info("expiry scanned", scanned=report.scanned, at_risk=len(report.at_risk))
    events = findings(report)
    try:
        remediator = Remediator(clients, ledger, replica, clock)
        event = await remediator.step(project, report, dry_run=dry_run)
    except Exception as error:
        event = _scan_failed(bound, project.name, error)
    if event is not None:
        events.append(event)
    for found in events:
        if found.kind is not EventKind.SCAN_FAILED:  # logged already
            log_event = bound.error if found.failed else bound.warning
            log_event(str(found.kind), message=found.message, task_group_id=found.task_group_id)
    return events


def _scan_failed(bound: Any, project: str, error: Exception) -> Event:
    """The event of a scan that failed; a failure that is not Taskcluster's is a bug, logged
    with its traceback and named only by its type (its text could hold anything)."""
    if isinstance(error, TaskclusterError):
        bound.error("expiry scan failed", error=error.message)
        said = f"the expiry scan failed: {error.message}"
    else:
        bound.exception("expiry scan failed unexpectedly")
        said = (
            f"the expiry scan failed unexpectedly ({type(error).__name__}); the service's log "
            "has the details"
        )
    return Event(EventKind.SCAN_FAILED, project, said)
