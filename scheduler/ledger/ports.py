"""The ledger as each consumer sees it: a narrow Protocol per consumer, over the facade's methods.

Consumers depend on their port, not on `Ledger`, and reach it through `AsyncLedger[TheirPort]`;
the facade satisfies every one (mypy checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from scheduler.ledger.records import (
    Act,
    AuditEntry,
    Claim,
    Fire,
    FireKind,
    FireState,
    Letter,
    LetterState,
    Notice,
    Outcome,
    Pause,
    Remediation,
    RemediationState,
    SlotOutcome,
    Watch,
    WatchPhase,
)


class ExpiryLedger(Protocol):
    """The expiry remediator's: one remediation at a time per project, and its verdict."""

    def running_remediation(self, project: str) -> Remediation | None: ...

    def start_remediation(
        self,
        project: str,
        *,
        action: str,
        expiring: list[dict[str, Any]],
        replica: str,
        now: datetime,
        cooldown: timedelta,
    ) -> Remediation | None: ...

    def remediation_triggered(
        self, remediation_id: int, *, task_id: str | None, task_group_id: str | None
    ) -> None: ...

    def finish_remediation(
        self,
        remediation_id: int,
        *,
        state: RemediationState,
        now: datetime,
        error: str | None = None,
    ) -> bool: ...


class EngineLedger(ExpiryLedger, Protocol):
    """The engine's: claims and their outcomes, evaluated slots, open fires, pauses; and the
    remediations of the expiry scans it runs (`ExpiryLedger`)."""

    def claim_many(
        self,
        project: str,
        wanted: Sequence[tuple[str, datetime, FireKind]],
        *,
        replica: str,
        now: datetime,
        lease: timedelta,
    ) -> list[Claim | None]: ...

    def claim_manual(
        self,
        project: str,
        job: str,
        *,
        replica: str,
        now: datetime,
        lease: timedelta,
        min_interval: timedelta,
        unsure_for: timedelta = ...,
    ) -> Claim | Fire: ...

    def renew_many(
        self, claims: Sequence[Claim], *, now: datetime, lease: timedelta
    ) -> list[bool]: ...

    def mark_sent(self, claim: Claim, *, now: datetime, details: dict[str, Any]) -> bool: ...

    def finish_many(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[bool]: ...

    def release(self, claim: Claim, *, now: datetime) -> bool: ...

    def open_fires(self, *, due_at: datetime, project: str | None = None) -> list[Fire]: ...

    def record_skip(
        self,
        project: str,
        job: str,
        slot: datetime,
        *,
        kind: FireKind,
        reason: str,
        replica: str,
        now: datetime,
    ) -> bool: ...

    def record_slot(
        self,
        project: str,
        slot: datetime,
        *,
        revision: str | None,
        outcome: SlotOutcome,
        error: str | None,
        replica: str,
        now: datetime,
    ) -> None: ...

    def last_evaluated_slot(self, project: str) -> datetime | None: ...

    def fire_by_id(self, fire_id: int) -> Fire | None: ...

    def pauses(self, *, project: str | None = None, at: datetime | None = None) -> list[Pause]: ...


class WatcherLedger(Protocol):
    """The watcher's: the fires being followed, each step moved on with its notices queued."""

    def watches(self, *, limit: int | None = None) -> list[Watch]: ...

    def advance_watch(
        self,
        watch: Watch,
        phase: WatchPhase,
        *,
        now: datetime,
        notices: Sequence[Notice] = (),
        task_state: str | None = None,
        reason: str | None = None,
        task_group_id: str | None = None,
    ) -> bool: ...


class NotifierLedger(Protocol):
    """The notifier's: notices queued in the outbox (incidents kept)."""

    def report(self, notices: Sequence[Notice], *, now: datetime) -> list[str]: ...


class OutboxLedger(Protocol):
    """The postman's: letters taken under a lease, renewed, released and settled."""

    def take_letters(
        self, *, replica: str, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[Letter]: ...

    def renew_letters(
        self, letters: Sequence[Letter], *, now: datetime, lease: timedelta
    ) -> list[Letter]: ...

    def release_letters(self, letters: Sequence[Letter]) -> None: ...

    def letter_sent(
        self, letter: Letter, *, now: datetime, posted: dict[str, Any] | None = None
    ) -> bool: ...

    def letter_failed(self, letter: Letter, *, error: str, retry_at: datetime | None) -> bool: ...


class OperationsLedger(Protocol):
    """The operator's acts and reads: history, the audit log (written once per act), pauses,
    and a test notice queued and looked up in the outbox."""

    def fires(
        self,
        *,
        project: str | None = None,
        job: str | None = None,
        state: FireState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Fire]: ...

    def fire_by_id(self, fire_id: int) -> Fire | None: ...

    def record_act(self, act: Act, *, ok: bool, result: str, now: datetime) -> AuditEntry: ...

    def audit_log(
        self, *, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditEntry]: ...

    def pauses(self, *, project: str | None = None, at: datetime | None = None) -> list[Pause]: ...

    def pause(
        self,
        project: str,
        job: str | None,
        *,
        reason: str,
        until: datetime | None,
        act: Act,
        now: datetime,
    ) -> Pause: ...

    def resume(self, project: str, job: str | None, *, act: Act, now: datetime) -> Pause | None: ...

    def report(self, notices: Sequence[Notice], *, now: datetime) -> list[str]: ...

    def letters(
        self,
        *,
        key: str | None = None,
        state: LetterState | None = None,
        destination: str | None = None,
        limit: int | None = None,
    ) -> list[Letter]: ...
