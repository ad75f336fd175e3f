"""What an operator starts by hand through a running engine: fire a job, trigger an action, fire
any hook, remediate expiry; and the jobs overview. Each act is audited, and answers a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from scheduler.actions.triggering import Triggered
from scheduler.common.recent import RecentRead
from scheduler.cron import format_slot
from scheduler.engine import Engine
from scheduler.engine.backfill import Backfill, BackfillProgress, backfill
from scheduler.errors import Category, SchedulerError
from scheduler.expiry.model import ExpiryEvent, ExpiryEventKind
from scheduler.hooks.definitions import HookKey
from scheduler.hooks.service import Fired, fire_hook, hook_fire_scopes
from scheduler.ledger import AsyncLedger, FireState, OperationsLedger
from scheduler.operations import dashboard, followed
from scheduler.operations.audit import ActKind, audited, make_act, target_of
from scheduler.operations.hook_overview import hooks_overview
from scheduler.operations.ledgered import LedgerOperations
from scheduler.operations.models import (
    MAX_FIRES,
    ActionOut,
    BackfillOut,
    ExpiryEventOut,
    FiredOut,
    HookFiredOut,
    ProjectJobsOut,
    RemediationOut,
)
from scheduler.operations.named_jobs import require_job
from scheduler.operations.overview import jobs_overview
from scheduler.operations.page_models import (
    FirePageOut,
    HooksOverviewOut,
    OverviewOut,
    ProjectDetailOut,
)
from scheduler.operations.sessions import SessionOperations
from scheduler.outcomes import FireResult
from scheduler.taskcluster_failures import TaskclusterError

# As long as the pages wait between refreshes.
HOOKS_FRESH_FOR = timedelta(seconds=30)


class Reporting(Protocol):
    """What reports an act's outcome like the service's own work (the service's notifier)."""

    async def expiry_scanned(self, project: str, events: Sequence[ExpiryEvent]) -> None: ...


class FireCounting(Protocol):
    """What counts the fires made by hand as the service's own (the service's monitor)."""

    def fired(self, fires: Sequence[FireResult]) -> None: ...


class FireFailedError(SchedulerError, code="fire-failed"):
    """A manual fire was made and recorded, but Taskcluster or the repository (upstream), or
    the project's own template (not upstream), refused it; `fired` is what the ledger has."""

    def __init__(self, message: str, fired: FiredOut, *, upstream: bool) -> None:
        super().__init__(message)
        self.fired = fired
        self.category = Category.REFUSED_UPSTREAM if upstream else Category.REFUSED

    def context(self) -> dict[str, Any]:
        return {"fire": self.fired.model_dump(mode="json")}


@dataclass(frozen=True)
class Operations:
    """The operator's acts and reads of a running service: its engine, its ledger (the acts
    are audited there), what reports what is started by hand and what counts the fires made
    (None: nothing is reported or counted, as with a bare engine)."""

    engine: Engine
    async_ledger: AsyncLedger[OperationsLedger]
    reporting: Reporting | None = None
    counting: FireCounting | None = None
    # The hooks page costs a call per hook group and per hook: read at most once per refresh
    # of the page however many read it (public reads let anyone ask), behind the readers.
    hook_reads: RecentRead[HooksOverviewOut] = field(
        default_factory=lambda: RecentRead(HOOKS_FRESH_FOR), compare=False
    )

    @property
    def ledger(self) -> LedgerOperations:
        """The operations that need only the ledger."""
        engine = self.engine
        return LedgerOperations(self.async_ledger, engine.clock, engine.config, crons=engine)

    @property
    def sessions(self) -> SessionOperations:
        """The dashboard's sign-ins."""
        return SessionOperations(self.async_ledger, self.engine.clock)

    async def jobs(self, project: str, *, upcoming: int = 3) -> ProjectJobsOut:
        return await jobs_overview(self.engine, self.async_ledger, project, upcoming=upcoming)

    async def overview(self) -> OverviewOut:
        """The dashboard's front page: every project's health, the next fires, the last day."""
        return await dashboard.overview(self.engine, self.async_ledger)

    async def project_detail(self, project: str) -> ProjectDetailOut:
        """A project's page: jobs, fire history grid, pauses."""
        return await dashboard.project_detail(self.engine, self.async_ledger, project)

    async def hooks_overview(self) -> HooksOverviewOut:
        """The hooks page: the hooks folder against the deployment, with each hook's last
        fires; what cannot be read is a problem on the page."""
        return await self.hook_reads.get(self.now(), lambda: hooks_overview(self.engine))

    async def fire_page(self, fire_id: int) -> FirePageOut:
        """A fire's page: its record, how its task went, the notices about it."""
        return await followed.fire_page(self.async_ledger, fire_id)

    def now(self) -> datetime:
        """The service's time (its clock, injected in tests)."""
        return self.engine.clock()

    @property
    def root_url(self) -> str:
        """The Taskcluster deployment whose UI shows the tasks fired."""
        return self.engine.config.root_url

    async def fire_job(
        self,
        actor: str,
        project: str,
        job: str,
        cron_input: Mapping[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> FiredOut:
        """Fire `job` now (a manual fire). Raises UnknownJobError or FireError when it cannot
        even start, FireFailedError when it was made and failed (it is recorded, and followed
        as any)."""
        given = {"input": cron_input, "dry_run": dry_run}
        act = make_act(actor, ActKind.FIRE, target_of(project, job), given)

        async def fire() -> FireResult:
            snapshot, cron = await self.engine.head(project)
            require_job(project, job, snapshot, cron)
            return await self.engine.fire_now(
                project, job, cron_input, dry_run=dry_run, head=(snapshot, cron)
            )

        result = await audited(self.async_ledger, self.engine.clock, act, fire, _fire_outcome)
        if self.counting is not None:
            self.counting.fired([result])
        fired = FiredOut.model_validate(result)
        if result.state is FireState.FAILED:
            message = f"{project}/{job}: the fire failed: {result.error}"
            raise FireFailedError(message, fired, upstream=not result.project_broken)
        return fired

    async def backfill(
        self,
        actor: str,
        project: str,
        jobs: Sequence[str] = (),
        *,
        start: datetime,
        until: datetime,
        max_fires: int = MAX_FIRES,
        dry_run: bool = False,
        rerun_failed: bool = False,
        progress: BackfillProgress | None = None,
    ) -> BackfillOut:
        """Fire every begun slot of [start, until) that `jobs` (none: every job that runs on
        the project) name, as catch-up fires from the branch head (with `rerun_failed`, those
        whose fire failed too): audited once, with its range and jobs. Raises
        UnknownProjectError, UnknownJobError or InvalidRangeError."""
        engine = self.engine
        given = {
            "jobs": list(jobs) or None,
            "from": start.isoformat(),
            "until": until.isoformat(),
            "max_fires": max_fires,
            "dry_run": dry_run,
            "rerun_failed": rerun_failed,
        }
        named = list(dict.fromkeys(jobs))
        target = target_of(project, named[0] if len(named) == 1 else None)
        act = make_act(actor, ActKind.BACKFILL, target, given)

        async def fire() -> Backfill:
            found = engine.config.require_project(project)
            snapshot, cron = await engine.head(project)
            return await backfill(
                engine.runner,
                found,
                snapshot,
                cron,
                jobs,
                start,
                until,
                max_fires=max_fires,
                dry_run=dry_run,
                rerun_failed=rerun_failed,
                progress=progress,
            )

        done = await audited(self.async_ledger, engine.clock, act, fire, _backfill_outcome)
        if self.counting is not None and done.made:
            self.counting.fired(done.made)
        return BackfillOut(
            project=done.project,
            revision=done.revision,
            jobs=list(done.jobs),
            start=done.start,
            until=done.until,
            clamped=done.clamped,
            dry_run=done.dry_run,
            counts=done.counts(),
            # A rendered task is kilobytes, and a backfill may make a thousand fires.
            fires=[FiredOut.model_validate(replace(fire, details=None)) for fire in done.fires],
            notes=list(done.notes),
        )

    async def run_action(
        self,
        actor: str,
        project: str,
        action: str,
        action_input: Mapping[str, Any] | None = None,
        *,
        revision: str | None = None,
        dry_run: bool = False,
    ) -> ActionOut:
        """Trigger the project's action `action`; raises UnknownProjectError or TriggerError."""
        given = {"input": action_input, "revision": revision, "dry_run": dry_run}
        act = make_act(actor, ActKind.ACTION, target_of(project, action), given)

        async def trigger() -> Triggered:
            self.engine.config.require_project(project)
            return await self.engine.run_action(
                project, action, action_input, revision=revision, dry_run=dry_run
            )

        done = await audited(self.async_ledger, self.engine.clock, act, trigger, _action_outcome)
        return ActionOut(
            action=done.trigger.action_name,
            hook_group_id=done.trigger.hook_group_id,
            hook_id=done.trigger.hook_id,
            decision_task_id=done.decision_task_id,
            payload=done.trigger.payload,
            task_id=done.task_id,
            dry_run=done.dry_run,
        )

    async def fire_hook(
        self, actor: str, key: HookKey, payload: Mapping[str, Any], *, dry_run: bool = False
    ) -> HookFiredOut:
        """Fire the hook `key` with `payload`, checked against its triggerSchema first.

        Raises PayloadRejectedError, UncheckablePayloadError or TaskclusterError.
        """
        engine = self.engine
        given = {"payload": dict(payload), "dry_run": dry_run}
        act = make_act(actor, ActKind.HOOK_FIRE, str(key), given)

        async def fire() -> Fired:
            return await fire_hook(
                engine.clients.restricted(f"the hook fire of {key}", hook_fire_scopes(key)),
                key,
                dict(payload),
                dry_run=dry_run or engine.config.dry_run,
            )

        fired = await audited(self.async_ledger, engine.clock, act, fire, _hook_outcome)
        self.hook_reads.forget()  # its last fires have changed
        return HookFiredOut(
            hook_group_id=key.group_id,
            hook_id=key.hook_id,
            task_id=fired.task_id,
            dry_run=fired.dry_run,
        )

    async def remediate(
        self, actor: str, project_name: str, *, dry_run: bool = False
    ) -> RemediationOut:
        """Scan the project's cached tasks now and rebuild what expires (or follow the running
        rebuild); the events are reported as a scheduled scan's are.

        A scan that Taskcluster failed is reported and audited, then raised as a
        TaskclusterError: the act could not be carried out.
        """
        engine = self.engine
        act = make_act(actor, ActKind.EXPIRY_REMEDIATE, project_name, {"dry_run": dry_run})

        async def scan() -> list[ExpiryEvent]:
            project = engine.config.require_project(project_name)
            events = await engine.check_expiry(project, dry_run=dry_run)
            if self.reporting is not None:
                await self.reporting.expiry_scanned(project.name, events)
            return events

        events = await audited(self.async_ledger, engine.clock, act, scan, _remediation_outcome)
        scan_failed = [
            event.message for event in events if event.kind is ExpiryEventKind.SCAN_FAILED
        ]
        if scan_failed:
            raise TaskclusterError(f"{project_name}: {scan_failed[0]}")
        return RemediationOut(
            project=project_name,
            events=[
                ExpiryEventOut(
                    kind=event.kind,
                    message=event.message,
                    at_risk=len(event.at_risk),
                    task_group_id=event.task_group_id,
                    failed=event.failed,
                )
                for event in events
            ],
        )


def _fire_outcome(result: FireResult) -> tuple[bool, str]:
    if result.state is FireState.FAILED:
        return False, str(result.error)
    return True, f"{result.state}: task {result.task_id}"


def _backfill_outcome(done: Backfill) -> tuple[bool, str]:
    span = f"{format_slot(done.start)} to {format_slot(done.until)}"
    if done.clamped:
        span += " (until clamped to now)"
    counts = ", ".join(f"{count} {state}" for state, count in done.counts().items())
    return not done.failed, f"{span}: {counts or 'no slot named'}"


def _action_outcome(triggered: Triggered) -> tuple[bool, str]:
    hook = f"{triggered.trigger.hook_group_id}/{triggered.trigger.hook_id}"
    if triggered.dry_run:
        return True, f"dry run: would trigger {hook}"
    return True, f"triggered {hook}: task {triggered.task_id}"


def _hook_outcome(fired: Fired) -> tuple[bool, str]:
    if fired.dry_run:
        return True, f"dry run: would trigger {fired.key}"
    if fired.task_id is None:
        return True, f"triggered {fired.key}: its task template made no task"
    return True, f"triggered {fired.key}: task {fired.task_id}"


def _remediation_outcome(events: list[ExpiryEvent]) -> tuple[bool, str]:
    failed = [event.message for event in events if event.failed]
    outcome = "; ".join(failed or [f"{event.kind}: {event.message}" for event in events])
    return not failed, outcome or "nothing at risk, no rebuild running"
