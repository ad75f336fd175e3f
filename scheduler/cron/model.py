"""The `.cron.yml` model: jobs, what they run, and when they fire.

Matching follows build-decision's `match_utc`; `by-project` resolves like taskgraph's `keymatch`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar

from scheduler.common.diagnostics import START, Diagnostic, Position
from scheduler.cron.schema import MINUTES, WEEKDAYS
from scheduler.cron.timing import slot_of

HOURS = tuple(range(24))


@dataclass(frozen=True)
class Schedule:
    """One entry of `when`; a field left out matches any value."""

    minute: int | None = None
    hour: int | None = None
    day: int | None = None
    weekday: str | None = None

    def matches(self, slot: datetime) -> bool:
        """Whether this entry fires at `slot` (a UTC slot, as `slot_of` gives)."""
        return (
            (self.minute is None or self.minute == slot.minute)
            and (self.hour is None or self.hour == slot.hour)
            and self.matches_day(slot.date())
        )

    def matches_day(self, day: date) -> bool:
        return (self.day is None or self.day == day.day) and (
            self.weekday is None or self.weekday == WEEKDAYS[day.weekday()]
        )

    def times_of_day(self) -> tuple[tuple[int, int], ...]:
        """The (hour, minute) pairs this entry fires at on a matching day."""
        hours = HOURS if self.hour is None else (self.hour,)
        minutes = MINUTES if self.minute is None else (self.minute,)
        return tuple((hour, minute) for hour in hours for minute in minutes)


def fires_at(schedules: tuple[Schedule, ...], slot: datetime) -> bool:
    """Whether a job with these schedules fires at `slot`; entries that coincide fire once."""
    return any(schedule.matches(slot) for schedule in schedules)


class ScheduleError(Exception):
    """A job's `when` gives no usable schedule for a project."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class ByProject:
    """`when: {by-project: ...}`: exact name, then regular expression (full match), then default."""

    alternatives: Mapping[str, tuple[Schedule, ...]]
    patterns: Mapping[str, re.Pattern[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Keys are validated as regular expressions when the file is loaded.
        patterns = {key: re.compile(key) for key in self.alternatives}
        object.__setattr__(self, "patterns", patterns)

    def matching_keys(self, project: str) -> list[str]:
        if project in self.alternatives:
            return [project]
        matches = [key for key, pattern in self.patterns.items() if pattern.fullmatch(project)]
        if not matches and "default" in self.alternatives:
            return ["default"]
        return matches


When = tuple[Schedule, ...] | ByProject


@dataclass(frozen=True)
class DecisionTask:
    """`type: decision-task`: render `.taskcluster.yml` for cron and create the task."""

    type: ClassVar[str] = "decision-task"
    treeherder_symbol: str
    target_tasks_method: str
    optimize_target_tasks: bool | None = None
    include_push_tasks: bool = False
    rebuild_kinds: tuple[str, ...] = ()
    include_cron_input: bool = False

    @property
    def target(self) -> str:
        return self.target_tasks_method


@dataclass(frozen=True)
class TriggerAction:
    """`type: trigger-action`: trigger an action of the revision's decision task."""

    type: ClassVar[str] = "trigger-action"
    action_name: str
    include_cron_input: bool = False
    extra_input: Mapping[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.action_name


JobKind = DecisionTask | TriggerAction


@dataclass(frozen=True)
class Job:
    name: str
    kind: JobKind
    when: When = ()
    run_on_projects: tuple[str, ...] | None = None
    position: Position = START
    when_position: Position = START

    def runs_on(self, project: str) -> bool:
        return self.run_on_projects is None or project in self.run_on_projects

    def schedules_for(self, project: str) -> tuple[Schedule, ...]:
        """The schedules that apply on `project`; raises ScheduleError if `by-project` has none."""
        if not isinstance(self.when, ByProject):
            return self.when
        keys = self.when.matching_keys(project)
        if len(keys) == 1:
            return self.when.alternatives[keys[0]]
        if keys:
            raise ScheduleError(
                f"job `{self.name}`: project `{project}` matches several by-project patterns "
                f"({', '.join(keys)}); make them exclusive or add an entry named `{project}`",
                self.when_position,
            )
        raise ScheduleError(
            f"job `{self.name}`: when.by-project has no entry for project `{project}` and no "
            f"default; add `{project}: [...]` or `default: []`, or leave the project out of "
            "run-on-projects",
            self.when_position,
        )

    def is_due(self, project: str, moment: datetime) -> bool:
        """Whether the job fires on `project` in the slot that `moment` falls in."""
        return self.runs_on(project) and fires_at(self.schedules_for(project), slot_of(moment))


@dataclass(frozen=True)
class CronFile:
    """A loaded `.cron.yml`: its valid jobs, and what was wrong or risky in it."""

    path: str
    jobs: tuple[Job, ...]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)

    def job(self, name: str) -> Job | None:
        return next((job for job in self.jobs if job.name == name), None)
