"""Every run's outcome end to end: the service against the emulator follows each fire's task
created -> running -> completed, failed or exception, and a watched task group to its verdict
with its counts; `history`, `jobs`, the API and the dashboard show it, and `--state` filters
on it.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import slugid
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.config.model import ApiSettings, ApiToken, Config
from scheduler.ids import decision_task_id
from scheduler.operations.acts import Operations
from scheduler.operations.models import FireOut, FireQuery
from scheduler.rounds import tick_and_report
from scheduler.service import Notifier
from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.support.dashboard import serving_pages
from tests.support.emulated import task_definition, taskcluster_environment
from tests.support.projects import OWN_TEMPLATE, make_config, project, write_service_config
from tests.support.repos import Repository

DAY = datetime(2026, 12, 1, tzinfo=UTC)
VIEWER = "view-runs-token"
# Each decision task ends its own way; `broken` never makes its task (no decision task has
# published the action it triggers); `grouped`'s task group is watched.
JOBS = ("built", "tested", "linted", "grouped", "slow")
CRON = (
    "jobs:\n"
    + "".join(
        f"""\
  - name: {job}
    job: {{type: decision-task, treeherder-symbol: {job[0].upper()}, target-tasks-method: x}}
    when: [{{minute: 0}}]
"""
        for job in JOBS
    )
    + """\
  - name: broken
    job: {type: trigger-action, action-name: nightly}
    when: [{minute: 0}]
"""
)
WATCHED = "    watch-task-groups: [grouped]\n"


def world(emulator: Emulator, tmp_path: Path) -> tuple[Config, Path]:
    """The service's configuration (its API readable with VIEWER) and the same as a file for
    the command line, on one ledger."""
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository, watch_task_groups=("grouped",))
    )
    api = ApiSettings(
        host="127.0.0.1", port=0, tokens=(ApiToken("dashboard", "viewer", hash_token(VIEWER)),)
    )
    path = write_service_config(tmp_path, repository, project="alpha", extra=WATCHED)
    return replace(config, api=api), path


def task_of(emulator: Emulator, job: str) -> str:
    return decision_task_id(emulator.root_url, "alpha", job, DAY)


def add_to_group(emulator: Emulator, decision: str, name: str, **extra: Any) -> str:
    """A task of `decision`'s task group, as the decision task would have made it."""
    task_id = slugid.nice()
    scheduler_id = emulator.tasks()[0].definition["schedulerId"]
    metadata = {
        "name": name,
        "description": name,
        "owner": "ci@example.com",
        "source": "https://example.com/ci",
    }
    definition = task_definition(
        DAY, taskGroupId=decision, schedulerId=scheduler_id, metadata=metadata, **extra
    )
    emulator.add_task(task_id, definition)
    return task_id


async def by_job(operations: Operations, **query: Any) -> dict[str, FireOut]:
    return {f.job: f for f in await operations.ledger.history(FireQuery(**query))}


def outcomes(fires: dict[str, FireOut]) -> dict[str, tuple[str | None, str | None]]:
    """Each job's (run state, task state), None where nothing is followed."""
    return {
        job: (f.outcome.state, f.outcome.task_state) if f.outcome else (None, None)
        for job, f in fires.items()
    }


async def runs_to_their_ends(
    emulator: Emulator, operations: Operations, notifier: Notifier
) -> None:
    """Fire every job at DAY and follow each run step by step to where it ends, checking what
    the history says at each step."""
    watcher = notifier.watcher
    emulator.clock.set(DAY, frozen=True)
    await tick_and_report(operations.engine, notifier, DAY)  # fired, and followed one step
    fires = await by_job(operations)
    assert fires["broken"].state == "failed"
    assert outcomes(fires) == dict.fromkeys(JOBS, ("created", "pending")) | {"broken": (None, None)}
    assert await watcher.step() == 0, "nothing changed: nothing is written"

    for job in ("built", "tested", "slow"):
        emulator.run_task(task_of(emulator, job))
    assert await watcher.step() == 3
    fires = await by_job(operations)
    assert fires["slow"].outcome is not None
    assert (fires["slow"].state, fires["slow"].outcome.state) == ("created", "running")
    assert fires["slow"].outcome.label == "running"
    assert outcomes(fires)["built"] == ("running", "running")
    assert outcomes(fires)["linted"] == ("created", "pending")
    assert await watcher.step() == 0

    decision = task_of(emulator, "grouped")
    failed = add_to_group(emulator, decision, "test-linux64/debug")
    passed = [add_to_group(emulator, decision, f"build-{n}") for n in range(3)]
    add_to_group(emulator, decision, "upload-symbols", dependencies=[failed])  # never runs
    emulator.resolve_task(task_of(emulator, "built"), "completed")
    emulator.resolve_task(task_of(emulator, "tested"), "failed")
    emulator.resolve_task(task_of(emulator, "linted"), "exception", "malformed-payload")
    emulator.resolve_task(decision, "completed")
    emulator.resolve_task(failed, "failed")
    for task_id in passed[:-1]:
        emulator.resolve_task(task_id, "completed")
    assert await watcher.step() == 4  # built, tested, linted resolved; grouped's group next
    assert await watcher.step() == 1  # the group listed: its counts recorded
    assert await watcher.step() == 0, "the same counts: nothing is written"
    fires = await by_job(operations)
    grouped = fires["grouped"].outcome
    assert grouped is not None
    assert (grouped.state, grouped.task_state, grouped.group_running) == (
        "running",
        "completed",
        True,
    )
    assert grouped.group is not None
    assert (grouped.group.total, grouped.group.unresolved) == (6, 1)
    assert grouped.label == (
        "completed; its task group still runs: 6 tasks: 3 completed, 1 failed, 1 blocked, "
        "1 unresolved"
    )

    emulator.resolve_task(passed[-1], "completed")
    assert await watcher.step() == 1
    assert await watcher.step() == 0


def test_each_run_is_followed_to_its_end_and_its_groups_counts_kept(
    emulator: Emulator, tmp_path: Path
) -> None:
    config, _ = world(emulator, tmp_path)

    async def main_() -> None:
        async with serving_pages(config, emulator.clock.now) as (_, operations, notifier):
            await runs_to_their_ends(emulator, operations, notifier)
            fires = await by_job(operations)
            assert outcomes(fires) == {
                "built": ("completed", "completed"),
                "tested": ("failed", "failed"),
                "linted": ("exception", "exception"),
                "grouped": ("failed", "completed"),
                "slow": ("running", "running"),
                "broken": (None, None),
            }
            linted = fires["linted"].outcome
            assert linted is not None
            assert (linted.reason, linted.label) == (
                "malformed-payload",
                "exception (malformed-payload)",
            )
            grouped = fires["grouped"].outcome
            assert grouped is not None
            assert grouped.group is not None
            assert grouped.group.model_dump() == {
                "total": 6,
                "completed": 4,
                "failed": 1,
                "exception": 0,
                "blocked": 1,
                "unresolved": 0,
                "summary": "6 tasks: 4 completed, 1 failed, 1 blocked",
            }
            assert grouped.label == (
                "completed; its task group failed: 6 tasks: 4 completed, 1 failed, 1 blocked"
            )
            assert grouped.resolved_at == DAY
            # The jobs overview: each job's last fire, with how its run went.
            jobs = await operations.jobs("alpha")
            last = {job.name: job.last_fire for job in jobs.jobs}
            assert {name: f.outcome.state for name, f in last.items() if f and f.outcome} == {
                "built": "completed",
                "tested": "failed",
                "linted": "exception",
                "grouped": "failed",
                "slow": "running",
            }

    asyncio.run(main_())


def invoke(*arguments: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_history_state_filters_on_the_outcome_in_the_cli_the_api_and_the_pages(
    emulator: Emulator, tmp_path: Path
) -> None:
    config, path = world(emulator, tmp_path)

    async def main_() -> None:
        async with serving_pages(config, emulator.clock.now) as (client, operations, notifier):
            await runs_to_their_ends(emulator, operations, notifier)
            viewer = {"Authorization": f"Bearer {VIEWER}"}

            async def jobs_in(state: str) -> set[str]:
                answer = await client.get(f"/api/v1/fires?state={state}", headers=viewer)
                assert answer.status_code == 200, answer.text
                return {fire["job"] for fire in answer.json()}

            assert await jobs_in("failed") == {"broken", "tested", "grouped"}
            assert await jobs_in("running") == {"slow"}
            assert await jobs_in("completed") == {"built"}
            assert await jobs_in("exception") == {"linted"}
            assert await jobs_in("created") == set(JOBS)
            refused = await client.get("/api/v1/fires?state=bogus", headers=viewer)
            assert refused.status_code == 422

            answer = await client.get("/api/v1/fires?job=grouped", headers=viewer)
            [grouped] = answer.json()
            assert grouped["outcome"]["state"] == "failed"
            assert grouped["outcome"]["group"]["failed"] == 1
            page = await client.get(f"/fires/{grouped['id']}", headers=viewer)
            assert page.status_code == 200
            outcome = re.search(r"<dt>Outcome</dt><dd>(.*?)</dd>", page.text)
            assert outcome is not None
            assert '<span class="outcome outcome-failed">failed</span>' in outcome.group(1)
            assert "<dt>Task group</dt><dd>6 tasks: 4 completed, 1 failed, 1 blocked" in page.text
            assert "task completed; its task group failed" in page.text

    asyncio.run(main_())

    def history(*options: str) -> list[dict[str, Any]]:
        shown = invoke("history", *options, "--json", "--config", str(path))
        listed: list[dict[str, Any]] = json.loads(shown.stdout)
        return listed

    failed = history("--state", "failed")
    assert {fire["job"] for fire in failed} == {"broken", "tested", "grouped"}
    assert {(fire["job"], fire["state"]) for fire in failed if fire["outcome"] is None} == {
        ("broken", "failed")
    }
    assert {fire["job"] for fire in history("--state", "running")} == {"slow"}
    assert {fire["job"] for fire in history("--state", "exception")} == {"linted"}
    assert len(history()) == len(JOBS) + 1

    table = invoke("history", "--state", "failed", "--config", str(path), env={"COLUMNS": "250"})
    assert re.search(r"\boutcome\b", table.stdout)
    assert "group: 6 tasks: 4 completed, 1 failed, 1 blocked" in table.stdout
    helped = invoke("history", "--help", env={"COLUMNS": "100"})
    assert "--state failed lists the fires that could not make their task AND those" in " ".join(
        helped.stdout.split()
    )
    environment = taskcluster_environment(emulator) | {"COLUMNS": "250"}
    jobs = invoke("jobs", "alpha", "--config", str(path), env=environment)
    assert "created -> failed" in jobs.stdout
    assert "created -> exception (malformed-payload)" in jobs.stdout
    refused = CliRunner().invoke(main, ["history", "--state", "bogus", "--config", str(path)])
    assert refused.exit_code == 2
