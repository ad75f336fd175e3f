"""Making claimed fires: at most `concurrency` at once, each through its job type, the claims'
leases renewed while they run, and their outcomes (retries included) recorded a batch at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

import structlog

from scheduler.clock import Clock
from scheduler.common import logs
from scheduler.common.wording import counted
from scheduler.config.model import Config, Project
from scheduler.cron import DecisionTask, Job, PlannedFire
from scheduler.cron.crontab import crontab
from scheduler.cron.model import ScheduleError
from scheduler.cron.overlap import RunningFire
from scheduler.cron.timing import format_slot
from scheduler.durations import format_duration
from scheduler.engine.decision_task import settle_given_up
from scheduler.engine.fires import FireMeans, FireRequest, Prepared
from scheduler.engine.group_commit import GroupCommit
from scheduler.engine.job_types import dispatch
from scheduler.engine.overlap import cancel_replaced
from scheduler.git.source import Snapshot
from scheduler.ledger import (
    AsyncLedger,
    Claim,
    EngineLedger,
    FireKind,
    FireState,
    Outcome,
    WatchSpec,
)
from scheduler.outcomes import FireResult
from scheduler.retrying import next_attempt_at
from scheduler.taskcluster import Clients

log = structlog.get_logger("tc_scheduler.engine")


class FireSetting(Protocol):
    """What fires are made with; read at each fire, so a change applies to the next one."""

    @property
    def config(self) -> Config: ...

    @property
    def ledger(self) -> AsyncLedger[EngineLedger]: ...

    @property
    def clients(self) -> Clients: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def render_pool(self) -> Executor | None: ...

    @property
    def prepared(self) -> Prepared | None: ...


@dataclass
class FireRunner:
    """Makes the fires claims hold and records how they ended; `release_all` on shutdown."""

    setting: FireSetting
    _limit: asyncio.Semaphore = field(init=False)
    _in_flight: set[Claim] = field(init=False, default_factory=set)
    _unrecorded: dict[Claim, Outcome] = field(init=False, default_factory=dict)
    # Renews the leases of the claims in flight or unrecorded, while there are any.
    _renewer: asyncio.Task[None] | None = field(init=False, default=None)
    # A tick's projects claim and record on their own, each as soon as it is ready; what they
    # ask for meanwhile shares a transaction (one claim statement for many projects' fires).
    _claims: GroupCommit[tuple[str, str, datetime, FireKind], Claim | None] = field(init=False)
    _finishes: GroupCommit[Outcome, bool] = field(init=False)

    def __post_init__(self) -> None:
        self._limit = asyncio.Semaphore(self.setting.config.concurrency)
        self._claims = GroupCommit(self._claim_all)
        self._finishes = GroupCommit(self._finish_all)

    async def claim(
        self,
        project: str,
        fires: Sequence[tuple[str, datetime, FireKind]],
        *,
        retake_unmade: bool = False,
        rerun_failed: bool = False,
    ) -> list[Claim | None]:
        """Claim these (job, slot, kind) fires of `project` in one write (shared with other
        projects' claims meanwhile); None where another replica holds one (or, unless
        `retake_unmade`, it made nothing: skipped, a dry run; or, unless `rerun_failed`, it
        failed)."""
        if not retake_unmade and not rerun_failed:
            return await self._claims([(project, job, slot, kind) for job, slot, kind in fires])
        config, now = self.setting.config, self.setting.clock()
        return await self.setting.ledger.run(
            lambda ledger: ledger.claim_many(
                project,
                list(fires),
                replica=config.replica,
                now=now,
                lease=config.claim_lease,
                retake_unmade=retake_unmade,
                rerun_failed=rerun_failed,
            )
        )

    async def _claim_all(
        self, fires: list[tuple[str, str, datetime, FireKind]]
    ) -> list[Claim | None]:
        config, now = self.setting.config, self.setting.clock()
        return await self.setting.ledger.run(
            lambda ledger: ledger.claim_all(
                fires, replica=config.replica, now=now, lease=config.claim_lease
            )
        )

    async def claim_and_fire(
        self,
        project: Project,
        snapshot: Snapshot,
        wanted: Sequence[tuple[PlannedFire, FireKind]],
        replacing: Mapping[PlannedFire, tuple[RunningFire, ...]] | None = None,
        *,
        retake_unmade: bool = False,
        rerun_failed: bool = False,
        on_fired: Callable[[FireResult], None] | None = None,
    ) -> list[FireResult]:
        """Claim the `wanted` fires of one project in one write, fire what was claimed, and
        record the outcomes in one write. A fire in `replacing` first cancels the task groups
        of those fires (only once claimed: of several replicas, one cancels).
        `retake_unmade`, `rerun_failed`: a backfill's, see `claim`; `on_fired` is told of
        each fire as it ends (a backfill's progress)."""
        replacing = replacing or {}
        claims = await self.claim(
            project.name,
            [(fire.job_name, fire.slot, kind) for fire, kind in wanted],
            retake_unmade=retake_unmade,
            rerun_failed=rerun_failed,
        )

        async def fire(request: FireRequest, claim: Claim | None) -> FireResult:
            result = await self.fire(request, claim)
            if on_fired is not None:
                on_fired(result)
            return result

        fired = await asyncio.gather(
            *(
                fire(
                    FireRequest(
                        project,
                        snapshot,
                        planned.job,
                        planned.slot,
                        kind,
                        replaces=replacing.get(planned, ()),
                    ),
                    claim,
                )
                for (planned, kind), claim in zip(wanted, claims, strict=True)
            )
        )
        await self.record(claims)
        return list(fired)

    async def with_decisions_before(
        self, project: str, fired: Sequence[FireResult]
    ) -> list[FireResult]:
        """`fired`, each fire another process held shown as the ledger records it once that
        process decided it (an earlier tick of the slot, another replica): a second tick of a
        slot says how its fires went, not only that they were taken."""
        held = [fire for fire in fired if fire.state is None]
        if not held:
            return list(fired)
        records = await self.setting.ledger.run(
            lambda ledger: [ledger.fire(project, fire.job, fire.slot) for fire in held]
        )
        decided = {
            (record.job, record.slot): record
            for record in records
            if record is not None and record.state is not FireState.CLAIMED
        }
        return [
            replace(
                fire,
                state=record.state,
                task_id=record.task_id,
                error=record.error,
                decided_before=True,
            )
            if fire.state is None and (record := decided.get((fire.job, fire.slot))) is not None
            else fire
            for fire in fired
        ]

    async def fire(self, request: FireRequest, claim: Claim | None) -> FireResult:
        """Fire what `claim` holds (None: another replica has it); the outcome waits in
        `_unrecorded` until `record` writes it with the others of its project."""
        # Every line logged meanwhile names the fire, the client libraries' too (a retry).
        with structlog.contextvars.bound_contextvars(
            project=request.project.name,
            job=request.job.name,
            slot=format_slot(request.slot),
            kind=request.kind,
        ):
            return await self._fire(request, claim)

    async def _fire(self, request: FireRequest, claim: Claim | None) -> FireResult:
        project, job, slot, kind = request.project, request.job, request.slot, request.kind
        if claim is None:
            log.info("claimed by another replica")
            return FireResult(project.name, job.name, slot, kind, None)
        # Until the outcome is known the claim is in flight: its lease is renewed, and a
        # shutdown releases it.
        self._in_flight.add(claim)
        self._keep_leases()
        means = self._means(request)
        async with self._limit:
            refused = await cancel_replaced(request, means) if request.replaces else None
            dispatched = refused or await dispatch(request, claim, means)
        state, task_id, details, error = dispatched[:4]
        retry_at = None
        if state is FireState.FAILED and dispatched.transient and kind is not FireKind.MANUAL:
            lateness = project.catch_up_for(job.name).max_lateness
            due = claim.asked_at or slot  # a backfill's fire: from when it was asked for
            retry_at = next_attempt_at(due, claim.attempt, self.setting.clock(), lateness)
            if retry_at is None:
                since = (
                    "" if claim.asked_at is None else f" since it was asked for, {due:%H:%M:%S} UTC"
                )
                error = (
                    f"{error} (given up after {counted(claim.attempt, 'attempt')}: the job's "
                    f"max-lateness {format_duration(lateness)} has passed{since})"
                )
                if task_id is not None:  # whether it made its task is not known: ask once
                    async with self._limit:
                        state, task_id, error = await settle_given_up(
                            means.clients, task_id, str(error)
                        )
            else:
                retry_at = max(retry_at, dispatched.not_before or retry_at)
                state = FireState.RETRYING
                again = f"{retry_at:%H:%M:%S} UTC"
                error = f"attempt {claim.attempt} failed: {error}; tried again from {again}"
        self._in_flight.discard(claim)
        watch = None
        if state in (FireState.CREATED, FireState.ALREADY_FIRED, FireState.FAILED):
            watch = watch_spec(project, job, project_broken=dispatched.project_broken)
        self._unrecorded[claim] = Outcome(
            claim, state, task_id, request.snapshot.revision, error, details, watch, retry_at
        )
        if state is FireState.FAILED:
            log.error("fire failed", task_id=task_id, error=error)
        elif state is FireState.RETRYING:
            log.warning("fire failed, will be retried", error=error)
        elif error:
            log.warning("fired", task_id=task_id, state=state, note=error)
        else:
            log.info("fired", task_id=task_id, state=state)
        return FireResult(
            project.name,
            job.name,
            slot,
            kind,
            state,
            task_id,
            error,
            details,
            project_broken=dispatched.project_broken,
            at=self.setting.clock(),
        )

    def _means(self, request: FireRequest) -> FireMeans:
        setting = self.setting
        return FireMeans(
            clients=setting.clients.for_project(request.project, request.job.name),
            ledger=setting.ledger,
            clock=setting.clock,
            root_url=setting.config.root_url,
            dry_run=setting.config.dry_run or request.dry_run,
            render_pool=setting.render_pool,
            prepared=setting.prepared,
        )

    @asynccontextmanager
    async def holding(self, claims: Iterable[Claim]) -> AsyncIterator[None]:
        """Keep renewing the leases of `claims` (which were claimed without firing) meanwhile,
        and release them on shutdown, as those of the fires in flight."""
        held = set(claims)
        self._in_flight |= held
        self._keep_leases()
        try:
            yield
        finally:
            self._in_flight -= held

    async def record(self, claims: Iterable[Claim | None]) -> None:
        """Write the outcomes of these claims' fires to the ledger, in one transaction (shared
        with other projects' outcomes meanwhile)."""
        outcomes = [
            self._unrecorded.pop(c) for c in claims if c is not None and c in self._unrecorded
        ]
        await self._finishes(outcomes)

    async def _finish_all(self, outcomes: list[Outcome]) -> list[bool]:
        now = self.setting.clock()
        return await self.setting.ledger.run(lambda ledger: ledger.finish_many(outcomes, now=now))

    def _keep_leases(self) -> None:
        if self._renewer is None or self._renewer.done():
            # It renews every fire's lease, not only the one whose start it follows.
            self._renewer = asyncio.create_task(self._renew_leases(), context=logs.unbound())

    async def _renew_leases(self) -> None:
        """While fires are in flight or unrecorded, renew their claims' leases every third of
        a lease: a live replica keeps what it holds, a dead one's lease runs out soon."""
        setting = self.setting
        while self._in_flight or self._unrecorded:
            await asyncio.sleep(setting.config.claim_lease.total_seconds() / 3)
            held = [*self._in_flight, *self._unrecorded]
            if not held:
                break
            renewed = await self._renew(held)
            for claim, ours in zip(held, renewed, strict=True):
                if not ours and (claim in self._in_flight or claim in self._unrecorded):
                    log.warning(
                        "claim lost to another replica",
                        project=claim.project,
                        job=claim.job,
                        slot=format_slot(claim.slot),
                    )

    async def _renew(self, claims: Sequence[Claim]) -> list[bool]:
        """Renew the leases of `claims`; whether each is still ours."""
        now, lease = self.setting.clock(), self.setting.config.claim_lease
        return await self.setting.ledger.run(
            lambda ledger: ledger.renew_many(claims, now=now, lease=lease)
        )

    async def release_all(self) -> None:
        """On shutdown: record the fires that ended, and give up the claims of those that did
        not, so that another replica can take them over at once."""
        if self._renewer is not None:
            self._renewer.cancel()
        await self._claims.settled()
        await self.record(list(self._unrecorded))
        # Outcomes of fires cancelled (the grace over) while they waited for a shared write.
        await self._finishes.settled()
        in_flight, now = list(self._in_flight), self.setting.clock()
        if in_flight:
            await self.setting.ledger.run(
                lambda ledger: [ledger.release(claim, now=now) for claim in in_flight]
            )


def watch_spec(project: Project, job: Job, *, project_broken: bool = False) -> WatchSpec:
    """What to follow after a fire of `job`: its task, maybe its group, or its failure."""
    return WatchSpec(
        task_kind="decision" if isinstance(job.kind, DecisionTask) else "action",
        follow_group=project.watches_group_of(job.name),
        crontab=_crontab(job, project.name),
        project_broken=project_broken,
    )


def _crontab(job: Job, project: str) -> str | None:
    """The job's schedule on `project` as one crontab, if it can be one (for Sentry)."""
    try:
        return crontab(job.schedules_for(project))
    except ScheduleError:
        return None
