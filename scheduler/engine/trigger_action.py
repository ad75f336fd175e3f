"""The `trigger-action` job type: trigger an action of the revision's decision task, once.

Taskcluster cannot make triggerHook idempotent, so the intent is in the ledger before the
trigger goes out, and an attempt after one that may have sent it first looks for its task.
"""

from __future__ import annotations

import hashlib

import structlog

from scheduler.actions.spec import decision_index_path
from scheduler.actions.triggering import (
    SETTLE,
    Triggered,
    TriggerError,
    find_sent,
    prepare_trigger,
    send,
)
from scheduler.cron import DecisionTask
from scheduler.engine.fires import Dispatched, FireMeans, FireRequest
from scheduler.ledger import Claim, FireKind, FireState
from scheduler.outcomes import FireError
from scheduler.taskcluster import Clients

log = structlog.get_logger("tc_scheduler.engine")


async def fire_trigger_action(fire: FireRequest, claim: Claim, means: FireMeans) -> Dispatched:
    """Trigger the job's action once: the intent (what is sent, when) is in the ledger
    before the trigger goes out, and an attempt after one that may have sent it first
    looks for the task it made."""
    project, snapshot, job = fire.project, fire.snapshot, fire.job
    assert not isinstance(job.kind, DecisionTask)
    clients = means.clients
    if claim.attempt > 1:
        earlier = await _earlier_trigger(clients, claim, means)
        if earlier is not None:
            return earlier
    path = decision_index_path(project.trust_domain, project.name, snapshot.revision)
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
            marker=marker(claim),
        )
    except TriggerError as error:
        raise _failed(error) from None
    if means.dry_run:
        log.info("dry run: hook not triggered", **prepared.details())
        return Dispatched(FireState.DRY_RUN, None, prepared.details(), None)
    sent_at = means.clock()
    details = prepared.details()
    if not await means.ledger.run(
        lambda ledger: ledger.mark_sent(claim, now=sent_at, details=details)
    ):
        raise FireError("not triggered: another replica took this fire over; it fires there")
    try:
        triggered = await send(clients, prepared, sent_at=sent_at)
    except TriggerError as error:
        raise _failed(error) from None
    return Dispatched(FireState.CREATED, triggered.task_id, triggered.details(), None)


def marker(claim: Claim) -> str:
    """The mark a fire's trigger carries, to tell the task it made from any other: its slot,
    and a digest naming the project, job and (for a manual fire) the fire itself."""
    names = f"{claim.project}\n{claim.job}\n{claim.slot.isoformat()}"
    if claim.kind is FireKind.MANUAL:
        names += f"\n{claim.fire_id}"
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    return f"tcs:{claim.slot:%Y%m%dT%H%MZ}:{digest}"


def _failed(error: TriggerError) -> FireError:
    return FireError(str(error), transient=error.transient, not_before=error.not_before)


async def _earlier_trigger(clients: Clients, claim: Claim, means: FireMeans) -> Dispatched | None:
    """What the trigger an earlier attempt of this fire sent made: ALREADY_FIRED with its
    task, or None when none was sent or it made no task (so this attempt sends one).
    Raises FireError (transient) while that cannot be known."""
    earlier = await means.ledger.run(lambda ledger: ledger.fire_by_id(claim.fire_id))
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
    if means.clock() < settled:
        # The trigger may still be in the hooks service's hands: look again once it cannot be.
        raise FireError(
            f"{what} and made no task yet; looked for again from {settled:%H:%M:%S} UTC",
            transient=True,
            not_before=settled,
        )
    return None
