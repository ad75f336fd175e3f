"""The one base of the errors an operator sees, and their categories: what kind of failure each
is, which the API turns into a status and the command line into an exit status, each in one table.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    """What kind of failure an error is, whoever asked."""

    INVALID = "invalid"  # the request is wrong as given (an `until` already past, no reason)
    NOT_CONFIGURED = "not_configured"  # it names a project the configuration does not have
    NOT_FOUND = "not_found"  # no such job, hook or fire where it was looked for
    REFUSED = "refused"  # the project's own files or rules do not allow it (a broken template)
    REJECTED = "rejected"  # the input breaks a schema (a hook's triggerSchema)
    TOO_SOON = "too_soon"  # asked again too soon; `retry_after` says when
    REFUSED_UPSTREAM = "refused_upstream"  # Taskcluster or the repository failed or refused
    UNAVAILABLE = "unavailable"  # a part of the service itself (the ledger) does not answer
    UNAUTHORIZED = "unauthorized"  # who asks is not known (no token, or an unknown one)
    FORBIDDEN = "forbidden"  # who asks is known, and may not do this


class SchedulerError(Exception):
    """An error whose message says what happened and what to do about it.

    `category` says what kind of failure it is; `error_code` is the short name the API answers
    with (`{error, message}`). A subclass declares them as class keywords,
    `class NoSuchFireError(SchedulerError, category=Category.NOT_FOUND, code="not-found")`, or
    as properties where they depend on the instance. `retry_after`: when asking again may work
    (too soon), if it is known.
    """

    category: Category = Category.REFUSED
    error_code: str = "refused"
    retry_after: timedelta | None = None

    def __init_subclass__(
        cls, *, category: Category | None = None, code: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if category is not None:
            cls.category = category
        if code is not None:
            cls.error_code = code

    def details(self) -> list[str]:
        """What the message sums up, a line each (say, every problem of a payload)."""
        return []

    def describe(self) -> str:
        """The whole message, details included, on one line: what the API answers."""
        details = self.details()
        return f"{self}: {'; '.join(details)}" if details else str(self)

    def context(self) -> dict[str, Any]:
        """What the API answers beside `{error, message}` (say, the fire that failed)."""
        return {}
