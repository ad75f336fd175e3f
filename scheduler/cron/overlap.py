"""The overlap plan: what each job's overlap policy makes of a slot's fires while an earlier
fire of the job may still run — fire all the same, skip, or replace it. Pure: the engine reads.

`allow` (the default) fires as before. `skip` makes no new fire while another fire of the job
is unresolved. `replace` makes only the newest new fire of the job, after cancelling the task
groups of the unresolved ones; when one cannot be cancelled (it is still being made, its group
is not known, it is an action's, whose group is its push's, or it is newer) the new fire is
skipped instead, so that two never run. A retry finishes a fire already decided: no policy
holds it back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from scheduler.cron.plan import PlannedFire
from scheduler.cron.slots import Decision, GiveUp, Skip, SkipReason
from scheduler.cron.timing import format_slot

ALLOW, SKIP, REPLACE = "allow", "skip", "replace"


@dataclass(frozen=True)
class RunningFire:
    """A fire of a job that may still run, as the ledger knows it."""

    job: str
    slot: datetime
    manual: bool
    task_id: str | None
    task_group_id: str | None
    state: str  # the task's last state seen, or the fire's own while it is being made
    being_made: bool = False  # claimed or retrying: its task may not exist yet
    waiting_for_group: bool = False  # its task completed; its watched group has not resolved
    action: bool = False  # an action's task: its group is the push's decision group
    group_watched: bool = False  # it runs until its task group resolves, not only its task

    def is_fire_of(self, fire: PlannedFire) -> bool:
        """Whether this is `fire` itself (a slot has one scheduled or catch-up fire)."""
        return not self.manual and self.slot == fire.slot and self.job == fire.job_name

    @property
    def named(self) -> str:
        """The fire, its task and what it waits for, as history shows it."""
        what = "manual fire" if self.manual else "fire"
        if self.being_made:
            return f"the {what} of {format_slot(self.slot)} ({self.state}, its task not made yet)"
        if self.waiting_for_group:
            return (
                f"the {what} of {format_slot(self.slot)} (task {self.task_id} completed, its "
                f"task group {self.task_group_id} still running)"
            )
        return f"the {what} of {format_slot(self.slot)} (task {self.task_id}, {self.state})"


@dataclass(frozen=True)
class OverlapPlan:
    """The fires to make, the task groups to cancel before each replacing fire, and the fires
    the policies skip (recorded skipped, with the reason)."""

    fires: tuple[Decision, ...]
    replacing: Mapping[PlannedFire, tuple[RunningFire, ...]]
    skipped: tuple[Skip, ...]


def plan_overlap(
    decisions: Sequence[Decision],
    running: Iterable[RunningFire],
    overlap_of: Callable[[str], str],
    *,
    given_up: Iterable[GiveUp] = (),
) -> OverlapPlan:
    """Apply each job's overlap policy (`overlap_of`) to the slot plan's `decisions` (in their
    order), given the fires of the project that may still run. Of those, the unfinished fires
    the slot plan gives up (`given_up`) and that never sent a task run nothing."""
    ended = {(g.open_fire.job, g.open_fire.slot) for g in given_up if g.open_fire.task_id is None}
    running_of: dict[str, list[RunningFire]] = {}
    for fire in running:
        if not (fire.being_made and not fire.manual and (fire.job, fire.slot) in ended):
            running_of.setdefault(fire.job, []).append(fire)
    by_job: dict[str, list[Decision]] = {}
    for decision in decisions:
        by_job.setdefault(decision.fire.job_name, []).append(decision)
    fires: list[Decision] = []
    replacing: dict[PlannedFire, tuple[RunningFire, ...]] = {}
    skipped: list[Skip] = []
    for job, wanted in by_job.items():
        policy = overlap_of(job)
        new = [d for d in wanted if d.retried is None]
        fires.extend(d for d in wanted if d.retried is not None or policy == ALLOW)
        if policy == ALLOW or not new:
            continue
        if policy == SKIP:
            made, held = _skip(new, running_of.get(job, []))
            fires.extend(made)
            skipped.extend(held)
            continue
        *older, newest = new
        superseded = (
            f"overlap policy replace: the fire of {format_slot(newest.fire.slot)} replaces it"
        )
        skipped.extend(d.skipped(SkipReason.OVERLAP, superseded) for d in older)
        previous = tuple(r for r in running_of.get(job, []) if not r.is_fire_of(newest.fire))
        slot = newest.fire.slot
        blocking = next((r for r in previous if _cannot_cancel(r, slot) is not None), None)
        if blocking is not None:
            reason = f"overlap policy replace: {blocking.named}: {_cannot_cancel(blocking, slot)}"
            skipped.append(newest.skipped(SkipReason.OVERLAP, reason))
            continue
        fires.append(newest)
        if previous:
            replacing[newest.fire] = previous
    order = {decision: n for n, decision in enumerate(decisions)}
    return OverlapPlan(
        tuple(sorted(fires, key=order.__getitem__)),
        replacing,
        tuple(sorted(skipped, key=lambda s: (s.fire.slot, s.fire.job_name))),
    )


def _skip(
    new: Sequence[Decision], running: Sequence[RunningFire]
) -> tuple[list[Decision], list[Skip]]:
    """`skip`: the first new fire is made if nothing of its job runs; each later one of the
    same plan would overlap it."""
    made: list[Decision] = []
    held: list[Skip] = []
    for decision in new:
        others = [r for r in running if not r.is_fire_of(decision.fire)]
        if others:
            reason = f"overlap policy skip: {others[0].named} has not resolved"
        elif made:
            first = format_slot(made[0].fire.slot)
            reason = f"overlap policy skip: the fire of {first}, made at the same tick, runs"
        else:
            made.append(decision)
            continue
        held.append(decision.skipped(SkipReason.OVERLAP, reason))
    return made, held


def _cannot_cancel(fire: RunningFire, slot: datetime) -> str | None:
    """Why `replace` cannot cancel what `fire` runs for a fire of `slot` (None: it can), so
    that fire is not made."""
    if fire.slot > slot:
        return "a newer fire is not replaced by an older one; not fired"
    if fire.being_made:
        return "its task group cannot be cancelled before its task is made; not fired"
    if fire.action:
        return "an action's task group is its push's, which replace does not cancel; not fired"
    if fire.task_group_id is None:
        return "its task group is not known, so it cannot be cancelled; not fired"
    return None
