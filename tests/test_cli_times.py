"""Times on the command line: ISO 8601, or how long ago (`--since 2h`) or from now (`pause
--until 2h`), judged by the command's clock (`TC_SCHEDULER_NOW`, never the real one here)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.clock import NOW_VARIABLE
from scheduler.cron import parse_time
from tests.support.projects import HOURLY, write_service_config
from tests.support.repos import Repository

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
EVERY_QUARTER = """\
jobs:
  - name: quarterly
    job: {type: decision-task, treeherder-symbol: Q, target-tasks-method: q}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
"""


def invoke(*arguments: str, now: datetime = NOW, **env: str) -> Result:
    """The command, on a clock that starts at `now`."""
    return CliRunner().invoke(
        main,
        list(arguments),
        env={NOW_VARIABLE: now.isoformat(), "TASKCLUSTER_ROOT_URL": "https://tc.example", **env},
        catch_exceptions=False,
    )


@pytest.mark.parametrize(
    ("text", "ahead", "expected"),
    [
        ("2h", False, NOW - timedelta(hours=2)),
        ("-2h", False, NOW - timedelta(hours=2)),
        ("+2h", False, NOW + timedelta(hours=2)),
        ("3d", False, NOW - timedelta(days=3)),
        ("1d12h", False, NOW - timedelta(days=1, hours=12)),
        ("30m", False, NOW - timedelta(minutes=30)),
        ("2h", True, NOW + timedelta(hours=2)),
        ("+2h", True, NOW + timedelta(hours=2)),
        ("-2h", True, NOW - timedelta(hours=2)),
        ("2026-11-24T08:00:00Z", False, datetime(2026, 11, 24, 8, tzinfo=UTC)),
        ("2026-11-24T08:00:00Z", True, datetime(2026, 11, 24, 8, tzinfo=UTC)),
        ("2026-11-24", False, datetime(2026, 11, 24, tzinfo=UTC)),
    ],
)
def test_a_time_is_iso_8601_or_a_duration_from_now(
    text: str, ahead: bool, expected: datetime
) -> None:
    assert parse_time(text, NOW, ahead=ahead) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2x", "'2x' is neither an ISO 8601 time (like 2026-11-24T10:00:00Z) nor how long ago"),
        ("-2026-11-24", "is neither an ISO 8601 time"),
        ("1w", "like 2h, 3d or 1d12h"),
        ("", "is neither"),
        ("5000000d", "outside the times tc-scheduler plans for (1970 to 8999)"),
        ("99999999999999999d", "outside the times"),
        ("0001-01-01", "outside the times"),
    ],
)
def test_what_is_not_a_time_is_refused_naming_both_forms(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_time(text, NOW)


def test_plan_takes_times_from_now(tmp_path: Path) -> None:
    cron = tmp_path / ".cron.yml"
    cron.write_text(EVERY_QUARTER)
    # Ahead by default: the next hour; a sign counts back.
    result = invoke("plan", "--cron", str(cron), "--project", "p", "--until", "1h", "--json")
    assert result.exit_code == 0, result.output
    assert [f["slot"] for f in json.loads(result.stdout)] == [
        "2026-11-24T10:15:00Z",
        "2026-11-24T10:30:00Z",
        "2026-11-24T10:45:00Z",
        "2026-11-24T11:00:00Z",
    ]
    back = invoke(
        "plan", "--cron", str(cron), "--project", "p", "--from", "-1h", "--until", "+0s", "--json"
    )
    assert back.exit_code == 0, back.output
    assert [f["slot"] for f in json.loads(back.stdout)] == [
        "2026-11-24T09:15:00Z",
        "2026-11-24T09:30:00Z",
        "2026-11-24T09:45:00Z",
        "2026-11-24T10:00:00Z",
    ]


def test_pause_until_counts_ahead_and_audit_since_counts_back(tmp_path: Path) -> None:
    repository = Repository(tmp_path / "alpha", {".cron.yml": HOURLY})
    config = str(write_service_config(tmp_path, repository, project="alpha"))

    earlier = invoke(
        "pause", "alpha", "--reason", "old", "--config", config, now=NOW - timedelta(hours=3)
    )
    assert earlier.exit_code == 0, earlier.output
    paused = invoke(
        "pause", "alpha", "--reason", "deploy", "--until", "2h", "--json", "--config", config
    )
    assert paused.exit_code == 0, paused.output
    until = datetime.fromisoformat(json.loads(paused.stdout)["until"])
    # The clock runs on from NOW while the command runs: two hours from then, not before.
    assert NOW + timedelta(hours=2) <= until < NOW + timedelta(hours=2, minutes=1)

    recent = invoke("audit", "--since", "2h", "--json", "--config", config)
    assert recent.exit_code == 0, recent.output
    assert [e["input"]["reason"] for e in json.loads(recent.stdout)] == ["deploy"]
    both = invoke("audit", "--since", "1d", "--json", "--config", config)
    assert [e["input"]["reason"] for e in json.loads(both.stdout)] == ["deploy", "old"]


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (("history",), "--since"),
        (("audit",), "--since"),
        (("tick",), "--at"),
        (("pause", "alpha", "--reason", "r"), "--until"),
    ],
)
def test_a_bad_time_is_a_usage_error_naming_the_option_and_the_forms(
    command: tuple[str, ...], option: str
) -> None:
    result = invoke(*command, option, "yesterday")
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
    assert "'yesterday' is neither an ISO 8601 time" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (("history",), "ISO 8601, or how long ago: 2h, 3d"),
        (("audit",), "ISO 8601, or how long ago: 2h, 3d"),
        (("tick",), "ISO 8601, or how long ago: 2h, 3d"),
        (("render",), "ISO 8601, or how long ago: 2h, 3d"),
        (("pause",), "ISO 8601, or how long from now: 2h, 3d (-2h: ago)"),
        (("plan",), "ISO 8601, or how long from now: 2h, 3d (-2h: ago)"),
    ],
)
def test_the_help_says_which_times_an_option_takes(command: tuple[str, ...], says: str) -> None:
    shown = CliRunner(env={"COLUMNS": "400"}).invoke(main, [*command, "--help"])
    assert shown.exit_code == 0
    assert says in " ".join(shown.stdout.split())
