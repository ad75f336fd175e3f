"""Rendering .taskcluster.yml for cron: build-decision's context, deterministic ids, one task."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from scheduler.cron import DecisionTask, Job, TriggerAction, load_cron
from scheduler.ids import decision_task_id
from scheduler.render import (
    Push,
    RenderError,
    Repository,
    cron_context,
    quoted_args,
    render_decision_task,
    render_time,
)
from tests.support.corpus import REPOSITORY_ROOT, corpus_templates
from tests.support.rendering import (
    REVISION,
    ROOT_URL,
    SLOT,
    UNRENDERABLE,
    corpus_cases,
    render_corpus,
)

MINIMAL_TEMPLATE = """\
version: 1
tasks:
  - taskId: '${ownTaskId}'
    created: {$fromNow: ''}
    deadline: {$fromNow: '1 day'}
    provisionerId: p
    workerType: w
    payload:
      command: ['run ${cron.quoted_args}']
      input: {$eval: cron.input}
    metadata: {name: '${cron.job_name}', description: d, owner: o@example.com, source: 'https://x'}
"""


def decision_job(name: str = "nightly", **settings: Any) -> Job:
    kind = DecisionTask(treeherder_symbol="N", target_tasks_method="nightly", **settings)
    return Job(name=name, kind=kind)


def repository(project: str = "translations", type: str = "git") -> Repository:
    return Repository(f"https://github.com/mozilla/{project}", project, "3", type)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "--target-tasks-method=nightly"),
        (
            {"optimize_target_tasks": True},
            "--target-tasks-method=nightly --optimize-target-tasks=true",
        ),
        (
            {"optimize_target_tasks": False},
            "--target-tasks-method=nightly --optimize-target-tasks=false",
        ),
        ({"include_push_tasks": True}, "--target-tasks-method=nightly --include-push-tasks"),
        ({"include_push_tasks": False}, "--target-tasks-method=nightly"),
        (
            {"rebuild_kinds": ("docker-image", "toolchain")},
            "--target-tasks-method=nightly --rebuild-kind=docker-image --rebuild-kind=toolchain",
        ),
    ],
)
def test_quoted_args(settings: dict[str, Any], expected: str) -> None:
    kind = DecisionTask(treeherder_symbol="N", target_tasks_method="nightly", **settings)
    assert quoted_args(kind) == expected


def test_quoted_args_are_shell_quoted() -> None:
    kind = DecisionTask(treeherder_symbol="N", target_tasks_method="a b;c", rebuild_kinds=("x'y",))
    assert quoted_args(kind) == "'--target-tasks-method=a b;c' '--rebuild-kind=x'\"'\"'y'"


def test_cron_context_for_git_is_build_decisions() -> None:
    job = decision_job(include_cron_input=True)
    assert isinstance(job.kind, DecisionTask)
    context = cron_context(
        root_url=ROOT_URL,
        repository=repository(),
        push=Push(REVISION, branch="main"),
        job=job,
        kind=job.kind,
        task_id="TASK",
        now=SLOT,
        cron_input={"x": 1},
    )
    assert context == {
        "taskcluster_root_url": ROOT_URL,
        "tasks_for": "cron",
        "repository": {
            "url": "https://github.com/mozilla/translations",
            "project": "translations",
            "level": "3",
            "type": "git",
        },
        "push": {"owner": "cron", "branch": "main", "revision": REVISION},
        "cron": {
            "task_id": "TASK",
            "job_name": "nightly",
            "job_symbol": "N",
            "quoted_args": "--target-tasks-method=nightly",
            "input": {"x": 1},
        },
        "ownTaskId": "TASK",
        "now": "2026-11-24T10:00:00.000Z",
    }


def test_cron_context_for_hg_adds_the_pushlog_fields() -> None:
    job = decision_job()
    assert isinstance(job.kind, DecisionTask)
    push = Push(REVISION, pushlog_id="4242", pushdate=1763978400, base_revision="f" * 40)
    context = cron_context(
        root_url=ROOT_URL,
        repository=repository("mozilla-central", "hg"),
        push=push,
        job=job,
        kind=job.kind,
        task_id="TASK",
        now=SLOT,
        cron_input={"ignored": True},
    )
    assert context["push"] == {
        "owner": "cron",
        "revision": REVISION,
        "pushlog_id": "4242",
        "pushdate": 1763978400,
        "base_revision": "f" * 40,
    }
    assert context["repository"]["type"] == "hg"
    # Without include-cron-input the template never sees the input.
    assert context["cron"]["input"] == {}


def test_task_id_is_deterministic_and_v4_shaped(task_id_pattern: str) -> None:
    task_id = decision_task_id(ROOT_URL, "mozilla-central", "nightly", SLOT)
    assert re.fullmatch(task_id_pattern, task_id)
    assert task_id == decision_task_id(ROOT_URL + "/", "mozilla-central", "nightly", SLOT)
    # Any instant of the slot addresses the same task.
    assert task_id == decision_task_id(
        ROOT_URL, "mozilla-central", "nightly", SLOT + timedelta(minutes=14, seconds=59)
    )
    others = {
        decision_task_id("https://tc.example.com", "mozilla-central", "nightly", SLOT),
        decision_task_id(ROOT_URL, "mozilla-beta", "nightly", SLOT),
        decision_task_id(ROOT_URL, "mozilla-central", "nightly-all", SLOT),
        decision_task_id(ROOT_URL, "mozilla-central", "nightly", SLOT + timedelta(minutes=15)),
    }
    assert task_id not in others
    assert len(others) == 4


@settings(max_examples=300, deadline=None)
@given(
    root_url=st.text(min_size=1),
    project=st.text(),
    job=st.text(),
    slot=st.datetimes(timezones=st.just(UTC)),
)
def test_every_task_id_is_a_valid_nice_slug(
    root_url: str, project: str, job: str, slot: datetime
) -> None:
    pattern = r"[A-Za-f][A-Za-z0-9_-]{7}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]"
    assert re.fullmatch(pattern, decision_task_id(root_url, project, job, slot))


@pytest.mark.parametrize(
    ("late", "expected"),
    [
        (timedelta(0), SLOT),
        (timedelta(minutes=10), SLOT),
        (timedelta(minutes=10, seconds=1), SLOT + timedelta(minutes=10, seconds=1)),
        (timedelta(hours=5), SLOT + timedelta(hours=5)),
        (timedelta(minutes=-3), SLOT),
    ],
)
def test_render_time_is_the_slot_within_ten_minutes(late: timedelta, expected: datetime) -> None:
    assert render_time(SLOT, SLOT + late) == expected


def render_minimal(job: Job, template: str = MINIMAL_TEMPLATE, **kwargs: Any) -> dict[str, Any]:
    task = render_decision_task(
        template,
        root_url=ROOT_URL,
        repository=repository(),
        push=Push(REVISION, branch="main"),
        job=job,
        slot=SLOT,
        **kwargs,
    )
    return task.as_json()


def test_rendering_is_deterministic_and_uses_the_slot_as_now() -> None:
    first = render_minimal(decision_job())
    assert first == render_minimal(decision_job())
    assert first["taskId"] == decision_task_id(ROOT_URL, "translations", "nightly", SLOT)
    assert first["created"] == "2026-11-24T10:00:00.000Z"
    assert first["deadline"] == "2026-11-25T10:00:00.000Z"
    assert first["payload"]["command"] == ["run --target-tasks-method=nightly"]
    later = render_minimal(decision_job(), now=SLOT + timedelta(hours=2))
    assert later["created"] == "2026-11-24T12:00:00.000Z"
    assert later["taskId"] == first["taskId"]


def test_cron_input_reaches_the_template_only_when_asked_for() -> None:
    assert render_minimal(decision_job(), cron_input={"a": 1})["payload"]["input"] == {}
    with_input = render_minimal(decision_job(include_cron_input=True), cron_input={"a": 1})
    assert with_input["payload"]["input"] == {"a": 1}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("version: 1\ntasks: []\n", 'rendered 0 tasks for tasks_for "cron"; exactly one'),
        (
            "version: 1\ntasks: [{a: 1}, {b: 2}]\n",
            'rendered 2 tasks for tasks_for "cron"; exactly one',
        ),
        ("version: 1\n", "rendered no `tasks` list"),
        ("tasks: [\n", ".taskcluster.yml:2:1: invalid YAML"),
        ("tasks: [{$eval: 'event.after'}]\n", "unknown context value event"),
        ("tasks: [{a: {$fromNow: 'soon'}}]\n", "JSON-e could not render .taskcluster.yml"),
        ("tasks: [[1]]\n", "rendered a task that is not a mapping"),
        ("tasks: [{taskId: 7}]\n", "taskId is not a string"),
        ("tasks: [{created: 2026-01-01}]\n", "which JSON cannot carry"),
    ],
)
def test_render_errors_say_what_went_wrong(template: str, message: str) -> None:
    with pytest.raises(RenderError, match=re.escape(message)):
        render_minimal(decision_job(), template=template)


def test_trigger_action_jobs_do_not_render_taskcluster_yml() -> None:
    job = Job(name="merge", kind=TriggerAction(action_name="merge-automation"))
    with pytest.raises(RenderError, match="trigger-action job"):
        render_minimal(job)


def test_a_template_without_task_id_gets_the_deterministic_one() -> None:
    template = MINIMAL_TEMPLATE.replace("  - taskId: '${ownTaskId}'\n    created", "  - created")
    rendered = render_minimal(decision_job(), template=template)
    assert rendered["taskId"] == decision_task_id(ROOT_URL, "translations", "nightly", SLOT)


# --- real templates -------------------------------------------------------------------------


def test_corpus_templates_without_a_decision_job_are_accounted_for() -> None:
    with_jobs = {template.name.split(".")[0] for template, _ in corpus_cases()}
    without = {template.name.split(".")[0] for template in corpus_templates()} - with_jobs
    assert without == {
        # `jobs: []`
        "mozilla-extensions__searchengine-devtools",
        "mozilla-extensions__secure-proxy",
        "mozilla-releng__staging-xpi-manifest",
        # only a trigger-action job
        "mozilla-releng__staging-firefox-translations-training",
        # its .cron.yml is rejected: `jobs: {}` is not a list
        "mozilla-l10n__android-l10n-tooling",
    }
    assert len(with_jobs) == 11


def test_the_create_task_schema_catches_a_bad_task(create_task_validator: Draft7Validator) -> None:
    errors = list(create_task_validator.iter_errors({"created": "x", "priority": "urgent"}))
    assert {error.validator for error in errors} >= {"required", "enum"}


@pytest.mark.parametrize(
    ("template_path", "job"),
    corpus_cases(),
    ids=lambda value: value.name.split(".")[0] if isinstance(value, Path) else value.name,
)
def test_corpus_templates_render_one_valid_task(
    template_path: Path,
    job: Job,
    create_task_validator: Draft7Validator,
    task_id_pattern: str,
) -> None:
    stem = template_path.name.removesuffix(".taskcluster.yml")
    _, name = stem.split("__")[:2]
    if stem in UNRENDERABLE:
        with pytest.raises(RenderError, match=UNRENDERABLE[stem]):
            render_corpus(template_path, job)
        return
    task = render_corpus(template_path, job)
    errors = sorted(create_task_validator.iter_errors(task.definition), key=str)
    assert errors == [], f"{stem}: {errors[0].message if errors else ''}"
    assert re.fullmatch(task_id_pattern, task.task_id)
    assert task.task_id == decision_task_id(ROOT_URL, name, job.name, SLOT)
    assert task.definition["created"] == "2026-11-24T10:00:00.000Z"
    json.dumps(task.definition)


def test_this_repositorys_template_renders_every_decision_job(
    create_task_validator: Draft7Validator,
) -> None:
    cron = load_cron((REPOSITORY_ROOT / ".cron.yml").read_bytes())
    assert cron.diagnostics == ()
    template = (REPOSITORY_ROOT / ".taskcluster.yml").read_bytes()
    jobs = [job for job in cron.jobs if isinstance(job.kind, DecisionTask)]
    assert len(jobs) >= 3
    for job in jobs:
        task = render_decision_task(
            template,
            root_url=ROOT_URL,
            repository=Repository(
                "https://github.com/taskcluster/tc-scheduler", "tc-scheduler", "3"
            ),
            push=Push(REVISION, branch="main"),
            job=job,
            slot=SLOT,
            cron_input={"reason": "test"},
        )
        assert list(create_task_validator.iter_errors(task.definition)) == []
        assert task.definition["taskGroupId"] == task.task_id
        assert (
            f"assume:repo:github.com/taskcluster/tc-scheduler:cron:{job.name}"
            in (task.definition["scopes"])
        )
        assert quoted_args(job.kind) in task.definition["payload"]["command"][-1]
