"""Preflight's findings: what Taskcluster would refuse, per project and job, and how people
read them. Pure: `preflight.py` finds them; reports, the faces and the service show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scheduler.common.diagnostics import Severity


@dataclass(frozen=True)
class Finding:
    """One thing Taskcluster would refuse, or that could not be checked, with what to do."""

    project: str
    job: str | None  # None: the project's (its repository, its scopes), not one job's
    severity: Severity
    message: str

    @property
    def is_error(self) -> bool:
        """Taskcluster would refuse it (a warning: something could not be checked)."""
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.project}/{self.job}" if self.job else self.project
        return f"{where}: {self.severity}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "job": self.job,
            "severity": str(self.severity),
            "message": self.message,
        }


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(finding.is_error for finding in findings)


@dataclass(frozen=True)
class Checked:
    """One project's preflight: at which revision, and what was found."""

    project: str
    revision: str | None  # None: its repository could not be read
    findings: tuple[Finding, ...]


def findings_of(checked: Sequence[Checked]) -> list[Finding]:
    return [finding for one in checked for finding in one.findings]


def summary_lines(findings: Sequence[Finding]) -> list[str]:
    """The findings as people read them: one line per problem, naming every job it affects
    (`fenix/nightly, nightly-test: error: ...`), in the order first found."""
    jobs: dict[tuple[str, Severity, str], list[str]] = {}
    for finding in findings:
        jobs.setdefault((finding.project, finding.severity, finding.message), []).append(
            finding.job or ""
        )
    lines = []
    for (project, severity, message), names in jobs.items():
        where = f"{project}/{', '.join(names)}" if all(names) else project
        lines.append(f"{where}: {severity}: {message}")
    return lines
