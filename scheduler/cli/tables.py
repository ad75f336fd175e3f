"""How the commands lay out what operations answer for people: tables of fires, and a fire's
state and its run's outcome in words.
"""

from __future__ import annotations

from collections.abc import Iterable

from scheduler.cli.output import console, table, wide_output
from scheduler.cron import format_slot
from scheduler.ledger import FireState
from scheduler.operations.models import FiredOut, FireOut, TaskOutcomeOut
from scheduler.outcomes import UNCONFIRMED

# `table` is the one way to lay a table out; the commands that print fires find it here too.
__all__ = ["print_fires", "state_text", "table"]


def print_fires(
    fires: Iterable[FiredOut | FireOut], heading: str, *, first_error_line: bool = False
) -> None:
    """One row per fire: project, job, slot, kind, state, how its run went (for fires of the
    history: those just fired have no run yet), task and its error (only the first line with
    `first_error_line`, for long listings, unless `-o wide` asks for it whole; left out where
    the width is too narrow for it)."""
    listed = list(fires)
    recorded = any(isinstance(fire, FireOut) for fire in listed)
    columns = ("project", "job", "slot", "kind", "state", *(("outcome",) if recorded else ()))
    shown = table(heading, *columns, "task", "error", extra=["error"])
    first_error_line = first_error_line and not wide_output()
    for fire in listed:
        outcome = (outcome_text(fire.outcome),) if isinstance(fire, FireOut) else ()
        shown.add_row(
            fire.project,
            fire.job,
            format_slot(fire.slot),
            fire.kind,
            state_text(fire.state, fire.error, decided_before=_decided_before(fire)),
            *outcome,
            fire.task_id or "",
            _error(fire.error, first_line=first_error_line),
        )
    console().print(shown)


def outcome_text(outcome: TaskOutcomeOut | None) -> str:
    """How a fire's run went, in a cell: its state, then the watched task group's counts."""
    if outcome is None:
        return ""
    said = outcome.state
    if outcome.task_state == "gone":
        said += " (task gone from the queue)"
    elif outcome.reason and outcome.reason not in (outcome.state, outcome.task_state):
        said += f" ({outcome.reason})"
    return said if outcome.group is None else f"{said}\ngroup: {outcome.group.summary}"


def last_fire_text(fire: FireOut) -> str:
    """A job's last fire in a cell: its slot, kind and state, and how its run went."""
    said = f"{format_slot(fire.slot)} {fire.kind} {state_text(fire.state, fire.error)}"
    if fire.outcome is not None and fire.outcome.state != fire.state:
        said += f" -> {outcome_text(fire.outcome)}"
    return said


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
