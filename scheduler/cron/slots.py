"""The slot plan: what each job of a project does at one slot — fire, catch up on a gap, try an
unfinished fire again, give it up, or skip with a reason. Pure: the engine reads, this decides.

Decided in this order: the catch-up policy picks among the slots missed since the last
evaluated one; unfinished fires of earlier slots are tried again while within their job's
max-lateness and given up after it; then a pause holds whatever would fire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from scheduler.common.diagnostics import Diagnostic
from scheduler.common.wording import counted
from scheduler.cron.model import CronFile, Job
from scheduler.cron.plan import PlannedFire, due_jobs, fires_between
from scheduler.cron.timing import SLOT_LENGTH, format_slot
from scheduler.durations import format_duration
from scheduler.retrying import overdue


class FutureSlotError(ValueError):
    """A slot that has not begun was asked for: it is neither fired, skipped nor claimed."""


class CatchUpRule(Protocol):
    """A job's catch-up policy (`latest`, `all` or `none`), its max-lateness and, for `all`,
    the most slots it makes up for."""

    @property
    def policy(self) -> str: ...

    @property
    def max_lateness(self) -> timedelta: ...

    @property
    def max_slots(self) -> int: ...


class ActivePause(Protocol):
    """A pause in force: of one job, or of every job of the project."""

    def covers(self, job: str) -> bool: ...

    @property
    def summary(self) -> str: ...


@dataclass(frozen=True, order=True)
class OpenFire:
    """An unfinished fire of a scheduled or catch-up slot that nobody holds: the replica that
    claimed it stopped (its lease ran out), or an attempt failed and the next one is due."""

    slot: datetime
    job: str
    retrying: bool = False  # an attempt failed for a passing reason; else its replica stopped
    attempts: int = 1
    replica: str = ""
    error: str | None = None  # the last attempt's
    task_id: str | None = None  # the task it may have made
    # When an operator's act (a backfill) asked for it: its max-lateness counts from then.
    asked_at: datetime | None = None

    @property
    def due(self) -> datetime:
        """What its max-lateness counts from: when it was asked for, else its slot."""
        return self.asked_at or self.slot


class Occasion(StrEnum):
    """Why a fire is made at this slot."""

    SCHEDULED = "scheduled"
    """Due at the slot itself."""
    CATCH_UP = "catch-up"
    """Due at a slot missed in a gap before it."""
    RETRY = "retry"
    """An unfinished fire of an earlier slot, fired again (it keeps its own kind)."""


class SkipReason(StrEnum):
    """Why a fire that was due is not made."""

    POLICY_NONE = "policy-none"
    """The catch-up policy is `none`."""
    NOT_NEWEST = "not-newest"
    """The catch-up policy `latest` makes up for the newest missed slot only."""
    OVER_CAP = "over-cap"
    """The catch-up policy `all` is capped at max-slots."""
    TOO_LATE = "too-late"
    """Missed by more than max-lateness."""
    PAUSED = "paused"
    """A pause of the job or the project holds it."""
    JOB_GONE = "job-gone"
    """An unfinished fire whose job is no longer in `.cron.yml`."""
    OVERLAP = "overlap"
    """The job's overlap policy (`skip`, or `replace` unable to cancel) holds it: an earlier
    fire of the job has not resolved (`cron/overlap.py`)."""


@dataclass(frozen=True, order=True)
class Decision:
    """A fire the plan makes, and why now."""

    fire: PlannedFire
    occasion: Occasion = field(compare=False)
    retried: OpenFire | None = field(default=None, compare=False)  # for Occasion.RETRY

    def skipped(self, why: SkipReason, reason: str) -> Skip:
        return Skip(self.fire, self.occasion, why, reason, self.retried)


@dataclass(frozen=True, order=True)
class Skip:
    """A fire that was due and is not made: why (`why`), in the words history shows (`reason`)."""

    fire: PlannedFire
    occasion: Occasion = field(compare=False)
    why: SkipReason = field(compare=False)
    reason: str = field(compare=False)
    retried: OpenFire | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GiveUp:
    """An unfinished fire past its job's max-lateness (or of a job gone): ended failed, and
    reported, unless its job is paused or gone, which makes it skipped."""

    open_fire: OpenFire
    job: Job | None  # None: no longer a job of `.cron.yml`
    skip: SkipReason | None  # None: failed
    reason: str

    @property
    def failed(self) -> bool:
        return self.skip is None


@dataclass(frozen=True)
class CatchUpPlan:
    """The missed fires made up for, and those skipped (with their reasons), in slot order."""

    fires: tuple[PlannedFire, ...]
    skips: tuple[Skip, ...]


@dataclass(frozen=True)
class ReopenPlan:
    """What becomes of the unfinished fires of slots before the one evaluated."""

    retries: tuple[Decision, ...]  # within max-lateness and not paused: fired again
    given_up: tuple[GiveUp, ...]
    waiting: tuple[OpenFire, ...]  # paused, still within max-lateness: fire if resumed in time


@dataclass(frozen=True)
class SlotPlan:
    """A project's plan for one slot."""

    fires: tuple[Decision, ...]  # to claim and fire, in order: earlier slots, then the slot's
    skipped: tuple[Skip, ...]  # missed slots the catch-up policy leaves out
    paused: tuple[Skip, ...]  # fires a pause holds: recorded skipped
    given_up: tuple[GiveUp, ...]
    waiting: tuple[OpenFire, ...]
    left_out: tuple[Diagnostic, ...]  # the `.cron.yml` errors that left jobs out


def ensure_begun(slot: datetime, now: datetime) -> None:
    """Raise FutureSlotError for a slot later than `now`: only slots that have begun are
    fired, skipped or claimed, so none is used up early."""
    if slot > now:
        raise FutureSlotError(
            f"the slot {format_slot(slot)} has not begun (it is {format_slot(now)} now, "
            "UTC); only slots that have begun are evaluated"
        )


def plan_slot(
    cron: CronFile,
    project: str,
    slot: datetime,
    *,
    last_evaluated: datetime | None,
    open_fires: Iterable[OpenFire],
    pauses: Sequence[ActivePause],
    catch_up_of: Callable[[str], CatchUpRule],
    now: datetime,
) -> SlotPlan:
    """What `project` does at `slot` (a slot, as `slot_of` gives), evaluated at `now`.

    `last_evaluated`: the project's latest slot evaluated before (None: never, so nothing is
    caught up). `open_fires`: its unfinished fires nobody holds. `pauses`: those in force.
    `catch_up_of`: each job's catch-up rule. Raises FutureSlotError if `slot` is after `now`.
    """
    ensure_begun(slot, now)
    catch_up = CatchUpPlan((), ())
    if last_evaluated is not None and slot - last_evaluated > SLOT_LENGTH:
        missed = fires_between(cron, project, last_evaluated + SLOT_LENGTH, slot).fires
        catch_up = plan_catch_up(missed, catch_up_of, now)
    due = due_jobs(cron, project, slot)
    reopen = plan_open_fires(cron, open_fires, pauses, catch_up_of, now, before=slot)
    earlier = {retry.fire: retry for retry in reopen.retries}
    for fire in catch_up.fires:
        earlier.setdefault(fire, Decision(fire, Occasion.CATCH_UP))
    wanted = sorted(earlier.values())
    wanted += [Decision(fire, Occasion.SCHEDULED) for fire in due.fires]
    fires: list[Decision] = []
    paused: list[Skip] = []
    for decision in wanted:
        pause = _pause_of(decision.fire.job_name, pauses)
        if pause is None:
            fires.append(decision)
        else:
            paused.append(decision.skipped(SkipReason.PAUSED, pause.summary))
    return SlotPlan(
        tuple(fires),
        catch_up.skips,
        tuple(paused),
        reopen.given_up,
        reopen.waiting,
        (*cron.errors, *due.problems),
    )


def plan_catch_up(
    missed: Iterable[PlannedFire], policy_of: Callable[[str], CatchUpRule], now: datetime
) -> CatchUpPlan:
    """Which missed fires to make up for, per job's policy, and why the others are skipped."""
    by_job: dict[str, list[PlannedFire]] = {}
    for fire in missed:
        by_job.setdefault(fire.job_name, []).append(fire)
    fires: list[PlannedFire] = []
    skips: list[Skip] = []

    def skip(fires: Iterable[PlannedFire], why: SkipReason, reason: str) -> None:
        skips.extend(Skip(fire, Occasion.CATCH_UP, why, reason) for fire in fires)

    for job_name, job_fires in by_job.items():
        rule = policy_of(job_name)
        newest_first = sorted(job_fires, key=lambda f: f.slot, reverse=True)
        if rule.policy == "none":
            skip(newest_first, SkipReason.POLICY_NONE, "catch-up policy is none")
        elif rule.policy == "latest":
            latest, *older = newest_first
            if now - latest.slot <= rule.max_lateness:
                fires.append(latest)
            else:
                lateness = format_duration(rule.max_lateness)
                skip([latest], SkipReason.TOO_LATE, f"missed by more than max-lateness {lateness}")
            newest = format_slot(latest.slot)
            only_newest = f"catch-up policy latest fires only the newest missed slot, {newest}"
            skip(older, SkipReason.NOT_NEWEST, only_newest)
        else:
            capped = f"catch-up policy all is capped at max-slots {rule.max_slots}"
            fires.extend(newest_first[: rule.max_slots])
            skip(newest_first[rule.max_slots :], SkipReason.OVER_CAP, capped)
    return CatchUpPlan(tuple(sorted(fires)), tuple(sorted(skips)))


def plan_open_fires(
    cron: CronFile,
    open_fires: Iterable[OpenFire],
    pauses: Sequence[ActivePause],
    catch_up_of: Callable[[str], CatchUpRule],
    now: datetime,
    *,
    before: datetime,
) -> ReopenPlan:
    """What becomes of the unfinished fires of slots before `before` (later ones are left
    alone): fired again while within their job's max-lateness (the deterministic task id, and
    a trigger's recorded intent, make that safe), given up after it. A paused job's wait:
    they fire if it is resumed in time, and are given up as skipped if not."""
    retries: list[Decision] = []
    given_up: list[GiveUp] = []
    waiting: list[OpenFire] = []
    for open_fire in open_fires:
        if open_fire.slot >= before:
            continue
        job = cron.job(open_fire.job)
        rule = catch_up_of(open_fire.job)
        pause = _pause_of(open_fire.job, pauses)
        late = overdue(open_fire.due, now, rule.max_lateness, retrying=open_fire.retrying)
        if job is None or late:
            given_up.append(_give_up(open_fire, job, pause, rule))
        elif pause is None:
            planned = PlannedFire(open_fire.slot, job.name, job)
            retries.append(Decision(planned, Occasion.RETRY, retried=open_fire))
        else:
            waiting.append(open_fire)
    return ReopenPlan(tuple(retries), tuple(given_up), tuple(waiting))


def _give_up(
    open_fire: OpenFire, job: Job | None, pause: ActivePause | None, rule: CatchUpRule
) -> GiveUp:
    if job is None:
        reason = f"not fired: {open_fire.job} is no longer a job of .cron.yml"
        return GiveUp(open_fire, None, SkipReason.JOB_GONE, reason)
    if pause is not None:
        return GiveUp(open_fire, job, SkipReason.PAUSED, pause.summary)
    return GiveUp(open_fire, job, None, _given_up(open_fire, rule.max_lateness))


def _given_up(open_fire: OpenFire, max_lateness: timedelta) -> str:
    """Why an unfinished fire past its max-lateness ended failed."""
    limit = f"its max-lateness {format_duration(max_lateness)} has passed"
    if open_fire.asked_at is not None:
        limit += f" since a backfill asked for it at {open_fire.asked_at:%Y-%m-%dT%H:%M:%SZ}"
    if open_fire.retrying:
        return (
            f"given up after {counted(open_fire.attempts, 'attempt')}: {limit}; the last one: "
            f"{open_fire.error}"
        )
    return (
        f"given up: replica {open_fire.replica} claimed it and stopped before recording how it "
        f"ended, and {limit}"
        + (f"; task {open_fire.task_id} may exist" if open_fire.task_id else "")
    )


def _pause_of(job: str, pauses: Sequence[ActivePause]) -> ActivePause | None:
    return next((pause for pause in pauses if pause.covers(job)), None)
