"""What each act takes, checked the same whichever face asks: the API's JSON bodies, and the
dashboard's forms once parsed (`web/forms.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from scheduler.operations.models import MAX_FIRES, MAX_FIRES_LIMIT


def _in_utc_range(moment: datetime | None) -> datetime | None:
    """`moment`, if it has a UTC equivalent (a time at the calendar's edge with an offset
    has none)."""
    if moment is not None and moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                "is out of range once in UTC; give a time in years 1 to 9999"
            ) from None
    return moment


class PauseBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    until: datetime | None = Field(default=None, description="Lift the pause at this time.")

    _until_in_utc_range = field_validator("until")(_in_utc_range)


class BackfillBody(BaseModel):
    jobs: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="The jobs to backfill (default: every job that runs on the project).",
    )
    start: datetime = Field(description="The range's start (the command line's --from).")
    until: datetime = Field(description="The range's end, not in it; later than now: now.")
    max_fires: int = Field(
        default=MAX_FIRES,
        ge=1,
        le=MAX_FIRES_LIMIT,
        description="Refuse a range that names more fires than this.",
    )
    dry_run: bool = Field(default=False, description="Say what would fire; claim nothing.")
    rerun_failed: bool = Field(
        default=False,
        description="Fire again the slots whose recorded fire failed, as its next attempt with "
        "the slot's task id (a task it made after all is already-fired); without it they are "
        "shown failed, as recorded.",
    )

    _range_in_utc_range = field_validator("start", "until")(_in_utc_range)


class FireBody(BaseModel):
    input: dict[str, Any] | None = Field(default=None, description="The cron input.")
    dry_run: bool = Field(default=False, description="Render and record; create nothing.")


class ActionBody(BaseModel):
    input: dict[str, Any] | None = Field(default=None, description="The action's input.")
    revision: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$",
        description="Use the decision task of this full revision (default: the latest).",
    )
    dry_run: bool = Field(default=False, description="Render the hook payload; trigger nothing.")


class HookFireBody(BaseModel):
    payload: dict[str, Any] = Field(
        default_factory=dict, description="Checked against the hook's triggerSchema first."
    )
    dry_run: bool = Field(default=False, description="Check the payload; trigger nothing.")


class RemediateBody(BaseModel):
    dry_run: bool = Field(default=False, description="Say what would be rebuilt; trigger nothing.")
