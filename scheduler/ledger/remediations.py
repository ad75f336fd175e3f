"""Remediations: rebuilds of a project's expiring cached tasks, at most one running per project
(across replicas) and none again within a cooldown, each with its action task and verdict.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import RemediationRow
from scheduler.ledger.records import Remediation, RemediationState
from scheduler.ledger.store import Store, aware, given, scrubbed, upsert


class RemediationStore(Store):
    """Starts, records and reads remediations."""

    def start_remediation(
        self,
        project: str,
        *,
        action: str,
        expiring: list[dict[str, Any]],
        replica: str,
        now: datetime,
        cooldown: timedelta,
    ) -> Remediation | None:
        """Start a remediation of `project`, or None: one is running (on any replica) or the
        last real one (not a dry run) started or ended less than `cooldown` ago."""
        now = aware("now", now)
        with self._transaction(writing=True) as session:
            # A dry run changed nothing, so it holds nothing back.
            latest = session.scalars(
                select(RemediationRow)
                .where(
                    RemediationRow.project == project,
                    RemediationRow.state != RemediationState.DRY_RUN.value,
                )
                .order_by(RemediationRow.started_at.desc(), RemediationRow.id.desc())
                .limit(1)
            ).first()
            if latest is not None:
                last_moment = latest.finished_at or latest.started_at
                if latest.state == RemediationState.RUNNING.value or last_moment > now - cooldown:
                    return None
            # The partial unique index turns a concurrent replica's second start into nothing.
            new_id = session.execute(
                upsert(session, RemediationRow)
                .values(
                    project=project,
                    state=RemediationState.RUNNING.value,
                    replica=replica,
                    action=action,
                    expiring=expiring,
                    started_at=now,
                )
                .on_conflict_do_nothing()
                .returning(RemediationRow.id)
            ).scalar_one_or_none()
            if new_id is None:
                return None
            row = session.get(RemediationRow, new_id)
            assert row is not None
            return to_record(Remediation, row)

    def remediation_triggered(
        self, remediation_id: int, *, task_id: str | None, task_group_id: str | None
    ) -> None:
        """Record the action task a running remediation triggered, and its task group."""
        with self._transaction(writing=True) as session:
            session.execute(
                update(RemediationRow)
                .where(RemediationRow.id == remediation_id)
                .values(task_id=task_id, task_group_id=task_group_id)
            )

    def finish_remediation(
        self,
        remediation_id: int,
        *,
        state: RemediationState,
        now: datetime,
        error: str | None = None,
    ) -> bool:
        """Record a running remediation's verdict; False if it was not running any more."""
        if state is RemediationState.RUNNING:
            raise ValueError("finish_remediation needs the verdict, not 'running'")
        with self._transaction(writing=True) as session:
            finished = session.execute(
                update(RemediationRow)
                .where(
                    RemediationRow.id == remediation_id,
                    RemediationRow.state == RemediationState.RUNNING.value,
                )
                .values(state=state.value, finished_at=aware("now", now), error=scrubbed(error))
                .returning(RemediationRow.id)
            ).scalar_one_or_none()
        return finished is not None

    def running_remediation(self, project: str) -> Remediation | None:
        with self._transaction(writing=False) as session:
            row = session.scalars(
                select(RemediationRow).where(
                    RemediationRow.project == project,
                    RemediationRow.state == RemediationState.RUNNING.value,
                )
            ).first()
            return to_record(Remediation, row) if row is not None else None

    def remediations(
        self, *, project: str | None = None, limit: int | None = None
    ) -> list[Remediation]:
        """Remediations, newest first."""
        query = (
            select(RemediationRow)
            .filter_by(**given(project=project))
            .order_by(RemediationRow.started_at.desc(), RemediationRow.id.desc())
        )
        return self._records(Remediation, query.limit(limit))
