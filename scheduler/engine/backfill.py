"""Backfill: every begun slot of a range that jobs' schedules name, fired through the claim path
of scheduled and catch-up fires (the slot's own task id, the ledger's one fire per slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from scheduler.common.wording import counted
from scheduler.config.model import Project
from scheduler.cron import CronFile, DecisionTask, Job, PlannedFire, fires_between, format_slot
from scheduler.cron.slots import SkipReason
from scheduler.cron.timing import EARLIEST, as_utc, first_slot_at_or_after
from scheduler.durations import format_duration
from scheduler.engine.firing import FireRunner
from scheduler.errors import Category, SchedulerError
from scheduler.git.source import Snapshot
from scheduler.ids import decision_task_id
from scheduler.ledger import Fire, FireKind, FireState, Pause
from scheduler.outcomes import FireResult, UnknownJobError

# Fires claimed, made and recorded together: what is done is in the ledger as the backfill
# goes, not only at its end.
BATCH = 50
# How a backfill's fires are recorded: a past slot fired late, as catch-up fires are.
KIND = FireKind.CATCH_UP
# The states of a recorded fire that made nothing, whose slot a backfill fires (the ledger's
# claims take them again).
UNMADE = (FireState.SKIPPED, FireState.DRY_RUN)


class InvalidRangeError(SchedulerError, category=Category.INVALID, code="invalid-range"):
    """A backfill's range names no begun slot, more fires than it may make, or slots whose
    fires the ledger may have forgotten."""


class BackfillProgress(Protocol):
    """What follows a backfill as it goes (a progress bar)."""

    def planned(self, total: int) -> None:
        """The backfill is about to make `total` fires."""

    def fired(self, fire: FireResult) -> None:
        """One of them ended (`fire.state` None: another replica holds it)."""


@dataclass(frozen=True)
class Backfill:
    """What a backfill did, a row per slot and job of its range, in slot order."""

    project: str
    revision: str  # the branch head every fire was made from
    jobs: tuple[str, ...]
    start: datetime
    until: datetime  # exclusive; now, if the range asked for asked for later
    clamped: bool  # `until` was later than now
    dry_run: bool
    fires: tuple[FireResult, ...]
    notes: tuple[str, ...]  # what people should know: the clamped range, jobs left out
    made: tuple[FireResult, ...] = ()  # the fires this backfill claimed and made

    @property
    def failed(self) -> bool:
        return any(fire.state is FireState.FAILED for fire in self.fires)

    def counts(self) -> dict[str, int]:
        """How many rows are in each state (`claimed-elsewhere` for another replica's)."""
        found: dict[str, int] = {}
        for fire in self.fires:
            state = str(fire.state or "claimed-elsewhere")
            found[state] = found.get(state, 0) + 1
        return found


async def backfill(
    runner: FireRunner,
    project: Project,
    snapshot: Snapshot,
    cron: CronFile,
    jobs: Sequence[str],
    start: datetime,
    until: datetime,
    *,
    max_fires: int,
    dry_run: bool = False,
    rerun_failed: bool = False,
    progress: BackfillProgress | None = None,
) -> Backfill:
    """Fire every slot in [start, until) that the schedules of `jobs` (none: every job that
    runs on `project`) name in `cron`, the `.cron.yml` at `snapshot`, the branch head, as
    catch-up fires are made. Never a slot that has not begun: `until` is brought back to now.

    A slot already fired is shown `already-fired` (its recorded task) and not fired again; one
    whose fire made nothing (skipped by a catch-up or overlap policy or a pause then, or a dry
    run) is fired; one failed is shown as recorded, or, with `rerun_failed`, fired again (its
    next attempt, with the slot's task id: a task the failed attempt made after all is shown
    already fired); one claimed by a replica is shown as recorded. A fire that fails for a
    passing reason is left retrying, as a scheduled one is, its max-lateness counted from now:
    the service's recovery rounds try it again. A job paused now is shown skipped, and nothing
    is recorded for it. With `dry_run`, nothing is claimed, created or recorded.

    Raises UnknownJobError, or InvalidRangeError for a range without a begun slot, with more
    than `max_fires` fires, or from before the ledger's retention of fires.
    """
    setting = runner.setting
    now = setting.clock()
    chosen = _chosen(project, cron, jobs)
    start, end, clamped = _span(as_utc(start), as_utc(until), now)
    _check_remembered(start, now, setting.config.retention.fires)
    plan = fires_between(replace(cron, jobs=chosen), project.name, start, end, limit=max_fires + 1)
    if len(plan.fires) > max_fires:
        raise InvalidRangeError(
            f"{format_slot(start)} to {format_slot(end)} names more than "
            f"{counted(max_fires, 'fire')} of {project.name}: backfill a shorter range or fewer "
            "jobs, or allow more with --max-fires (max_fires in the API)"
        )
    # The jobs the backfill leaves out: broken in `.cron.yml` (when it takes every job), or
    # with no schedule on this project.
    left_out = () if jobs else cron.errors
    notes = [str(problem) for problem in (*left_out, *plan.problems)]
    if clamped:
        notes.insert(
            0,
            f"until {format_slot(as_utc(until))} is later than now, so the range ends now "
            f"({now:%Y-%m-%dT%H:%M:%SZ}); the scheduler fires the later slots as they come",
        )
    pauses = await setting.ledger.run(lambda ledger: ledger.pauses(project=project.name, at=now))
    held = {fire: pause for fire in plan.fires if (pause := _pause_of(fire.job_name, pauses))}
    wanted = [fire for fire in plan.fires if fire not in held]
    made: tuple[FireResult, ...] = ()
    if dry_run:
        recorded = await _recorded(runner, project.name, start, end)
        root_url = setting.config.root_url
        retaken = (*UNMADE, FireState.FAILED) if rerun_failed else UNMADE
        done = {
            fire: _would_fire(root_url, project.name, fire, recorded.get(_key(fire)), retaken)
            for fire in wanted
        }
    else:
        fired = await _fire(runner, project, snapshot, wanted, progress, rerun_failed)
        made = tuple(result for result in fired.values() if result.state is not None)
        recorded = await _recorded(runner, project.name, start, end)
        done = {
            fire: _shown(project.name, fire, result, recorded.get(_key(fire)))
            for fire, result in fired.items()
        }
    rows = [
        done[fire] if fire in done else _paused(project.name, fire, held[fire])
        for fire in plan.fires
    ]
    retrying = sum(row.state is FireState.RETRYING for row in rows)
    if retrying:
        notes.append(
            f"{counted(retrying, 'fire')} failed for a passing reason and will be tried again "
            "by the service's recovery rounds, as a scheduled fire is, until the job's "
            "max-lateness has passed since it was asked for; `tc-scheduler history --state "
            "retrying` follows them"
        )
    return Backfill(
        project.name,
        snapshot.revision,
        tuple(job.name for job in chosen),
        start,
        end,
        clamped,
        dry_run,
        tuple(rows),
        tuple(notes),
        made,
    )


def _chosen(project: Project, cron: CronFile, names: Sequence[str]) -> tuple[Job, ...]:
    """The jobs a backfill of `names` (none: all) fires on `project`; raises UnknownJobError
    naming the jobs there are."""
    runs = tuple(job for job in cron.jobs if job.runs_on(project.name))
    if not names:
        return runs
    known = {job.name: job for job in runs}
    unknown = [name for name in names if name not in known]
    if unknown:
        there = ", ".join(sorted(known)) if known else "none"
        problems = [str(d) for d in cron.errors if d.job in unknown]
        broken = f" ({'; '.join(problems)})" if problems else ""
        raise UnknownJobError(
            f"{project.name}'s .cron.yml has no job {', '.join(map(repr, unknown))} that runs on "
            f"{project.name}{broken}; its jobs: {there}"
        )
    return tuple(known[name] for name in dict.fromkeys(names))


def _span(start: datetime, until: datetime, now: datetime) -> tuple[datetime, datetime, bool]:
    """[first slot, end) of a backfill asked for [start, until) at `now`, and whether `until`
    was brought back to now; raises InvalidRangeError when no begun slot is in it."""
    if until <= start:
        raise InvalidRangeError(
            f"the range is empty: until {format_slot(until)} is not after from {format_slot(start)}"
        )
    if start < EARLIEST:
        raise InvalidRangeError(
            f"from {start:%Y-%m-%d} is before {EARLIEST.year}, the first year with slots"
        )
    end = min(until, now)
    # A start at or after now has no begun slot (and the first slot after the calendar's last
    # minute would not be a time at all).
    first = first_slot_at_or_after(start) if start < end else end
    if first >= end:
        raise InvalidRangeError(
            f"no slot of {format_slot(start)} to {format_slot(until)} has begun (it is "
            f"{now:%Y-%m-%dT%H:%M:%SZ} now): a backfill fires past slots only; the scheduler "
            "fires the others as they come"
        )
    return first, end, until > now


def _check_remembered(start: datetime, now: datetime, kept: timedelta) -> None:
    """Raise InvalidRangeError if the range reaches slots whose fires the ledger may have
    pruned (`retention.fires`): there, a slot that fired looks unfired, and a hook triggered
    then would be triggered again (a decision task's id only guards while the queue has it)."""
    horizon = now - kept
    if start < horizon:
        # The next day's start: still within what is kept when the operator runs it again.
        remembered = (horizon + timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        raise InvalidRangeError(
            f"from {format_slot(start)} is more than {format_duration(kept)} ago, before what "
            "the ledger remembers of fires (retention.fires), so whether those slots fired is "
            f"not known and they could be fired twice: backfill from {remembered:%Y-%m-%d} or "
            "later, or keep fires longer with retention.fires"
        )


async def _fire(
    runner: FireRunner,
    project: Project,
    snapshot: Snapshot,
    wanted: Sequence[PlannedFire],
    progress: BackfillProgress | None,
    rerun_failed: bool,
) -> dict[PlannedFire, FireResult]:
    """Claim, make and record `wanted`, a batch at a time, oldest slot first, as catch-up
    fires are; a slot whose fire made nothing (skipped, a dry run) is claimed too, and, with
    `rerun_failed`, one whose fire failed."""
    if progress is not None:
        progress.planned(len(wanted))
    done: dict[PlannedFire, FireResult] = {}
    for first in range(0, len(wanted), BATCH):
        batch = wanted[first : first + BATCH]
        results = await runner.claim_and_fire(
            project,
            snapshot,
            [(fire, KIND) for fire in batch],
            retake_unmade=True,
            rerun_failed=rerun_failed,
            on_fired=None if progress is None else progress.fired,
        )
        done.update(zip(batch, results, strict=True))
    return done


async def _recorded(
    runner: FireRunner, project: str, start: datetime, end: datetime
) -> dict[tuple[str, datetime], Fire]:
    """The ledger's scheduled and catch-up fires of `project` in [start, end), by job and slot."""
    found = await runner.setting.ledger.run(
        lambda ledger: ledger.fires(project=project, since=start, until=end, details=False)
    )
    return {(fire.job, fire.slot): fire for fire in found if fire.kind is not FireKind.MANUAL}


def _key(fire: PlannedFire) -> tuple[str, datetime]:
    return fire.job_name, fire.slot


def _shown(
    project: str, fire: PlannedFire, result: FireResult, recorded: Fire | None
) -> FireResult:
    """A fire of the backfill with its id in the ledger; a slot it did not claim, as recorded."""
    if result.state is None:
        return _as_recorded(project, fire, recorded)
    return result if recorded is None else replace(result, fire_id=recorded.id)


def _would_fire(
    root_url: str,
    project: str,
    fire: PlannedFire,
    recorded: Fire | None,
    retaken: Sequence[FireState],
) -> FireResult:
    """What a backfill would do with `fire`'s slot: fire it (with the slot's task id, for a
    decision task) if the ledger has no fire of it or one in a state it takes again
    (`retaken`: one that made nothing, a skip or a dry run; maybe a failed one), else show it
    as recorded."""
    if recorded is not None and recorded.state not in retaken:
        return _as_recorded(project, fire, recorded)
    task_id = None
    if isinstance(fire.job.kind, DecisionTask):
        task_id = decision_task_id(root_url, project, fire.job_name, fire.slot)
    return FireResult(project, fire.job_name, fire.slot, KIND, FireState.DRY_RUN, task_id)


def _as_recorded(project: str, fire: PlannedFire, recorded: Fire | None) -> FireResult:
    """A slot the ledger has a fire of, as recorded: one that made its task is already fired.
    State None: a replica holds it; retrying: it waits for its next attempt."""
    if recorded is None:  # claimed by a replica that has not written it yet
        return FireResult(project, fire.job_name, fire.slot, KIND, None)
    made = recorded.state in (FireState.CREATED, FireState.ALREADY_FIRED)
    state: FireState | None = FireState.ALREADY_FIRED if made else recorded.state
    if recorded.state is FireState.CLAIMED:
        state = None
    return FireResult(
        project,
        fire.job_name,
        fire.slot,
        recorded.kind,
        state,
        recorded.task_id,
        recorded.error,
        fire_id=recorded.id,
    )


def _paused(project: str, fire: PlannedFire, pause: Pause) -> FireResult:
    """A slot of a job paused now: not fired, and nothing recorded (a backfill after the
    resume fires it)."""
    return FireResult(
        project,
        fire.job_name,
        fire.slot,
        KIND,
        FireState.SKIPPED,
        error=pause.summary,
        skip_reason=SkipReason.PAUSED,
    )


def _pause_of(job: str, pauses: Sequence[Pause]) -> Pause | None:
    return next((pause for pause in pauses if pause.covers(job)), None)
