"""The operations that need the ledger and nothing else: history, one fire, the audit log, the
projects with their pauses, pausing and resuming, pruning and upgrading. No Taskcluster, Slack or
Sentry settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.clock import Clock
from scheduler.config.model import Config, Retention
from scheduler.errors import Category, SchedulerError
from scheduler.ledger import (
    PRUNE_BATCH,
    AsyncLedger,
    Cutoffs,
    Fire,
    OperationsLedger,
    Pruned,
    Watch,
    open_async_ledger,
    upgrade_async_ledger,
)
from scheduler.operations.audit import ActKind, audited, make_act, record, target_of
from scheduler.operations.models import (
    AuditOut,
    FireDetail,
    FireOut,
    FireQuery,
    LedgerUpgradedOut,
    PauseOut,
    ProjectOut,
    PrunedOut,
    ResumedOut,
)
from scheduler.operations.named_jobs import CronReading, require_job
from scheduler.operations.runs import fire_out, fires_out
from scheduler.outcomes import RepositoryUnreachableError


class NoSuchFireError(SchedulerError, category=Category.NOT_FOUND, code="not-found"):
    """The ledger has no fire of that id."""


class InvalidPauseError(SchedulerError, category=Category.INVALID, code="invalid-pause"):
    """A pause that cannot be made as asked (an `until` already past, no reason)."""


@dataclass(frozen=True)
class LedgerOperations:
    """The reads of the ledger, and the acts that only write to it. `config`: the service's,
    whose projects pauses may name and `project_list` lists (None: reads of the ledger only);
    `crons`: what reads the jobs a pause may name."""

    ledger: AsyncLedger[OperationsLedger]
    clock: Clock
    config: Config | None = None
    # What reads a project's `.cron.yml`, for the jobs a pause or resume may name (None: a
    # job is not named, only whole projects).
    crons: CronReading | None = None

    async def history(self, query: FireQuery) -> list[FireOut]:
        """The fires `query` asks for, newest slot first, each with how its run went."""
        return await self.ledger.run(
            lambda ledger: fires_out(ledger, ledger.fires(**query.model_dump(), details=False))
        )

    async def fire(self, fire_id: int) -> FireDetail:
        """One fire, with its rendered task (or hook payload) and how its run went."""

        def read(ledger: OperationsLedger) -> tuple[Fire | None, Watch | None]:
            return ledger.fire_by_id(fire_id), ledger.watches_of([fire_id]).get(fire_id)

        found, watch = await self.ledger.run(read)
        if found is None:
            raise NoSuchFireError(f"no fire {fire_id}")
        return FireDetail.model_validate(fire_out(found, watch))

    async def audit(
        self, *, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditOut]:
        """Who did what, newest first."""
        entries = await self.ledger.run(lambda ledger: ledger.audit_log(since=since, limit=limit))
        return [AuditOut.model_validate(entry) for entry in entries]

    async def project_list(self) -> list[ProjectOut]:
        """The configured projects, with the pauses in force."""
        now = self.clock()
        pauses = await self.ledger.run(lambda ledger: ledger.pauses(at=now))
        return [
            ProjectOut(
                name=project.name,
                repository=project.repository,
                branch=project.branch,
                paused=[PauseOut.model_validate(p) for p in pauses if p.project == project.name],
            )
            for project in (self.config.projects if self.config else ())
        ]

    async def pause(
        self, actor: str, project: str, job: str | None, *, reason: str, until: datetime | None
    ) -> PauseOut:
        """Hold `job` of `project` (None: every job) from firing until resumed or `until`.
        Raises UnknownProjectError, UnknownJobError or InvalidPauseError."""
        await self._require(project, job)
        if not reason.strip():
            raise InvalidPauseError("a pause must say why: give a reason")
        given = {"reason": reason, "until": until.isoformat() if until else None}
        act = make_act(actor, ActKind.PAUSE, target_of(project, job), given)
        now = self.clock()
        try:
            paused = await self.ledger.run(
                lambda ledger: ledger.pause(
                    project, job, reason=reason, until=until, act=act, now=now
                )
            )
        except ValueError as error:  # an `until` already past
            raise InvalidPauseError(str(error)) from None
        return PauseOut.model_validate(paused)

    async def resume(self, actor: str, project: str, job: str | None) -> ResumedOut:
        """Let `job` of `project` (None: the project) fire again; says which pauses still
        hold it. A job a pause holds may be named though it has left the `.cron.yml`, else
        that pause could never be lifted."""
        now = self.clock()
        held = await self.ledger.run(lambda ledger: ledger.pauses(project=project, at=now))
        await self._require(project, job, held=[p.job for p in held if p.job is not None])
        act = make_act(actor, ActKind.RESUME, target_of(project, job), None)
        resumed, pauses = await self.ledger.run(
            lambda ledger: (
                ledger.resume(project, job, act=act, now=now),
                ledger.pauses(project=project, at=now),
            )
        )
        return ResumedOut(
            resumed=resumed is not None,
            lifted=None if resumed is None else PauseOut.model_validate(resumed),
            still_paused=[
                PauseOut.model_validate(p) for p in pauses if job is None or p.covers(job)
            ],
        )

    async def prune(self, actor: str, retention: Retention, *, dry_run: bool = False) -> PrunedOut:
        """Remove what is past `retention` and needed by nothing, a batch at a time (with
        `dry_run`, count it). Several replicas may prune at once: each removes what is left."""
        now = self.clock()
        cutoffs = Cutoffs(
            fires=now - retention.fires,
            letters=now - retention.letters,
            audit=now - retention.audit,
            sessions=now,
        )
        given = {"dry_run": dry_run, **retention.shown()}
        act = make_act(actor, ActKind.LEDGER_PRUNE, "ledger", given)

        async def prune() -> PrunedOut:
            if dry_run:
                total = await self.ledger.run(lambda ledger: ledger.prunable(cutoffs))
            else:
                total = Pruned()
                while True:  # a batch per call: a shutdown waits for one batch, not all
                    batch = await self.ledger.run(lambda ledger: ledger.prune(cutoffs))
                    total += batch
                    if batch.largest() < PRUNE_BATCH:
                        break
            return PrunedOut(
                dry_run=dry_run,
                **dict(total.counts()),
                fires_before=cutoffs.fires,
                letters_before=cutoffs.letters,
                audit_before=cutoffs.audit,
            )

        return await audited(self.ledger, self.clock, act, prune, _pruned_outcome)

    async def _require(self, project: str, job: str | None, *, held: Sequence[str] = ()) -> None:
        """Raise UnknownProjectError, UnknownJobError or InvalidPauseError for what no pause
        can name: a job must be one of the project's `.cron.yml` at its head, or in `held`
        (a job a pause holds is known without reading the repository)."""
        if self.config is None:
            raise InvalidPauseError("pausing needs the service's configuration")
        self.config.require_project(project)
        if job is None or job in held:
            return
        if not job.strip():
            raise InvalidPauseError("the job name is empty")
        if self.crons is None:
            raise InvalidPauseError("pausing a job needs its project's .cron.yml read")
        try:
            snapshot, cron = await self.crons.head(project)
        except RepositoryUnreachableError as error:
            raise RepositoryUnreachableError(
                f"cannot check that {job!r} is a job of {project}: {error}; to hold it now, "
                "pause the whole project (name no job)"
            ) from None
        require_job(project, job, snapshot, cron, also=held)


@asynccontextmanager
async def open_ledger_operations(
    ledger_url: str, clock: Clock, config: Config | None = None
) -> AsyncIterator[LedgerOperations]:
    """The operations on the ledger at `ledger_url`, opened (and migrated) for them."""
    async with open_async_ledger(ledger_url) as ledger:
        yield LedgerOperations(ledger, clock, config)


async def upgrade_ledger(
    ledger_url: str,
    clock: Clock,
    actor: str,
    *,
    wait: timedelta = timedelta(0),
) -> LedgerUpgradedOut:
    """Bring the ledger's schema up to the newest this release knows (what opening it does
    too), waiting up to `wait` for a ledger that does not answer yet.

    Audited when it applied migrations: finding the schema up to date (every replica's start
    asks) changes nothing. Raises LedgerUnreachableError when the wait is over, and
    LedgerTooNewError if a newer release has upgraded the ledger.
    """
    before, after = await upgrade_async_ledger(ledger_url, wait=wait)
    upgraded = LedgerUpgradedOut(from_revision=before, to_revision=after, upgraded=before != after)
    if upgraded.upgraded:
        act = make_act(actor, ActKind.LEDGER_UPGRADE, "ledger", None)
        async with open_async_ledger(ledger_url) as ledger:
            said = f"schema from {before or 'a new ledger'} to {after}"
            await record(ledger, clock, act, ok=True, result=said)
    return upgraded


def _pruned_outcome(pruned: PrunedOut) -> tuple[bool, str]:
    kinds = ("fires", "watches", "slots", "incidents", "letters", "audit", "sessions")
    listed = ", ".join(f"{kind} {getattr(pruned, kind)}" for kind in kinds)
    return True, f"{'would remove' if pruned.dry_run else 'removed'} {listed}"
