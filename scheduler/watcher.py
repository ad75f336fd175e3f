"""Following what the service started until it resolves, and reporting how it ended.

Reads task statuses in batches and task groups page by page; a round's steps are moved on in
the ledger with their notices in one transaction (each in its own if that fails), so a restart
or a second replica never reports twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from scheduler.ledger import (
    AsyncLedger,
    GroupCounts,
    Notice,
    RunState,
    Watch,
    WatcherLedger,
    WatchPhase,
    WatchStep,
)
from scheduler.notify.events import FailedTask
from scheduler.reports.reporter import Reporter
from scheduler.taskcluster import UNRESOLVED_TASK_STATES, Clients
from scheduler.taskcluster_failures import TaskclusterError

log = structlog.get_logger("tc_scheduler.watcher")

# queue.statuses takes up to this many task ids a call.
STATUS_BATCH = 1000
# When a round's one write fails, its steps are written one at a time until this many in a row
# fail as well.
ALONE_FAILURES = 3
# A resolved task's state as its run's.
RESOLVED = {
    str(state): state for state in (RunState.COMPLETED, RunState.FAILED, RunState.EXCEPTION)
}


@dataclass(frozen=True)
class GroupState:
    """A task group as one listing saw it: its counts, and the failures to report (the
    resolutions the reporter counts as failures, the decision task's own aside)."""

    counts: GroupCounts
    failed: tuple[FailedTask, ...]


@dataclass
class Watcher:
    """Follows the fires in the ledger; reads for each project carry only its scopes
    (`clients_of` gives the clients for a project's name)."""

    clients_of: Callable[[str], Clients]
    ledger: AsyncLedger[WatcherLedger]
    reporter: Reporter
    clock: Callable[[], datetime]
    concurrency: int = 20
    _limit: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._limit = asyncio.Semaphore(self.concurrency)

    async def step(self, *, reads: bool = True) -> int:
        """Look at every fire being followed once; the number of watches written: moved on,
        or with a new task state or new group counts (a watch where nothing changed is not
        written). Without `reads`, only what needs no Taskcluster call: failed fires are
        reported."""
        watches = await self.ledger.run(lambda ledger: ledger.watches())
        by_phase: dict[WatchPhase, list[Watch]] = {phase: [] for phase in WatchPhase}
        for watch in watches:
            by_phase[watch.phase].append(watch)
        if not reads:
            by_phase[WatchPhase.TASK], by_phase[WatchPhase.GROUP] = [], []
        found = await asyncio.gather(
            *(self._isolated(w, self._report(w)) for w in by_phase[WatchPhase.REPORT]),
            self._tasks(by_phase[WatchPhase.TASK]),
            *(self._isolated(w, self._group(w)) for w in by_phase[WatchPhase.GROUP]),
        )
        return await self._advance([step for steps in found for step in steps])

    @staticmethod
    async def _isolated(watch: Watch, step: Awaitable[list[WatchStep]]) -> list[WatchStep]:
        """One watch's step; a bug in it costs that watch this step, never the others."""
        try:
            return await step
        except Exception:
            log.exception("internal error watching a fire", project=watch.project, job=watch.job)
            return []

    async def _report(self, watch: Watch) -> list[WatchStep]:
        return [_step(watch, WatchPhase.DONE, self.reporter.fire_failed(watch, self.clock()))]

    async def _tasks(self, watches: Sequence[Watch]) -> list[WatchStep]:
        by_project: dict[str, list[Watch]] = {}
        for watch in watches:
            by_project.setdefault(watch.project, []).append(watch)
        found = await asyncio.gather(
            *(self._project_tasks(project, same) for project, same in by_project.items())
        )
        return [step for steps in found for step in steps]

    async def _project_tasks(self, project: str, watches: Sequence[Watch]) -> list[WatchStep]:
        task_ids = [w.task_id for w in watches if w.task_id is not None]
        try:
            statuses = await self._statuses(self.clients_of(project), task_ids)
        except TaskclusterError as error:
            log.error(
                "cannot read task statuses; trying again next step",
                project=project,
                error=error.message,
            )
            return []
        found = await asyncio.gather(
            *(self._isolated(w, self._task(w, statuses.get(w.task_id or ""))) for w in watches)
        )
        return [step for steps in found for step in steps]

    async def _task(self, watch: Watch, status: dict[str, Any] | None) -> list[WatchStep]:
        """Record the task's state when it changed (nothing written while it does not), with
        the notices of its first sight and of its resolution."""
        now = self.clock()
        if status is None:
            notices = self.reporter.task_gone(watch, now)
            return [_step(watch, WatchPhase.DONE, notices, run_state=RunState.EXCEPTION)]
        state = str(status["state"])
        if state == watch.task_state:
            return []
        runs = status.get("runs") or []
        reason = runs[-1].get("reasonResolved") if runs else None
        seen = dataclasses.replace(watch, task_group_id=status.get("taskGroupId"))
        first_sight = watch.task_state is None
        notices = self.reporter.started(seen, now) if first_sight else []
        if state in UNRESOLVED_TASK_STATES:
            # A task that ran and waits for its next run (a worker lost) is still running.
            running = RunState.RUNNING if state == "running" else watch.run_state
            return [_step(seen, WatchPhase.TASK, notices, task_state=state, run_state=running)]
        if state == "completed" and watch.follow_group:
            return [
                _step(seen, WatchPhase.GROUP, notices, task_state=state, run_state=RunState.RUNNING)
            ]
        notices += self.reporter.task_resolved(seen, state, reason, now)
        return [
            _step(
                seen,
                WatchPhase.DONE,
                notices,
                task_state=state,
                reason=reason,
                run_state=RESOLVED.get(state, RunState.EXCEPTION),
            )
        ]

    async def _group(self, watch: Watch) -> list[WatchStep]:
        assert watch.task_group_id is not None
        try:
            async with self._limit:
                group = await self._read_group(
                    self.clients_of(watch.project), watch.task_group_id, watch.task_id
                )
        except TaskclusterError as error:
            log.error(
                "cannot list the task group; trying again next step",
                project=watch.project,
                job=watch.job,
                task_group_id=watch.task_group_id,
                error=error.message,
            )
            return []
        counts = group.counts
        if counts.unresolved:
            if counts == watch.group:
                return []
            return [_step(watch, WatchPhase.GROUP, [], group=counts)]
        notices = self.reporter.group_resolved(
            watch, counts.total, group.failed, self.clock(), blocked=counts.blocked
        )
        return [_step(watch, WatchPhase.DONE, notices, run_state=verdict_of(counts), group=counts)]

    async def _advance(self, steps: list[WatchStep]) -> int:
        """Write a round's steps, each with its notices, in one transaction: the number of
        watches moved (a step another replica took first moves nothing)."""
        if not steps:
            return 0
        now = self.clock()
        try:
            moved = await self.ledger.run(lambda ledger: ledger.advance_watches(steps, now=now))
        except Exception:
            # One step the ledger refuses (a bug in its notices) would otherwise hold every
            # watch back, round after round: each is written alone, and only it waits.
            log.exception("writing the round's steps failed; writing each alone")
            moved = await self._advance_each(steps, now)
        for step, done in zip(steps, moved, strict=True):
            if done and step.phase is WatchPhase.DONE:
                watch = step.watch
                log.info(
                    "fire resolved",
                    project=watch.project,
                    job=watch.job,
                    task_id=watch.task_id,
                    state=step.run_state or step.task_state or watch.task_state or watch.fire_state,
                )
        return sum(moved)

    async def _advance_each(self, steps: Sequence[WatchStep], now: datetime) -> list[bool]:
        """Each of `steps` written in a transaction of its own; a step the ledger refuses is
        logged and not moved. After `ALONE_FAILURES` refused in a row the rest wait for the
        next round: then the ledger itself is failing, not a step."""
        moved: list[bool] = []
        failures = 0
        for step in steps:
            if failures >= ALONE_FAILURES:
                moved.append(False)
                continue
            try:
                [done] = await self.ledger.run(functools.partial(_write_steps, [step], now))
            except Exception:
                watch = step.watch
                log.exception(
                    "internal error recording a watch step", project=watch.project, job=watch.job
                )
                failures, done = failures + 1, False
            else:
                failures = 0
            moved.append(done)
        return moved

    # -- Taskcluster reads ------------------------------------------------------------------

    async def _statuses(self, clients: Clients, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The status of each task the queue knows, read a batch at a time."""
        batches = [task_ids[i : i + STATUS_BATCH] for i in range(0, len(task_ids), STATUS_BATCH)]
        found: dict[str, dict[str, Any]] = {}
        for statuses in await asyncio.gather(*(self._batch(clients, b) for b in batches)):
            found.update(statuses)
        return found

    async def _batch(self, clients: Clients, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        query: dict[str, str] = {}
        async with self._limit:
            while True:
                try:
                    page = await clients.queue.statuses(payload={"taskIds": task_ids}, query=query)
                except Exception as error:
                    raise clients.explain(error, "queue.statuses") from None
                for item in page.get("statuses", []):
                    found[item["taskId"]] = item["status"]
                token = page.get("continuationToken")
                if not token:
                    return found
                query = {"continuationToken": token}

    async def _read_group(
        self, clients: Clients, task_group_id: str, own_task_id: str | None
    ) -> GroupState:
        tasks: dict[str, dict[str, Any]] = {}
        query: dict[str, str] = {}
        while True:
            try:
                page = await clients.queue.listTaskGroup(task_group_id, query=query)
            except Exception as error:
                raise clients.explain(error, "queue.listTaskGroup") from None
            for item in page.get("tasks", []):
                tasks[item["status"]["taskId"]] = item
            token = page.get("continuationToken")
            if not token:
                break
            query = {"continuationToken": token}
        return self._summarise(tasks, own_task_id)

    def _summarise(self, tasks: dict[str, dict[str, Any]], own_task_id: str | None) -> GroupState:
        states = {task_id: item["status"]["state"] for task_id, item in tasks.items()}
        failed, unresolved, blocked = [], 0, 0
        for task_id, item in tasks.items():
            status, definition = item["status"], item["task"]
            state = states[task_id]
            if state in UNRESOLVED_TASK_STATES:
                if state == "unscheduled" and _blocked(definition, states):
                    blocked += 1
                else:
                    unresolved += 1
                continue
            runs = status.get("runs") or []
            reason = runs[-1].get("reasonResolved") if runs else None
            if task_id != own_task_id and self.reporter.counts_as_failure(state, reason):
                name = (definition.get("metadata") or {}).get("name") or task_id
                failed.append(FailedTask(task_id, str(name), state, reason))
        failed.sort(key=lambda t: t.name)
        resolved = list(states.values())
        counts = GroupCounts(
            total=len(tasks),
            failed=resolved.count("failed"),
            exception=resolved.count("exception"),
            blocked=blocked,
            unresolved=unresolved,
        )
        return GroupState(counts, tuple(failed))


def _write_steps(steps: list[WatchStep], now: datetime, ledger: WatcherLedger) -> list[bool]:
    return ledger.advance_watches(steps, now=now)


def _step(
    watch: Watch,
    phase: WatchPhase,
    notices: list[Notice],
    *,
    task_state: str | None = None,
    reason: str | None = None,
    run_state: RunState | None = None,
    group: GroupCounts | None = None,
) -> WatchStep:
    """`watch` moved on to `phase`, with the task group it was seen in."""
    return WatchStep(
        watch, phase, notices, task_state, reason, watch.task_group_id, run_state, group
    )


def verdict_of(counts: GroupCounts) -> RunState:
    """A resolved group's run state, from how its tasks resolved alone: which resolutions are
    told as failures (canceled, deadline-exceeded) is the notifications' choice, and a group
    that `replace` cancelled did not complete."""
    if counts.failed:
        return RunState.FAILED
    if counts.exception or counts.blocked:
        return RunState.EXCEPTION
    return RunState.COMPLETED


def _blocked(definition: dict[str, Any], states: dict[str, str]) -> bool:
    """An unscheduled task that waits on a dependency of its group which will never complete."""
    if definition.get("requires", "all-completed") != "all-completed":
        return False
    return any(
        states.get(dependency) in ("failed", "exception")
        for dependency in definition.get("dependencies") or ()
    )
