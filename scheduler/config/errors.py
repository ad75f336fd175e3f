"""What goes wrong with a service configuration: it cannot be used (every problem, positioned),
or a command names a project it does not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.common.diagnostics import Diagnostic, Position, Severity
from scheduler.errors import Category, SchedulerError


class UnknownProjectError(
    SchedulerError, LookupError, category=Category.NOT_CONFIGURED, code="not-found"
):
    """A command or request named a project the configuration does not have."""


class ConfigError(SchedulerError, category=Category.INVALID, code="invalid-config"):
    """The configuration cannot be used; `diagnostics` say where and what to write."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        # In the file's order, however they were found (a secret, the schema, a setting).
        diagnostics = sorted(diagnostics, key=lambda d: d.line)
        super().__init__("\n".join(map(str, diagnostics)))
        self.diagnostics = tuple(diagnostics)


@dataclass
class Problems:
    """The problems found in one configuration file so far, for one ConfigError."""

    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, position: Position, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.path, position, Severity.ERROR, message))
