"""The ledger: the service's own database of claims, fires, slots, watches, notices and acts.

The one place that knows its schema (SQLAlchemy models, Alembic migrations); nothing of Taskcluster.
"""

from scheduler.ledger.async_ledger import AsyncLedger, open_async_ledger, upgrade_async_ledger
from scheduler.ledger.connecting import LedgerUnreachableError, LedgerURLError
from scheduler.ledger.history import TASK_GROUP_PATH
from scheduler.ledger.ledger import Ledger
from scheduler.ledger.migrating import LedgerTooNewError
from scheduler.ledger.notice_records import Backlog, Health, Incident, Letter, LetterState, Notice
from scheduler.ledger.ports import (
    EngineLedger,
    ExpiryLedger,
    MonitorLedger,
    NotifierLedger,
    OperationsLedger,
    OutboxLedger,
    WatcherLedger,
)
from scheduler.ledger.records import (
    OPEN_STATES,
    Act,
    AuditEntry,
    Claim,
    Cutoffs,
    Fire,
    FireKind,
    FireState,
    GroupCounts,
    Outcome,
    Pause,
    Pruned,
    Remediation,
    RemediationState,
    RunState,
    SignIn,
    SlotOutcome,
    SlotRecord,
    UnresolvedFire,
    Watch,
    WatchPhase,
    WatchSpec,
    WatchStep,
)
from scheduler.ledger.retention import PRUNE_BATCH

__all__ = [
    "OPEN_STATES",
    "PRUNE_BATCH",
    "TASK_GROUP_PATH",
    "Act",
    "AsyncLedger",
    "AuditEntry",
    "Backlog",
    "Claim",
    "Cutoffs",
    "EngineLedger",
    "ExpiryLedger",
    "Fire",
    "FireKind",
    "FireState",
    "GroupCounts",
    "Health",
    "Incident",
    "Ledger",
    "LedgerTooNewError",
    "LedgerURLError",
    "LedgerUnreachableError",
    "Letter",
    "LetterState",
    "MonitorLedger",
    "Notice",
    "NotifierLedger",
    "OperationsLedger",
    "OutboxLedger",
    "Outcome",
    "Pause",
    "Pruned",
    "Remediation",
    "RemediationState",
    "RunState",
    "SignIn",
    "SlotOutcome",
    "SlotRecord",
    "UnresolvedFire",
    "Watch",
    "WatchPhase",
    "WatchSpec",
    "WatchStep",
    "WatcherLedger",
    "open_async_ledger",
    "upgrade_async_ledger",
]
