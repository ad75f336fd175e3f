"""The ledger's open fires (retries due, claims a stopped replica left) as the slot plan takes
them, and their end when the plan gives them up: failed and reported, or skipped.

The tick and the recovery round both use it; the plan itself is `cron/slots.py`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace

import structlog

from scheduler.config.model import Project
from scheduler.cron.slots import Decision, GiveUp, OpenFire, Skip
from scheduler.cron.timing import format_slot
from scheduler.engine.decision_task import settle_given_up
from scheduler.engine.firing import FireRunner, watch_spec
from scheduler.ledger import Claim, Fire, FireKind, FireState, Outcome
from scheduler.outcomes import FireResult

log = structlog.get_logger("tc_scheduler.engine")


def open_fire(fire: Fire) -> OpenFire:
    """An open fire of the ledger, as the slot plan takes it."""
    return OpenFire(
        fire.slot,
        fire.job,
        retrying=fire.state is FireState.RETRYING,
        attempts=fire.attempt,
        replica=fire.replica,
        error=fire.error,
        task_id=fire.task_id,
        asked_at=fire.asked_at,
    )


def kind_of(decision: Decision | Skip, open_fires: Mapping[OpenFire, Fire]) -> FireKind:
    """The kind a planned fire is recorded with: a retry keeps its own."""
    if decision.retried is not None:
        return open_fires[decision.retried].kind
    return FireKind(decision.occasion.value)


def taken_over(decisions: Sequence[Decision], fired: Sequence[FireResult]) -> list[FireResult]:
    """The fires made for `decisions`, each marked if it took over the claim of a replica that
    stopped (not a retry that was due: that claim was nobody's)."""
    return [
        replace(result, taken_over=True)
        if decision.retried is not None
        and not decision.retried.retrying
        and result.state is not None
        else result
        for decision, result in zip(decisions, fired, strict=True)
    ]


async def give_up(
    runner: FireRunner,
    project: Project,
    given_up: Sequence[GiveUp],
    open_fires: Mapping[OpenFire, Fire],
) -> None:
    """Finish unfinished fires past their job's max-lateness: failed (and reported), or
    skipped when their job is paused or gone from `.cron.yml`. One that may have made its
    task is created if the queue has it, and failed as not created if it does not."""
    setting = runner.setting
    fires = [open_fires[decision.open_fire] for decision in given_up]
    claims = await runner.claim(project.name, [(fire.job, fire.slot, fire.kind) for fire in fires])
    async with runner.holding(claim for claim in claims if claim is not None):
        outcomes = await asyncio.gather(
            *(
                _given_up(runner, project, decision, fire, claim)
                for decision, fire, claim in zip(given_up, fires, claims, strict=True)
                if claim is not None  # else another replica got there first
            )
        )
    if outcomes:
        now = setting.clock()
        await setting.ledger.run(lambda ledger: ledger.finish_many(outcomes, now=now))


async def _given_up(
    runner: FireRunner, project: Project, give_up: GiveUp, fire: Fire, claim: Claim
) -> Outcome:
    if not give_up.failed:
        return Outcome(claim, FireState.SKIPPED, error=give_up.reason)
    assert give_up.job is not None
    state, task_id = FireState.FAILED, fire.task_id
    error: str | None = give_up.reason
    if task_id is not None:  # whether it made its task is not known: ask once
        clients = runner.setting.clients.for_project(project, fire.job)
        state, task_id, error = await settle_given_up(clients, task_id, give_up.reason)
    if state is FireState.FAILED:
        log.error(
            "fire given up",
            project=project.name,
            job=fire.job,
            slot=format_slot(fire.slot),
            attempts=fire.attempt,
            error=fire.error,
        )
    watch = watch_spec(project, give_up.job)
    return Outcome(claim, state, task_id, fire.revision, error, fire.details, watch)
