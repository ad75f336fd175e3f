"""What goes wrong with a service configuration: it cannot be used (every problem, positioned),
or a command names a project it does not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.common.diagnostics import Diagnostic, Position, Severity
from scheduler.errors import Category, SchedulerError


class UnknownProjectError(SchedulerError, LookupError):
    """A command or request named a project the configuration does not have."""

    category = Category.NOT_CONFIGURED
    error_code = "not-found"


class ConfigError(SchedulerError):
    """The configuration cannot be used; `diagnostics` say where and what to write."""

    category = Category.INVALID
    error_code = "invalid-config"

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(map(str, diagnostics)))
        self.diagnostics = tuple(diagnostics)


@dataclass
class Problems:
    """The problems found in one configuration file so far, for one ConfigError."""

    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, position: Position, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.path, position, Severity.ERROR, message))
