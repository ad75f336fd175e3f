"""The ledger as each consumer sees it: a port per consumer, made of the stores it works on.

Consumers depend on their port, not on `Ledger`, and reach it through `AsyncLedger[TheirPort]`;
`Ledger` is every port at once.
"""

from __future__ import annotations

from scheduler.ledger.audit import AuditStore
from scheduler.ledger.claims import ClaimStore
from scheduler.ledger.history import HistoryStore
from scheduler.ledger.migrating import SchemaStore
from scheduler.ledger.notices import NoticeStore
from scheduler.ledger.outbox import OutboxStore
from scheduler.ledger.pauses import PauseStore
from scheduler.ledger.remediations import RemediationStore
from scheduler.ledger.retention import RetentionStore
from scheduler.ledger.sessions import SessionStore
from scheduler.ledger.watches import WatchStore


class ExpiryLedger(RemediationStore):
    """The expiry remediator's: one remediation at a time per project, and its verdict."""


class EngineLedger(ClaimStore, HistoryStore, PauseStore, ExpiryLedger):
    """The engine's: claims and their outcomes, evaluated slots and fires, pauses; and the
    remediations of the expiry scans it runs."""


class WatcherLedger(WatchStore):
    """The watcher's: the watches it moves on, each step's notices in the same transaction."""


class NotifierLedger(NoticeStore):
    """The notifier's: notices of what happened, queued for their destinations."""


class OutboxLedger(OutboxStore):
    """The postman's: letters taken under a lease, renewed, settled or released."""


class OperationsLedger(
    HistoryStore,
    PauseStore,
    AuditStore,
    NoticeStore,
    OutboxStore,
    RetentionStore,
    WatchStore,
    RemediationStore,
    SessionStore,
):
    """The operations': history, pauses, the audit log, notices, the outbox's letters,
    pruning what is past retention, the dashboard's sessions; and, for the pages, how each
    fire's task went (its watch) and the expiry watch's rebuilds."""


class MonitorLedger(OutboxStore, SchemaStore):
    """The service monitor's: the outbox's backlog, and the migrations the schema lacks (the
    probe that says whether the ledger answers)."""
