"""Expiry remediation: rebuilds a project's expiring cached tasks through its decision task's
action, one rebuild at a time across replicas, and one scan-and-remediate step as events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from scheduler.actions.spec import latest_decision_index_path
from scheduler.actions.triggering import Triggered, TriggerError, prepare_trigger, send
from scheduler.config.model import Project
from scheduler.cron.model import TriggerAction
from scheduler.durations import format_duration
from scheduler.expiry.model import ExpiryEvent, ExpiryEventKind, ExpiryReport, findings
from scheduler.expiry.scan import Scanner, call_name
from scheduler.ledger import AsyncLedger, ExpiryLedger, Remediation, RemediationState
from scheduler.taskcluster import Clients
from scheduler.taskcluster_failures import TaskclusterError

log = structlog.get_logger("tc_scheduler.expiry")

RESOLVED = ("completed", "failed", "exception")
# A remediation still without its action task after this long lost its replica mid-trigger.
TRIGGER_GRACE = timedelta(minutes=10)


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
    ledger: AsyncLedger[ExpiryLedger]
    replica: str
    clock: Callable[[], datetime]

    async def step(
        self, project: Project, report: ExpiryReport, *, dry_run: bool
    ) -> ExpiryEvent | None:
        running = await self.ledger.run(lambda ledger: ledger.running_remediation(project.name))
        if running is not None:
            return await self._follow(project, running, report)
        if not report.at_risk:
            return None
        return await self._start(project, report, dry_run=dry_run)

    async def _start(self, project: Project, report: ExpiryReport, *, dry_run: bool) -> ExpiryEvent:
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
                return ExpiryEvent(
                    ExpiryEventKind.SCAN_FAILED,
                    project.name,
                    f"the rebuild could not start, and is tried again at the next scan: {error}",
                    report.at_risk,
                )
            refused = error
        now = self.clock()
        started = await self.ledger.run(
            lambda ledger: ledger.start_remediation(
                project.name,
                action=watch.action,
                expiring=expiring,
                replica=self.replica,
                now=now,
                cooldown=watch.cooldown,
            )
        )
        if started is None:
            return ExpiryEvent(
                ExpiryEventKind.WAITING,
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
        await self.ledger.run(
            lambda ledger: ledger.remediation_triggered(
                started.id, task_id=triggered.task_id, task_group_id=triggered.task_id
            )
        )
        return ExpiryEvent(
            ExpiryEventKind.STARTED,
            project.name,
            f"rebuilding {len(report.at_risk)} expiring cached tasks with {watch.action} "
            f"(task group {triggered.task_id}; add it to previous_group_ids)",
            report.at_risk,
            started.id,
            triggered.task_id,
        )

    async def _follow(
        self, project: Project, running: Remediation, report: ExpiryReport
    ) -> ExpiryEvent:
        """The running rebuild's verdict, if it has one: first from its action task, which
        may end without making any task, then from the tasks of its group; else how far it
        has got (a RUNNING event)."""
        action_task = running.task_id or running.task_group_id
        if action_task is None:
            if self.clock() - running.started_at < TRIGGER_GRACE:
                # Another replica is triggering it right now.
                return _still_running(running, report, "its action is being triggered")
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
            said = f"its action task {action_task} is {action_state}"
            return _still_running(running, report, said)
        group = running.task_group_id or action_task
        states = await self._group_states(group)
        states.pop(action_task, None)  # an action whose group is its own lists itself
        if not states:
            return await self._nothing_rebuilt(project, running, action_task, report)
        resolved = sum(state in RESOLVED for state in states.values())
        if resolved < len(states):
            said = f"{resolved} of the {len(states)} tasks of its group {group} have resolved"
            return _still_running(running, report, said)
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
    ) -> ExpiryEvent:
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
        now = self.clock()
        await self.ledger.run(
            lambda ledger: ledger.finish_remediation(
                running.id, state=RemediationState.SUCCEEDED, now=now
            )
        )
        return ExpiryEvent(
            ExpiryEventKind.NOTHING_REBUILT,
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
            explained = self.clients.explain(error, call_name(method, args))
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
    ) -> ExpiryEvent:
        error = None if state in (RemediationState.SUCCEEDED, RemediationState.DRY_RUN) else message
        now = self.clock()
        await self.ledger.run(
            lambda ledger: ledger.finish_remediation(
                remediation_id, state=state, now=now, error=error
            )
        )
        kind = {
            RemediationState.SUCCEEDED: ExpiryEventKind.SUCCEEDED,
            RemediationState.DRY_RUN: ExpiryEventKind.DRY_RUN,
        }.get(state, ExpiryEventKind.FAILED)
        return ExpiryEvent(kind, project.name, message, report.at_risk, remediation_id)


def _still_running(running: Remediation, report: ExpiryReport, progress: str) -> ExpiryEvent:
    """What following a rebuild that runs on says: which one, and how far it has got (not
    notified: nothing has changed for the people told when it started)."""
    return ExpiryEvent(
        ExpiryEventKind.RUNNING,
        running.project,
        f"following the rebuild started {running.started_at:%Y-%m-%d %H:%M} UTC with "
        f"{running.action}: {progress}",
        report.at_risk,
        running.id,
        running.task_group_id,
    )


async def scan_and_remediate(
    clients: Clients,
    ledger: AsyncLedger[ExpiryLedger],
    project: Project,
    *,
    replica: str,
    clock: Callable[[], datetime],
    dry_run: bool,
) -> list[ExpiryEvent]:
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
        if found.kind is not ExpiryEventKind.SCAN_FAILED:  # logged already
            log_event = bound.error if found.failed else bound.warning
            if found.kind is ExpiryEventKind.RUNNING:  # news when it started, and when it ends
                log_event = bound.info
            log_event(str(found.kind), message=found.message, task_group_id=found.task_group_id)
    return events


def _scan_failed(bound: Any, project: str, error: Exception) -> ExpiryEvent:
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
    return ExpiryEvent(ExpiryEventKind.SCAN_FAILED, project, said)
