"""What each act takes, checked the same whichever face asks: the API's JSON bodies, and the
dashboard's forms once parsed (`web/forms.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator


class PauseBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    until: datetime | None = Field(default=None, description="Lift the pause at this time.")

    @field_validator("until")
    @classmethod
    def _in_utc_range(cls, until: datetime | None) -> datetime | None:
        # A time at the calendar's edge with an offset has no UTC equivalent.
        if until is not None and until.tzinfo is not None:
            try:
                until.astimezone(UTC)
            except OverflowError:
                raise ValueError(
                    "is out of range once in UTC; give a time in years 1 to 9999"
                ) from None
        return until


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
