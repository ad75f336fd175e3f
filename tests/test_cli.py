"""The command line's exact forms: check, plan and render, their output and exit status, and the
one way out every command prints through, which masks secrets."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from rich.table import Table

from scheduler.cli import main
from scheduler.cli.output import console, echo, echo_json, echo_json_records, echo_yaml
from scheduler.common.redaction import remember_secret, scrub
from scheduler.ids import decision_task_id
from tests.support.corpus import CORPUS, REPOSITORY_ROOT, corpus_cron_files

GECKO = str(CORPUS / "cron" / "mozilla__gecko-dev.cron.yml")
ANDROID_L10N = str(CORPUS / "cron" / "mozilla-l10n__android-l10n-tooling.cron.yml")
TRANSLATIONS_CRON = str(CORPUS / "cron" / "mozilla__translations.cron.yml")
TRANSLATIONS_TEMPLATE = str(CORPUS / "taskcluster-yml" / "mozilla__translations.taskcluster.yml")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_check_accepts_every_corpus_file_build_decision_accepts() -> None:
    valid = [str(path) for path in corpus_cron_files() if str(path) != ANDROID_L10N]
    result = run("check", *valid)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "21 files, 127 valid jobs: 0 errors, 0 warnings" in result.stderr


def test_check_reports_errors_as_path_line_column() -> None:
    result = run("check", GECKO, ANDROID_L10N)
    assert result.exit_code == 1
    assert result.stdout == (
        f"{ANDROID_L10N}:6:7: error: jobs must be a list of jobs, or [] for none (got a mapping)\n"
    )


def test_check_warnings_alone_exit_zero(tmp_path: Path) -> None:
    path = tmp_path / ".cron.yml"
    path.write_text(
        "jobs:\n  - name: x\n    job: {type: trigger-action, action-name: a}\n    when: [{}]\n"
    )
    result = run("check", str(tmp_path))  # a directory stands for its .cron.yml
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}:4:12: warning: an empty schedule {{}} fires every")


def test_check_json() -> None:
    result = run("check", "--json", ANDROID_L10N, TRANSLATIONS_CRON)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "files": [
            {
                "path": ANDROID_L10N,
                "errors": [
                    {
                        "line": 6,
                        "column": 7,
                        "job": None,
                        "message": "jobs must be a list of jobs, or [] for none (got a mapping)",
                    }
                ],
                "warnings": [],
                "jobs": 0,
            },
            {"path": TRANSLATIONS_CRON, "errors": [], "warnings": [], "jobs": 2},
        ]
    }


@pytest.mark.parametrize(
    "command", [["check"], ["plan", "--project", "p", "--from", "2026-11-24", "--cron"]]
)
def test_output_json_is_the_json_flag_and_conflicting_outputs_are_refused(
    command: list[str],
) -> None:
    as_flag = run(*command, TRANSLATIONS_CRON, "--json")
    as_output = run(*command, TRANSLATIONS_CRON, "-o", "json")
    assert as_output.exit_code == as_flag.exit_code == 0
    assert json.loads(as_output.stdout) == json.loads(as_flag.stdout)
    assert not run(*command, TRANSLATIONS_CRON, "--output", "table").stdout.startswith(("{", "["))
    conflicting = run(*command, TRANSLATIONS_CRON, "--json", "-o", "wide")
    assert conflicting.exit_code == 2
    assert "--json and -o wide ask for different outputs" in conflicting.stderr


def test_check_with_projects_checks_run_on_projects(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        "jobs:\n  - name: x\n    job: {type: trigger-action, action-name: a}\n"
        "    run-on-projects: [mozila-central]\n    when: [{hour: 1, minute: 0}]\n"
    )
    result = run("check", "--json", "--project", "mozilla-central", str(path))
    [report] = json.loads(result.stdout)["files"]
    assert result.exit_code == 0
    assert report["warnings"][0]["line"] == 4
    assert "not a configured project" in report["warnings"][0]["message"]


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["check", "/does/not/exist.yml"],
        ["check", "--bogus", GECKO],
        ["plan", "--cron", GECKO],
        ["plan", "--cron", GECKO, "--project", "p", "--from", "yesterday"],
        ["plan", "--cron", GECKO, "--project", "p", "--until", "2026-01-01", "--next", "3"],
        ["plan", "--cron", GECKO, "--project", "p", "--next", "0"],
        [
            "plan",
            "--cron",
            GECKO,
            "--project",
            "p",
            "--from",
            "2026-01-02",
            "--until",
            "2026-01-01",
        ],
    ],
)
def test_usage_errors_exit_two(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Error" in result.stderr


def test_a_bad_time_says_how_to_write_it() -> None:
    result = run("plan", "--cron", GECKO, "--project", "p", "--from", "tomorrow")
    assert (
        "'tomorrow' is neither an ISO 8601 time (like 2026-11-24T10:00:00Z) nor how long from "
        "now (like 2h, 3d or 1d12h; -2h: that long ago)"
    ) in " ".join(result.stderr.split())


def test_check_reports_an_unreadable_path_as_an_error(tmp_path: Path) -> None:
    result = run("check", str(tmp_path))  # a directory without a .cron.yml
    assert result.exit_code == 1
    assert (
        result.stdout
        == f"{tmp_path / '.cron.yml'}:1:1: error: cannot read: No such file or directory\n"
    )


def test_plan_json_lists_fires_in_the_span_by_slot_then_job() -> None:
    result = run(
        "plan", "--cron", GECKO, "--project", "mozilla-central",
        "--from", "2026-11-24T09:00:00Z", "--until", "2026-11-24T12:00:00Z", "--json",
    )  # fmt: skip
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {"slot": "2026-11-24T10:00:00Z", "job": "nightly-all"},
        {"slot": "2026-11-24T10:30:00Z", "job": "customv8-update"},
        {"slot": "2026-11-24T11:00:00Z", "job": "l10n-cross-channel"},
    ]
    # [from, until): a fire at `until` is not included, one at `from` is.
    result = run(
        "plan", "--cron", GECKO, "--project", "mozilla-central",
        "--from", "2026-11-24T10:00:00Z", "--until", "2026-11-24T10:30:00Z", "--json",
    )  # fmt: skip
    assert json.loads(result.stdout) == [{"slot": "2026-11-24T10:00:00Z", "job": "nightly-all"}]


def test_plan_defaults_to_the_next_24_hours() -> None:
    result = run(
        "plan", "--cron", GECKO, "--project", "mozilla-central",
        "--from", "2026-11-24T00:00:00Z", "--json",
    )  # fmt: skip
    fires = json.loads(result.stdout)
    assert fires[0]["slot"] == "2026-11-24T00:00:00Z"
    assert fires[-1]["slot"] < "2026-11-25T00:00:00Z"
    assert [fire["slot"] for fire in fires] == sorted(fire["slot"] for fire in fires)
    assert sum(1 for fire in fires if fire["job"] == "nightly-all") == 2


def test_plan_next_counts_fires_from_a_time_in_any_zone() -> None:
    result = run(
        "plan", "--cron", GECKO, "--project", "mozilla-beta",
        "--from", "2026-11-24T09:05:00+01:00", "--next", "3", "--json",
    )  # fmt: skip
    # 09:05+01:00 is 08:05Z: the first slot considered is 08:15Z.
    assert json.loads(result.stdout) == [
        {"slot": "2026-11-24T09:00:00Z", "job": "l10n-bumper"},
        {"slot": "2026-11-24T10:00:00Z", "job": "searchfox-index"},
        {"slot": "2026-11-24T12:00:00Z", "job": "daily-beta-perf"},
    ]


def test_plan_table_shows_type_and_target() -> None:
    result = run(
        "plan", "--cron", str(CORPUS / "cron" / "mozilla__enterprise-firefox.cron.yml"),
        "--project", "mozilla-beta", "--from", "2026-11-25T07:00Z", "--until", "2026-11-25T07:15Z",
    )  # fmt: skip
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if "merge-beta-to-release" in line)
    assert line.split() == [
        "2026-11-25T07:00:00Z",
        "merge-beta-to-release-dry-run",
        "trigger-action",
        "merge-automation",
    ]


def test_plan_leaves_out_jobs_with_errors_and_reports_them(tmp_path: Path) -> None:
    path = tmp_path / ".cron.yml"
    path.write_text(
        "jobs:\n"
        "  - {name: good, job: {type: trigger-action, action-name: a}, when: [{hour: 1, minute: 0}]}\n"
        "  - {name: bad, job: {type: trigger-action, action-name: a}, when: [{hour: 1, minute: 5}]}\n"
        "  - name: elsewhere\n"
        "    job: {type: trigger-action, action-name: a}\n"
        "    when: {by-project: {other: [{hour: 1, minute: 0}]}}\n"
    )
    result = run("plan", "--cron", str(path), "--project", "p", "--from", "2026-11-24", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [{"slot": "2026-11-24T01:00:00Z", "job": "good"}]
    assert f"{path}:3:87: error: minute must be one of 0, 15, 30, 45 (got 5)" in result.stderr
    assert f"{path}:6:11: error: job `elsewhere`" in result.stderr


def _write_cron(path: Path, *jobs: tuple[str, str]) -> str:
    """A .cron.yml of trigger-action jobs, each (name, its `when`)."""
    path.write_text(
        "jobs:\n"
        + "".join(
            f"  - {{name: {name}, job: {{type: trigger-action, action-name: a}}, when: {when}}}\n"
            for name, when in jobs
        )
    )
    return str(path)


def test_plan_plans_every_file_on_every_project_in_one_list_by_slot(tmp_path: Path) -> None:
    first = _write_cron(
        tmp_path / "first.yml",
        ("two", "[{hour: 2, minute: 0}]"),
        ("one", "{by-project: {b: [{hour: 1, minute: 0}], default: []}}"),
    )
    second = _write_cron(tmp_path / "second.yml", ("half", "[{hour: 1, minute: 30}]"))
    result = run(
        "plan", "--cron", first, "--cron", second, "--project", "a", "--project", "b",
        "--from", "2026-11-24", "--until", "2026-11-24T03:00Z", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # By slot, then in the order the files and projects were given.
    assert json.loads(result.stdout) == [
        {"slot": "2026-11-24T01:00:00Z", "file": first, "project": "b", "job": "one"},
        {"slot": "2026-11-24T01:30:00Z", "file": second, "project": "a", "job": "half"},
        {"slot": "2026-11-24T01:30:00Z", "file": second, "project": "b", "job": "half"},
        {"slot": "2026-11-24T02:00:00Z", "file": first, "project": "a", "job": "two"},
        {"slot": "2026-11-24T02:00:00Z", "file": first, "project": "b", "job": "two"},
    ]
    table = run(
        "plan", "--cron", first, "--cron", second, "--project", "a", "--project", "b",
        "--from", "2026-11-24", "--until", "2026-11-24T03:00Z", "-o", "wide",
    )  # fmt: skip
    assert table.stdout.split("\n", 1)[0].startswith(
        "Fires of 2 files on 2 projects from 2026-11-24T00:00:00Z until 2026-11-24T03:00:00Z"
    )
    assert ["Slot", "(UTC)", "File", "Project", "Job", "Type", "Target"] in [
        line.split() for line in table.stdout.splitlines()
    ]
    assert ["2026-11-24T01:30:00Z", second, "b", "half", "trigger-action", "a"] in [
        line.split() for line in table.stdout.splitlines()
    ]


def test_plan_with_one_file_on_several_projects_names_the_project() -> None:
    result = run(
        "plan", "--cron", GECKO, "--project", "mozilla-central", "--project", "mozilla-beta",
        "--from", "2026-11-24T09:00:00Z", "--until", "2026-11-24T10:15:00Z", "--json",
    )  # fmt: skip
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {
            "slot": "2026-11-24T09:00:00Z",
            "file": GECKO,
            "project": "mozilla-beta",
            "job": "l10n-bumper",
        },
        {
            "slot": "2026-11-24T10:00:00Z",
            "file": GECKO,
            "project": "mozilla-central",
            "job": "nightly-all",
        },
        {
            "slot": "2026-11-24T10:00:00Z",
            "file": GECKO,
            "project": "mozilla-beta",
            "job": "searchfox-index",
        },
    ]


def test_plan_plans_a_file_named_with_its_projects_on_those_alone(tmp_path: Path) -> None:
    """A fleet: each repository's file on its own projects, the rest on --project."""
    first = _write_cron(tmp_path / "first.yml", ("two", "[{hour: 2, minute: 0}]"))
    second = _write_cron(tmp_path / "second.yml", ("half", "[{hour: 1, minute: 30}]"))
    third = _write_cron(tmp_path / "x=y.yml", ("three", "[{hour: 3, minute: 0}]"))
    result = run(
        "plan", "--cron", f"{first}=a, b", "--cron", second, "--cron", third,
        "--project", "c", "--from", "2026-11-24", "--until", "2026-11-24T04:00Z", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [(fire["file"], fire["project"]) for fire in json.loads(result.stdout)] == [
        (second, "c"),
        (first, "a"),
        (first, "b"),
        (third, "c"),  # a path that exists as written is a path, `=` and all
    ]
    no_project = run("plan", "--cron", first, "--cron", f"{second}=a", "--from", "2026-11-24")
    assert no_project.exit_code == 2
    assert f"--cron {first}=NAME,NAME" in " ".join(no_project.stderr.split())
    for wrong in (f"{first}=", f"{first}= ,", str(tmp_path / "nothing.yml=a"), "=a"):
        refused = run("plan", "--cron", wrong, "--project", "p")
        assert refused.exit_code == 2, wrong
        assert "Traceback" not in refused.output


def test_plan_plans_a_file_named_twice_once(tmp_path: Path) -> None:
    _write_cron(tmp_path / ".cron.yml", ("two", "[{hour: 2, minute: 0}]"))
    span = ("--from", "2026-11-24", "--until", "2026-11-25", "--json")
    once = run("plan", "--cron", str(tmp_path), "--project", "p", *span)
    twice = run(
        "plan", "--cron", str(tmp_path), "--cron", str(tmp_path / ".cron.yml"),
        "--project", "p", *span,
    )  # fmt: skip
    assert once.exit_code == twice.exit_code == 0, twice.output
    assert (
        json.loads(twice.stdout)
        == json.loads(once.stdout)
        == [{"slot": "2026-11-24T02:00:00Z", "job": "two"}]
    )


def test_plan_next_counts_the_fires_of_each_file_on_each_project(tmp_path: Path) -> None:
    hourly = _write_cron(tmp_path / "hourly.yml", ("hourly", "[{minute: 0}]"))
    daily = _write_cron(tmp_path / "daily.yml", ("daily", "[{hour: 5, minute: 0}]"))
    result = run(
        "plan", "--cron", hourly, "--cron", daily, "--project", "p",
        "--from", "2026-11-24T00:00Z", "--next", "2", "--json",
    )  # fmt: skip
    assert result.exit_code == 0
    assert [(fire["slot"], fire["job"]) for fire in json.loads(result.stdout)] == [
        ("2026-11-24T00:00:00Z", "hourly"),
        ("2026-11-24T01:00:00Z", "hourly"),
        ("2026-11-24T05:00:00Z", "daily"),
        ("2026-11-25T05:00:00Z", "daily"),
    ]


def test_a_broken_file_does_not_stop_the_others_from_being_planned(tmp_path: Path) -> None:
    bad_job = _write_cron(
        tmp_path / "bad-job.yml",
        ("good", "[{hour: 1, minute: 0}]"),
        ("bad", "[{hour: 1, minute: 5}]"),
    )
    empty = tmp_path / "empty"  # a directory without a .cron.yml
    empty.mkdir()
    result = run(
        "plan", "--cron", ANDROID_L10N, "--cron", bad_job, "--cron", str(empty),
        "--project", "p", "--project", "q", "--from", "2026-11-24", "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {"slot": "2026-11-24T01:00:00Z", "file": bad_job, "project": project, "job": "good"}
        for project in ("p", "q")
    ]
    # Each file's errors once, whatever the number of projects.
    assert result.stderr.count(f"{ANDROID_L10N}:6:7: error: jobs must be a list") == 1
    assert result.stderr.count(f"{bad_job}:3:") == 1
    assert f"{empty / '.cron.yml'}:1:1: error: cannot read" in result.stderr


RENDER_ARGS = [
    "render",
    "--cron", TRANSLATIONS_CRON,
    "--taskcluster-yml", TRANSLATIONS_TEMPLATE,
    "--job", "run-pipeline",
    "--project", "translations",
    "--repo-url", "https://github.com/mozilla/translations",
    "--level", "3",
    "--revision", "4732dc947bc952abb019aabfe5582006d4fc3337",
    "--branch", "main",
    "--slot", "2026-11-24T00:00:00Z",
    "--root-url", "https://firefox-ci-tc.services.mozilla.com",
    "--trust-domain", "translations",
]  # fmt: skip


def render_args(replace: dict[str, str]) -> list[str]:
    """RENDER_ARGS with some options' values replaced."""
    args = list(RENDER_ARGS)
    for option, value in replace.items():
        args[args.index(option) + 1] = value
    return args


def test_render_prints_the_task_with_its_id() -> None:
    result = run(*RENDER_ARGS)
    assert result.exit_code == 0, result.output
    task = json.loads(result.stdout)
    assert task["taskId"] == decision_task_id(
        "https://firefox-ci-tc.services.mozilla.com",
        "translations",
        "run-pipeline",
        datetime(2026, 11, 24, tzinfo=UTC),
    )
    assert task["taskGroupId"] == task["taskId"]
    assert task["created"] == "2026-11-24T00:00:00.000Z"
    assert "--target-tasks-method=train-target-tasks" in task["payload"]["command"][-1]


@pytest.mark.process
def test_render_prints_the_same_bytes_every_time() -> None:
    command = [sys.executable, "-m", "scheduler", *RENDER_ARGS]
    first = subprocess.run(command, capture_output=True, check=True)
    second = subprocess.run(command, capture_output=True, check=True)
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["taskId"]


@pytest.mark.process
def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "tc-scheduler"
    result = subprocess.run(
        [script, "check", str(REPOSITORY_ROOT / ".cron.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "0 errors, 0 warnings" in result.stderr


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"--job": "nope"}, "no valid job named 'nope'"),
        (
            {
                "--taskcluster-yml": str(
                    CORPUS / "taskcluster-yml" / "taskcluster__taskcluster.taskcluster.yml"
                )
            },
            "unknown context value event",
        ),
    ],
)
def test_render_failures_exit_one_with_a_message(replace: dict[str, str], message: str) -> None:
    result = run(*render_args(replace))
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_render_refuses_a_trigger_action_job() -> None:
    cron = CORPUS / "cron" / "mozilla-releng__staging-firefox-translations-training.cron.yml"
    result = run(*render_args({"--cron": str(cron), "--job": "run-pipeline"}))
    assert result.exit_code == 1
    assert "is a trigger-action job; only decision-task jobs render" in result.stderr


def test_render_hg_push_and_input(tmp_path: Path) -> None:
    template = tmp_path / "t.yml"
    template.write_text(
        "tasks:\n  - taskId: '${ownTaskId}'\n"
        "    extra: {push: {$eval: push}, input: {$eval: cron.input}}\n"
    )
    cron = tmp_path / "c.yml"
    cron.write_text(
        "jobs:\n  - name: n\n    job: {type: decision-task, treeherder-symbol: N,"
        " target-tasks-method: n, include-cron-input: true}\n"
    )
    args = [
        "render", "--cron", str(cron), "--taskcluster-yml", str(template), "--job", "n",
        "--project", "mozilla-central", "--repo-url", "https://hg.mozilla.org/mozilla-central",
        "--level", "3", "--revision", "abc", "--repo-type", "hg", "--slot", "2026-11-24T10:07Z",
        "--pushlog-id", "77", "--input", '{"reason": "manual"}',
    ]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.output
    extra = json.loads(result.stdout)["extra"]
    assert extra["push"] == {
        "owner": "cron",
        "branch": "main",
        "revision": "abc",
        "pushlog_id": "77",
        "pushdate": int(datetime(2026, 11, 24, 10, tzinfo=UTC).timestamp()),
        "base_revision": "abc",
    }
    assert extra["input"] == {"reason": "manual"}
    args[-1] = "[1]"
    not_an_object = run(*args)
    assert not_an_object.exit_code == 2
    assert "must be a JSON object" in not_an_object.stderr


def test_plan_reports_each_error_once(tmp_path: Path) -> None:
    path = tmp_path / ".cron.yml"
    path.write_text(
        "jobs:\n"
        "  - name: x\n"
        "    job: {type: trigger-action, action-name: a}\n"
        "    run-on-projects: [a, b]\n"
        "    when: {by-project: {a: [{hour: 1, minute: 0}]}}\n"
    )
    on_b = run("plan", "--cron", str(path), "--project", "b", "--from", "2026-11-24", "--json")
    assert on_b.exit_code == 1
    assert json.loads(on_b.stdout) == []
    assert on_b.stderr.count("no entry for project `b`") == 1
    on_a = run("plan", "--cron", str(path), "--project", "a", "--from", "2026-11-24", "--json")
    assert json.loads(on_a.stdout) == [{"slot": "2026-11-24T01:00:00Z", "job": "x"}]


def test_plan_of_a_clean_file_exits_zero_and_of_a_broken_one_one(tmp_path: Path) -> None:
    clean = run("plan", "--cron", GECKO, "--project", "mozilla-central", "--next", "1")
    assert clean.exit_code == 0
    assert clean.stderr == ""
    broken = run("plan", "--cron", ANDROID_L10N, "--project", "p", "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout) == []
    assert "jobs must be a list" in broken.stderr


@pytest.mark.parametrize("moment", ["9999-12-31T00:00Z", "9999-12-31T23:50Z", "0001-01-01T00:00Z"])
def test_times_at_the_ends_of_the_calendar_are_refused_cleanly(moment: str) -> None:
    result = run("plan", "--cron", GECKO, "--project", "mozilla-central", "--from", moment)
    assert result.exit_code == 2
    assert "outside the times tc-scheduler plans for (1970 to 8999)" in result.stderr


# -- secrets ---------------------------------------------------------------------------------


def canary() -> str:
    return "canary" + secrets.token_hex(12)


def test_a_cron_file_quoting_a_secret_variable_shows_it_masked(tmp_path: Path) -> None:
    secret = canary()
    cron = tmp_path / ".cron.yml"
    cron.write_text(
        "jobs:\n"
        "  - name: leaky\n"
        "    job: {type: decision-task, treeherder-symbol: L, target-tasks-method: leaky}\n"
        f'    when: [{{minute: "{secret}"}}]\n'
    )
    env = {"MY_API_TOKEN": secret}
    runs = [
        CliRunner().invoke(main, arguments, env=env)
        for arguments in (
            ["check", str(cron)],
            ["check", "--json", str(cron)],
            ["plan", "--cron", str(cron), "--project", "p", "--from", "2026-01-01T00:00Z"],
        )
    ]

    assert [result.exit_code for result in runs] == [1, 1, 1]
    assert [result.output.count(secret) for result in runs] == [0, 0, 0]
    for result in runs:
        assert '(got "***")' in result.output.replace('\\"', '"'), result.output


def test_plan_json_masks_a_secret_in_a_job_name_or_a_slot(tmp_path: Path) -> None:
    name = canary()
    cron = tmp_path / ".cron.yml"
    cron.write_text(
        f"jobs:\n  - name: {name}\n"
        "    job: {type: decision-task, treeherder-symbol: H, target-tasks-method: hourly}\n"
        "    when: [{minute: 0}]\n"
    )
    # A date far from any other test's: the secret is remembered for the rest of the process.
    env = {"MY_API_TOKEN": name, "MY_SECRET": "8123-05-06"}
    span = ["--from", "8123-05-05T23:00Z", "--until", "8123-05-06T01:00Z"]
    result = CliRunner().invoke(
        main, ["plan", "--cron", str(cron), "--project", "p", *span, "--json"], env=env
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"slot": "8123-05-05T23:00:00Z", "job": "***"},
        {"slot": "***T00:00:00Z", "job": "***"},
    ]


def test_echo_masks_remembered_and_secret_looking_text(capsys: pytest.CaptureFixture[str]) -> None:
    secret = canary()
    remember_secret(secret)

    echo(f"refused {secret} and https://bot:hunter22@example.com/x")
    echo("token=abc123 on stderr", err=True)

    out, err = capsys.readouterr()
    assert out == "refused *** and https://***@example.com/x\n"
    assert err == "token=*** on stderr\n"


def test_json_and_yaml_are_masked_before_escaping_and_folding(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # JSON would escape the quote and YAML would fold the long line: text scrubbed after
    # serializing would no longer find the secret.
    secret = 'q"uote\u00e9' + canary()
    remember_secret(secret)
    long = "word " * 30 + secret

    echo_json({"note": f"with {secret}", "access_token": "abc", "dsn": None})
    shown = json.loads(capsys.readouterr().out)
    echo_yaml({"note": long})
    folded = capsys.readouterr().out

    assert shown == {"note": "with ***", "access_token": "***", "dsn": None}
    assert folded.count("***") == 1
    assert secret[-12:] not in folded


# What a record's strings can be: anything, and what masking changes (a remembered secret
# among them: `test_echo_json_records_is_echo_json_of_their_dicts` remembers it).
REMEMBERED_IN_RECORDS = canary()
RECORD_TEXT = st.text() | st.sampled_from(
    [
        "",
        "<set>",
        "token=abc123",
        "https://bot:hunter22@example.com/x",
        f"job-{REMEMBERED_IN_RECORDS}",
        "2026-11-24T10:15:00Z",
        'caf\u00e9 "quoted"\n',
    ]
)


@st.composite
def json_records(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """Keys (as masking leaves them: a dict keeps one of two keys masked alike) and records."""
    keys = draw(
        st.lists(
            st.sampled_from(["slot", "job", "access_token", "dsn"]) | st.text(min_size=1),
            min_size=1,
            max_size=4,
            unique_by=scrub,
        )
    )
    width = len(keys)
    records = draw(st.lists(st.lists(RECORD_TEXT, min_size=width, max_size=width), max_size=6))
    return keys, records


@given(json_records())
def test_echo_json_records_is_echo_json_of_their_dicts(
    keys_and_records: tuple[list[str], list[list[str]]],
) -> None:
    remember_secret(REMEMBERED_IN_RECORDS)
    keys, records = keys_and_records
    with contextlib.redirect_stdout(io.StringIO()) as fast:
        echo_json_records(keys, records)
    with contextlib.redirect_stdout(io.StringIO()) as full:
        echo_json([dict(zip(keys, record, strict=True)) for record in records])
    assert fast.getvalue() == full.getvalue()
    assert REMEMBERED_IN_RECORDS not in fast.getvalue()


def test_the_console_masks_before_a_table_folds_a_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = canary()
    remember_secret(secret)
    table = Table(title=f"title {secret}")
    table.add_column("error", max_width=10, overflow="fold")
    table.add_row(f"x {secret}")

    console().print(table)
    console().print(f"line {secret}")

    out = capsys.readouterr().out
    # Folded into 10-character pieces, an unmasked secret would show in none of them whole.
    pieces = [secret[i : i + 8] for i in range(len(secret) - 7)]
    assert [piece for piece in pieces if piece in out] == []
    assert out.count("***") == 3


def test_output_wide_keeps_every_cell_whole(tmp_path: Path) -> None:
    name = "nightly-" + "-".join(["and-on"] * 40)
    path = tmp_path / ".cron.yml"
    path.write_text(
        f"jobs:\n  - name: {name}\n"
        "    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}\n"
        "    when: [{hour: 1, minute: 0}]\n"
    )
    command = ("plan", "--cron", str(path), "--project", "p", "--from", "2026-11-24T00:00:00Z")
    table, wide = run(*command), run(*command, "-o", "wide")
    assert table.exit_code == wide.exit_code == 0
    assert name not in table.stdout  # cut to the default width
    [row] = [line for line in wide.stdout.splitlines() if name in line]
    assert "2026-11-24T01:00:00Z" in row
