"""What the queue enforces on createTask, checked offline: the embedded request schema agrees with
the one Taskcluster serves, and the time and scope rules are the queue's."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from scheduler.cron import Job
from scheduler.queue_rules import (
    DEFAULT_MAX_DEADLINE,
    PRIORITIES,
    Requirement,
    create_task_requirements,
    task_problems,
    unmet,
)
from scheduler.scopes import (
    default_project_scopes,
    lasting_form,
    repository_path,
    satisfies,
    where_to_grant,
)
from tests.support.rendering import UNRENDERABLE, corpus_cases, render_corpus

RENDERABLE = [
    (template, job)
    for template, job in corpus_cases()
    if template.name.removesuffix(".taskcluster.yml") not in UNRENDERABLE
]
Breakage = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Breakage:
    def apply(task: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = task
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return apply


def _drop(path: str) -> Breakage:
    def apply(task: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = task
        for part in parents:
            node = node[part]
        node.pop(last, None)

    return apply


# Each breaks a corpus task in a way the served schema rejects.
BREAKAGES: dict[str, Breakage] = {
    "no metadata": _drop("metadata"),
    "no metadata.source": _drop("metadata.source"),
    "file source": _set("metadata.source", "file:///srv/repo/.taskcluster.yml"),
    "extra field": _set("nonsense", 1),
    "extra metadata field": _set("metadata.nonsense", 1),
    "unknown priority": _set("priority", "urgent"),
    "bad task queue": _set("taskQueueId", "no-slash"),
    "bad worker type": _set("workerType", "Upper"),
    "bad provisioner": _set("provisionerId", "x" * 39),
    "route too long": _set("routes", ["r" * 250]),
    "duplicate routes": _set("routes", ["a", "a"]),
    "non-ascii scope": _set("scopes", ["queue:route:ünïcode"]),
    "too many retries": _set("retries", 50),
    "bad task group": _set("taskGroupId", "not-a-slug"),
    "bad dependency": _set("dependencies", ["not-a-slug"]),
    "payload not an object": _set("payload", []),
    "long name": _set("metadata.name", "n" * 256),
    "bad scheduler id": _set("schedulerId", "with space"),
    "bad project id": _set("projectId", "with space"),
    "long tag": _set("tags", {"kind": "t" * 4097}),
}


@pytest.mark.parametrize(
    ("template_path", "job"),
    RENDERABLE,
    ids=lambda value: value.name.split(".")[0] if isinstance(value, Path) else value.name,
)
def test_corpus_tasks_pass_and_each_breakage_fails_as_the_served_schema_says(
    template_path: Path, job: Job, create_task_validator: Draft7Validator
) -> None:
    task = render_corpus(template_path, job).definition
    assert list(create_task_validator.iter_errors(task)) == []
    assert task_problems(task, max_deadline=DEFAULT_MAX_DEADLINE) == []
    for name, breakage in BREAKAGES.items():
        broken = copy.deepcopy(task)
        breakage(broken)
        served = bool(list(create_task_validator.iter_errors(broken)))
        ours = bool(task_problems(broken, max_deadline=DEFAULT_MAX_DEADLINE))
        assert (served, ours) == (True, True), name


NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def task(**fields: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "taskQueueId": "proj-releng/decision",
        "created": NOW.isoformat(),
        "deadline": (NOW + timedelta(days=1)).isoformat(),
        "payload": {},
        "metadata": {
            "name": "n",
            "description": "d",
            "owner": "o@example.com",
            "source": "https://github.com/org/repo",
        },
    }
    return definition | fields


def problems(
    definition: dict[str, Any], max_deadline: timedelta = DEFAULT_MAX_DEADLINE
) -> list[str]:
    return [str(p) for p in task_problems(definition, max_deadline=max_deadline)]


def test_a_deadline_beyond_the_queues_maximum_is_refused() -> None:
    ten_days = task(deadline=(NOW + timedelta(days=10)).isoformat())
    assert problems(ten_days) == [
        "deadline: is 10 days after created; the queue refuses a deadline more than 5 days ahead"
    ]
    assert problems(ten_days, max_deadline=timedelta(days=14)) == []
    assert problems(task(deadline=(NOW + timedelta(days=5)).isoformat())) == []


def test_times_out_of_order_are_refused() -> None:
    assert problems(task(deadline=(NOW - timedelta(hours=1)).isoformat())) == [
        "deadline: is before created"
    ]
    early = task(expires=(NOW + timedelta(hours=1)).isoformat())
    assert problems(early) == ["expires: is before the deadline; the queue refuses it"]


def test_a_file_url_source_is_named_with_the_fix() -> None:
    local = task()
    local["metadata"]["source"] = "file:///srv/repo"
    [problem] = problems(local)
    assert problem.startswith("metadata.source: 'file:///srv/repo' is not a URL the queue accepts")
    assert "https repository URL" in problem


def test_the_task_queue_must_be_named_consistently() -> None:
    assert problems(task(taskQueueId="a/b", provisionerId="a", workerType="c")) == [
        "taskQueueId: 'a/b' must be provisionerId/workerType"
    ]
    unnamed = task()
    del unnamed["taskQueueId"]
    assert problems(unnamed) == ["taskQueueId: give taskQueueId, or provisionerId and workerType"]
    assert problems(task(scopes=["a:**"])) == ["scopes: 'a:**': a scope must not end with **"]


def test_create_task_needs_the_scopes_of_the_queues_expression() -> None:
    needed = create_task_requirements(
        task(
            scopes=["assume:repo:github.com/org/repo:cron:nightly"],
            routes=["index.x.latest", "checks"],
            priority="high",
            schedulerId="gecko-level-3",
            projectId="releng",
        )
    )
    assert [r.any_of for r in needed] == [
        ("assume:repo:github.com/org/repo:cron:nightly",),
        ("queue:route:index.x.latest",),
        ("queue:route:checks",),
        ("queue:create-task:project:releng",),
        ("queue:scheduler-id:gecko-level-3",),
        tuple(f"queue:create-task:{p}:proj-releng/decision" for p in PRIORITIES[:3]),
    ]
    defaults = create_task_requirements(task())
    assert [str(r) for r in defaults] == [
        "queue:create-task:project:none",
        "queue:scheduler-id:-",
        "queue:create-task:lowest:proj-releng/decision (or one of higher priority)",
    ]


def test_unmet_requirements_against_expanded_scopes() -> None:
    needed = create_task_requirements(task(routes=["index.x.latest"], priority="low"))
    granted = [
        "queue:route:index.*",
        "queue:create-task:project:*",
        "queue:create-task:highest:proj-releng/*",
    ]
    assert unmet(needed, granted) == [Requirement(("queue:scheduler-id:-",), "its schedulerId")]
    assert unmet(needed, ["*"]) == []


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://github.com/mozilla-mobile/fenix", "github.com/mozilla-mobile/fenix"),
        ("https://GitHub.com/mozilla-mobile/fenix.git/", "github.com/mozilla-mobile/fenix"),
        ("http://hg.mozilla.org/try", "hg.mozilla.org/try"),
        ("git@github.com:mozilla/translations.git", "github.com/mozilla/translations"),
        ("ssh://git@github.com:22/mozilla/translations", "github.com/mozilla/translations"),
        ("file:///srv/repo", None),
        ("/srv/repo", None),
        ("https://github.com/", None),
    ],
)
def test_repository_paths_as_roles_name_them(url: str, path: str | None) -> None:
    assert repository_path(url) == path
    expected = None if path is None else (f"assume:repo:{path}:cron:*",)
    assert default_project_scopes(url) == expected


def test_scope_satisfaction_and_where_to_grant() -> None:
    assert satisfies(["assume:repo:github.com/org/*"], "assume:repo:github.com/org/x:cron:*")
    assert satisfies(["queue:route:checks"], "queue:route:checks")
    assert not satisfies(["queue:route:check"], "queue:route:checks")
    assert not satisfies(["queue:route:index.*"], "queue:route:*")
    role = ("assume:repo:github.com/org/x:cron:*",)
    assert where_to_grant(role) == "grant it to role repo:github.com/org/x:cron:*"
    assert where_to_grant(("queue:route:*",), how_many=2) == (
        "add them to the project's `scopes` in the service configuration"
    )


def test_a_scope_that_changes_with_every_push_is_advised_in_a_lasting_form() -> None:
    revision, task_id = "ab12" * 10, "WCWYuJ1USXyZD9M98uG1xw"
    route = f"queue:route:index.mobile.v2.fenix.revision.{revision}.taskgraph.cron.{task_id}"
    assert lasting_form(route, (revision, task_id)) == (
        "queue:route:index.mobile.v2.fenix.revision.*"
    )
    assert lasting_form(f"queue:route:x.{task_id}", (revision, task_id)) == "queue:route:x.*"
    assert lasting_form("queue:route:checks", (revision, task_id)) is None
    assert where_to_grant(("assume:repo:r:cron:*",), what="queue:route:x.*") == (
        "grant queue:route:x.* to role repo:r:cron:*"
    )
