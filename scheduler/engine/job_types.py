"""The job types a `.cron.yml` job can have, by name (build-decision's `JOB_TYPES`), and the one
place a fire goes to its type: a failure costs that fire only, never the others of a tick.
"""

from __future__ import annotations

import structlog

from scheduler.cron import DecisionTask, TriggerAction
from scheduler.engine.decision_task import fire_decision_task
from scheduler.engine.fires import Dispatched, FireMeans, FireRequest, JobType
from scheduler.engine.trigger_action import fire_trigger_action
from scheduler.ledger import Claim, FireState
from scheduler.outcomes import FireError

JOB_TYPES: dict[str, JobType] = {
    DecisionTask.type: fire_decision_task,
    TriggerAction.type: fire_trigger_action,
}

log = structlog.get_logger("tc_scheduler.engine")


async def dispatch(fire: FireRequest, claim: Claim, means: FireMeans) -> Dispatched:
    """Make the fire with its job's type; how it failed, if it did, is in the result."""
    try:
        return await JOB_TYPES[fire.job.kind.type](fire, claim, means)
    except FireError as error:
        return Dispatched(
            FireState.FAILED,
            error.task_id,
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
