"""Preflight: what Taskcluster would refuse is found before anything fires, as positioned
findings, and reported once per revision; nothing is created or triggered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.common.diagnostics import Severity
from scheduler.config.model import Config, Credentials, Project
from scheduler.findings import Finding, findings_of, summary_lines
from scheduler.ledger import Ledger
from scheduler.notify.settings import NotifySettings, SlackSettings
from scheduler.preflight import preflight
from scheduler.service import Preflights, open_service
from tests.emulator import Emulator
from tests.support.emulated import REPOSITORY_ROLES, taskcluster_environment
from tests.support.engine import seed_decision_with_actions
from tests.support.projects import CORPUS_PROJECTS as CORPUS_PROJECT_STEMS
from tests.support.projects import (
    DAY,
    NIGHTLY,
    OWN_TEMPLATE,
    corpus_repository,
    make_config,
    project,
    write_service_config,
)
from tests.support.repos import Repository

ROLE = "repo:github.com/example/demo:cron:*"
FULL = ["queue:create-task:*", "queue:route:*", "queue:scheduler-id:*"]


def deployment(role: Sequence[str] = FULL, *, private: bool = False) -> Emulator:
    emulator = Emulator(roles={ROLE: list(role)}, private=private)
    emulator.clock.set(DAY.replace(hour=1), frozen=True)
    return emulator


def demo(tmp_path: Path, template: str = OWN_TEMPLATE, cron: str = NIGHTLY) -> Project:
    files = {".cron.yml": cron, ".taskcluster.yml": template}
    return project("demo", Repository(tmp_path / "demo", files))


def check(config: Config, emulator: Emulator) -> list[Finding]:
    async def run() -> list[Finding]:
        async with open_service(config, clock=emulator.clock.now) as (engine, _, _):
            return findings_of(await preflight(engine, config.projects))

    return asyncio.run(run())


def messages(findings: Sequence[Finding]) -> list[str]:
    return [str(finding) for finding in findings]


def test_a_project_the_deployment_grants_everything_it_needs_is_clean(tmp_path: Path) -> None:
    with deployment() as emulator:
        config = make_config(emulator, tmp_path, demo(tmp_path))
        assert check(config, emulator) == []
        assert emulator.tasks() == []  # nothing was created


def test_a_ten_day_deadline_is_found_before_it_fires(tmp_path: Path) -> None:
    ten_days = OWN_TEMPLATE.replace(
        "deadline: {$fromNow: '1 day'}", "deadline: {$fromNow: '10 days'}"
    )
    assert ten_days != OWN_TEMPLATE
    with deployment() as emulator:
        config = make_config(emulator, tmp_path, demo(tmp_path, ten_days))
        assert messages(check(config, emulator)) == [
            "demo/nightly: error: the queue would refuse the task: deadline: is 10 days after "
            "created; the queue refuses a deadline more than 5 days ahead"
        ]
        longer = replace(config, max_task_deadline=config.max_task_deadline * 3)
        assert check(longer, emulator) == []


def test_a_file_url_as_the_tasks_source_is_found(tmp_path: Path) -> None:
    local = replace(
        demo(tmp_path), repository=(tmp_path / "demo").as_uri(), scopes=(f"assume:{ROLE}",)
    )
    with deployment() as emulator:
        config = make_config(emulator, tmp_path, local)
        found = messages(check(config, emulator))
        assert any(
            message.startswith(
                "demo/nightly: error: the queue would refuse the task: metadata.source: 'file:///"
            )
            and "is not a URL the queue accepts" in message
            for message in found
        ), found


@pytest.mark.parametrize(
    ("role", "missing"),
    [
        (
            ["queue:create-task:*", "queue:scheduler-id:*"],
            "queue:route:checks (for route checks)",
        ),
        (["queue:create-task:*", "queue:route:*"], "queue:scheduler-id:tcs-level-1"),
        (
            ["queue:create-task:highest:*", "queue:route:*", "queue:scheduler-id:*"],
            "queue:create-task:project:none",
        ),
        (
            ["queue:create-task:project:*", "queue:route:*", "queue:scheduler-id:*"],
            "queue:create-task:low:tcs-1/decision (or one of higher priority)",
        ),
    ],
)
def test_each_scope_the_queue_needs_is_checked_against_the_projects_role(
    tmp_path: Path, role: list[str], missing: str
) -> None:
    with deployment(role) as emulator:
        config = make_config(emulator, tmp_path, demo(tmp_path))
        found = messages(check(config, emulator))
        assert found, "the missing scope must be found"
        assert any(
            f"demo/nightly: error: missing scope {missing}" in message
            and f"grant it to role {ROLE}" in message
            for message in found
        ), found


def test_routes_that_change_with_every_push_are_advised_in_a_lasting_form(tmp_path: Path) -> None:
    role = ["queue:create-task:*", "queue:scheduler-id:*", "queue:route:checks"]
    with deployment(role) as emulator:
        repository = Repository(
            tmp_path / "demo", {".cron.yml": NIGHTLY, ".taskcluster.yml": OWN_TEMPLATE}
        )
        config = make_config(emulator, tmp_path, project("demo", repository))
        found = check(config, emulator)
    revision_routes = [f.message for f in found if repository.head in f.message]
    assert revision_routes, found
    for message in revision_routes:
        assert (
            f"grant queue:route:index.tcs.v2.demo.revision.* to role {ROLE} (the scope changes "
            "with every push)"
        ) in message
    assert [line for line in summary_lines(found) if "latest" in line] == [
        "demo/nightly: error: missing scope queue:route:index.tcs.v2.demo.latest.taskgraph."
        "decision-nightly (for route index.tcs.v2.demo.latest.taskgraph.decision-nightly); "
        f"grant it to role {ROLE}"
    ]


def test_findings_of_several_jobs_are_said_once() -> None:
    same = "missing scope queue:route:checks (for route checks); grant it to role r"
    findings = [
        Finding("fenix", "nightly", Severity.ERROR, same),
        Finding("fenix", "beta", Severity.ERROR, same),
        Finding("fenix", None, Severity.WARNING, "not checked"),
    ]
    assert summary_lines(findings) == [
        f"fenix/nightly, beta: error: {same}",
        "fenix: warning: not checked",
    ]


def test_a_private_deployment_needs_the_read_scopes_granted(tmp_path: Path) -> None:
    with deployment(private=True) as emulator:
        config = make_config(emulator, tmp_path, demo(tmp_path))
        found = messages(check(config, emulator))
        assert any("missing scope queue:get-task:*" in message for message in found), found
        assert any("missing scope queue:status:*" in message for message in found), found
    with deployment([*FULL, "queue:get-task:*", "queue:status:*"], private=True) as emulator:
        assert check(make_config(emulator, tmp_path, demo(tmp_path)), emulator) == []


def test_a_service_client_without_the_projects_scopes_is_found(tmp_path: Path) -> None:
    with deployment() as emulator:
        narrow = emulator.add_client("project/tc-scheduler/narrow", ["assume:repo:other:*"])
        config = make_config(
            emulator,
            tmp_path,
            demo(tmp_path),
            credentials=Credentials(narrow["clientId"], narrow["accessToken"]),
        )
        found = messages(check(config, emulator))
        assert (
            "demo: error: the service's client project/tc-scheduler/narrow does not hold "
            f"assume:{ROLE}, one of the project's scopes, so Taskcluster refuses every call made "
            "for it (401); grant it to the client"
        ) in found


def test_a_service_client_that_may_not_read_its_own_scopes_is_warned_about(
    tmp_path: Path,
) -> None:
    with deployment([*FULL, "queue:get-task:*", "queue:status:*"], private=True) as emulator:
        narrow = emulator.add_client(
            "project/tc-scheduler/narrow", [f"assume:{ROLE}", "auth:expand-scopes"]
        )
        config = make_config(
            emulator,
            tmp_path,
            demo(tmp_path),
            credentials=Credentials(narrow["clientId"], narrow["accessToken"]),
        )
        [warning] = check(config, emulator)
    assert warning.severity is Severity.WARNING
    assert warning.message.startswith(
        "whether the service's client holds the project's scopes was not checked: "
        "auth.currentScopes failed: 403 InsufficientScopes missing scope auth:current-scopes"
    )


def test_credentials_taskcluster_refuses_are_an_error(tmp_path: Path) -> None:
    with deployment() as emulator:
        client = emulator.add_client("project/tc-scheduler/service", [f"assume:{ROLE}"])
        config = make_config(
            emulator,
            tmp_path,
            demo(tmp_path),
            credentials=Credentials(client["clientId"], "not-" + client["accessToken"]),
        )
        found = check(config, emulator)
    refused = [
        f for f in found if f.job is None and "refuses the service's credentials" in f.message
    ]
    assert [f.severity for f in refused] == [Severity.ERROR]
    assert "401" in refused[0].message
    assert client["accessToken"] not in refused[0].message


def test_templates_and_cron_files_that_break_are_findings(tmp_path: Path) -> None:
    broken_template = OWN_TEMPLATE.replace("tasks:", "tasks: {$eval: 'nope('}\nunused:", 1)
    broken_cron = NIGHTLY + "  - name: bad\n    job: {type: decision-task}\n    when: []\n"
    with deployment() as emulator:
        config = make_config(emulator, tmp_path, demo(tmp_path, broken_template, broken_cron))
        found = check(config, emulator)
    assert {(f.job, f.severity) for f in found} == {
        ("nightly", Severity.ERROR),
        ("bad", Severity.ERROR),
    }
    [render] = [f for f in found if f.job == "nightly"]
    assert render.message.startswith(".taskcluster.yml at ")


TRIGGER = """\
jobs:
  - name: add-jobs
    job: {type: trigger-action, action-name: add-new-jobs, extra-input: {tasks: [a]}}
    when: [{hour: 3, minute: 0}]
"""


def trigger_project(tmp_path: Path) -> tuple[Project, Repository]:
    repository = Repository(tmp_path / "fenix", {".cron.yml": TRIGGER})
    return project("fenix", repository, trust_domain="mobile"), repository


def test_trigger_action_jobs_are_checked_against_the_decision_task(tmp_path: Path) -> None:
    fenix, repository = trigger_project(tmp_path)
    route = f"index.mobile.v2.fenix.revision.{repository.head}.taskgraph.decision"
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        emulator.clock.set(DAY.replace(hour=1), frozen=True)
        config = make_config(emulator, tmp_path, fenix)
        [waiting] = check(config, emulator)
        assert waiting.severity is Severity.WARNING
        assert waiting.message.startswith(
            "the action was not checked: no decision task is indexed at "
            f"mobile.v2.fenix.revision.{repository.head}.taskgraph.decision"
        )

        seed_decision_with_actions(
            emulator, route, scopes=("in-tree:hook-action:project-mobile/in-tree-action-1-*",)
        )
        [refused] = check(config, emulator)
        assert refused.severity is Severity.ERROR
        assert refused.message.startswith("refused to trigger action 'add-new-jobs'")
        assert (
            "do not satisfy in-tree:hook-action:project-mobile/in-tree-action-3-generic/93267a5f84"
        ) in refused.message


def test_the_action_hook_must_be_in_the_projects_scopes(tmp_path: Path) -> None:
    fenix, repository = trigger_project(tmp_path)
    route = f"index.mobile.v2.fenix.revision.{repository.head}.taskgraph.decision"
    roles = {"repo:*": [s for s in REPOSITORY_ROLES["repo:*"] if not s.startswith("hooks:")]}
    with Emulator(roles=roles) as emulator:
        emulator.clock.set(DAY.replace(hour=1), frozen=True)
        seed_decision_with_actions(emulator, route)
        found = messages(check(make_config(emulator, tmp_path, fenix), emulator))
        assert found == [
            "fenix/add-jobs: error: missing scope hooks:trigger-hook:project-mobile/"
            "in-tree-action-3-generic/93267a5f84 (for triggering action add-new-jobs); grant it "
            "to role repo:github.com/example/fenix:cron:*"
        ]


def test_corpus_projects_are_clean_under_their_roles(tmp_path: Path) -> None:
    projects = [
        project(name, corpus_repository(tmp_path, name, stem), level=3)
        for name, stem in CORPUS_PROJECT_STEMS.items()
    ]
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        emulator.clock.set(DAY, frozen=True)
        found = check(make_config(emulator, tmp_path, *projects), emulator)
    assert [f for f in found if f.severity is Severity.ERROR] == []


# -- the command -----------------------------------------------------------------------------


@pytest.fixture
def public() -> Iterator[Emulator]:
    with deployment() as emulator:
        yield emulator


def invoke(*arguments: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def test_the_command_prints_findings_as_json_and_exits_by_errors(
    public: Emulator, tmp_path: Path
) -> None:
    repository = Repository(
        tmp_path / "demo", {".cron.yml": NIGHTLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = str(write_service_config(tmp_path, repository))
    env = taskcluster_environment(public)
    clean = invoke("preflight", "--config", config, "--json", env=env)
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout) == []
    assert "1 project preflighted: 0 errors, 0 warnings" in clean.stderr

    repository.commit(
        {".taskcluster.yml": OWN_TEMPLATE.replace("{$fromNow: '1 day'}", "{$fromNow: '6 days'}")}
    )
    broken = invoke("preflight", "--config", config, "--project", "demo", "--json", env=env)
    assert broken.exit_code == 1
    [finding] = json.loads(broken.stdout)
    assert finding == {
        "project": "demo",
        "job": "nightly",
        "severity": "error",
        "message": "the queue would refuse the task: deadline: is 6 days after created; the "
        "queue refuses a deadline more than 5 days ahead",
    }
    checked = invoke("config", "check", "--config", config, env=env)
    assert checked.exit_code == 1
    assert "demo/nightly: error: the queue would refuse the task" in checked.stderr
    skipped = invoke("config", "check", "--config", config, "--no-preflight", env=env)
    assert skipped.exit_code == 0
    unknown = invoke("preflight", "--config", config, "--project", "nope", env=env)
    assert unknown.exit_code == 2
    assert public.tasks() == []


# -- the service: once per revision ------------------------------------------------------------


def test_the_service_reports_findings_once_per_revision(tmp_path: Path) -> None:
    ten_days = OWN_TEMPLATE.replace("{$fromNow: '1 day'}", "{$fromNow: '10 days'}")
    repository = Repository(tmp_path / "demo", {".cron.yml": NIGHTLY, ".taskcluster.yml": ten_days})
    demo_project = project("demo", repository)
    with deployment() as emulator:
        slack = SlackSettings(token="xoxb-preflight", channel="#releng")
        config = make_config(emulator, tmp_path, demo_project, notify=NotifySettings(slack=slack))

        async def service_life() -> None:
            async with open_service(config, clock=emulator.clock.now) as (engine, notifier, _):
                preflights = Preflights(engine, notifier)
                await preflights.check(config.projects)
                results = await engine.tick(DAY.replace(hour=1))
                await preflights.after_tick(results)  # the same revision: not again
                for minute, files in (
                    (15, {"README": "a new push, still broken\n"}),
                    (30, {".taskcluster.yml": OWN_TEMPLATE}),
                ):
                    repository.commit(files)
                    emulator.clock.set(DAY.replace(hour=1, minute=minute), frozen=True)
                    await preflights.after_tick(await engine.tick(emulator.clock.now()))

        asyncio.run(service_life())
    with Ledger.open(config.ledger_url) as ledger:
        kinds = [letter.event["kind"] for letter in ledger.letters()]
    assert kinds.count("preflight-failed") == 2  # one per broken revision
    assert kinds.count("recovered") == 1  # fixed
