"""Loading a `.cron.yml`: parse, validate each job on its own, and build the model.

A bad job is reported and left out; the file's other jobs stay usable. Nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import ValidationError

from scheduler.common.diagnostics import Diagnostic, Position, Severity
from scheduler.common.schema_messages import Explainer, describe, shown
from scheduler.common.yamldoc import Document, JsonPath, YamlError, non_json_values, parse
from scheduler.cron.model import (
    ByProject,
    CronFile,
    DecisionTask,
    Job,
    JobKind,
    Schedule,
    ScheduleError,
    TriggerAction,
    When,
)
from scheduler.cron.schema import JOB_VALIDATOR, OUTLINE_VALIDATOR

# What to write when a required key is missing.
EXAMPLES = {
    "jobs": "jobs: []",
    "name": "name: nightly",
    "job": "job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}",
    "type": "type: decision-task",
    "treeherder-symbol": "treeherder-symbol: N",
    "target-tasks-method": "target-tasks-method: nightly",
    "action-name": "action-name: rebuild-cached-tasks",
    "by-project": "by-project: {default: []}",
}


EXPLAINER = Explainer(examples=EXAMPLES, list_name="jobs", entry_noun="job", quoted=("job",))


def load_cron(
    source: str | bytes,
    path: str = ".cron.yml",
    *,
    known_projects: Collection[str] | None = None,
) -> CronFile:
    """Load `.cron.yml` text. Never raises: problems become the result's diagnostics.

    `known_projects`, when given, enables the checks that need the list of projects: names in
    `run-on-projects` that are not projects, and `by-project` entries missing for a project.
    """
    report = _Report(path)
    try:
        document = parse(source)
    except YamlError as error:
        report.error(error.position, error.message)
        return report.result(())
    for duplicate in document.duplicate_keys:
        if len(duplicate.path) < 3:  # keys inside a job are reported with that job
            report.duplicate_key(duplicate.path, duplicate.first, duplicate.again)
    for problem in OUTLINE_VALIDATOR.iter_errors(document.data):
        report.schema_error(problem, document, base=())
    data = document.data
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        return report.result(())
    entries: list[Any] = data["jobs"]
    name_lines: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        name = _entry_name(entry)
        if name is not None:
            name_lines.setdefault(name, []).append(
                document.position_of(("jobs", index, "name")).line
            )
    loader = _JobLoader(document, report, name_lines, known_projects)
    jobs = [job for index, entry in enumerate(entries) if (job := loader.load(index, entry))]
    return report.result(tuple(jobs))


def _entry_name(entry: Any) -> str | None:
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None


@dataclass
class _Report:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    seen: set[Diagnostic] = field(default_factory=set)
    job: str | None = None

    def add(self, severity: Severity, position: Position, message: str) -> None:
        diagnostic = Diagnostic(self.path, position, severity, message, self.job)
        if diagnostic not in self.seen:
            self.seen.add(diagnostic)
            self.diagnostics.append(diagnostic)

    def error(self, position: Position, message: str) -> None:
        self.add(Severity.ERROR, position, message)

    def warning(self, position: Position, message: str) -> None:
        self.add(Severity.WARNING, position, message)

    def result(self, jobs: tuple[Job, ...]) -> CronFile:
        ordered = sorted(self.diagnostics, key=Diagnostic.sort_key)
        return CronFile(self.path, jobs, tuple(ordered))

    def duplicate_key(self, path: JsonPath, first: Position, again: Position) -> None:
        self.warning(
            again,
            f"key {shown(path[-1])} is written twice in this mapping (first at line "
            f"{first.line}); YAML keeps only the last one, so remove or merge the other",
        )

    def schema_error(self, error: ValidationError, document: Document, base: JsonPath) -> None:
        for position, message in EXPLAINER.explain(error, document, base):
            self.error(position, message)


class _JobLoader:
    def __init__(
        self,
        document: Document,
        report: _Report,
        name_lines: Mapping[str, list[int]],
        known_projects: Collection[str] | None,
    ) -> None:
        self.document = document
        self.report = report
        self.name_lines = name_lines
        self.known_projects = None if known_projects is None else frozenset(known_projects)

    def load(self, index: int, entry: Any) -> Job | None:
        """Validate one entry of `jobs`; return its Job, or None after reporting why not."""
        base: JsonPath = ("jobs", index)
        self.report.job = _entry_name(entry)
        try:
            errors_before = len(self.report.diagnostics)
            for duplicate in self.document.duplicate_keys:
                if duplicate.path[:2] == base and len(duplicate.path) > 2:
                    self.report.duplicate_key(duplicate.path, duplicate.first, duplicate.again)
            for error in JOB_VALIDATOR.iter_errors(entry):
                self.report.schema_error(error, self.document, base)
            self._check_unique_name(base, entry)
            if not self._has_new_errors(errors_before):
                self._check_semantics(base, entry)
            if self._has_new_errors(errors_before):
                return None
            job = _build_job(entry, self.position(base), self.position((*base, "when")))
            # A project without a by-project schedule is an error for that project only:
            # reported here, the job still runs on the projects it resolves for.
            self._check_projects(base, job)
            self._warn_footguns(base, entry)
            return job
        finally:
            self.report.job = None

    def position(self, path: JsonPath, *, key: bool = False) -> Position:
        return self.document.position_of(path, key=key)

    def _has_new_errors(self, since: int) -> bool:
        return any(d.is_error for d in self.report.diagnostics[since:])

    def _check_unique_name(self, base: JsonPath, entry: Any) -> None:
        name = _entry_name(entry)
        lines = self.name_lines.get(name, []) if name is not None else []
        if len(lines) > 1:
            self.report.error(
                self.position((*base, "name")),
                f"job name {shown(name)} is used {len(lines)} times (lines "
                f"{', '.join(map(str, lines))}); job names must be unique, so rename all but one",
            )

    def _check_semantics(self, base: JsonPath, entry: dict[str, Any]) -> None:
        when = entry.get("when")
        if isinstance(when, dict):
            for key in when["by-project"]:
                try:
                    re.compile(key)
                # Huge repetition counts overflow and deep nesting recurses, besides re.error.
                except (re.error, OverflowError, RecursionError) as error:
                    self.report.error(
                        self.position((*base, "when", "by-project", key), key=True),
                        f"by-project key {shown(key)} is not a valid regular expression "
                        f"({error}); write the exact project name, or escape the special "
                        "characters",
                    )
        extra_input = entry["job"].get("extra-input")
        if extra_input is not None:
            for path, value in non_json_values(extra_input, (*base, "job", "extra-input")):
                self.report.error(
                    self.position(path),
                    f"{describe(value)} cannot be passed as action input; "
                    "quote it to make it a string",
                )

    def _check_projects(self, base: JsonPath, job: Job) -> None:
        if job.run_on_projects is not None:
            if not job.run_on_projects:
                self.report.warning(
                    self.position((*base, "run-on-projects")),
                    "run-on-projects is empty, so this job never runs; list its projects, "
                    "or remove the key to run it on every project",
                )
            for index, project in enumerate(job.run_on_projects):
                if self.known_projects is not None and project not in self.known_projects:
                    self.report.warning(
                        self.position((*base, "run-on-projects", index)),
                        f"run-on-projects names {shown(project)}, which is not a configured "
                        f"project ({', '.join(sorted(self.known_projects)) or 'none'}); "
                        "check the spelling",
                    )
        if not isinstance(job.when, ByProject):
            return
        if job.run_on_projects is not None:
            projects: Collection[str] = job.run_on_projects
        else:
            projects = sorted(self.known_projects or ())
        for project in projects:
            try:
                job.schedules_for(project)
            except ScheduleError as error:
                self.report.error(error.position, error.message)

    def _warn_footguns(self, base: JsonPath, entry: dict[str, Any]) -> None:
        kind = entry["job"]
        if kind.get("include-push-tasks") is False:
            self.report.warning(
                self.position((*base, "job", "include-push-tasks")),
                "include-push-tasks: false still passes --include-push-tasks under "
                "build-decision (it only checks that the key is present); tc-scheduler passes "
                "it only when true. Remove the key so both agree",
            )
        when = entry.get("when")
        if isinstance(when, dict) and list(when["by-project"]) == ["default"]:
            self.report.warning(
                self.position((*base, "when")),
                "by-project has only `default`; write the schedule list directly under "
                "`when` (build-decision refuses a by-project with only a default)",
            )
        for path, schedule in _schedule_entries(base, entry):
            self._warn_schedule(path, schedule)

    def _warn_schedule(self, path: JsonPath, schedule: dict[str, Any]) -> None:
        here = self.position(path)
        if not schedule:
            self.report.warning(
                here,
                "an empty schedule {} fires every 15 minutes (96 times a day); "
                "give it an hour and a minute, such as {hour: 5, minute: 0}",
            )
            return
        if "minute" not in schedule:
            self.report.warning(
                here,
                "this schedule has no minute, so it fires four times an hour "
                "(:00, :15, :30 and :45); add `minute: 0` to fire once",
            )
        day = schedule.get("day")
        if day is not None and day > 28:
            self.report.warning(
                self.position((*path, "day")),
                f"day {day} does not occur in every month, and in months without it the job "
                "does not fire at all; use a day from 1 to 28 to fire every month",
            )
        if day is not None and "weekday" in schedule:
            self.report.warning(
                here,
                f"day and weekday together fire only when day {day} is a "
                f"{schedule['weekday']}, a few times a year; keep only one of them "
                "unless that is the intent",
            )


def _schedule_entries(base: JsonPath, entry: dict[str, Any]) -> Iterator[tuple[JsonPath, Any]]:
    when = entry.get("when", [])
    if isinstance(when, dict):
        for key, schedules in when["by-project"].items():
            for index, schedule in enumerate(schedules):
                yield (*base, "when", "by-project", key, index), schedule
    else:
        for index, schedule in enumerate(when):
            yield (*base, "when", index), schedule


def _build_job(entry: dict[str, Any], position: Position, when_position: Position) -> Job:
    """Build a Job from an entry that passed validation."""
    when_data = entry.get("when", [])
    when: When
    if isinstance(when_data, dict):
        when = ByProject({key: _schedules(value) for key, value in when_data["by-project"].items()})
    else:
        when = _schedules(when_data)
    run_on_projects = entry.get("run-on-projects")
    return Job(
        name=entry["name"],
        kind=_build_kind(entry["job"]),
        when=when,
        run_on_projects=None if run_on_projects is None else tuple(run_on_projects),
        position=position,
        when_position=when_position,
    )


def _schedules(entries: list[dict[str, Any]]) -> tuple[Schedule, ...]:
    def number(value: Any) -> int | None:
        return None if value is None else int(value)

    return tuple(
        Schedule(
            minute=number(entry.get("minute")),
            hour=number(entry.get("hour")),
            day=number(entry.get("day")),
            weekday=entry.get("weekday"),
        )
        for entry in entries
    )


def _build_kind(data: dict[str, Any]) -> JobKind:
    if data["type"] == DecisionTask.type:
        return DecisionTask(
            treeherder_symbol=data["treeherder-symbol"],
            target_tasks_method=data["target-tasks-method"],
            optimize_target_tasks=data.get("optimize-target-tasks"),
            include_push_tasks=data.get("include-push-tasks", False),
            rebuild_kinds=tuple(data.get("rebuild-kinds", ())),
            include_cron_input=data.get("include-cron-input", False),
        )
    return TriggerAction(
        action_name=data["action-name"],
        include_cron_input=data.get("include-cron-input", False),
        extra_input=data.get("extra-input", {}),
    )
