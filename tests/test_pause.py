"""Pause and resume without a commit, and the audit log: the ledger, the engine and the commands."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.common.redaction import remember_secret
from scheduler.ids import decision_task_id
from scheduler.ledger import Act, Claim, Fire, FireKind, FireState, Ledger
from scheduler.outcomes import SlotResult
from tests.emulator import Emulator
from tests.support.emulated import taskcluster_environment
from tests.support.engine import fires, seed_decision_with_actions, tick
from tests.support.projects import HOURLY, OWN_TEMPLATE, make_config, project, write_service_config
from tests.support.repos import Repository

T = datetime(2026, 12, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
TWO_JOBS = (
    HOURLY
    + """\
  - name: other
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: other}
    when: [{minute: 0}]
"""
)


# -- the ledger ----------------------------------------------------------------------------------


def by(
    actor: str, action: str, project: str, job: str | None, given: dict[str, object] | None = None
) -> Act:
    """`actor`'s act on `project` (or its `job`), as the operations hand it to the ledger."""
    return Act(actor, action, project if job is None else f"{project}/{job}", given)


def test_a_pause_is_in_force_until_resumed_and_both_are_audited(ledger: Ledger) -> None:
    given = {"reason": "tree closed", "until": None}
    paused = ledger.pause(
        "alpha",
        "nightly",
        reason="tree closed",
        until=None,
        act=by("sheriff", "pause", "alpha", "nightly", given),
        now=T,
    )
    assert (paused.project, paused.job, paused.reason, paused.paused_by) == (
        "alpha",
        "nightly",
        "tree closed",
        "sheriff",
    )
    assert [p.id for p in ledger.pauses(project="alpha", at=T + HOUR)] == [paused.id]
    assert ledger.pauses(project="alpha", at=T - HOUR) == []
    assert ledger.pauses(project="beta", at=T + HOUR) == []

    resumed = ledger.resume(
        "alpha", "nightly", act=by("sheriff-2", "resume", "alpha", "nightly"), now=T + HOUR
    )
    assert resumed is not None
    assert (resumed.resumed_by, resumed.resumed_at) == ("sheriff-2", T + HOUR)
    assert ledger.pauses(project="alpha", at=T + 2 * HOUR) == []
    assert (
        ledger.resume(
            "alpha", "nightly", act=by("sheriff-2", "resume", "alpha", "nightly"), now=T + 2 * HOUR
        )
        is None
    )

    log = ledger.audit_log()
    assert [(e.action, e.actor, e.target, e.ok) for e in log] == [
        ("resume", "sheriff-2", "alpha/nightly", False),
        ("resume", "sheriff-2", "alpha/nightly", True),
        ("pause", "sheriff", "alpha/nightly", True),
    ]
    assert log[2].input == {"reason": "tree closed", "until": None}
    assert log[0].result == "was not paused"


def test_until_lifts_a_pause_and_a_new_one_can_follow(ledger: Ledger) -> None:
    first = ledger.pause(
        "alpha",
        None,
        reason="migration",
        until=T + HOUR,
        act=by("a", "pause", "alpha", None),
        now=T,
    )
    assert first.job is None
    assert ledger.pauses(project="alpha", at=T + HOUR - timedelta(seconds=1))
    assert ledger.pauses(project="alpha", at=T + HOUR) == []
    assert (
        ledger.resume("alpha", None, act=by("b", "resume", "alpha", None), now=T + 2 * HOUR) is None
    )

    second = ledger.pause(
        "alpha",
        None,
        reason="again",
        until=None,
        act=by("c", "pause", "alpha", None),
        now=T + 2 * HOUR,
    )
    assert second.id != first.id
    [in_force] = ledger.pauses(project="alpha", at=T + 3 * HOUR)
    assert in_force.reason == "again"


def test_pausing_again_replaces_the_reason_and_until(ledger: Ledger) -> None:
    ledger.pause(
        "alpha",
        "nightly",
        reason="first",
        until=None,
        act=by("a", "pause", "alpha", "nightly"),
        now=T,
    )
    again = ledger.pause(
        "alpha",
        "nightly",
        reason="second",
        until=T + HOUR,
        act=by("b", "pause", "alpha", "nightly"),
        now=T,
    )
    [in_force] = ledger.pauses(project="alpha", at=T + timedelta(minutes=1))
    assert (in_force.id, in_force.reason, in_force.until) == (again.id, "second", T + HOUR)


def test_an_until_in_the_past_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="future"):
        ledger.pause(
            "alpha",
            "nightly",
            reason="x",
            until=T - HOUR,
            act=by("a", "pause", "alpha", "nightly"),
            now=T,
        )
    assert ledger.audit_log() == []


def test_secrets_in_acts_are_masked(ledger: Ledger) -> None:
    secret = "canary-" + "q7Zr" * 8
    remember_secret(secret)
    ledger.pause(
        "alpha",
        None,
        reason=f"leaked {secret}",
        until=None,
        act=by("a", "pause", "alpha", None),
        now=T,
    )
    ledger.record_act(
        Act("a", "fire", "alpha/x", {"input": {"token": secret}}), ok=True, result=secret, now=T
    )
    assert secret not in json.dumps([str(e) for e in ledger.audit_log()])
    assert secret not in ledger.pauses()[0].reason


# -- the engine ----------------------------------------------------------------------------------


def only_state(results: list[SlotResult], job: str) -> FireState | None:
    found = [f.state for result in results for f in (*result.fires, *result.paused) if f.job == job]
    assert len(found) == 1, found
    return found[0]


def test_a_paused_job_is_skipped_with_its_reason_and_fires_after_resume(
    emulator: Emulator, tmp_path: Path
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": TWO_JOBS, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(emulator, tmp_path, project("alpha", repository))
    with Ledger.open(config.ledger_url) as ledger:
        ledger.pause(
            "alpha",
            "hourly",
            reason="tree closed",
            until=None,
            act=by("sheriff", "pause", "alpha", "hourly"),
            now=T - HOUR,
        )

    paused = tick(config, emulator, T)
    assert only_state(paused, "hourly") is FireState.SKIPPED
    assert only_state(paused, "other") is FireState.CREATED
    assert not paused[0].skipped, "a pause is not a catch-up skip"
    record = next(f for f in fires(config) if f.job == "hourly")
    assert (record.state, record.kind) == (FireState.SKIPPED, FireKind.SCHEDULED)
    assert record.error is not None
    assert "paused by sheriff" in record.error
    assert "tree closed" in record.error
    task_ids = {t.task_id for t in emulator.tasks()}
    assert decision_task_id(emulator.root_url, "alpha", "hourly", T) not in task_ids

    with Ledger.open(config.ledger_url) as ledger:
        assert ledger.resume(
            "alpha",
            "hourly",
            act=by("sheriff", "resume", "alpha", "hourly"),
            now=T + timedelta(minutes=5),
        )
    resumed = tick(config, emulator, T + HOUR)
    assert only_state(resumed, "hourly") is FireState.CREATED


def test_a_paused_project_fires_nothing_until_its_until(emulator: Emulator, tmp_path: Path) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": TWO_JOBS, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(emulator, tmp_path, project("alpha", repository))
    with Ledger.open(config.ledger_url) as ledger:
        ledger.pause(
            "alpha",
            None,
            reason="upgrade",
            until=T + HOUR,
            act=by("ops", "pause", "alpha", None),
            now=T - HOUR,
        )

    during = tick(config, emulator, T)
    assert {f.state for f in during[0].paused} == {FireState.SKIPPED}
    assert during[0].fires == ()
    after = tick(config, emulator, T + HOUR)
    assert {f.state for f in after[0].fires} == {FireState.CREATED}
    assert after[0].paused == ()


# -- the commands --------------------------------------------------------------------------------


def invoke(*arguments: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def test_pause_resume_and_audit_commands(emulator: Emulator, tmp_path: Path) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": TWO_JOBS, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = str(write_service_config(tmp_path, repository, project="alpha"))
    env = taskcluster_environment(emulator)

    paused = invoke(
        "pause", "alpha", "hourly", "--reason", "tree closed", "--config", config, env=env
    )
    assert paused.exit_code == 0, paused.output
    assert "alpha/hourly: paused: the job was paused by" in paused.stdout
    assert "tree closed" in paused.stdout

    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        [in_force] = ledger.pauses(project="alpha", at=emulator.clock.now())
        assert in_force.job == "hourly"

    resumed = invoke("resume", "alpha", "hourly", "--config", config, env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "alpha/hourly: resumed" in resumed.stdout
    again = invoke("resume", "alpha", "hourly", "--config", config, env=env)
    assert again.exit_code == 1
    assert "was not paused" in again.stderr

    log = invoke("audit", "--json", "--config", config, env=env)
    assert log.exit_code == 0, log.output
    entries = json.loads(log.stdout)
    assert [(e["action"], e["target"], e["ok"]) for e in entries] == [
        ("resume", "alpha/hourly", False),
        ("resume", "alpha/hourly", True),
        ("pause", "alpha/hourly", True),
    ]
    assert all("(cli)" in e["actor"] for e in entries)
    table = invoke("audit", "--config", config, env=env)
    assert table.exit_code == 0
    assert "alpha/hourly" in table.stdout


def test_a_manual_fire_is_audited(emulator: Emulator, tmp_path: Path) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": TWO_JOBS, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = str(write_service_config(tmp_path, repository, project="alpha"))
    env = taskcluster_environment(emulator)

    fired = invoke(
        "fire", "alpha", "hourly", "--input", '{"why": "retry"}', "--config", config, env=env
    )
    assert fired.exit_code == 0, fired.output
    missing = invoke("fire", "alpha", "nope", "--config", config, env=env)
    assert missing.exit_code == 2

    entries = json.loads(invoke("audit", "--json", "--config", config, env=env).stdout)
    assert [(e["action"], e["target"], e["ok"]) for e in entries] == [
        ("fire", "alpha/nope", False),
        ("fire", "alpha/hourly", True),
    ]
    [task] = emulator.tasks()
    assert task.task_id in entries[1]["result"]
    assert entries[1]["input"] == {"input": {"why": "retry"}, "dry_run": False}
    assert "has no job 'nope'" in entries[0]["result"]


def test_an_unknown_job_is_refused_naming_the_jobs_and_a_paused_one_gone_can_be_resumed(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A typo must not leave the real job firing: pause, resume and fire refuse a job the
    `.cron.yml` does not have (exit 2), naming its jobs, and change nothing; a job paused and
    since removed from the file can still be resumed."""
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": TWO_JOBS, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = str(write_service_config(tmp_path, repository, project="alpha"))
    env = taskcluster_environment(emulator)

    for command in (
        ("pause", "alpha", "hourlly", "--reason", "flaky"),
        ("resume", "alpha", "hourlly"),
        ("fire", "alpha", "hourlly"),
    ):
        refused = invoke(*command, "--config", config, env=env)
        assert refused.exit_code == 2, (command, refused.output)
        assert "alpha's .cron.yml at" in refused.stderr
        assert "has no job 'hourlly' (did you mean 'hourly'?); its jobs: hourly, other" in (
            refused.stderr
        )
    assert emulator.tasks() == []
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        assert ledger.pauses(project="alpha") == []

    held = invoke("pause", "alpha", "other", "--reason", "flaky", "--config", config, env=env)
    assert held.exit_code == 0, held.output
    repository.commit({".cron.yml": HOURLY}, "drop the other job")
    assert (
        invoke("pause", "alpha", "other", "--reason", "x", "--config", config, env=env).exit_code
        == 2
    )
    resumed = invoke("resume", "alpha", "other", "--config", config, env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "alpha/other: resumed" in resumed.stdout

    # A repository that cannot be read: a job cannot be checked, the whole project can pause.
    held = invoke("pause", "alpha", "hourly", "--reason", "x", "--config", config, env=env)
    assert held.exit_code == 0, held.output
    repository.git("branch", "-m", "main", "renamed")  # the project's branch is gone
    unchecked = invoke("pause", "alpha", "other", "--reason", "x", "--config", config, env=env)
    assert unchecked.exit_code == 1
    assert "cannot check that 'other' is a job of alpha" in unchecked.stderr
    assert "pause the whole project (name no job)" in unchecked.stderr
    assert invoke("resume", "alpha", "hourly", "--config", config, env=env).exit_code == 0
    whole = invoke("pause", "alpha", "--reason", "repository down", "--config", config, env=env)
    assert whole.exit_code == 0, whole.output


def test_pause_refuses_unknown_projects_and_past_untils(tmp_path: Path) -> None:
    repository = Repository(tmp_path / "alpha", {".cron.yml": TWO_JOBS})
    config = str(write_service_config(tmp_path, repository, project="alpha"))
    env = {"TASKCLUSTER_ROOT_URL": "https://tc.example.com"}

    unknown = invoke("pause", "beta", "--reason", "x", "--config", config, env=env)
    assert unknown.exit_code == 2
    assert "no project 'beta' is configured; configured: alpha" in unknown.stderr
    past = invoke(
        "pause",
        "alpha",
        "--reason",
        "x",
        "--until",
        "2000-01-01T00:00:00Z",
        "--config",
        config,
        env=env,
    )
    assert past.exit_code == 2
    assert "until must be in the future" in past.stderr
    no_reason = invoke("pause", "alpha", "--config", config, env=env)
    assert no_reason.exit_code == 2
    assert "--reason" in no_reason.output


# -- triggering an action by name ----------------------------------------------------------------


def test_action_triggers_the_latest_decision_tasks_action_with_input(
    emulator: Emulator, tmp_path: Path
) -> None:
    repository = Repository(tmp_path / "alpha", {".cron.yml": TWO_JOBS})
    config = str(write_service_config(tmp_path, repository, project="alpha"))
    env = taskcluster_environment(emulator)
    decision = seed_decision_with_actions(emulator, "index.tcs.v2.alpha.latest.taskgraph.decision")

    dry = invoke(
        "action",
        "alpha",
        "add-new-jobs",
        "--input",
        '{"tasks": ["a"]}',
        "--dry-run",
        "--config",
        config,
        env=env,
    )
    assert dry.exit_code == 0, dry.output
    assert "would trigger hook project-mobile/in-tree-action-3-generic/93267a5f84" in dry.stdout
    assert len(emulator.tasks()) == 1, "a dry run triggers nothing"

    real = invoke(
        "action",
        "alpha",
        "add-new-jobs",
        "--input",
        '{"tasks": ["a"]}',
        "--config",
        config,
        env=env,
    )
    assert real.exit_code == 0, real.output
    [made] = [t for t in emulator.tasks() if t.task_id != decision]
    assert f"{emulator.root_url}/tasks/{made.task_id}" in real.stdout
    assert made.definition["payload"]["user"]["input"] == {"tasks": ["a"]}

    missing = invoke("action", "alpha", "no-such-action", "--config", config, env=env)
    assert missing.exit_code == 1
    assert "no-such-action" in missing.stderr

    entries = json.loads(invoke("audit", "--json", "--config", config, env=env).stdout)
    assert [(e["action"], e["target"], e["ok"]) for e in entries] == [
        ("action", "alpha/no-such-action", False),
        ("action", "alpha/add-new-jobs", True),
        ("action", "alpha/add-new-jobs", True),
    ]
    assert made.task_id in entries[1]["result"]


def test_manual_claims_of_one_job_within_the_interval_are_refused_even_at_once(
    ledger_url: str,
) -> None:
    ledgers = [Ledger.open(ledger_url) for _ in range(4)]
    start = threading.Barrier(len(ledgers))

    def claim(ledger: Ledger) -> object:
        start.wait()
        return ledger.claim_manual(
            "alpha", "nightly", replica="r", now=T, lease=HOUR, min_interval=timedelta(minutes=1)
        )

    try:
        with ThreadPoolExecutor(len(ledgers)) as pool:
            results = list(pool.map(claim, ledgers))
        claims = [r for r in results if isinstance(r, Claim)]
        assert len(claims) == 1, results
        assert all(
            isinstance(r, Fire) and r.id == claims[0].fire_id for r in results if r not in claims
        )
        later = ledgers[0].claim_manual(
            "alpha",
            "nightly",
            replica="r",
            now=T + timedelta(minutes=1),
            lease=HOUR,
            min_interval=timedelta(minutes=1),
        )
        assert isinstance(later, Claim)
    finally:
        for ledger in ledgers:
            ledger.close()
