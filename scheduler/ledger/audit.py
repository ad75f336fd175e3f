"""The audit log: every act of a person or a script (who, what, on what, with which input, and
the result), secrets in it masked; written on its own or in the transaction of the act.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.common.redaction import scrub, scrub_data
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import AuditRow
from scheduler.ledger.records import Act, AuditEntry
from scheduler.ledger.store import Store, aware


class AuditStore(Store):
    """Writes and reads the audit log."""

    def record_act(self, act: Act, *, ok: bool, result: str, now: datetime) -> AuditEntry:
        """Write one act and its outcome to the audit log (secrets in it masked)."""
        with self._transaction(writing=True) as session:
            return write_act(session, act, ok=ok, result=result, now=aware("now", now))

    def audit_log(
        self, *, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Acts, newest first."""
        query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc())
        if since is not None:
            query = query.where(AuditRow.at >= aware("since", since))
        return self._records(AuditEntry, query.limit(limit))


def write_act(session: Session, act: Act, *, ok: bool, result: str, now: datetime) -> AuditEntry:
    """`AuditStore.record_act` inside the caller's transaction (say, the pause it audits)."""
    row = AuditRow(
        at=now,
        actor=act.actor,
        action=act.action,
        target=act.target,
        input=scrub_data(act.input),
        ok=ok,
        result=scrub(result),
    )
    session.add(row)
    session.flush()
    return to_record(AuditEntry, row)
