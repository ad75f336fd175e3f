"""How the commands lay out what operations answer for people: tables of fires, and a fire's
state in words.
"""

from __future__ import annotations

from collections.abc import Iterable

from scheduler.cli.output import console, table, wide_output
from scheduler.cron import format_slot
from scheduler.ledger import FireState
from scheduler.operations.models import FiredOut, FireOut
from scheduler.outcomes import UNCONFIRMED

# `table` is the one way to lay a table out; the commands that print fires find it here too.
__all__ = ["print_fires", "state_text", "table"]


def print_fires(
    fires: Iterable[FiredOut | FireOut], heading: str, *, first_error_line: bool = False
) -> None:
    """One row per fire: project, job, slot, kind, state, task and its error (only the first
    line with `first_error_line`, for long listings, unless `-o wide` asks for it whole; left
    out where the width is too narrow for it)."""
    shown = table(
        heading, "project", "job", "slot", "kind", "state", "task", "error", extra=["error"]
    )
    first_error_line = first_error_line and not wide_output()
    for fire in fires:
        shown.add_row(
            fire.project,
            fire.job,
            format_slot(fire.slot),
            fire.kind,
            state_text(fire.state, fire.error, decided_before=_decided_before(fire)),
            fire.task_id or "",
            _error(fire.error, first_line=first_error_line),
        )
    console().print(shown)


def _error(error: str | None, *, first_line: bool) -> str:
    if not error:
        return ""
    return error.splitlines()[0] if first_line else error


def _decided_before(fire: FiredOut | FireOut) -> bool:
    return isinstance(fire, FiredOut) and fire.decided_before


def state_text(state: str, error: str | None, *, decided_before: bool = False) -> str:
    """A fire's state as people read it: an already-fired fire not read back says so, and one
    decided before (a slot ticked again) that it is the ledger's record of it."""
    if state == FireState.ALREADY_FIRED and error and error.startswith(UNCONFIRMED):
        state = f"{state} ({UNCONFIRMED})"
    return f"{state} (decided before)" if decided_before else state
