"""The .cron.yml language: validation per job, messages with positions, and footgun warnings."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
from jsonschema import Draft7Validator

from scheduler.cron import (
    CronFile,
    DecisionTask,
    ScheduleError,
    due_jobs,
    fires_between,
    load_cron,
    next_fires,
)
from scheduler.cron.schema import CRON_FILE, JOB
from scheduler.render import quoted_args

HEADER = "jobs:\n"


def load(text: str, **kwargs: object) -> CronFile:
    return load_cron(textwrap.dedent(text), ".cron.yml", **kwargs)  # type: ignore[arg-type]


def job_yaml(name: str = "nightly", when: str = "[{hour: 5, minute: 0}]", extra: str = "") -> str:
    return (
        f"  - name: {name}\n"
        f"    job: {{type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}}\n"
        f"    when: {when}\n{extra}"
    )


def messages(cron: CronFile) -> list[str]:
    return [str(diagnostic) for diagnostic in cron.diagnostics]


def test_schemas_are_valid_draft_7() -> None:
    Draft7Validator.check_schema(CRON_FILE)
    Draft7Validator.check_schema(JOB)


def test_error_names_file_line_column_and_what_to_write() -> None:
    text = HEADER + job_yaml(when="\n      - {hour: 5, minute: 21}")
    cron = load(text)
    assert messages(cron) == [".cron.yml:5:27: error: minute must be one of 0, 15, 30, 45 (got 21)"]
    [error] = cron.errors
    assert error.job == "nightly"


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("{minute: -15}", "minute must be one of 0, 15, 30, 45 (got -15)"),
        ("{minute: 60}", "minute must be one of 0, 15, 30, 45 (got 60)"),
        ("{hour: -1, minute: 0}", "hour must be an integer from 0 to 23, the hour in UTC (got -1)"),
        ("{hour: 24, minute: 0}", "hour must be an integer from 0 to 23, the hour in UTC (got 24)"),
        (
            "{day: 0, minute: 0}",
            "day must be an integer from 1 to 31, the day of the month (got 0)",
        ),
        (
            "{day: 32, minute: 0}",
            "day must be an integer from 1 to 31, the day of the month (got 32)",
        ),
        (
            "{weekday: monday}",
            'weekday must be one of Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday (got "monday")',
        ),
        (
            "{hour: '8', minute: 0}",
            'hour must be an integer from 0 to 23, the hour in UTC (got the string "8"; write the number without quotes or leading zeros)',
        ),
        (
            "{hour: 5, minute: 0, second: 0}",
            "unknown key `second` in when[0]; allowed keys are weekday, day, hour, minute",
        ),
        ("{hour: 5, minutes: 0}", "unknown key `minutes` in when[0]; did you mean `minute`?"),
        (
            "{hour: true, minute: 0}",
            "hour must be an integer from 0 to 23, the hour in UTC (got true)",
        ),
    ],
)
def test_out_of_range_schedules_are_rejected(schedule: str, message: str) -> None:
    # build-decision's schema misspells `minimum`, so it lets the negative values through.
    cron = load(HEADER + job_yaml(when=f"[{schedule}]"))
    assert [error.message for error in cron.errors] == [message]
    assert cron.jobs == ()


def test_a_bad_job_leaves_the_other_jobs_valid() -> None:
    text = HEADER + job_yaml("first") + job_yaml("broken", when="[{minute: 7}]") + job_yaml("last")
    cron = load(text)
    assert [job.name for job in cron.jobs] == ["first", "last"]
    [error] = cron.errors
    assert error.job == "broken"
    assert (error.line, error.column) == (7, 21)


def test_duplicate_names_are_an_error_for_every_job_bearing_them() -> None:
    text = HEADER + job_yaml("nightly") + job_yaml("other") + job_yaml("nightly")
    cron = load(text)
    assert [job.name for job in cron.jobs] == ["other"]
    assert [(e.line, e.job) for e in cron.errors] == [(2, "nightly"), (8, "nightly")]
    assert all("used 2 times (lines 2, 8)" in e.message for e in cron.errors)


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("{type: decision-task, treeherder-symbol: N}", "`job` is missing `target-tasks-method`"),
        ("{type: decision-task, target-tasks-method: n}", "`job` is missing `treeherder-symbol`"),
        ("{type: trigger-action}", "`job` is missing `action-name`"),
        ("{treeherder-symbol: N}", "`job` is missing `type`"),
        ("{type: decision}", 'type must be one of decision-task, trigger-action (got "decision")'),
        (
            "{type: trigger-action, action-name: a, treeherder-symbol: N}",
            "unknown key `treeherder-symbol` in `job`",
        ),
        (
            "{type: decision-task, treeherder-symbol: N, target-tasks-method: n, rebuild-kinds: a}",
            'rebuild-kinds must be a list of names (got "a")',
        ),
        (
            "{type: trigger-action, action-name: a, extra-input: [1]}",
            "extra-input must be a mapping of action input (got a list)",
        ),
        (
            "{type: trigger-action, action-name: a, extra-input: {when: 2026-01-01}}",
            "the YAML date 2026-01-01 cannot be passed as action input",
        ),
        ("[]", "job must be a mapping with a `type` and that type's settings (got a list)"),
    ],
)
def test_job_kind_errors(job: str, message: str) -> None:
    cron = load(f"jobs:\n  - name: x\n    job: {job}\n    when: []\n")
    assert cron.jobs == ()
    assert any(message in error.message for error in cron.errors), messages(cron)


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        (
            "",
            "the file must be a mapping with a `jobs` list, such as `jobs: []` (got nothing)",
            (1, 1),
        ),
        ("- a\n", "the file must be a mapping with a `jobs` list", (1, 1)),
        ("jobs: {}\n", "jobs must be a list of jobs, or [] for none (got a mapping)", (1, 7)),
        ("job: []\n", "unknown key `job` in the file; did you mean `jobs`?", (1, 1)),
        ("{}\n", "the file is missing `jobs`; add it, for example `jobs: []`", (1, 1)),
        ("jobs: [\n", "invalid YAML", (2, 1)),
        ("jobs:\n\t- name: x\n", "YAML indentation must use spaces, not tabs", (2, 1)),
        ("jobs: []\n---\njobs: []\n", "expected a single document", (2, 1)),
        (
            "jobs: [{name: 2026-02-30}]\n",
            "cannot read this value (day is out of range for month)",
            (1, 15),
        ),
        (
            "jobs: !include other.yml\n",
            "could not determine a constructor for the tag '!include'",
            (1, 7),
        ),
        ("jobs: &a [*a]\n", "alias that refers to itself", (1, 7)),
        ("jobs: [\x00]\n", "invalid character U+0000", (1, 8)),
    ],
)
def test_file_level_errors(text: str, message: str, position: tuple[int, int]) -> None:
    cron = load_cron(text)
    assert cron.jobs == ()
    [error] = [error for error in cron.errors if message in error.message]
    assert (error.line, error.column) == position


def test_binary_bytes_and_huge_files_are_refused_without_traceback() -> None:
    cron = load_cron(b"jobs: []\n\xff\xfe\x00")
    [error] = cron.errors
    assert (error.line, error.column, error.message) == (
        2,
        1,
        "byte 0xff is not valid UTF-8; save the file as UTF-8 text",
    )
    huge = load_cron(b"jobs: []\n" + b"#" * (10 * 1024 * 1024))
    assert "larger than" in huge.errors[0].message


def test_alias_bombs_and_deep_nesting_are_refused() -> None:
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        bomb.append(f"a{level}: &a{level} [{refs}]")
    cron = load_cron("\n".join(bomb) + "\njobs: []\n")
    assert "expands to more than" in cron.errors[0].message
    deep = load_cron("jobs: " + "[" * 20000 + "]" * 20000)
    assert "nested too deeply" in deep.errors[0].message


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = """\
        jobs:
          - name: a
            job: &decision {type: decision-task, treeherder-symbol: A, target-tasks-method: a}
            when: &daily [{hour: 5, minute: 0}]
          - name: b
            job: {<<: *decision, treeherder-symbol: B}
            when: *daily
          - name: c
            job: {<<: *decision, target-tasks-method: 7}
            when: *daily
        """
    cron = load(text)
    assert [job.name for job in cron.jobs] == ["a", "b"]
    [error] = cron.errors
    assert error.message == "target-tasks-method must be a string (got 7)"
    assert error.line == 9


def test_by_project_resolution_exact_then_regex_then_default() -> None:
    text = HEADER + job_yaml(
        when="""
        by-project:
          mozilla-central: [{hour: 1, minute: 0}]
          mozilla-.*: [{hour: 2, minute: 0}]
          default: [{hour: 3, minute: 0}]
        """
    )
    [job] = load(text).jobs
    assert [s.hour for s in job.schedules_for("mozilla-central")] == [1]
    assert [s.hour for s in job.schedules_for("mozilla-beta")] == [2]
    assert [s.hour for s in job.schedules_for("autoland")] == [3]
    # Full match: "mozilla-.*" does not match a name that only starts like it.
    assert [s.hour for s in job.schedules_for("xmozilla-beta")] == [3]


def test_by_project_without_match_is_an_error_for_that_job_only() -> None:
    text = HEADER + job_yaml(
        "picky", when="{by-project: {mozilla-central: [{hour: 1, minute: 0}]}}"
    )
    text += job_yaml("everywhere", when="[{hour: 1, minute: 0}]")
    cron = load(text)
    assert cron.errors == ()  # without known projects nothing says another project exists
    picky = cron.job("picky")
    assert picky is not None
    with pytest.raises(ScheduleError, match="no entry for project `autoland` and no default"):
        picky.schedules_for("autoland")
    plan = due_jobs(cron, "autoland", datetime(2026, 11, 24, 1, tzinfo=UTC))
    assert [fire.job_name for fire in plan.fires] == ["everywhere"]
    [problem] = plan.problems
    assert problem.job == "picky"
    assert (problem.line, problem.column) == (4, 11)


def test_missing_by_project_entry_for_a_run_on_project_is_an_error() -> None:
    text = HEADER + job_yaml(
        when="{by-project: {a: [{hour: 1, minute: 0}]}}",
        extra="    run-on-projects: [a, b]\n",
    )
    cron = load(text)
    [error] = cron.errors
    assert "no entry for project `b`" in error.message
    # The job still runs where it resolves.
    assert [f.job_name for f in due_jobs(cron, "a", datetime(2026, 1, 1, 1, tzinfo=UTC)).fires] == [
        "nightly"
    ]


def test_ambiguous_regexes_and_invalid_regexes_are_errors() -> None:
    ambiguous = load(
        HEADER
        + job_yaml(
            when="{by-project: {'a.*': [], '.*b': []}}",
            extra="    run-on-projects: [ab]\n",
        )
    )
    assert "matches several by-project patterns (a.*, .*b)" in ambiguous.errors[0].message
    invalid = load(HEADER + job_yaml(when="{by-project: {'(': []}}"))
    assert invalid.jobs == ()
    assert "is not a valid regular expression" in invalid.errors[0].message
    assert (invalid.errors[0].line, invalid.errors[0].column) == (4, 25)


def test_known_projects_enable_project_checks() -> None:
    text = (
        HEADER
        + job_yaml(when="{by-project: {a: [{hour: 1, minute: 0}]}}")
        + job_yaml("typo", extra="    run-on-projects: [mozila-central]\n")
    )
    cron = load(text, known_projects=["a", "mozilla-central"])
    assert [e.message for e in cron.errors] == [
        "job `nightly`: when.by-project has no entry for project `mozilla-central` and no "
        "default; add `mozilla-central: [...]` or `default: []`, or leave the project out of "
        "run-on-projects"
    ]
    [warning] = cron.warnings
    assert "`mozila-central`, which is not a configured project" in warning.message
    assert (warning.line, warning.column) == (8, 23)


@pytest.mark.parametrize(
    ("when", "extra", "warning"),
    [
        ("[{}]", "", "an empty schedule {} fires every 15 minutes"),
        ("[{hour: 5}]", "", "no minute, so it fires four times an hour"),
        ("[{day: 31, hour: 5, minute: 0}]", "", "day 31 does not occur in every month"),
        (
            "[{day: 13, weekday: Friday, hour: 5, minute: 0}]",
            "",
            "fire only when day 13 is a Friday",
        ),
        ("{by-project: {default: [{hour: 5, minute: 0}]}}", "", "by-project has only `default`"),
        ("[]", "    run-on-projects: []\n", "run-on-projects is empty, so this job never runs"),
        ("[]\n    when: [{hour: 5, minute: 0}]", "", "key `when` is written twice"),
    ],
)
def test_footguns_are_warnings_not_errors(when: str, extra: str, warning: str) -> None:
    cron = load(HEADER + job_yaml(when=when, extra=extra))
    assert cron.errors == ()
    assert [job.name for job in cron.jobs] == ["nightly"]
    assert any(warning in w.message for w in cron.warnings), messages(cron)


def test_include_push_tasks_false_warns_and_is_not_passed() -> None:
    cron = load(
        "jobs:\n  - name: x\n    job: {type: decision-task, treeherder-symbol: N,"
        " target-tasks-method: n, include-push-tasks: false}\n"
    )
    [job] = cron.jobs
    assert isinstance(job.kind, DecisionTask)
    assert quoted_args(job.kind) == "--target-tasks-method=n"
    [warning] = cron.warnings
    assert "include-push-tasks: false still passes --include-push-tasks" in warning.message
    assert (warning.line, warning.column) == (3, 98)


def test_footgun_semantics() -> None:
    cron = load(
        HEADER
        + job_yaml("empty", when="[{}]")
        + job_yaml("no-minute", when="[{hour: 5}]")
        + job_yaml("day-31", when="[{day: 31, hour: 0, minute: 0}]")
    )

    def fires(name: str, start: str, end: str) -> int:
        plan = fires_between(cron, "p", datetime.fromisoformat(start), datetime.fromisoformat(end))
        return sum(1 for fire in plan.fires if fire.job_name == name)

    assert fires("empty", "2026-11-24T00:00+00:00", "2026-11-25T00:00+00:00") == 96
    assert fires("no-minute", "2026-11-24T00:00+00:00", "2026-11-25T00:00+00:00") == 4
    # Day 31 exists in 7 months of 2027.
    assert fires("day-31", "2027-01-01T00:00+00:00", "2028-01-01T00:00+00:00") == 7


def test_warnings_are_not_reported_for_a_job_with_errors() -> None:
    cron = load(HEADER + job_yaml(when="[{hour: 5}, {minute: 7}]"))
    assert cron.warnings == ()
    assert len(cron.errors) == 1


def test_planning_up_to_the_last_day_of_the_calendar_does_not_overflow() -> None:
    cron = load(HEADER + job_yaml(when="[{hour: 5, minute: 0}]"))
    last_day = datetime(9999, 12, 31, tzinfo=UTC)
    plan = fires_between(cron, "p", last_day, datetime(9999, 12, 31, 23, 45, tzinfo=UTC))
    assert [fire.slot.hour for fire in plan.fires] == [5]
    assert [f.slot for f in next_fires(cron, "p", last_day, 3).fires] == [
        datetime(9999, 12, 31, 5, tzinfo=UTC)
    ]
