"""The words of notices: what each way a task ends means, what expiry events are called and
what to do about them, and how a project's recovery from each kind of breakage is said.
"""

from __future__ import annotations

from scheduler.expiry.model import ExpiryEventKind
from scheduler.notify.events import EventKind

CRON_FILE = ".cron.yml"
TASKCLUSTER_YML = ".taskcluster.yml"
# Exception reasons that are somebody's decision or a consequence, not a failure of the task.
CANCELED = "canceled"
DEADLINE_EXCEEDED = "deadline-exceeded"
SOURCE, CRON, TEMPLATE, PREFLIGHT = "source", "cron", "template", "preflight"
# How many preflight findings one message lists.
FINDINGS_SHOWN = 20

# What to do when a project's repository, or its `.cron.yml`, keeps its jobs from firing.
BROKEN_ADVICE = {
    SOURCE: (
        "Check the repository URL and branch in the service configuration and that the service "
        "can reach it; it tries again every slot."
    ),
    CRON: (
        f"A job with an error does not fire until {CRON_FILE} is fixed and pushed (if the file "
        "does not parse, no job fires); the others still do. "
        f"`tc-scheduler check {CRON_FILE}` shows the errors before you push."
    ),
}

TASK_ERRORS = {
    "failed": "the task ran and failed: its log says why",
    "deadline-exceeded": "the task did not finish before its deadline",
    "canceled": "the task was canceled",
    "claim-expired": "the worker running the task stopped answering (claim expired)",
    "worker-shutdown": "the worker running the task shut down",
    "malformed-payload": "the worker refused the task's payload (malformed-payload)",
    "resource-unavailable": "the worker could not get a resource the task needs",
    "internal-error": "the worker had an internal error",
    "superseded": "the task was superseded",
    "intermittent-task": "the task reported an intermittent failure",
}

EXPIRY_KINDS = {
    ExpiryEventKind.EXPIRING: EventKind.EXPIRING,
    ExpiryEventKind.EXPIRED: EventKind.EXPIRED,
    ExpiryEventKind.STARTED: EventKind.REMEDIATION_STARTED,
    ExpiryEventKind.SUCCEEDED: EventKind.REMEDIATION_SUCCEEDED,
    ExpiryEventKind.NOTHING_REBUILT: EventKind.REMEDIATION_NOTHING_REBUILT,
    ExpiryEventKind.FAILED: EventKind.REMEDIATION_FAILED,
    ExpiryEventKind.DRY_RUN: EventKind.REMEDIATION_DRY_RUN,
    ExpiryEventKind.SCAN_FAILED: EventKind.EXPIRY_SCAN_FAILED,
}
EXPIRY_TITLES = {
    EventKind.EXPIRING: "cached tasks expire soon",
    EventKind.EXPIRED: "cached tasks have expired",
    EventKind.REMEDIATION_STARTED: "rebuilding expiring cached tasks",
    EventKind.REMEDIATION_SUCCEEDED: "cached tasks rebuilt",
    EventKind.REMEDIATION_NOTHING_REBUILT: "the rebuild action rebuilt nothing",
    EventKind.REMEDIATION_FAILED: "rebuilding cached tasks failed",
    EventKind.REMEDIATION_DRY_RUN: "would rebuild expiring cached tasks (dry run)",
    EventKind.EXPIRY_SCAN_FAILED: "the expiry scan failed",
}
EXPIRY_ADVICE = {
    EventKind.EXPIRED: (
        "Tasks that use these will fail until they are rebuilt; the service triggers the "
        "rebuild action, or run `tc-scheduler expiry remediate`."
    ),
    EventKind.REMEDIATION_FAILED: (
        "Open the task group, fix the failed rebuilds and rerun them, or run "
        "`tc-scheduler expiry remediate` once the cause is fixed."
    ),
    EventKind.REMEDIATION_NOTHING_REBUILT: (
        "Check that the action rebuilds these kinds with the configured input; the service "
        "tries again once the cooldown has passed."
    ),
    EventKind.EXPIRY_SCAN_FAILED: (
        "The error says which call failed: a 403 names the missing scopes, a 5xx or a lost "
        "connection is Taskcluster's trouble; the next scan tries again."
    ),
}
RECOVERED_TITLES = {
    SOURCE: "the repository can be read again",
    CRON: f"{CRON_FILE} is valid again",
    TEMPLATE: f"{TASKCLUSTER_YML} renders again",
    PREFLIGHT: "preflight finds nothing Taskcluster would refuse any more",
}
