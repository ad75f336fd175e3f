"""The engine: for each slot and project, read the branch head and the ledger, ask `plan_slot`
what to do, then claim, fire and record it; between slots, recover the fires nobody holds.

Every project is evaluated concurrently and every fire runs under one concurrency limit. One
job's failure is recorded with its reason and never stops another job or project.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from scheduler.actions.triggering import Triggered
from scheduler.clock import Clock, utc_now
from scheduler.config.model import Config, Project
from scheduler.cron import CronFile, Job, load_cron
from scheduler.cron.overlap import plan_overlap
from scheduler.cron.slots import OpenFire, Skip, ensure_begun, plan_open_fires, plan_slot
from scheduler.cron.timing import SLOT_LENGTH, format_slot, slot_of
from scheduler.engine import manual
from scheduler.engine.checks import LastChecks
from scheduler.engine.decision_task import render_scheduled
from scheduler.engine.firing import FireRunner
from scheduler.engine.open_fires import give_up, kind_of, open_fire, taken_over
from scheduler.engine.overlap import still_running
from scheduler.engine.prepared import Preparation, PreparedRenders, prepare_slot
from scheduler.engine.tick_reads import ProjectReads, read_tick
from scheduler.expiry.model import ExpiryEvent
from scheduler.expiry.remediation import scan_and_remediate
from scheduler.git.process import SourceError
from scheduler.git.source import Snapshot
from scheduler.git.sources import Sources
from scheduler.ledger import (
    AsyncLedger,
    EngineLedger,
    Fire,
    FireState,
    SlotOutcome,
    SlotRecord,
)
from scheduler.outcomes import (
    FireResult,
    RepositoryUnreachableError,
    SlotResult,
)
from scheduler.render import RenderedTask
from scheduler.taskcluster import Clients

CRON_FILE = ".cron.yml"

log = structlog.get_logger("tc_scheduler.engine")


@dataclass
class Engine:
    """Evaluates slots for the configured projects against one ledger, git cache and session.

    `clock` is the time fires are judged and recorded by; tests move it.
    """

    config: Config
    ledger: AsyncLedger[EngineLedger]
    source: Sources
    clients: Clients
    clock: Clock = utc_now
    render_pool: Executor | None = None
    # Decision tasks rendered before their slot began (`prepare`), for its fires to use.
    prepared: PreparedRenders = field(default_factory=PreparedRenders)
    # The latest preflight and expiry scan of each project, for the pages.
    checks: LastChecks = field(default_factory=LastChecks)
    _runner: FireRunner = field(init=False)
    # Each project's .cron.yml, loaded once per revision (parsing is the costly part).
    _crons: dict[str, tuple[str, CronFile]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._runner = FireRunner(self)

    @property
    def runner(self) -> FireRunner:
        """What makes every fire of this engine, under its one concurrency limit (a backfill's)."""
        return self._runner

    # -- scheduled fires ------------------------------------------------------------------

    async def tick(self, moment: datetime) -> list[SlotResult]:
        """Evaluate the slot `moment` falls in for every project, after catching up on gaps.

        Raises FutureSlotError for a slot later than now: only slots that have begun are
        fired, skipped (a pause, a catch-up policy) or claimed, so none is used up early.
        """
        slot = slot_of(moment)
        ensure_begun(slot, self.clock())
        projects, horizon = self.config.projects, self.config.max_task_deadline
        # Paused now (by any replica, the command line or the API): recorded, not fired. Read
        # while the heads are: each project waits for both, neither for the other's latency.
        reads = asyncio.ensure_future(
            read_tick(self.ledger, projects, now=self.clock(), horizon=horizon)
        )
        try:
            results = await asyncio.gather(
                *(self._evaluate(project, slot, reads) for project in projects),
                return_exceptions=True,
            )
            # The slots of the projects evaluated are recorded even if another's broke.
            await self._record_slots([r for r in results if isinstance(r, SlotResult)])
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            await reads  # its failure, had no project waited for it (none reachable)
        finally:
            reads.cancel()  # a tick cancelled before the reads ended
        return [r for r in results if isinstance(r, SlotResult)]

    async def prepare(self, slot: datetime) -> Preparation:
        """Before `slot` begins: read every project's head and render the decision tasks due
        at `slot`, for its tick to use where the head has not moved (`prepared.py`). Nothing
        is claimed, recorded or created."""
        return await prepare_slot(self, slot)

    async def _evaluate(
        self, project: Project, slot: datetime, tick_reads: asyncio.Future[dict[str, ProjectReads]]
    ) -> SlotResult:
        # Every line logged meanwhile names the project and slot, git's retries too.
        with structlog.contextvars.bound_contextvars(project=project.name, slot=format_slot(slot)):
            return await self._evaluate_bound(project, slot, tick_reads)

    async def _evaluate_bound(
        self, project: Project, slot: datetime, tick_reads: asyncio.Future[dict[str, ProjectReads]]
    ) -> SlotResult:
        try:
            snapshot = await self.source.snapshot(
                project.git_url, project.branch, project.repository_type
            )
        except SourceError as error:
            log.error("project slot failed", error=str(error))
            return SlotResult(project.name, slot, None, error=str(error))
        # Shielded: the reads are every project's, and this one's end must not cancel them.
        reads = (await asyncio.shield(tick_reads))[project.name]
        cron = self._cron(project, snapshot)
        now = self.clock()
        open_fires = {open_fire(fire): fire for fire in reads.open_fires}
        running = await still_running(self.clients.for_project(project), reads.running)
        plan = plan_slot(
            cron,
            project.name,
            slot,
            last_evaluated=reads.last_evaluated,
            open_fires=open_fires,
            pauses=reads.pauses,
            catch_up_of=project.catch_up_for,
            now=now,
        )
        if plan.given_up:
            await give_up(self._runner, project, plan.given_up, open_fires)
        overlap = plan_overlap(plan.fires, running, project.overlap_for, given_up=plan.given_up)
        held = (*plan.skipped, *plan.paused, *overlap.skipped)
        skipped = await asyncio.gather(*(self._skip(project, s, open_fires) for s in held))
        wanted = [(d.fire, kind_of(d, open_fires)) for d in overlap.fires]
        fired = taken_over(
            overlap.fires,
            await self._runner.claim_and_fire(project, snapshot, wanted, overlap.replacing),
        )
        fired = await self._runner.with_decisions_before(project.name, fired)
        problems = [str(d) for d in plan.left_out]
        left_out = "\n".join(problems) or None
        if left_out:
            log.warning("jobs left out", problems=problems)
        return SlotResult(
            project.name,
            slot,
            snapshot.revision,
            tuple(fired),
            tuple(skipped[: len(plan.skipped)]),
            left_out,
            tuple(problems),
            tuple(skipped[len(plan.skipped) : len(plan.skipped) + len(plan.paused)]),
            tuple(skipped[len(plan.skipped) + len(plan.paused) :]),
        )

    async def recover(self) -> list[FireResult]:
        """Finish the fires nobody holds, in every project, between ticks: those whose replica
        died (their lease ran out) and the retries that are due; those past their job's
        max-lateness are given up. One read of the ledger when there are none."""
        found: dict[str, list[Fire]] = {}
        now = self.clock()
        for fire in await self.ledger.run(lambda ledger: ledger.open_fires(due_at=now)):
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
        with structlog.contextvars.bound_contextvars(project=project.name):
            return await self._recover_bound(project, found)

    async def _recover_bound(self, project: Project, found: list[Fire]) -> list[FireResult]:
        now = self.clock()
        try:
            snapshot = await self.source.snapshot(
                project.git_url, project.branch, project.repository_type
            )
        except SourceError as error:
            log.warning("fires to recover wait for the repository", error=str(error))
            return []
        cron = self._cron(project, snapshot)
        pauses = await self.ledger.run(lambda ledger: ledger.pauses(project=project.name, at=now))
        open_fires = {open_fire(fire): fire for fire in found}
        reopen = plan_open_fires(
            cron,
            open_fires,
            pauses,
            project.catch_up_for,
            self.clock(),
            before=slot_of(now) + SLOT_LENGTH,
        )
        if reopen.given_up:
            await give_up(self._runner, project, reopen.given_up, open_fires)
        again = [(d.fire, kind_of(d, open_fires)) for d in reopen.retries]
        return taken_over(
            reopen.retries, await self._runner.claim_and_fire(project, snapshot, again)
        )

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

    async def _record_slots(self, results: list[SlotResult]) -> None:
        """Record each project's evaluation of its slot (failed: its repository could not be
        read), in one write."""
        now, replica = self.clock(), self.config.replica
        records = [
            SlotRecord(
                result.project,
                result.slot,
                result.revision,
                SlotOutcome.FAILED if result.unreachable else SlotOutcome.EVALUATED,
                result.error,
                replica,
                now,
            )
            for result in results
        ]
        await self.ledger.run(lambda ledger: ledger.record_slots(records))

    async def _skip(
        self, project: Project, skip: Skip, open_fires: Mapping[OpenFire, Fire]
    ) -> FireResult:
        fire, kind, reason = skip.fire, kind_of(skip, open_fires), skip.reason
        now = self.clock()
        await self.ledger.run(
            lambda ledger: ledger.record_skip(
                project.name,
                fire.job_name,
                fire.slot,
                kind=kind,
                reason=reason,
                replica=self.config.replica,
                now=now,
            )
        )
        log.info(
            "skipped missed slot",
            project=project.name,
            job=fire.job_name,
            slot=format_slot(fire.slot),
            reason=reason,
        )
        return FireResult(
            project.name,
            fire.job_name,
            fire.slot,
            kind,
            FireState.SKIPPED,
            None,
            reason,
            skip_reason=skip.why,
        )

    # -- operator acts and reads ----------------------------------------------------------

    async def fire_now(
        self,
        project_name: str,
        job_name: str,
        cron_input: Mapping[str, Any] | None = None,
        *,
        dry_run: bool = False,
        head: tuple[Snapshot, CronFile] | None = None,
    ) -> FireResult:
        """Run a job now, whatever its `when` and `run-on-projects` say (build-decision's
        `--force-run`), as a manual fire with its own task id; `head`: the branch head and
        `.cron.yml` just read (None: read them now)."""
        project = self.config.require_project(project_name)
        snapshot, cron = head or await self.head(project_name)
        return await manual.fire_job_now(
            self._runner, project, snapshot, cron, job_name, cron_input, dry_run=dry_run
        )

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
        has no slot. Raises UnknownProjectError or TriggerError."""
        project = self.config.require_project(project_name)
        return await manual.run_action(
            self.clients_for(project),
            project,
            action_name,
            action_input,
            revision=revision,
            dry_run=dry_run or self.config.dry_run,
            clock=self.clock,
        )

    async def check_expiry(self, project: Project, *, dry_run: bool = False) -> list[ExpiryEvent]:
        """Scan the project's cached tasks and take the remediation step it calls for."""
        events = await scan_and_remediate(
            self.clients_for(project),
            self.ledger,
            project,
            replica=self.config.replica,
            clock=self.clock,
            dry_run=dry_run or self.config.dry_run,
        )
        self.checks.scanned(project.name, tuple(events), at=self.clock())
        return events

    def render_for(
        self, project: Project, snapshot: Snapshot, job: Job, slot: datetime, *, now: datetime
    ) -> RenderedTask:
        """The decision task a scheduled fire of `job` at `slot` makes, if fired at `now`
        (no I/O: for checks before anything fires). Raises RenderError."""
        return render_scheduled(self.config.root_url, project, snapshot, job, slot, now=now)

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

    async def head(self, project_name: str) -> tuple[Snapshot, CronFile]:
        """The project's branch head and its `.cron.yml` there; raises UnknownProjectError or
        RepositoryUnreachableError."""
        _, snapshot, cron = await self._read(project_name)
        return snapshot, cron

    def last_read(self, project_name: str) -> tuple[str, CronFile] | None:
        """The revision and `.cron.yml` the engine last read for the project, without any I/O
        (None: not read since the service started)."""
        return self._crons.get(project_name)

    async def _read(self, project_name: str) -> tuple[Project, Snapshot, CronFile]:
        """The project, its branch head and its `.cron.yml` there."""
        project = self.config.require_project(project_name)
        try:
            snapshot = await self.source.snapshot(
                project.git_url, project.branch, project.repository_type
            )
        except SourceError as error:
            raise RepositoryUnreachableError(str(error)) from None
        return project, snapshot, self._cron(project, snapshot)

    async def release_all(self) -> None:
        """On shutdown: record the fires that ended, and give up the claims of those that did
        not, so that another replica can take them over at once."""
        await self._runner.release_all()
