"""The service's commands end to end: config check, tick, fire, history, concurrent ticks, and
secrets kept out of everything they print."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from scheduler.cli import main, registry
from scheduler.cron import format_slot, slot_of
from scheduler.ids import decision_task_id
from scheduler.ledger import Act, Ledger
from tests.emulator import Emulator
from tests.support.corpus import CORPUS, REPOSITORY_ROOT
from tests.support.emulated import taskcluster_environment
from tests.support.ledger_backends import BACKENDS, fresh_ledger_url
from tests.support.projects import write_service_config
from tests.support.repos import Repository
from tests.support.waiting import HANG_GUARD

# The emulator's clock runs from NOW, and the commands run on it (TC_SCHEDULER_NOW).
NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
SLOT = slot_of(NOW)
AT = format_slot(SLOT)
OWN_TEMPLATE = (REPOSITORY_ROOT / ".taskcluster.yml").read_text()
EVERY_SLOT = "[{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]"
CRON = f"""\
jobs:
  - name: nightly
    job: {{type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}}
    when: {EVERY_SLOT}
  - name: hourly
    job: {{type: decision-task, treeherder-symbol: H, target-tasks-method: hourly}}
    when: {EVERY_SLOT}
"""


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": OWN_TEMPLATE})


@pytest.fixture
def environment(emulator: Emulator) -> dict[str, str]:
    emulator.clock.set(NOW)
    return taskcluster_environment(emulator)


def invoke(*arguments: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def test_config_check_prints_the_resolved_configuration_without_secrets(
    tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    env = {
        "TASKCLUSTER_ROOT_URL": "https://tc.example.com",
        "TASKCLUSTER_CLIENT_ID": "project/demo",
        "TASKCLUSTER_ACCESS_TOKEN": "very-secret-token",
    }
    result = invoke("config", "check", "--config", str(config), "--json", env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["taskcluster"] == {
        "root-url": "https://tc.example.com",
        "proxy-url": None,
        "client-id": "project/demo",
        "access-token": "<set>",
        "max-task-deadline": "5d",
        "call-timeout": "30s",
        "call-deadline": "2m",
    }
    assert shown["dry-run"] is False
    assert "very-secret-token" not in result.output


def test_config_check_reports_every_problem_with_its_place(tmp_path: Path) -> None:
    config = tmp_path / "service.yml"
    config.write_text("projects:\n  - name: x\n    repository: y\n    level: 7\n")
    result = invoke("config", "check", "--config", str(config), env={"TASKCLUSTER_ROOT_URL": ""})
    assert result.exit_code == 1
    assert f"{config}:2:5: error: projects[0] is missing `trust-domain`" in result.stderr
    assert f"{config}:4:12: error: level must be 1, 2 or 3 (got 7)" in result.stderr
    assert "Traceback" not in result.output


def test_tick_creates_the_due_tasks_once(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    first = invoke("tick", "--at", AT, "--config", str(config), "--json", env=environment)
    assert first.exit_code == 0, first.output
    [slot] = json.loads(first.stdout)
    assert sorted((f["job"], f["state"]) for f in slot["fires"]) == [
        ("hourly", "created"),
        ("nightly", "created"),
    ]
    again = invoke("tick", "--at", AT, "--config", str(config), "--json", env=environment)
    assert again.exit_code == 0
    # The slot was decided: its fires as the ledger records them, by nobody now.
    assert sorted(
        (f["job"], f["state"], f["task_id"], f["decided_before"])
        for f in json.loads(again.stdout)[0]["fires"]
    ) == [
        ("hourly", "created", decision_task_id(emulator.root_url, "demo", "hourly", SLOT), True),
        ("nightly", "created", decision_task_id(emulator.root_url, "demo", "nightly", SLOT), True),
    ]
    assert sorted(t.task_id for t in emulator.tasks()) == sorted(
        decision_task_id(emulator.root_url, "demo", job, SLOT) for job in ("nightly", "hourly")
    )


def slot_evaluated(result: Result) -> dict[str, object]:
    """The tick's "slot evaluated" line of its log (JSON off a terminal)."""
    [line] = [
        entry
        for entry in map(json.loads, filter(None, result.stderr.splitlines()))
        if entry.get("event") == "slot evaluated"
    ]
    return line


def test_ticking_a_decided_slot_again_shows_how_its_fires_went_and_exits_so(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path
) -> None:
    broken = "version: 1\ntasks:\n  - $eval: no_such_variable\n"
    repository = Repository(tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": broken})
    config = write_service_config(tmp_path, repository)
    first = invoke("tick", "--at", AT, "--config", str(config), env=environment)
    assert first.exit_code == 1
    assert slot_evaluated(first)["fires"] == 2

    wide = {**environment, "COLUMNS": "200"}
    again = invoke("tick", "--at", AT, "--config", str(config), env=wide)
    assert again.exit_code == 1, "the slot's fires failed, whoever fired them"
    assert "claimed-elsewhere" not in again.stdout
    assert again.stdout.count("failed (decided before)") == 2
    logged = slot_evaluated(again)
    assert (logged["fires"], logged["decided_before"], logged["ok"]) == (0, 2, False)
    shown = invoke("tick", "--at", AT, "--json", "--config", str(config), env=environment)
    for fire in json.loads(shown.stdout)[0]["fires"]:
        assert (fire["state"], fire["decided_before"]) == ("failed", True)
        assert "no_such_variable" in fire["error"]
    assert emulator.tasks() == []


def test_tick_exits_1_when_a_project_fails(
    environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    config.write_text(config.read_text().replace(repository.url, "file:///nonexistent/repo"))
    result = invoke("tick", "--at", AT, "--config", str(config), env=environment)
    assert result.exit_code == 1
    assert "nonexistent" in result.stderr


def test_fire_runs_a_job_now_and_history_shows_it(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    dry = invoke("fire", "demo", "nightly", "--dry-run", "--config", str(config), env=environment)
    assert dry.exit_code == 0, dry.output
    assert emulator.tasks() == []
    fired = invoke(
        "fire",
        "demo",
        "nightly",
        "--input",
        '{"why": "test"}',
        "--config",
        str(config),
        env=environment,
    )
    assert fired.exit_code == 0, fired.output
    [task] = emulator.tasks()
    history = invoke(
        "history", "--project", "demo", "--json", "--config", str(config), env=environment
    )
    records = json.loads(history.stdout)
    assert [(r["kind"], r["state"]) for r in records] == [
        ("manual", "created"),
        ("manual", "dry-run"),
    ]
    assert records[0]["task_id"] == task.task_id
    missing = invoke("fire", "demo", "nope", "--config", str(config), env=environment)
    assert missing.exit_code == 2
    assert "has no job 'nope'; its jobs: nightly, hourly" in missing.stderr


def test_jobs_shows_schedules_next_and_last_fires_and_pauses(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    assert invoke("tick", "--at", AT, "--config", str(config), env=environment).exit_code == 0
    paused = invoke(
        "pause", "demo", "hourly", "--reason", "flaky", "--config", str(config), env=environment
    )
    assert paused.exit_code == 0, paused.output
    shown = invoke(
        "jobs", "demo", "--upcoming", "2", "--json", "--config", str(config), env=environment
    )
    assert shown.exit_code == 0, shown.output
    overview = json.loads(shown.stdout)
    assert overview["revision"] == repository.head
    jobs = {job["name"]: job for job in overview["jobs"]}
    assert jobs["nightly"]["schedule"] == "every 15 minutes"
    first, second = (datetime.fromisoformat(t) for t in jobs["nightly"]["next_fires"])
    assert SLOT < first <= NOW + timedelta(minutes=15)
    assert second - first == timedelta(minutes=15)
    assert (jobs["nightly"]["last_fire"]["slot"], jobs["nightly"]["last_fire"]["state"]) == (
        AT,
        "created",
    )
    assert jobs["nightly"]["paused"] is None
    assert jobs["hourly"]["paused"]["reason"] == "flaky"
    table = invoke("jobs", "demo", "--config", str(config), env=environment)
    assert "every 15 minutes" in table.stdout
    assert "flaky" in table.stdout
    unknown = invoke("jobs", "nope", "--config", str(config), env=environment)
    assert unknown.exit_code == 2
    assert "configured: demo" in unknown.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_ticks_from_two_processes_create_each_task_once(
    emulator: Emulator,
    environment: dict[str, str],
    tmp_path: Path,
    repository: Repository,
    backend: str,
) -> None:
    with fresh_ledger_url(backend, tmp_path) as ledger:
        config = write_service_config(tmp_path, repository, ledger=ledger)
        command = [
            sys.executable,
            "-m",
            "scheduler",
            "tick",
            "--at",
            AT,
            "--config",
            str(config),
            "--json",
        ]
        env = {**os.environ, **environment}
        processes = [
            subprocess.Popen(
                command,
                env=env,
                cwd=REPOSITORY_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=HANG_GUARD) for process in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
        states = sorted(
            f["state"]
            for out, _ in outputs
            for f in json.loads(out)[0]["fires"]
            if not f["decided_before"]
        )
        # Each job: one process created it, the other found it claimed or decided (or, having
        # lost the ledger race after the create, confirmed it in the queue).
        assert states.count("created") == 2
        assert len(emulator.tasks()) == 2


def test_history_since_filters_by_slot(
    environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    earlier = format_slot(SLOT - timedelta(minutes=15))
    invoke("tick", "--at", earlier, "--config", str(config), env=environment)
    invoke("tick", "--at", AT, "--config", str(config), env=environment)
    everything = invoke("history", "--json", "--config", str(config), env=environment)
    assert {r["slot"] for r in json.loads(everything.stdout)} == {earlier, AT}
    result = invoke("history", "--since", AT, "--json", "--config", str(config), env=environment)
    assert {r["slot"] for r in json.loads(result.stdout)} == {AT}


def test_tick_at_and_history_since_take_how_long_ago(
    environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    earlier = format_slot(SLOT - timedelta(minutes=15))
    # 20 minutes before 10:05 is in the 09:45 slot; 10 minutes before is after it.
    ticked = invoke("tick", "--at", "20m", "--json", "--config", str(config), env=environment)
    assert ticked.exit_code == 0, ticked.output
    assert json.loads(ticked.stdout)[0]["slot"] == earlier
    invoke("tick", "--at", "0m", "--config", str(config), env=environment)
    recent = invoke("history", "--since", "10m", "--json", "--config", str(config), env=environment)
    assert {r["slot"] for r in json.loads(recent.stdout)} == {AT}
    both = invoke("history", "--since", "1h", "--json", "--config", str(config), env=environment)
    assert {r["slot"] for r in json.loads(both.stdout)} == {earlier, AT}
    older = invoke("history", "--until", "10m", "--json", "--config", str(config), env=environment)
    assert {r["slot"] for r in json.loads(older.stdout)} == {earlier}


def test_the_service_commands_load_only_when_asked_for() -> None:
    for name in registry.COMMANDS:
        command = registry.main.get_command(click.Context(registry.main), name)
        assert command is not None, name
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from scheduler.cli import main\n"
        "result = CliRunner().invoke(main, ['check', '.cron.yml'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'scheduler.cli.service' not in sys.modules\n"
        "assert 'scheduler.cli.operator' not in sys.modules\n"
        "assert 'sqlalchemy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY_ROOT, check=True)


# What only `run`, a configured notifier or a ledger to upgrade needs: `tick` and `plan`, run by
# cron jobs, CI and editors, start without them.
WEB_APP = ("fastapi", "starlette", "uvicorn", "jinja2", "scheduler.web.app")
UNLESS_CONFIGURED = ("sentry_sdk", "slack_sdk")
UNLESS_UPGRADING = ("alembic",)


def loaded_by(arguments: list[str], modules: tuple[str, ...], env: dict[str, str]) -> list[str]:
    """Which of `modules` a fresh process has imported once it ran `tc-scheduler ARGUMENTS`."""
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from scheduler.cli import main\n"
        f"result = CliRunner().invoke(main, {arguments!r})\n"
        "assert result.exit_code in (0, 1), result.output\n"
        f"print(' '.join(m for m in {modules!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_plan_loads_no_service_module() -> None:
    gecko = str(CORPUS / "cron" / "mozilla__gecko-dev.cron.yml")
    arguments = [
        "plan",
        "--cron",
        ".cron.yml",
        "--cron",
        f"{gecko}=mozilla-central",
        "--project",
        "p",
    ]
    service = (
        "sqlalchemy",
        "taskcluster",
        "aiohttp",
        "scheduler.ledger",
        "scheduler.web",
        *WEB_APP,
        "pydantic",  # the operations' models: no answer of `plan` is one
        "jsone",  # `render` renders; `plan` does not
        "scheduler.render",
    )
    assert loaded_by([*arguments, "--json"], service, {}) == []
    assert loaded_by(arguments, service, {}) == []


def test_tick_loads_no_web_app_notifier_sdk_or_migrations_it_does_not_use(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = str(write_service_config(tmp_path, repository))
    arguments = ["tick", "--at", AT, "--config", config]
    unused = (*WEB_APP, *UNLESS_CONFIGURED, *UNLESS_UPGRADING)
    # A new ledger is migrated, and only then is Alembic needed.
    assert loaded_by(arguments, unused, environment) == ["alembic"]
    assert loaded_by(arguments, unused, environment) == []
    assert len(emulator.tasks()) == 2


# -- no slot later than now ------------------------------------------------------------------


def test_tick_refuses_a_time_later_than_now_and_records_nothing(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path, repository: Repository
) -> None:
    config = write_service_config(tmp_path, repository)
    ahead = format_slot(SLOT + timedelta(hours=1))
    result = invoke("tick", "--at", ahead, "--config", str(config), env=environment)
    assert result.exit_code == 2
    assert f"--at {ahead} is later than now" in result.stderr
    assert "tc-scheduler fire" in result.stderr
    assert emulator.tasks() == []
    history = invoke("history", "--json", "--config", str(config), env=environment)
    assert json.loads(history.stdout) == []


def test_a_slot_ticked_early_while_paused_still_fires_after_resume(
    emulator: Emulator, tmp_path: Path, repository: Repository
) -> None:
    """The sequence that lost a slot: paused, the next slot ticked before it began, resumed."""
    config = str(write_service_config(tmp_path, repository))
    next_slot = SLOT + timedelta(minutes=15)
    emulator.clock.set(next_slot - timedelta(minutes=5))
    before = taskcluster_environment(emulator)
    assert (
        invoke(
            "pause", "demo", "nightly", "--reason", "tree closed", "--config", config, env=before
        ).exit_code
        == 0
    )
    early = invoke("tick", "--at", format_slot(next_slot), "--config", config, env=before)
    assert early.exit_code == 2
    assert invoke("resume", "demo", "nightly", "--config", config, env=before).exit_code == 0

    emulator.clock.set(next_slot + timedelta(minutes=1))
    after = taskcluster_environment(emulator)
    result = invoke("tick", "--at", format_slot(next_slot), "--config", config, "--json", env=after)
    assert result.exit_code == 0, result.output
    fires = {f["job"]: f["state"] for f in json.loads(result.stdout)[0]["fires"]}
    assert fires == {"nightly": "created", "hourly": "created"}
    assert decision_task_id(emulator.root_url, "demo", "nightly", next_slot) in {
        t.task_id for t in emulator.tasks()
    }


# -- secrets ---------------------------------------------------------------------------------

# A variable whose name says it holds a secret: the configuration loader remembers its value.
SECRET_VARIABLE = "MY_API_TOKEN"


def leaky_cron(canary: str) -> str:
    """CRON, and a job whose broken schedule quotes `canary` in its error."""
    return CRON + (
        "  - name: leaky\n"
        "    job: {type: decision-task, treeherder-symbol: L, target-tasks-method: leaky}\n"
        f'    when: [{{minute: "{canary}"}}]\n'
    )


def test_a_secret_quoted_by_a_broken_cron_file_is_masked_in_every_output(
    environment: dict[str, str], tmp_path: Path
) -> None:
    canary = "canary" + secrets.token_hex(12)
    repository = Repository(
        tmp_path / "repo", {".cron.yml": leaky_cron(canary), ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = str(write_service_config(tmp_path, repository))
    # A pause recorded before the secret was known to this process holds it in clear.
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        ledger.pause(
            "demo",
            "hourly",
            reason=f"rotating {canary}",
            until=None,
            act=Act("t", "pause", "demo/hourly", None),
            now=NOW,
        )
    env = {**environment, SECRET_VARIABLE: canary}
    commands = {
        "tick": ("tick", "--at", format_slot(SLOT - timedelta(minutes=15))),
        "tick --json": ("tick", "--at", AT, "--json"),
        "jobs": ("jobs", "demo"),
        "jobs --json": ("jobs", "demo", "--json"),
        "history": ("history", "-o", "wide"),
        "history --json": ("history", "--json"),
        "audit": ("audit",),
    }

    results = {
        name: invoke(*command, "--config", config, env=env) for name, command in commands.items()
    }

    leaks = {name: r.stdout.count(canary) + r.stderr.count(canary) for name, r in results.items()}
    assert leaks == dict.fromkeys(commands, 0)
    # Not silent about it either: each shows the error that quotes it, or the pause, masked.
    quoted = 'minute must be one of 0, 15, 30, 45 (got "***")'
    assert quoted in results["tick"].stderr
    assert quoted in json.loads(results["tick --json"].stdout)[0]["error"]
    assert quoted in results["jobs"].stderr
    [problem] = json.loads(results["jobs --json"].stdout)["problems"]
    assert problem.endswith(quoted)
    assert "paused: the job was paused by t: rotating ***" in results["history"].stdout
    assert "rotating ***" in results["jobs"].stdout
    assert {r.exit_code for name, r in results.items() if name.startswith("tick")} == {1}
