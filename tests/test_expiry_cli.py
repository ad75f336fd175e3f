"""`tc-scheduler expiry` as people see it: a progress bar on a terminal only, a gone task with no
date to wait for, and a remediation that says which running rebuild it follows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import main
from tests.emulator import Emulator
from tests.support.emulated import taskcluster_environment
from tests.support.expiry import CACHED, demo_config, seed, seed_rebuild_action

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
GONE = "tcs.cache.level-3.docker-images.v3.gone.latest"
SOON = "tcs.cache.level-3.toolchains.v3.soon.latest"
# The gone task's index entry lives on: a date that says nothing about the task.
ENTRY_EXPIRES = NOW + timedelta(days=100)


@pytest.fixture
def cached(emulator: Emulator) -> dict[str, str]:
    """One task that expires in 5 days, one gone that the index still names; their ids."""
    emulator.clock.set(NOW, frozen=True)
    soon = seed(emulator, SOON, timedelta(days=5))
    gone = seed(emulator, GONE, timedelta(days=200))
    emulator.expire_task(gone)
    with emulator.lock:
        emulator.index.insert(GONE, gone, rank=1, expires=ENTRY_EXPIRES)
    return {"soon": soon, "gone": gone}


def report(emulator: Emulator, config: Path, *options: str, **env: str) -> Result:
    return CliRunner().invoke(
        main,
        ["expiry", "report", "--config", str(config), *options],
        env={**taskcluster_environment(emulator), **env},
        catch_exceptions=False,
    )


def test_a_gone_task_shows_no_date_to_wait_for(
    emulator: Emulator, cached: dict[str, str], tmp_path: Path
) -> None:
    config = demo_config(tmp_path)
    shown = report(emulator, config, COLUMNS="100")
    assert shown.exit_code == 1
    [gone_row] = [line for line in shown.stdout.splitlines() if cached["gone"] in line]
    assert "gone" in gone_row
    assert ENTRY_EXPIRES.strftime("%Y-%m-%d") not in shown.stdout
    [soon_row] = [line for line in shown.stdout.splitlines() if cached["soon"] in line]
    assert (NOW + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ") in soon_row

    as_json = json.loads(report(emulator, config, "--json").stdout)
    by_task = {row["task_id"]: row for row in as_json["at_risk"]}
    assert by_task[cached["gone"]]["expires"] is None
    assert by_task[cached["gone"]]["because"] == "task is gone"
    assert by_task[cached["soon"]]["expires"] == "2026-11-25T10:00:00Z"


@pytest.mark.parametrize(
    ("options", "terminal", "bar"),
    [
        ((), True, True),
        (("--json",), True, False),
        (("-o", "json"), True, False),
        ((), False, False),
    ],
)
def test_the_progress_bar_shows_on_a_terminal_only(
    emulator: Emulator,
    cached: dict[str, str],
    tmp_path: Path,
    options: tuple[str, ...],
    terminal: bool,
    bar: bool,
) -> None:
    # rich takes TTY_COMPATIBLE=1 for a terminal: the runner's streams are not one.
    env = {"TTY_COMPATIBLE": "1"} if terminal else {}
    result = report(emulator, demo_config(tmp_path), *options, **env)
    assert result.exit_code == 1
    shown = "index entries" in result.stderr
    assert shown is bar, result.stderr
    if bar:
        assert "demo: scanning its cached tasks" in result.stderr
        assert "2 index entries read" in result.stderr
    if options:
        assert json.loads(result.stdout)["scanned"] == 2


def test_remediate_says_it_follows_the_running_rebuild(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(NOW, frozen=True)
    seed_rebuild_action(emulator, "demo")
    for namespace in CACHED:
        seed(emulator, f"{namespace}.latest", timedelta(days=10))
    config = demo_config(tmp_path, "expiry: {threshold: 30d}")
    env = taskcluster_environment(emulator)

    def remediate(*options: str) -> Result:
        return CliRunner().invoke(
            main,
            ["expiry", "remediate", "demo", "--config", str(config), *options],
            env=env,
            catch_exceptions=False,
        )

    started = json.loads(remediate("--json").stdout)
    [group] = [e["task_group_id"] for e in started["events"] if e["task_group_id"]]

    again = remediate()
    assert again.exit_code == 0, again.output
    assert "demo: expiring-found: 2 cached tasks expire within 30d" in again.stdout
    following = [line for line in again.stdout.splitlines() if "remediation-running" in line]
    assert following == [
        "demo: remediation-running: following the rebuild started 2026-11-20 10:00 UTC with "
        f"rebuild-cached-tasks: its action task {group} is pending"
    ]
    answer = json.loads(remediate("--json").stdout)
    assert {e["kind"]: e["task_group_id"] for e in answer["events"]}["remediation-running"] == group
