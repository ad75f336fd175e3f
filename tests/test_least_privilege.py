"""Least privilege: every call made for a project carries only its scopes, so Taskcluster itself
refuses what the project's repository asks beyond them, and an action's hook is triggered only
when the decision task that published `actions.json` may name it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure

from scheduler.ids import decision_task_id
from scheduler.ledger import FireState
from tests.emulator import Emulator
from tests.support.emulated import REPOSITORY_ROLES, task_definition
from tests.support.engine import fires, seed_decision_with_actions, tick
from tests.support.projects import (
    CRON_ROLE,
    DAY,
    GREEDY_TEMPLATE,
    NIGHTLY,
    OWN_TEMPLATE,
    make_config,
    project,
)
from tests.support.repos import Repository


@pytest.fixture
def deployment() -> Iterator[Emulator]:
    """A deployment with one cron role per repository, and the service as the root client:
    its credentials could do anything, so only the restriction keeps a project in bounds."""
    roles = {
        "repo:github.com/example/greedy:cron:*": CRON_ROLE,
        "repo:github.com/example/trusted:cron:*": [*CRON_ROLE, "secrets:get:project/releng/*"],
    }
    with Emulator(roles=roles) as emulator:
        yield emulator
        emulator.assert_conforming()


def test_a_project_cannot_create_a_task_beyond_its_scopes(
    deployment: Emulator, tmp_path: Path
) -> None:
    greedy = project(
        "greedy",
        Repository(
            tmp_path / "greedy", {".cron.yml": NIGHTLY, ".taskcluster.yml": GREEDY_TEMPLATE}
        ),
    )
    trusted = project(
        "trusted",
        Repository(tmp_path / "trusted", {".cron.yml": NIGHTLY, ".taskcluster.yml": OWN_TEMPLATE}),
    )
    config = make_config(deployment, tmp_path, greedy, trusted)
    slot = DAY.replace(hour=2)

    results = {result.project: result for result in tick(config, deployment, slot)}

    [refused] = results["greedy"].fires
    assert refused.state is FireState.FAILED
    assert refused.error is not None
    assert "queue.createTask failed: 403 InsufficientScopes" in refused.error
    assert "secrets:get:project/releng/level-3/*" in refused.error
    assert "assume:repo:github.com/example/trusted:cron:*" in refused.error
    assert "greedy/nightly may not use them" in refused.error
    assert "grant them to role repo:github.com/example/greedy:cron:*" in refused.error
    [fired] = results["trusted"].fires
    assert fired.state is FireState.CREATED
    assert [task.task_id for task in deployment.tasks()] == [
        decision_task_id(deployment.root_url, "trusted", "nightly", slot)
    ]
    recorded = {(f.project, f.state) for f in fires(config)}
    assert recorded == {("greedy", FireState.FAILED), ("trusted", FireState.CREATED)}


def test_the_refusal_is_taskclusters_own(deployment: Emulator, tmp_path: Path) -> None:
    """The same task, created with the service's credentials unrestricted, is accepted: what
    stopped the greedy project was the restriction Taskcluster enforces, not a check of ours."""
    greedy = project(
        "greedy",
        Repository(
            tmp_path / "greedy", {".cron.yml": NIGHTLY, ".taskcluster.yml": GREEDY_TEMPLATE}
        ),
    )
    config = make_config(deployment, tmp_path, greedy, dry_run=True)
    slot = DAY.replace(hour=2)
    [result] = tick(config, deployment, slot)
    [dry] = result.fires
    assert dry.details is not None
    task = dry.details["task"]
    root = taskcluster.Queue(deployment.options())
    root.createTask(dry.task_id, task)
    restricted = taskcluster.Queue(
        deployment.options(authorizedScopes=["assume:repo:github.com/example/greedy:cron:*"])
    )
    with pytest.raises(TaskclusterRestFailure) as refused:
        restricted.createTask(slugid.nice(), task)
    assert refused.value.status_code == 403


def test_an_action_hook_the_decision_task_may_not_name_is_not_triggered(
    tmp_path: Path,
) -> None:
    cron = """\
jobs:
  - name: add-jobs
    job: {type: trigger-action, action-name: add-new-jobs, extra-input: {tasks: [a]}}
    when: [{hour: 3, minute: 0}]
"""
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        repository = Repository(tmp_path / "fenix", {".cron.yml": cron})
        config = make_config(
            emulator, tmp_path, project("fenix", repository, trust_domain="mobile")
        )
        emulator.clock.set(DAY.replace(hour=2, minute=50), frozen=True)
        route = f"index.mobile.v2.fenix.revision.{repository.head}.taskgraph.decision"
        # The decision task may name only the level-1 action hooks; actions.json names a
        # level-3 one.
        seed_decision_with_actions(
            emulator, route, scopes=["in-tree:hook-action:project-mobile/in-tree-action-1-*"]
        )
        hooks = taskcluster.Hooks(emulator.options())

        [result] = tick(config, emulator, DAY.replace(hour=3))

        [refused] = result.fires
        assert refused.state is FireState.FAILED
        assert refused.error is not None
        assert "refused to trigger action 'add-new-jobs'" in refused.error
        assert "in-tree:hook-action:project-mobile/in-tree-action-3-generic/93267a5f84" in (
            refused.error
        )
        with pytest.raises(TaskclusterRestFailure) as never:
            hooks.listLastFires("project-mobile", "in-tree-action-3-generic/93267a5f84")
        assert never.value.status_code == 404  # the hook has never fired
        assert len(emulator.tasks()) == 1  # the decision task only


def test_a_409_whose_read_back_is_refused_is_already_fired_unconfirmed(tmp_path: Path) -> None:
    """On a private deployment whose project role may not read tasks, the slot's task exists
    (someone created it under the slot's id): never `failed`, but not confirmed either."""
    roles = {"repo:github.com/example/trusted:cron:*": CRON_ROLE}
    with Emulator(private=True, roles=roles) as emulator:
        trusted = project(
            "trusted",
            Repository(
                tmp_path / "trusted", {".cron.yml": NIGHTLY, ".taskcluster.yml": OWN_TEMPLATE}
            ),
        )
        config = make_config(emulator, tmp_path, trusted)
        slot = DAY.replace(hour=2)
        emulator.clock.set(slot, frozen=True)
        task_id = decision_task_id(emulator.root_url, "trusted", "nightly", slot)
        emulator.add_task(task_id, task_definition(slot))  # the same id, another definition

        [result] = tick(config, emulator, slot)

    [fire] = result.fires
    assert fire.state is FireState.ALREADY_FIRED
    assert fire.task_id == task_id
    assert fire.error is not None
    assert fire.error.startswith("unconfirmed: queue.task failed: 403 InsufficientScopes")
    assert "missing scope queue:get-task:" in fire.error
    assert result.ok
