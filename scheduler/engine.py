"""Firing due jobs: plan -> claim -> fire -> record for a slot, with catch-up after a gap.

Every project is evaluated concurrently and every fire runs under one concurrency limit. One
job's failure is recorded with its reason and never stops another job or project.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import structlog
from taskcluster.exceptions import TaskclusterRestFailure

from scheduler.actions import decision_index_path, latest_decision_index_path
from scheduler.clock import Clock, utc_now
from scheduler.config import CatchUp, Config, Project, UnknownProjectError, format_duration
from scheduler.cron import (
    CronFile,
    DecisionTask,
    Job,
    PlannedFire,
    TriggerAction,
    due_jobs,
    fires_between,
    load_cron,
)
from scheduler.cron.crontab import crontab
from scheduler.cron.model import ScheduleError
from scheduler.cron.timing import SLOT_LENGTH, format_slot, slot_of
from scheduler.errors import Category, SchedulerError
from scheduler.expiry import Event, scan_and_remediate
from scheduler.ids import manual_task_id
from scheduler.ledger import (
    Claim,
    Fire,
    FireKind,
    FireState,
    Ledger,
    Outcome,
    Pause,
    SlotOutcome,
    WatchSpec,
)
from scheduler.render import (
    Push,
    RenderedTask,
    RenderError,
    Repository,
    render_decision_task,
    render_time,
)
from scheduler.retrying import next_attempt_at, overdue
from scheduler.source import GitSource, Snapshot, SourceError
from scheduler.taskcluster import Clients
from scheduler.triggering import (
    SETTLE,
    Triggered,
    TriggerError,
    find_sent,
    prepare_trigger,
    send,
    trigger_action,
)

CRON_FILE = ".cron.yml"
# The note of an already-fired fire whose task could not be read back.
UNCONFIRMED = "unconfirmed"
TASKCLUSTER_YML = ".taskcluster.yml"

log = structlog.get_logger("tc_scheduler.engine")


class Dispatched(NamedTuple):
    """How a fire ended: its state, the task it made (if any), what was sent, what failed."""

    state: FireState
    task_id: str | None
    details: dict[str, Any] | None
    error: str | None
    project_broken: bool = False  # the failure is the project's (its template), not the job's
    transient: bool = False  # the failure may pass: a scheduled fire is tried again
    not_before: datetime | None = None  # not tried again before this


@dataclass(frozen=True)
class _Fire:
    """One fire being made: what it fires, for which slot, and with what input."""

    project: Project
    snapshot: Snapshot
    job: Job
    slot: datetime
    kind: FireKind
    cron_input: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # when a manual fire was asked for
    dry_run: bool = False  # this fire only; the configuration can make every fire one


class FireError(SchedulerError):
    """A fire failed; the message says what happened and what to do about it.

    `project_broken`: the cause breaks every job of the project (a missing or broken
    `.taskcluster.yml`), so it is reported once for the project, not once per job.
    `transient`: the cause may pass (Taskcluster down, an outcome not known yet), and trying
    again is safe: a scheduled fire is retried, not before `not_before` if that is set.
    """

    def __init__(
        self,
        message: str,
        *,
        project_broken: bool = False,
        transient: bool = False,
        not_before: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.project_broken = project_broken
        self.transient = transient
        self.not_before = not_before

    error_code = "cannot-fire"


class UnknownTargetError(FireError):
    """No such project, or no usable job of that name in its `.cron.yml`."""

    category = Category.NOT_FOUND
    error_code = "not-found"


class RepositoryUnreachableError(FireError):
    """The project's repository could not be read, so its `.cron.yml` is not known."""

    category = Category.REFUSED_UPSTREAM
    error_code = "repository-unreachable"


class FutureSlotError(ValueError):
    """A slot that has not begun was asked for: it is neither fired, skipped nor claimed."""


class FireTooSoonError(FireError):
    """The job was fired by hand less than `manual-fire-interval` ago."""

    category = Category.TOO_SOON
    error_code = "too-soon"

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class FireResult:
    project: str
    job: str
    slot: datetime
    kind: FireKind
    state: FireState | None  # None: another replica holds the claim
    task_id: str | None = None
    error: str | None = None
    details: dict[str, Any] | None = None  # the rendered task, or the hook and its payload


@dataclass(frozen=True)
class SlotResult:
    project: str
    slot: datetime
    revision: str | None
    fires: tuple[FireResult, ...] = ()
    skipped: tuple[FireResult, ...] = ()
    error: str | None = None
    # The `.cron.yml` problems that left jobs out (also in `error`).
    problems: tuple[str, ...] = ()
    # Due fires not fired because their job or project is paused (recorded as skipped).
    paused: tuple[FireResult, ...] = ()

    @property
    def unreachable(self) -> bool:
        """The repository could not be read: nothing was evaluated."""
        return self.revision is None

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.state is not FireState.FAILED for f in self.fires)


@dataclass(frozen=True)
class CatchUpPlan:
    fires: tuple[PlannedFire, ...]
    skips: tuple[tuple[PlannedFire, str], ...]


def plan_catch_up(
    missed: tuple[PlannedFire, ...], policy_of: Callable[[str], CatchUp], now: datetime
) -> CatchUpPlan:
    """Which missed fires to make up for, per job's policy, and why the others are skipped."""
    by_job: dict[str, list[PlannedFire]] = {}
    for fire in missed:
        by_job.setdefault(fire.job_name, []).append(fire)
    fires: list[PlannedFire] = []
    skips: list[tuple[PlannedFire, str]] = []
    for job_name, job_fires in by_job.items():
        policy = policy_of(job_name)
        newest_first = sorted(job_fires, key=lambda f: f.slot, reverse=True)
        if policy.policy == "none":
            skips.extend((f, "catch-up policy is none") for f in newest_first)
        elif policy.policy == "latest":
            latest, *older = newest_first
            if now - latest.slot <= policy.max_lateness:
                fires.append(latest)
            else:
                lateness = format_duration(policy.max_lateness)
                skips.append((latest, f"missed by more than max-lateness {lateness}"))
            skips.extend(
                (f, f"catch-up policy latest fires only the newest missed slot, {_at(latest)}")
                for f in older
            )
        else:
            fires.extend(newest_first[: policy.max_slots])
            skips.extend(
                (f, f"catch-up policy all is capped at max-slots {policy.max_slots}")
                for f in newest_first[policy.max_slots :]
            )
    return CatchUpPlan(tuple(sorted(fires)), tuple(sorted(skips, key=lambda s: s[0])))


def _at(fire: PlannedFire) -> str:
    return format_slot(fire.slot)


def _crontab(job: Job, project: str) -> str | None:
    """The job's schedule on `project` as one crontab, if it can be one (for Sentry)."""
    try:
        return crontab(job.schedules_for(project))
    except ScheduleError:
        return None


def _watch_spec(project: Project, job: Job, *, project_broken: bool = False) -> WatchSpec:
    """What to follow after a fire of `job`: its task, maybe its group, or its failure."""
    return WatchSpec(
        task_kind="decision" if isinstance(job.kind, DecisionTask) else "action",
        follow_group=project.watches_group_of(job.name),
        crontab=_crontab(job, project.name),
        project_broken=project_broken,
    )


def _marker(claim: Claim) -> str:
    """The mark a fire's trigger carries, to tell the task it made from any other: its slot,
    and a digest naming the project, job and (for a manual fire) the fire itself."""
    names = f"{claim.project}\n{claim.job}\n{claim.slot.isoformat()}"
    if claim.kind is FireKind.MANUAL:
        names += f"\n{claim.fire_id}"
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    return f"tcs:{claim.slot:%Y%m%dT%H%MZ}:{digest}"


def _attempts(count: int) -> str:
    return f"{count} attempt{'' if count == 1 else 's'}"


def _given_up(fire: Fire, catch_up: CatchUp) -> str:
    """Why an unfinished fire past its max-lateness ended failed."""
    limit = f"its max-lateness {format_duration(catch_up.max_lateness)} has passed"
    if fire.state is FireState.RETRYING:
        return f"given up after {_attempts(fire.attempt)}: {limit}; the last one: {fire.error}"
    return (
        f"given up: replica {fire.replica} claimed it and stopped before recording how it "
        f"ended, and {limit}" + (f"; task {fire.task_id} may exist" if fire.task_id else "")
    )


@dataclass
class Engine:
    """Evaluates slots for the configured projects against one ledger, git cache and session.

    `clock` is the time fires are judged and recorded by; tests move it.
    """

    config: Config
    ledger: Ledger
    source: GitSource
    clients: Clients
    clock: Clock = utc_now
    render_pool: Executor | None = None
    _limit: asyncio.Semaphore = field(init=False)
    _in_flight: set[Claim] = field(init=False, default_factory=set)
    _unrecorded: dict[Claim, Outcome] = field(init=False, default_factory=dict)
    # Renews the leases of the claims in flight or unrecorded, while there are any.
    _renewer: asyncio.Task[None] | None = field(init=False, default=None)
    # Each project's .cron.yml, loaded once per revision (parsing is the costly part).
    _crons: dict[str, tuple[str, CronFile]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._limit = asyncio.Semaphore(self.config.concurrency)

    # -- scheduled fires ------------------------------------------------------------------

    async def tick(self, moment: datetime) -> list[SlotResult]:
        """Evaluate the slot `moment` falls in for every project, after catching up on gaps.

        Raises FutureSlotError for a slot later than now: only slots that have begun are
        fired, skipped (a pause, a catch-up policy) or claimed, so none is used up early.
        """
        slot, now = slot_of(moment), self.clock()
        if slot > now:
            raise FutureSlotError(
                f"the slot {format_slot(slot)} has not begun (it is {format_slot(now)} now, "
                "UTC); only slots that have begun are evaluated"
            )
        results = await asyncio.gather(
            *(self._evaluate(project, slot) for project in self.config.projects)
        )
        return list(results)

    async def _evaluate(self, project: Project, slot: datetime) -> SlotResult:
        bound = log.bind(project=project.name, slot=format_slot(slot))
        try:
            snapshot = await self.source.snapshot(project.git_url, project.branch)
        except SourceError as error:
            bound.error("project slot failed", error=str(error))
            await self._record_slot(project, slot, None, SlotOutcome.FAILED, str(error))
            return SlotResult(project.name, slot, None, error=str(error))
        cron = self._cron(project, snapshot)
        last = await asyncio.to_thread(self.ledger.last_evaluated_slot, project.name)
        catch_up = CatchUpPlan((), ())
        if last is not None and slot - last > SLOT_LENGTH:
            missed = fires_between(cron, project.name, last + SLOT_LENGTH, slot).fires
            catch_up = plan_catch_up(missed, project.catch_up_for, self.clock())
        plan = due_jobs(cron, project.name, slot)
        # Paused now (by any replica, the command line or the API): recorded, not fired.
        pauses = await asyncio.to_thread(self.ledger.pauses, project=project.name, at=self.clock())
        found = await asyncio.to_thread(
            self.ledger.open_fires, due_at=self.clock(), project=project.name
        )
        retries = await self._triage(project, cron, pauses, found, before=slot)
        skipped = await asyncio.gather(
            *(self._skip(project, fire, reason) for fire, reason in catch_up.skips)
        )
        earlier = dict(retries)  # a retry keeps its kind; a gap's fires are catch-up ones
        earlier |= {fire: FireKind.CATCH_UP for fire in catch_up.fires if fire not in earlier}
        wanted = sorted(earlier.items())
        wanted += [(fire, FireKind.SCHEDULED) for fire in plan.fires]
        held: dict[PlannedFire, Pause] = {}
        for fire, _ in wanted:
            pause = next((p for p in pauses if p.covers(fire.job_name)), None)
            if pause is not None:
                held[fire] = pause
        paused = await asyncio.gather(
            *(
                self._skip(project, fire, held[fire].describe(), kind)
                for fire, kind in wanted
                if fire in held
            )
        )
        wanted = [(fire, kind) for fire, kind in wanted if fire not in held]
        fired = await self._claim_and_fire(project, snapshot, wanted)
        problems = [str(d) for d in (*cron.errors, *plan.problems)]
        left_out = "\n".join(problems) or None
        if left_out:
            bound.warning("jobs left out", problems=problems)
        await self._record_slot(project, slot, snapshot.revision, SlotOutcome.EVALUATED, left_out)
        return SlotResult(
            project.name,
            slot,
            snapshot.revision,
            tuple(fired),
            tuple(skipped),
            left_out,
            tuple(problems),
            tuple(paused),
        )

    async def _claim_and_fire(
        self, project: Project, snapshot: Snapshot, wanted: list[tuple[PlannedFire, FireKind]]
    ) -> list[FireResult]:
        """Claim the `wanted` fires of one project in one write, fire what was claimed, and
        record the outcomes in one write."""
        claims = await asyncio.to_thread(
            self.ledger.claim_many,
            project.name,
            [(fire.job_name, fire.slot, kind) for fire, kind in wanted],
            replica=self.config.replica,
            now=self.clock(),
            lease=self.config.claim_lease,
        )
        fired = await asyncio.gather(
            *(
                self._fire(_Fire(project, snapshot, fire.job, fire.slot, kind), claim)
                for (fire, kind), claim in zip(wanted, claims, strict=True)
            )
        )
        await self._record(claims)
        return list(fired)

    async def _triage(
        self,
        project: Project,
        cron: CronFile,
        pauses: list[Pause],
        found: list[Fire],
        *,
        before: datetime,
    ) -> list[tuple[PlannedFire, FireKind]]:
        """Of the project's unfinished fires nobody holds (`Ledger.open_fires`), those of slots
        before `before`: claims whose replica died (the lease ran out) and retries that are
        due. Those still within
        their job's max-lateness are returned to fire again (the deterministic task id, and a
        trigger's recorded intent, make that safe); the others are given up here. A paused
        job's wait: they fire if it is resumed in time, and are recorded skipped if not."""
        now = self.clock()
        again: list[tuple[PlannedFire, FireKind]] = []
        late: list[tuple[Fire, Job | None]] = []
        for fire in found:
            if fire.slot >= before:
                continue
            job = cron.job(fire.job)
            lateness = project.catch_up_for(fire.job).max_lateness
            retrying = fire.state is FireState.RETRYING
            if job is None or overdue(fire.slot, now, lateness, retrying=retrying):
                late.append((fire, job))
            elif not any(pause.covers(job.name) for pause in pauses):
                again.append((PlannedFire(fire.slot, job.name, job), fire.kind))
        if late:
            await self._give_up(project, late, pauses)
        return again

    async def _give_up(
        self, project: Project, overdue: list[tuple[Fire, Job | None]], pauses: list[Pause]
    ) -> None:
        """Finish unfinished fires past their job's max-lateness: failed (and reported), or
        skipped when their job is paused or gone from `.cron.yml`."""
        claims = await asyncio.to_thread(
            self.ledger.claim_many,
            project.name,
            [(fire.job, fire.slot, fire.kind) for fire, _ in overdue],
            replica=self.config.replica,
            now=self.clock(),
            lease=self.config.claim_lease,
        )
        outcomes = []
        for (fire, job), claim in zip(overdue, claims, strict=True):
            if claim is None:
                continue  # another replica got there first
            pause = next((p for p in pauses if p.covers(fire.job)), None)
            if job is None:
                reason = f"not fired: {fire.job} is no longer a job of {CRON_FILE}"
                outcomes.append(Outcome(claim, FireState.SKIPPED, error=reason))
            elif pause is not None:
                outcomes.append(Outcome(claim, FireState.SKIPPED, error=pause.describe()))
            else:
                outcomes.append(
                    Outcome(
                        claim,
                        FireState.FAILED,
                        task_id=fire.task_id,
                        revision=fire.revision,
                        error=_given_up(fire, project.catch_up_for(job.name)),
                        details=fire.details,
                        watch=_watch_spec(project, job),
                    )
                )
                log.error(
                    "fire given up",
                    project=project.name,
                    job=fire.job,
                    slot=format_slot(fire.slot),
                    attempts=fire.attempt,
                    error=fire.error,
                )
        if outcomes:
            await asyncio.to_thread(self.ledger.finish_many, outcomes, now=self.clock())

    async def recover(self) -> list[FireResult]:
        """Finish the fires nobody holds, in every project, between ticks: those whose replica
        died (their lease ran out) and the retries that are due; those past their job's
        max-lateness are given up. One read of the ledger when there are none."""
        found: dict[str, list[Fire]] = {}
        for fire in await asyncio.to_thread(self.ledger.open_fires, due_at=self.clock()):
            found.setdefault(fire.project, []).append(fire)
        results = await asyncio.gather(
            *(
                self._recover(project, found[project.name])
                for project in self.config.projects
                if project.name in found
            )
        )
        return [fire for fires in results for fire in fires]

    async def _recover(self, project: Project, found: list[Fire]) -> list[FireResult]:
        now = self.clock()
        try:
            snapshot = await self.source.snapshot(project.git_url, project.branch)
        except SourceError as error:
            log.warning(
                "fires to recover wait for the repository", project=project.name, error=str(error)
            )
            return []
        cron = self._cron(project, snapshot)
        pauses = await asyncio.to_thread(self.ledger.pauses, project=project.name, at=now)
        again = await self._triage(project, cron, pauses, found, before=slot_of(now) + SLOT_LENGTH)
        return await self._claim_and_fire(project, snapshot, again)

    def _cron(self, project: Project, snapshot: Snapshot) -> CronFile:
        cached = self._crons.get(project.name)
        if cached is not None and cached[0] == snapshot.revision:
            return cached[1]
        text = snapshot.files.get(CRON_FILE)
        if text is None:  # no .cron.yml: no jobs, as in build-decision
            cron = CronFile(CRON_FILE, (), ())
        else:
            cron = load_cron(text, f"{project.name}:{CRON_FILE}@{snapshot.revision[:12]}")
        self._crons[project.name] = (snapshot.revision, cron)
        return cron

    async def _record_slot(
        self,
        project: Project,
        slot: datetime,
        revision: str | None,
        outcome: SlotOutcome,
        error: str | None,
    ) -> None:
        await asyncio.to_thread(
            self.ledger.record_slot,
            project.name,
            slot,
            revision=revision,
            outcome=outcome,
            error=error,
            replica=self.config.replica,
            now=self.clock(),
        )

    async def _skip(
        self,
        project: Project,
        fire: PlannedFire,
        reason: str,
        kind: FireKind = FireKind.CATCH_UP,
    ) -> FireResult:
        await asyncio.to_thread(
            self.ledger.record_skip,
            project.name,
            fire.job_name,
            fire.slot,
            kind=kind,
            reason=reason,
            replica=self.config.replica,
            now=self.clock(),
        )
        log.info(
            "skipped missed slot",
            project=project.name,
            job=fire.job_name,
            slot=format_slot(fire.slot),
            reason=reason,
        )
        return FireResult(
            project.name, fire.job_name, fire.slot, kind, FireState.SKIPPED, None, reason
        )

    # -- manual fires ---------------------------------------------------------------------

    async def fire_now(
        self,
        project_name: str,
        job_name: str,
        cron_input: Mapping[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> FireResult:
        """Run a job now, whatever its `when` and `run-on-projects` say (build-decision's
        `--force-run`). The fire gets its own task id and is recorded as manual."""
        project, snapshot, cron = await self._read(project_name)
        job = cron.job(job_name)
        if job is None:
            problems = [str(d) for d in cron.errors if d.job == job_name]
            detail = "; ".join(problems) or (
                "known jobs: " + ", ".join(j.name for j in cron.jobs) if cron.jobs else "no jobs"
            )
            raise UnknownTargetError(
                f"{project.name}'s {CRON_FILE} has no usable job {job_name!r} ({detail})"
            )
        now = self.clock()
        interval = self.config.manual_fire_interval
        claim = await asyncio.to_thread(
            self.ledger.claim_manual,
            project.name,
            job.name,
            replica=self.config.replica,
            now=now,
            lease=self.config.claim_lease,
            min_interval=interval,
            unsure_for=SETTLE,
        )
        if not isinstance(claim, Claim) and claim.state is FireState.FAILED and claim.sent_at:
            wait = claim.sent_at + SETTLE - now
            raise FireTooSoonError(
                f"{project.name}/{job.name} was fired by hand at {claim.claimed_at:%H:%M:%S} UTC "
                f"and may have made its task although it failed ({claim.error}); to fire it "
                f"again, check the hook's last fires, then try again in "
                f"{int(wait.total_seconds()) + 1} s",
                retry_after=wait,
            )
        if not isinstance(claim, Claim):
            wait = interval - (now - claim.claimed_at)
            raise FireTooSoonError(
                f"{project.name}/{job.name} was fired by hand at "
                f"{claim.claimed_at:%H:%M:%S} UTC (task {claim.task_id or 'not made yet'}); "
                f"manual fires of one job are at least {format_duration(interval)} apart: try "
                f"again in {int(wait.total_seconds()) + 1} s",
                retry_after=wait,
            )
        manual = _Fire(
            project,
            snapshot,
            job,
            slot_of(now),
            FireKind.MANUAL,
            cron_input or {},
            now,
            dry_run=dry_run,
        )
        result = await self._fire(manual, claim)
        await self._record([claim])
        return result

    async def run_action(
        self,
        project_name: str,
        action_name: str,
        action_input: Mapping[str, Any] | None = None,
        *,
        revision: str | None = None,
        dry_run: bool = False,
    ) -> Triggered:
        """Trigger the action `action_name` of the project's decision task for `revision` (by
        default its latest), as Treeherder's action menu does. Nothing dedupes it: an action
        has no slot. Raises UnknownTargetError or TriggerError."""
        project = self.project(project_name)
        if revision:
            path = decision_index_path(project.trust_domain, project.name, revision)
        else:
            path = latest_decision_index_path(project.trust_domain, project.name)
        kind = TriggerAction(action_name=action_name, extra_input=dict(action_input or {}))
        return await trigger_action(
            self.clients_for(project),
            path,
            kind,
            dry_run=dry_run or self.config.dry_run,
            clock=self.clock,
        )

    # -- expiry -------------------------------------------------------------------------

    async def check_expiry(self, project: Project, *, dry_run: bool = False) -> list[Event]:
        """Scan the project's cached tasks and take the remediation step it calls for."""
        return await scan_and_remediate(
            self.clients_for(project),
            self.ledger,
            project,
            replica=self.config.replica,
            clock=self.clock,
            dry_run=dry_run or self.config.dry_run,
        )

    def clients_for(self, project: Project, job: str | None = None) -> Clients:
        """The clients every call made for `project` (for its `job`) goes through: limited
        to its scopes."""
        return self.clients.for_project(project, job)

    def clients_of(self, project_name: str) -> Clients:
        """`clients_for` the project called `project_name`; a project no longer configured
        gets no scopes but the anonymous role's."""
        project = self.config.project(project_name)
        if project is None:
            return self.clients.restricted(f"project {project_name} (not configured)", ())
        return self.clients_for(project)

    def project(self, project_name: str) -> Project:
        """The configured project of that name; raises UnknownTargetError."""
        try:
            return self.config.require_project(project_name)
        except UnknownProjectError as error:
            raise UnknownTargetError(str(error)) from None

    async def head(self, project_name: str) -> tuple[Snapshot, CronFile]:
        """The project's branch head and its `.cron.yml` there; raises UnknownTargetError or
        RepositoryUnreachableError."""
        _, snapshot, cron = await self._read(project_name)
        return snapshot, cron

    async def _read(self, project_name: str) -> tuple[Project, Snapshot, CronFile]:
        """The project, its branch head and its `.cron.yml` there."""
        project = self.project(project_name)
        try:
            snapshot = await self.source.snapshot(project.git_url, project.branch)
        except SourceError as error:
            raise RepositoryUnreachableError(str(error)) from None
        return project, snapshot, self._cron(project, snapshot)

    # -- one fire -------------------------------------------------------------------------

    async def _fire(self, fire: _Fire, claim: Claim | None) -> FireResult:
        """Fire what `claim` holds (None: another replica has it); the outcome waits in
        `_unrecorded` until `_record` writes it with the others of its project."""
        project, job, slot, kind = fire.project, fire.job, fire.slot, fire.kind
        bound = log.bind(project=project.name, job=job.name, slot=format_slot(slot), kind=kind)
        if claim is None:
            bound.info("claimed by another replica")
            return FireResult(project.name, job.name, slot, kind, None)
        # Until the outcome is known the claim is in flight: its lease is renewed, and a
        # shutdown releases it.
        self._in_flight.add(claim)
        self._keep_leases()
        async with self._limit:
            dispatched = await self._dispatch(fire, claim)
        self._in_flight.discard(claim)
        state, task_id, details, error = dispatched[:4]
        revision = fire.snapshot.revision
        retry_at = None
        if state is FireState.FAILED and dispatched.transient and kind is not FireKind.MANUAL:
            lateness = project.catch_up_for(job.name).max_lateness
            retry_at = next_attempt_at(slot, claim.attempt, self.clock(), lateness)
            if retry_at is None:
                error = f"{error} (given up after {_attempts(claim.attempt)}: the job's " + (
                    f"max-lateness {format_duration(lateness)} has passed)"
                )
            else:
                retry_at = max(retry_at, dispatched.not_before or retry_at)
                state = FireState.RETRYING
                again = f"{retry_at:%H:%M:%S} UTC"
                error = f"attempt {claim.attempt} failed: {error}; tried again from {again}"
        watch = None
        if state in (FireState.CREATED, FireState.ALREADY_FIRED, FireState.FAILED):
            watch = _watch_spec(project, job, project_broken=dispatched.project_broken)
        self._unrecorded[claim] = Outcome(
            claim, state, task_id, revision, error, details, watch, retry_at
        )
        if state is FireState.FAILED:
            bound.error("fire failed", task_id=task_id, error=error)
        elif state is FireState.RETRYING:
            bound.warning("fire failed, will be retried", error=error)
        elif error:
            bound.warning("fired", task_id=task_id, state=state, note=error)
        else:
            bound.info("fired", task_id=task_id, state=state)
        return FireResult(project.name, job.name, slot, kind, state, task_id, error, details)

    async def _record(self, claims: Iterable[Claim | None]) -> None:
        """Write the outcomes of these claims' fires to the ledger, in one transaction."""
        outcomes = [
            self._unrecorded.pop(c) for c in claims if c is not None and c in self._unrecorded
        ]
        if outcomes:
            await asyncio.to_thread(self.ledger.finish_many, outcomes, now=self.clock())

    def _keep_leases(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_leases())

    async def _renew_leases(self) -> None:
        """While fires are in flight or unrecorded, renew their claims' leases every third of
        a lease: a live replica keeps what it holds, a dead one's lease runs out soon."""
        period = self.config.claim_lease.total_seconds() / 3
        while self._in_flight or self._unrecorded:
            await asyncio.sleep(period)
            held = [*self._in_flight, *self._unrecorded]
            if not held:
                break
            renewed = await asyncio.to_thread(
                self.ledger.renew_many, held, now=self.clock(), lease=self.config.claim_lease
            )
            for claim, ours in zip(held, renewed, strict=True):
                if not ours and (claim in self._in_flight or claim in self._unrecorded):
                    log.warning(
                        "claim lost to another replica",
                        project=claim.project,
                        job=claim.job,
                        slot=format_slot(claim.slot),
                    )

    async def _dispatch(self, fire: _Fire, claim: Claim) -> Dispatched:
        try:
            if isinstance(fire.job.kind, DecisionTask):
                return await self._decision_task(fire)
            return await self._trigger_action(fire, claim)
        except FireError as error:
            return Dispatched(
                FireState.FAILED,
                None,
                None,
                str(error),
                error.project_broken,
                error.transient,
                error.not_before,
            )
        except Exception as error:
            # A bug here must cost this fire only, never the others of the tick.
            log.exception("internal error", project=fire.project.name, job=fire.job.name)
            message = f"internal error in tc-scheduler ({type(error).__name__}); see its log"
            return Dispatched(FireState.FAILED, None, None, message)

    async def _decision_task(self, fire: _Fire) -> Dispatched:
        project, snapshot, slot = fire.project, fire.snapshot, fire.slot
        template = snapshot.files.get(TASKCLUSTER_YML)
        if template is None:
            raise FireError(
                f"{project.name} has no {TASKCLUSTER_YML} at {snapshot.revision}; a decision-task "
                "job needs one",
                project_broken=True,
            )
        fired_at = fire.at or self.clock()
        try:
            rendered = await self._render(
                template,
                **self._render_arguments(
                    project,
                    snapshot,
                    fire.job,
                    slot,
                    now=fired_at if fire.kind is FireKind.MANUAL else render_time(slot, fired_at),
                    cron_input=fire.cron_input,
                    task_id=manual_task_id() if fire.kind is FireKind.MANUAL else None,
                ),
            )
        except RenderError as error:
            raise FireError(
                f"{TASKCLUSTER_YML} at {snapshot.revision[:12]}: {error}", project_broken=True
            ) from None
        details = {"task": rendered.definition}
        if self.config.dry_run or fire.dry_run:
            log.info(
                "dry run: task not created", task_id=rendered.task_id, task=rendered.definition
            )
            return Dispatched(FireState.DRY_RUN, rendered.task_id, details, None)
        clients = self.clients_for(project, fire.job.name)
        try:
            await clients.queue.createTask(rendered.task_id, rendered.definition)
        except TaskclusterRestFailure as error:
            if error.status_code == 409:
                return await self._confirm_existing(clients, rendered.task_id, details)
            return await self._resolve_create(clients, rendered.task_id, details, error)
        except Exception as error:
            return await self._resolve_create(clients, rendered.task_id, details, error)
        return Dispatched(FireState.CREATED, rendered.task_id, details, None)

    async def _resolve_create(
        self, clients: Clients, task_id: str, details: dict[str, Any], error: Exception
    ) -> Dispatched:
        """createTask failed. If it may have taken effect all the same (no answer, a 5xx), the
        queue says whether the task exists: then it was created (its reply was lost). Raises
        FireError otherwise, `transient` when trying again may work."""
        explained = clients.explain(error, "queue.createTask")
        if not explained.uncertain:
            raise FireError(explained.message, transient=explained.transient)
        try:
            await clients.queue.task(task_id)
        except TaskclusterRestFailure as lookup:
            if lookup.status_code == 404:
                raise FireError(
                    f"{explained.message}; task {task_id} does not exist, so it was not created",
                    transient=True,
                ) from None
            unknown = clients.explain(lookup, "queue.task").message
            raise FireError(
                f"{explained.message}; whether task {task_id} was created is not known ({unknown})",
                transient=True,
            ) from None
        except Exception as lookup:
            unknown = clients.explain(lookup, "queue.task").message
            raise FireError(
                f"{explained.message}; whether task {task_id} was created is not known ({unknown})",
                transient=True,
            ) from None
        log.info("createTask's reply was lost; the task exists", task_id=task_id)
        return Dispatched(FireState.CREATED, task_id, details, None)

    def render_for(
        self, project: Project, snapshot: Snapshot, job: Job, slot: datetime, *, now: datetime
    ) -> RenderedTask:
        """The decision task a scheduled fire of `job` at `slot` makes, if fired at `now`
        (no I/O: for checks before anything fires). Raises RenderError."""
        template = snapshot.files.get(TASKCLUSTER_YML)
        if template is None:
            raise RenderError("the file is missing; a decision-task job needs one")
        arguments = self._render_arguments(project, snapshot, job, slot, now=now)
        return render_decision_task(template, **arguments)

    def _render_arguments(
        self,
        project: Project,
        snapshot: Snapshot,
        job: Job,
        slot: datetime,
        *,
        now: datetime,
        cron_input: Mapping[str, Any] | None = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """What `render_decision_task` needs besides the template, as build-decision gives it."""
        return {
            "root_url": self.config.root_url,
            "repository": Repository(
                url=project.repository,
                project=project.name,
                level=str(project.level),
                type=project.repository_type,
            ),
            "push": Push(revision=snapshot.revision, branch=project.branch),
            "job": job,
            "slot": slot,
            "now": now,
            "cron_input": dict(cron_input or {}),
            "task_id": task_id,
        }

    async def _render(self, template: str, **arguments: Any) -> RenderedTask:
        """Render in the worker processes when there are some: JSON-e is most of a fire's CPU."""
        if self.render_pool is None:
            return render_decision_task(template, **arguments)
        loop = asyncio.get_running_loop()
        call = functools.partial(render_decision_task, template, **arguments)
        return await loop.run_in_executor(self.render_pool, call)

    async def _confirm_existing(
        self, clients: Clients, task_id: str, details: dict[str, Any]
    ) -> Dispatched:
        """A 409 means the id is taken: by this fire before (a retry, a replica) or another.

        The id is derived from the slot, so the task exists whether or not reading it back
        works; a refused read leaves it unconfirmed, never failed.
        """
        try:
            await clients.queue.task(task_id)
        except Exception as error:
            reason = clients.explain(error, "queue.task").message
            return Dispatched(FireState.ALREADY_FIRED, task_id, details, f"{UNCONFIRMED}: {reason}")
        return Dispatched(FireState.ALREADY_FIRED, task_id, details, None)

    async def _trigger_action(self, fire: _Fire, claim: Claim) -> Dispatched:
        """Trigger the job's action once: the intent (what is sent, when) is in the ledger
        before the trigger goes out, and an attempt after one that may have sent it first
        looks for the task it made."""
        project, snapshot, job = fire.project, fire.snapshot, fire.job
        assert not isinstance(job.kind, DecisionTask)
        clients = self.clients_for(project, job.name)
        if claim.attempt > 1:
            earlier = await self._earlier_trigger(clients, claim)
            if earlier is not None:
                return earlier
        path = decision_index_path(project.trust_domain, project.name, snapshot.revision)
        dry_run = self.config.dry_run or fire.dry_run
        try:
            prepared = await prepare_trigger(
                clients,
                path,
                job.kind,
                cron_input=dict(fire.cron_input),
                missing_hint=(
                    f"; the push decision task of {snapshot.revision[:12]} has not completed "
                    "(or failed)"
                ),
                marker=_marker(claim),
            )
        except TriggerError as error:
            raise FireError(
                str(error), transient=error.transient, not_before=error.not_before
            ) from None
        if dry_run:
            log.info("dry run: hook not triggered", **prepared.details())
            return Dispatched(FireState.DRY_RUN, None, prepared.details(), None)
        sent_at = self.clock()
        if not await asyncio.to_thread(
            self.ledger.mark_sent, claim, now=sent_at, details=prepared.details()
        ):
            raise FireError("not triggered: another replica took this fire over; it fires there")
        try:
            triggered = await send(clients, prepared, sent_at=sent_at)
        except TriggerError as error:
            raise FireError(
                str(error), transient=error.transient, not_before=error.not_before
            ) from None
        return Dispatched(FireState.CREATED, triggered.task_id, triggered.details(), None)

    async def _earlier_trigger(self, clients: Clients, claim: Claim) -> Dispatched | None:
        """What the trigger an earlier attempt of this fire sent made: ALREADY_FIRED with its
        task, or None when none was sent or it made no task (so this attempt sends one).
        Raises FireError (transient) while that cannot be known."""
        earlier = await asyncio.to_thread(self.ledger.fire_by_id, claim.fire_id)
        if earlier is None or earlier.sent_at is None or not earlier.details:
            return None
        sent = Triggered.from_details(earlier.details)
        if sent is None:
            return None
        what = (
            f"attempt {claim.attempt - 1} triggered {sent.trigger.hook_group_id}/"
            f"{sent.trigger.hook_id} at {earlier.sent_at:%H:%M:%S} UTC"
        )
        try:
            task_id = await find_sent(clients, sent, since=earlier.sent_at)
        except TriggerError as error:
            raise FireError(
                f"{what}, and whether that made a task is not known ({error}); it is not "
                "triggered again until that is known",
                transient=True,
            ) from None
        if task_id is not None:
            return Dispatched(FireState.ALREADY_FIRED, task_id, earlier.details, None)
        settled = earlier.sent_at + SETTLE
        if self.clock() < settled:
            # The trigger may still be in the hooks service's hands: look again once it cannot be.
            raise FireError(
                f"{what} and made no task yet; looked for again from {settled:%H:%M:%S} UTC",
                transient=True,
                not_before=settled,
            )
        return None

    # -- shutdown -------------------------------------------------------------------------

    async def release_all(self) -> None:
        """On shutdown: record the fires that ended, and give up the claims of those that did
        not, so that another replica can take them over at once."""
        if self._renewer is not None:
            self._renewer.cancel()
        await self._record(list(self._unrecorded))
        for claim in list(self._in_flight):
            await asyncio.to_thread(self.ledger.release, claim, now=self.clock())
