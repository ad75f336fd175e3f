"""Errors and warnings about an input file (`.cron.yml`, service config), pinned to line and column.

Messages say what is wrong and what to write instead; they never carry a traceback.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Position:
    """A place in a text file; both numbers count from 1, as editors do."""

    line: int
    column: int


START = Position(1, 1)


@dataclass(frozen=True)
class Diagnostic:
    path: str
    position: Position
    severity: Severity
    message: str
    job: str | None = None

    @property
    def line(self) -> int:
        return self.position.line

    @property
    def column(self) -> int:
        return self.position.column

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[int, int, str]:
        return (self.line, self.column, self.message)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def as_json(self) -> dict[str, object]:
        return {
            "line": self.line,
            "column": self.column,
            "job": self.job,
            "message": self.message,
        }
