"""How the commands lay out what operations answer for people: tables of fires, and a fire's
state in words.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.table import Table

from scheduler.cli.output import console
from scheduler.cron import format_slot
from scheduler.ledger import FireState
from scheduler.operations.models import FiredOut, FireOut
from scheduler.outcomes import UNCONFIRMED


def table(title: str, *columns: str) -> Table:
    """An empty table with these columns, long cells folded."""
    laid_out = Table(title=title, box=box.SIMPLE, title_justify="left")
    for column in columns:
        laid_out.add_column(column, overflow="fold")
    return laid_out


def print_fires(
    fires: Iterable[FiredOut | FireOut], heading: str, *, first_error_line: bool = False
) -> None:
    """One row per fire: project, job, slot, kind, state, task and its error (only the first
    line with `first_error_line`, for long listings)."""
    shown = table(heading, "project", "job", "slot", "kind", "state", "task", "error")
    for fire in fires:
        shown.add_row(
            fire.project,
            fire.job,
            format_slot(fire.slot),
            fire.kind,
            state_text(fire.state, fire.error),
            fire.task_id or "",
            _error(fire.error, first_line=first_error_line),
        )
    console().print(shown)


def _error(error: str | None, *, first_line: bool) -> str:
    if not error:
        return ""
    return error.splitlines()[0] if first_line else error


def state_text(state: str, error: str | None) -> str:
    """A fire's state as people read it: an already-fired fire not read back says so."""
    if state == FireState.ALREADY_FIRED and error and error.startswith(UNCONFIRMED):
        return f"{state} ({UNCONFIRMED})"
    return state
