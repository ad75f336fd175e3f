"""The ledger: the service's own database of claims, fires, slots, watches, notices and acts.

The one place that knows its schema (SQLAlchemy models, Alembic migrations); nothing of Taskcluster.
"""

from scheduler.ledger.async_ledger import AsyncLedger, open_async_ledger
from scheduler.ledger.connecting import LedgerURLError
from scheduler.ledger.ledger import Ledger
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
    Backlog,
    Claim,
    Fire,
    FireKind,
    FireState,
    Health,
    Incident,
    Letter,
    LetterState,
    Notice,
    Outcome,
    Pause,
    Remediation,
    RemediationState,
    SlotOutcome,
    SlotRecord,
    Watch,
    WatchPhase,
    WatchSpec,
)

__all__ = [
    "OPEN_STATES",
    "Act",
    "AsyncLedger",
    "AuditEntry",
    "Backlog",
    "Claim",
    "EngineLedger",
    "ExpiryLedger",
    "Fire",
    "FireKind",
    "FireState",
    "Health",
    "Incident",
    "Ledger",
    "LedgerURLError",
    "Letter",
    "LetterState",
    "MonitorLedger",
    "Notice",
    "NotifierLedger",
    "OperationsLedger",
    "OutboxLedger",
    "Outcome",
    "Pause",
    "Remediation",
    "RemediationState",
    "SlotOutcome",
    "SlotRecord",
    "Watch",
    "WatchPhase",
    "WatchSpec",
    "WatcherLedger",
    "open_async_ledger",
]
