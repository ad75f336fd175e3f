"""The notices people were sent about a fire or a project, and a fire's page: its record, how
its run went (as the watcher recorded it) and those notices.
"""

from __future__ import annotations

from typing import Any

from scheduler.ledger import TASK_GROUP_PATH, AsyncLedger, Fire, Letter, OperationsLedger, Watch
from scheduler.operations.ledgered import NoSuchFireError
from scheduler.operations.models import FireDetail
from scheduler.operations.page_models import FirePageOut, NoticeOut
from scheduler.operations.runs import fire_out
from scheduler.reports.reporter import CHECK_IN_KEYS

NOTICES = 50


def notice_out(letter: Letter) -> NoticeOut:
    event = letter.event
    if letter.key.startswith(CHECK_IN_KEYS):
        kind, title = "check-in", f"{event.get('job')}: {event.get('status')}"
    else:
        kind, title = str(event.get("kind")), str(event.get("title") or "")
    return NoticeOut(
        kind=kind,
        title=title,
        destination=letter.destination,
        state=str(letter.state),
        queued_at=letter.created_at,
        sent_at=letter.sent_at,
        error=letter.last_error,
        fire_id=letter.fire_id,
    )


async def fire_page(ledger: AsyncLedger[OperationsLedger], fire_id: int) -> FirePageOut:
    """A fire, how its task went, and the notices its watch queued. Raises NoSuchFireError."""

    def read(port: OperationsLedger) -> tuple[Fire | None, Watch | None, list[Letter]]:
        fire = port.fire_by_id(fire_id)
        if fire is None:
            return None, None, []
        watches = port.watches_of([fire_id])
        return fire, watches.get(fire_id), port.letters_about(fire_id=fire_id, limit=NOTICES)

    fire, watch, letters = await ledger.run(read)
    if fire is None:
        raise NoSuchFireError(f"no fire {fire_id}")
    detail = FireDetail.model_validate(fire_out(fire, watch))
    group = task_group_of(detail.details)
    outcome = detail.outcome
    return FirePageOut(
        fire=detail,
        task_group_id=(outcome.task_group_id if outcome else None) or group,
        outcome=outcome,
        attempt=fire.attempt,
        lease_until=fire.lease_until,
        sent_at=fire.sent_at,
        notices=[notice_out(letter) for letter in letters],
    )


def task_group_of(details: dict[str, Any] | None) -> str | None:
    """The task group of the task a fire sent (its rendered task's), if it says; as the
    ledger's `task_groups` reads it."""
    value: Any = details
    for key in TASK_GROUP_PATH:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None
