"""The hooks folder and `tc-scheduler hooks`: the embedded create-hook schema against the served
one, loading with positioned errors, field-level diffs, and list/diff/apply/fire end to end
against the emulator through the real taskcluster client."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import taskcluster
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from referencing import Registry

from scheduler.cli.hooks import hooks_group
from scheduler.config.loading import read_config
from scheduler.hooks.changes import ABSENT, Change, FieldChange, as_stored, field_changes, plan
from scheduler.hooks.definitions import (
    CREATE_HOOK_REQUEST,
    FORMATS,
    HOOK_FILE_VALIDATOR,
    HookFolder,
    HookKey,
    key_of,
)
from scheduler.hooks.folder import load_folder
from scheduler.hooks.payloads import payload_problems
from scheduler.hooks.summary import example_payload, schedule_words, schema_summary
from scheduler.ledger import Ledger
from tests.emulator import Emulator
from tests.support.corpus import CORPUS, REPOSITORY_ROOT, SCHEMA_BASE
from tests.support.emulated import taskcluster_environment
from tests.support.hooks import TRIGGER_SCHEMA as PAGE_SCHEMA

EXAMPLES_DIR = REPOSITORY_ROOT / "hooks"
EXAMPLE_KEYS = [
    "project-tc-scheduler/github-release",
    "project-tc-scheduler/nightly-decision",
    "project-tc-scheduler/release-promotion",
]
REVISION = "0123456789abcdef0123456789abcdef01234567"


# -- the embedded create-hook schema agrees with the one a deployment serves ----------------


@pytest.fixture(scope="module")
def served(schema_registry: Registry) -> Draft7Validator:
    uri = f"{SCHEMA_BASE}/schemas/hooks/v1/create-hook-request.json"
    return Draft7Validator(
        schema_registry.contents(uri), registry=schema_registry, format_checker=FORMATS
    )


OURS = Draft7Validator(CREATE_HOOK_REQUEST, format_checker=FORMATS)


def corpus_examples() -> dict[str, dict[str, Any]]:
    """Valid createHook bodies built from real material: this repository's hooks, Firefox CI's
    cron hook template, and the hooks that a real actions.json triggers."""
    examples = {
        f"repository:{path.name}": yaml.safe_load(path.read_text())
        for path in sorted(EXAMPLES_DIR.rglob("*.yml"))
    }
    cron_template = yaml.safe_load(
        (CORPUS / "schemas" / "fxci-config-cron-task-template.yml").read_text()
    )
    examples["fxci-config cron hook"] = {
        "hookGroupId": "project-releng",
        "hookId": "cron-task-mozilla-central",
        "metadata": {
            "name": "Cron task for https://hg.mozilla.org/mozilla-central",
            "description": "Runs build-decision cron every 15 minutes.",
            "owner": "mozilla-taskcluster-maintenance@mozilla.com",
            "emailOnError": False,
        },
        "schedule": ["0 0,15,30,45 * * * *"],
        "task": cron_template,
        "triggerSchema": {"type": "object", "additionalProperties": True},
    }
    actions = json.loads(
        (
            CORPUS / "taskcluster-schemas" / "examples" / "fxci-config-build-decision-actions.json"
        ).read_text()
    )
    for action in actions["actions"]:
        if action["kind"] != "hook":
            continue
        examples[f"actions.json:{action['name']}"] = {
            "hookGroupId": action["hookGroupId"],
            "hookId": action["hookId"],
            "metadata": {
                "name": action["title"],
                "description": action["description"],
                "owner": "mozilla-taskcluster-maintenance@mozilla.com",
            },
            "task": {"$let": {"payload": action["hookPayload"]}, "in": cron_template},
            "triggerSchema": action.get("schema") or {"type": "object"},
            "bindings": [],
        }
    return examples


EXAMPLES = corpus_examples()


def at(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target = body
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value

    return change


def without(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target = body
        for part in path[:-1]:
            target = target[part]
        target.pop(path[-1], None)

    return change


REJECTED = {
    "no metadata": without("metadata"),
    "no task": without("task"),
    "no owner": without("metadata", "owner"),
    "no name": without("metadata", "name"),
    "no description": without("metadata", "description"),
    "owner not an email": at(("metadata", "owner"), "release engineering"),
    "owner too long": at(("metadata", "owner"), "a" * 250 + "@example.com"),
    "name too long": at(("metadata", "name"), "n" * 256),
    "description too long": at(("metadata", "description"), "d" * 32769),
    "emailOnError a string": at(("metadata", "emailOnError"), "yes"),
    "unknown metadata key": at(("metadata", "team"), "releng"),
    "group with a dot": at(("hookGroupId",), "project.releng"),
    "group with a slash": at(("hookGroupId",), "project/releng"),
    "empty group": at(("hookGroupId",), ""),
    "group too long": at(("hookGroupId",), "g" * 1001),
    "group a number": at(("hookGroupId",), 7),
    "id with a space": at(("hookId",), "nightly decision"),
    "id too long": at(("hookId",), "h" * 1001),
    "empty id": at(("hookId",), ""),
    "schedule a string": at(("schedule",), "0 0 3 * * *"),
    "schedule of numbers": at(("schedule",), [3]),
    "schedule repeated": at(("schedule",), ["0 0 3 * * *", "0 0 3 * * *"]),
    "task a list": at(("task",), [{"payload": {}}]),
    "task a string": at(("task",), "taskcluster.yml"),
    "triggerSchema a list": at(("triggerSchema",), [{"type": "object"}]),
    "triggerSchema true": at(("triggerSchema",), True),
    "bindings a mapping": at(("bindings",), {"exchange": "e", "routingKeyPattern": "#"}),
    "binding without a pattern": at(("bindings",), [{"exchange": "exchange/x/v1/y"}]),
    "binding with an empty exchange": at(
        ("bindings",), [{"exchange": "", "routingKeyPattern": "#"}]
    ),
    "binding with an extra key": at(
        ("bindings",), [{"exchange": "e", "routingKeyPattern": "#", "queue": "q"}]
    ),
    "bindings repeated": at(
        ("bindings",),
        [{"exchange": "e", "routingKeyPattern": "#"}, {"exchange": "e", "routingKeyPattern": "#"}],
    ),
    "unknown top-level key": at(("schedules",), ["0 0 3 * * *"]),
}
ACCEPTED = {
    "as it is": lambda body: None,
    "a hookId with slashes": at(("hookId",), "in-tree-action-3-generic/93267a5f84"),
    "ids of 1000 characters": lambda body: body.update(hookGroupId="g" * 1000, hookId="h" * 1000),
    "no ids (the URL gives them)": lambda body: [
        body.pop(k, None) for k in ("hookGroupId", "hookId")
    ],
    "no schedule, bindings or triggerSchema": lambda body: [
        body.pop(k, None) for k in ("schedule", "bindings", "triggerSchema")
    ],
    "emailOnError false": at(("metadata", "emailOnError"), False),
    "an empty triggerSchema": at(("triggerSchema",), {}),
    "bindings": at(("bindings",), [{"exchange": "exchange/x/v1/y", "routingKeyPattern": "a.#"}]),
    "an empty task": at(("task",), {}),
}


def variant(name: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[name])
    change(body)
    return body


@pytest.mark.parametrize("example", sorted(EXAMPLES))
@pytest.mark.parametrize("mutation", sorted(REJECTED))
def test_the_embedded_schema_rejects_what_the_served_one_rejects(
    served: Draft7Validator, example: str, mutation: str
) -> None:
    body = variant(example, REJECTED[mutation])
    assert not served.is_valid(body), "the variant must break the served schema to mean anything"
    assert not OURS.is_valid(body)


@pytest.mark.parametrize("example", sorted(EXAMPLES))
@pytest.mark.parametrize("mutation", sorted(ACCEPTED))
def test_the_embedded_schema_accepts_what_the_served_one_accepts(
    served: Draft7Validator, example: str, mutation: str
) -> None:
    body = variant(example, ACCEPTED[mutation])
    assert served.is_valid(body), list(served.iter_errors(body))
    assert OURS.is_valid(body), list(OURS.iter_errors(body))


def test_the_corpus_examples_cover_real_hooks() -> None:
    assert len(EXAMPLES) >= 6
    assert any("/" in body["hookId"] for body in EXAMPLES.values())


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from(["", "a", "x@example.com", "a.b", "a/b", "0 0 3 * * *", "e", "#"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["exchange", "routingKeyPattern", "name", "owner", "description", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)
PLACES = [
    ("hookGroupId",),
    ("hookId",),
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "owner"),
    ("metadata", "emailOnError"),
    ("metadata", "other"),
    ("schedule",),
    ("task",),
    ("triggerSchema",),
    ("bindings",),
    ("other",),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    example=st.sampled_from(sorted(EXAMPLES)),
    place=st.sampled_from(PLACES),
    value=JSON_VALUES,
)
def test_the_embedded_schema_agrees_on_any_value_in_any_place(
    schema_registry: Registry, example: str, place: tuple[str, ...], value: Any
) -> None:
    uri = f"{SCHEMA_BASE}/schemas/hooks/v1/create-hook-request.json"
    served = Draft7Validator(
        schema_registry.contents(uri), registry=schema_registry, format_checker=FORMATS
    )
    body = variant(example, at(place, value))
    assert OURS.is_valid(body) == served.is_valid(body)


def test_a_file_must_also_name_its_hook() -> None:
    body = copy.deepcopy(EXAMPLES["fxci-config cron hook"])
    assert HOOK_FILE_VALIDATOR.is_valid(body)
    del body["hookId"]
    assert OURS.is_valid(body)
    assert not HOOK_FILE_VALIDATOR.is_valid(body)


# -- the repository's examples ---------------------------------------------------------------


def test_the_repository_examples_are_valid_and_documented(served: Draft7Validator) -> None:
    folder = load_folder(EXAMPLES_DIR)
    assert folder.diagnostics == ()
    assert [str(hook.key) for hook in folder.hooks] == EXAMPLE_KEYS
    assert folder.groups == {"project-tc-scheduler"}
    for hook in folder.hooks:
        assert served.is_valid(hook.definition), hook.path
        text = Path(hook.path).read_text()
        assert text.startswith("#"), f"{hook.path} must open with what the hook is for"
        assert text.count("\n#") + text.count("    #") >= 5, f"{hook.path} explains its fields"
    on_demand = next(h for h in folder.hooks if h.key.hook_id == "release-promotion")
    assert on_demand.definition["schedule"] == []
    assert set(on_demand.definition["triggerSchema"]["required"]) >= {"revision", "flavor"}
    nightly = next(h for h in folder.hooks if h.key.hook_id == "nightly-decision")
    assert nightly.definition["schedule"]
    assert nightly.definition["task"]["extra"]["tasks_for"] == "hook"
    assert "hooks apply" in (EXAMPLES_DIR / "README.md").read_text()


def test_the_repository_examples_apply_and_fire_into_valid_tasks(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    emulator.set_role(
        "hook-id:project-tc-scheduler/*",
        ["queue:create-task:*", "queue:scheduler-id:*", "queue:route:*", "assume:repo:*"],
    )
    applied = invoke("apply", "--hooks-dir", str(EXAMPLES_DIR), config=config, env=environment)
    assert applied.exit_code == 0, applied.output
    assert sorted(deployed(emulator)) == EXAMPLE_KEYS
    payloads = {
        "nightly-decision": {},
        "release-promotion": {"revision": REVISION, "flavor": "promote", "build_number": 1},
        "github-release": {
            "organization": "taskcluster",
            "repository": "tc-scheduler",
            "body": {"release": {"tag_name": "v1.2.0", "target_commitish": "main"}},
            "eventId": "26370a80-ed65-11ea-8f7f-fce91f2b9f1c",
        },
    }
    queue = taskcluster.Queue(emulator.options())
    tasks = {}
    for hook_id, payload in payloads.items():
        fired = invoke(
            "fire",
            f"project-tc-scheduler/{hook_id}",
            "--payload",
            json.dumps(payload),
            config=config,
            env=environment,
        )
        assert fired.exit_code == 0, fired.output
        task_id = fired.stdout.split("task ")[1].split()[0]
        tasks[hook_id] = queue.task(task_id)  # the emulator validated it as a createTask body
    assert tasks["nightly-decision"]["extra"]["tasks_for"] == "hook"
    assert tasks["release-promotion"]["payload"]["env"]["TCS_HEAD_REV"] == REVISION
    assert (
        json.loads(tasks["release-promotion"]["payload"]["env"]["ACTION_INPUT"])
        == (payloads["release-promotion"])
    )
    assert tasks["github-release"]["payload"]["env"]["TCS_HEAD_REF"] == "refs/tags/v1.2.0"


# -- loading the folder: every problem with its place -----------------------------------------

VALID_HOOK = """\
hookGroupId: {group}
hookId: {hook}
metadata:
  name: Nightly
  description: A nightly task.
  owner: releng@example.com
schedule:
  - "0 0 3 * * *"
task:
  taskQueueId: proj-test/worker
  payload: {{}}
  metadata: {{name: n, description: d, owner: releng@example.com, source: https://example.com}}
"""


def write(directory: Path, relative: str, text: str) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def valid_hook(group: str = "g", hook: str = "nightly") -> str:
    return VALID_HOOK.format(group=group, hook=hook)


def errors_of(folder: HookFolder) -> list[str]:
    return [str(d) for d in folder.diagnostics]


def test_a_valid_folder_loads_with_nested_ids_and_ignores_other_files(tmp_path: Path) -> None:
    write(tmp_path, "g/nightly.yml", valid_hook())
    write(tmp_path, "g/cron/weekly.yml", valid_hook(hook="cron/weekly"))
    write(tmp_path, "README.md", "# notes\n")
    write(tmp_path, "g/.nightly.yml.swp", "binary junk")
    (tmp_path / "emptied").mkdir()
    (tmp_path / "emptied" / ".gitkeep").write_text("")
    folder = load_folder(tmp_path)
    assert errors_of(folder) == []
    assert [str(h.key) for h in folder.hooks] == ["g/cron/weekly", "g/nightly"]
    assert folder.groups == {"g", "emptied"}
    assert folder.hooks[1].definition["schedule"] == ["0 0 3 * * *"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            valid_hook().replace("owner: releng@example.com\nschedule", "owner: releng\nschedule"),
            "6:10: error: owner must be the email address of the person or group responsible "
            '(got "releng")',
        ),
        (
            valid_hook().replace("schedule:\n", "schedul:\n"),
            "7:1: error: unknown key `schedul` in the file; did you mean `schedule`?",
        ),
        (
            valid_hook().replace('  - "0 0 3 * * *"', "  - 300"),
            "8:5: error: schedule[0] must be a cron pattern in UTC, as a string, like "
            "'0 0 3 * * *' (got 300)",
        ),
        (
            valid_hook().split("task:")[0],
            "1:1: error: the file is missing `task`; add it, for example "
            "`task: {taskQueueId: ..., payload: ..., metadata: ...}`",
        ),
        (
            valid_hook().replace("  name: Nightly\n", ""),
            "4:3: error: metadata is missing `name`; add it, for example "
            "`name: Nightly decision task`",
        ),
        (
            valid_hook().replace("hookId: nightly", "hookId: weekly"),
            "2:9: error: hookId is `weekly` but the file's place says `nightly`; a hook's file "
            "is <hookGroupId>/<hookId>.yml, so change hookId or move the file",
        ),
        (
            valid_hook().replace("hookGroupId: g", "hookGroupId: g.x"),
            "1:14: error: hookGroupId must be 1 to 1000 letters, digits, - or _ (the name of "
            'the file\'s folder) (got "g.x")',
        ),
        (
            valid_hook() + "triggerSchema: {type: 5}\n",
            "13:16: error: triggerSchema is not a valid JSON schema: triggerSchema.type: 5 is "
            "not valid under any of the given schemas",
        ),
        (
            valid_hook() + "bindings:\n  - exchange: exchange/taskcluster-github/v1/push\n",
            "14:5: error: bindings[0] is missing `routingKeyPattern`; add it, for example "
            "`routingKeyPattern: primary.my-org.my-repo`",
        ),
        (
            valid_hook().replace("  payload: {}", "  payload: {}\n  created: 2024-01-01"),
            "12:12: error: task.created is the YAML date 2024-01-01, which JSON cannot carry "
            "to the Hooks service; quote it to make it a string",
        ),
        (
            valid_hook().replace("  name: Nightly\n", "  name: Nightly\n  name: Nightlies\n"),
            "5:3: error: key `name` is written twice in this mapping (first at line 4); YAML "
            "keeps only the last one, so remove or merge the other",
        ),
        (
            valid_hook().replace("task:\n", "task:\n\t"),
            "10:1: error: invalid YAML:",
        ),
    ],
    ids=[
        "owner",
        "typo",
        "schedule-entry",
        "missing-task",
        "missing-name",
        "id-mismatch",
        "group-pattern",
        "trigger-schema",
        "binding",
        "yaml-date",
        "duplicate-key",
        "tab",
    ],
)
def test_a_bad_file_is_reported_at_its_line_and_column(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "g/nightly.yml", text)
    folder = load_folder(tmp_path)
    assert not folder.ok
    assert folder.hooks == ()
    assert any(error.startswith(f"{path}:{expected}") for error in errors_of(folder)), errors_of(
        folder
    )


def test_a_file_in_the_wrong_place_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "nightly.yml", valid_hook())
    write(tmp_path, "g/weekly.yaml", valid_hook(hook="weekly"))
    write(tmp_path, "bad.group/x.yml", valid_hook(group="bad.group", hook="x"))
    errors = errors_of(load_folder(tmp_path))
    assert (
        f"{tmp_path}/nightly.yml:1:1: error: a hook file must be <hookGroupId>/<hookId>.yml "
        in ("\n".join(errors))
    )
    assert (
        f"{tmp_path}/g/weekly.yaml:1:1: error: hook files end in .yml; rename it to weekly.yml"
        in errors
    )
    assert (
        f"{tmp_path}/bad.group:1:1: error: the group folder's name `bad.group` must be 1 to 1000 "
        "letters, digits, - or _" in errors
    )


def test_key_of_reads_the_hook_from_the_files_place() -> None:
    assert key_of(PurePosixPath("g/a/b.yml")) == HookKey("g", "a/b")
    assert isinstance(key_of(PurePosixPath("g.yml")), str)
    assert isinstance(key_of(PurePosixPath("g/a b.yml")), str)
    assert HookKey.parse("g/in-tree-action-3-generic/93267a5f84") == HookKey(
        "g", "in-tree-action-3-generic/93267a5f84"
    )
    for bad in ("nogroup", "/x", "g/"):
        with pytest.raises(ValueError, match="is not GROUP/ID"):
            HookKey.parse(bad)
    with pytest.raises(ValueError, match=r"hookGroupId `g\.x` must be 1 to 1000 letters"):
        HookKey.parse("g.x/y")
    with pytest.raises(ValueError, match="hookId `a b` must be 1 to 1000 letters, digits, -, _"):
        HookKey.parse("g/a b")


# -- comparing definitions --------------------------------------------------------------------


def test_field_changes_name_each_changed_leaf() -> None:
    old = {"a": {"b": 1, "gone": True}, "list": [1, 2], "grown": [1], "same": [{"x": 1}]}
    new = {"a": {"b": 2, "new": "n"}, "list": [1, 3], "grown": [1, 2], "same": [{"x": 1.0}]}
    assert field_changes(old, new) == [
        FieldChange(("a", "b"), 1, 2),
        FieldChange(("a", "new"), ABSENT, "n"),
        FieldChange(("a", "gone"), True, ABSENT),
        FieldChange(("list", 1), 2, 3),
        FieldChange(("grown",), [1], [1, 2]),
    ]
    assert field_changes({"flag": True}, {"flag": 1}) == [FieldChange(("flag",), True, 1)]
    assert str(FieldChange(("task", "extra", "a.b", 0), ABSENT, "x")) == (
        'task.extra["a.b"][0]: (absent) → "x"'
    )


def test_a_definition_is_compared_with_the_services_defaults_filled_in() -> None:
    written = {"metadata": {"name": "n", "description": "d", "owner": "o@x.y"}, "task": {}}
    stored = {
        "hookGroupId": "g",
        "hookId": "h",
        "metadata": {"name": "n", "description": "d", "owner": "o@x.y", "emailOnError": True},
        "task": {},
        "schedule": [],
        "triggerSchema": {"type": "object", "additionalProperties": False},
        "bindings": [],
    }
    assert field_changes(as_stored(stored), as_stored(written)) == []
    assert field_changes(as_stored(stored), as_stored(written | {"schedule": ["0 0 * * * *"]}))


def test_the_plan_leaves_other_groups_alone(tmp_path: Path) -> None:
    write(tmp_path, "g/nightly.yml", valid_hook())
    folder = load_folder(tmp_path)
    stored = as_stored(folder.hooks[0].definition)
    deployed = {
        HookKey("g", "nightly"): stored,
        HookKey("g", "old"): stored,
        HookKey("other", "x"): stored,
    }
    assert [(str(p.key), p.change) for p in plan(folder, deployed)] == [
        ("g/nightly", Change.UNCHANGED),
        ("g/old", Change.UNDECLARED),
    ]


# -- list, diff and apply against the emulator -----------------------------------------------


@pytest.fixture
def environment(emulator: Emulator) -> dict[str, str]:
    return taskcluster_environment(emulator)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "service.yml"
    path.write_text(
        "projects:\n"
        "  - name: demo\n"
        "    repository: https://github.com/example/demo\n"
        "    trust-domain: tcs\n"
    )
    return path


@pytest.fixture
def hooks_api(emulator: Emulator) -> Any:
    return taskcluster.Hooks(emulator.options(maxRetries=0))


def invoke(*arguments: str, config: Path, env: dict[str, str]) -> Result:
    return CliRunner().invoke(
        hooks_group, [*arguments, "--config", str(config)], env=env, catch_exceptions=False
    )


def deployed(emulator: Emulator) -> dict[str, dict[str, Any]]:
    with emulator.lock:
        return {
            f"{g}/{h}": copy.deepcopy(hook.describe())
            for (g, h), hook in emulator.hooks.hooks.items()
        }


def tripwire(emulator: Emulator, route: str) -> None:
    """Note any call to `route`: its first one fails once (the client retries past it) and is
    listed in `emulator.faults.injected`."""
    emulator.faults.add(route, script=["503"])


def audit_log(config: Path, env: dict[str, str]) -> list[Any]:
    with Ledger.open(read_config(config, env).ledger_url) as ledger:
        return ledger.audit_log()


@pytest.fixture
def folder(tmp_path: Path, hooks_api: Any) -> Path:
    """A folder declaring g/new, g/changed and g/same, and a deployment holding g/changed (with
    another schedule and description), g/same, g/undeclared and other/untouched."""
    directory = tmp_path / "hooks"
    write(directory, "g/new.yml", valid_hook(hook="new"))
    write(directory, "g/changed.yml", valid_hook(hook="changed"))
    same = write(directory, "g/same.yml", valid_hook(hook="same"))
    definition = yaml.safe_load(same.read_text())
    hooks_api.createHook("g", "same", {**definition, "hookId": "same"})
    hooks_api.createHook(
        "g",
        "changed",
        {
            **definition,
            "hookId": "changed",
            "schedule": ["0 0 4 * * *"],
            "metadata": {**definition["metadata"], "description": "An old description."},
        },
    )
    hooks_api.createHook("g", "undeclared", {**definition, "hookId": "undeclared"})
    hooks_api.createHook(
        "other", "untouched", {**definition, "hookGroupId": "other", "hookId": "untouched"}
    )
    return directory


def test_diff_shows_each_change_field_by_field_and_changes_nothing(
    emulator: Emulator, environment: dict[str, str], config: Path, folder: Path
) -> None:
    before = deployed(emulator)
    result = invoke("diff", "--hooks-dir", str(folder), config=config, env=environment)
    assert result.exit_code == 1, result.output  # drifted: CI can gate on it
    assert result.stdout.splitlines() == [
        f"~ g/changed: would update 2 fields ({folder}/g/changed.yml)",
        '    metadata.description: "An old description." → "A nightly task."',
        '    schedule[0]: "0 0 4 * * *" → "0 0 3 * * *"',
        f"+ g/new: would create ({folder}/g/new.yml)",
        f"= g/same: unchanged ({folder}/g/same.yml)",
        "- g/undeclared: not declared here; would remove (use --prune)",
    ]
    assert "1 to create, 1 to update, 1 unchanged, 1 not declared" in result.stderr
    assert deployed(emulator) == before

    as_json = invoke("diff", "--json", "--hooks-dir", str(folder), config=config, env=environment)
    assert as_json.exit_code == 1
    changed = next(h for h in json.loads(as_json.stdout) if h["hook"] == "g/changed")
    assert changed["change"] == "update"
    assert changed["fields"] == [
        {"path": "metadata.description", "old": "An old description.", "new": "A nightly task."},
        {"path": "schedule[0]", "old": "0 0 4 * * *", "new": "0 0 3 * * *"},
    ]


def test_list_says_what_exists_differs_or_is_not_declared(
    environment: dict[str, str], config: Path, folder: Path
) -> None:
    result = invoke("list", "--hooks-dir", str(folder), config=config, env=environment)
    assert result.exit_code == 0, result.output
    rows = {
        line.split()[0]: " ".join(line.split()[1:])
        for line in result.stdout.splitlines()[3:]
        if line.strip()
    }
    assert rows["g/new"].startswith("missing (apply creates it)")
    assert rows["g/changed"].startswith("differs (metadata, schedule)")
    assert rows["g/same"].startswith("unchanged")
    assert rows["g/undeclared"] == "not declared (apply --prune removes it)"
    assert "other/untouched" not in result.stdout
    listed = json.loads(
        invoke("list", "--json", "--hooks-dir", str(folder), config=config, env=environment).stdout
    )
    assert [(h["hook"], h["change"]) for h in listed] == [
        ("g/changed", "update"),
        ("g/new", "create"),
        ("g/same", "unchanged"),
        ("g/undeclared", "undeclared"),
    ]


def test_apply_creates_and_updates_keeps_undeclared_hooks_and_prunes_only_when_asked(
    emulator: Emulator, environment: dict[str, str], config: Path, folder: Path
) -> None:
    before = deployed(emulator)
    dry = invoke("apply", "--dry-run", "--hooks-dir", str(folder), config=config, env=environment)
    assert dry.exit_code == 0, dry.output
    assert deployed(emulator) == before
    assert "+ g/new: would create" in dry.stdout

    applied = invoke("apply", "--hooks-dir", str(folder), config=config, env=environment)
    assert applied.exit_code == 0, applied.output
    assert applied.stdout.splitlines() == [
        f"~ g/changed: updated 2 fields ({folder}/g/changed.yml)",
        '    metadata.description: "An old description." → "A nightly task."',
        '    schedule[0]: "0 0 4 * * *" → "0 0 3 * * *"',
        f"+ g/new: created ({folder}/g/new.yml)",
        f"= g/same: unchanged ({folder}/g/same.yml)",
        "  g/undeclared: not declared here; kept (--prune removes it)",
    ]
    after = deployed(emulator)
    assert sorted(after) == ["g/changed", "g/new", "g/same", "g/undeclared", "other/untouched"]
    assert after["g/changed"]["schedule"] == ["0 0 3 * * *"]
    assert after["g/changed"]["metadata"]["description"] == "A nightly task."
    assert after["g/same"] == before["g/same"]

    again = invoke("diff", "--hooks-dir", str(folder), config=config, env=environment)
    assert [line[0] for line in again.stdout.splitlines()] == ["=", "=", "=", "-"]
    assert again.exit_code == 1, "a hook of a managed group that no file declares is drift"

    pruned = invoke("apply", "--prune", "--hooks-dir", str(folder), config=config, env=environment)
    assert pruned.exit_code == 0, pruned.output
    assert "- g/undeclared: removed" in pruned.stdout
    assert sorted(deployed(emulator)) == ["g/changed", "g/new", "g/same", "other/untouched"]
    in_sync = invoke("diff", "--hooks-dir", str(folder), config=config, env=environment)
    assert in_sync.exit_code == 0, in_sync.output

    acts = [(e.action, e.target, e.ok, e.input) for e in reversed(audit_log(config, environment))]
    assert acts == [
        ("hooks-apply", str(folder), True, {"prune": False, "dry_run": True}),
        ("hooks-apply", str(folder), True, {"prune": False, "dry_run": False}),
        ("hooks-apply", str(folder), True, {"prune": True, "dry_run": False}),
    ]


def test_apply_with_an_invalid_file_fails_before_any_call(
    emulator: Emulator, environment: dict[str, str], config: Path, folder: Path
) -> None:
    bad = write(
        folder,
        "g/broken.yml",
        valid_hook(hook="broken").replace("releng@example.com\nschedule", "nobody\nschedule"),
    )
    before = deployed(emulator)
    tripwire(emulator, "hooks.*")
    result = invoke("apply", "--prune", "--hooks-dir", str(folder), config=config, env=environment)
    assert result.exit_code == 1
    assert (
        f"{bad}:6:10: error: owner must be the email address of the person or group "
        'responsible (got "nobody")'
    ) in result.stderr.splitlines()
    assert "nothing was sent to Taskcluster" in result.stderr
    assert result.stdout == ""
    assert emulator.faults.injected == []
    assert deployed(emulator) == before


def test_a_failing_hook_does_not_stop_the_others_and_exits_1(
    emulator: Emulator, config: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "hooks"
    write(directory, "g/allowed.yml", valid_hook(hook="allowed"))
    write(directory, "g/forbidden.yml", valid_hook(hook="forbidden"))
    limited = emulator.add_client(
        "project/deployer",
        ["hooks:list-hooks:g", "hooks:modify-hook:g/*", "assume:hook-id:g/allowed"],
    )
    env = {
        "TASKCLUSTER_ROOT_URL": emulator.root_url,
        "TASKCLUSTER_CLIENT_ID": limited["clientId"],
        "TASKCLUSTER_ACCESS_TOKEN": limited["accessToken"],
    }
    result = invoke("apply", "--hooks-dir", str(directory), config=config, env=env)
    assert result.exit_code == 1
    assert "+ g/allowed: created" in result.stdout
    assert "! g/forbidden: hooks.createHook(g/forbidden) failed: 403" in result.stdout
    assert "grant it to the service's client" in result.stdout
    assert sorted(deployed(emulator)) == ["g/allowed"]


def test_a_missing_folder_is_a_usage_error(config: Path, tmp_path: Path) -> None:
    result = invoke("list", "--hooks-dir", str(tmp_path / "nope"), config=config, env={})
    assert result.exit_code == 2
    assert "no hooks folder at" in result.stderr


def test_diff_exits_2_on_trouble_never_1_which_means_drift(
    emulator: Emulator, environment: dict[str, str], config: Path, folder: Path
) -> None:
    write(folder, "g/broken.yml", valid_hook(hook="other"))
    broken = invoke("diff", "--hooks-dir", str(folder), config=config, env=environment)
    assert broken.exit_code == 2, broken.output
    assert "nothing was sent to Taskcluster" in broken.stderr
    (folder / "g" / "broken.yml").unlink()
    stranger = {**environment, "TASKCLUSTER_CLIENT_ID": "nobody", "TASKCLUSTER_ACCESS_TOKEN": "x"}
    refused = invoke("diff", "--hooks-dir", str(folder), config=config, env=stranger)
    assert refused.exit_code == 2, refused.output


def test_the_folder_defaults_to_the_configurations_hooks_dir(
    environment: dict[str, str], config: Path, folder: Path, tmp_path: Path
) -> None:
    # The fixture's configuration is in tmp_path, beside the folder: a relative hooks-dir.
    config.write_text(config.read_text() + "hooks-dir: hooks\n")
    listed = invoke("list", "--json", config=config, env=environment)
    assert listed.exit_code == 0, listed.output
    assert [h["hook"] for h in json.loads(listed.stdout)] == [
        "g/changed",
        "g/new",
        "g/same",
        "g/undeclared",
    ]
    checked = invoke("check", config=config, env=environment)
    assert checked.exit_code == 0, checked.output
    assert f"{folder}: OK (3 hooks)" in checked.stderr
    # --hooks-dir (or $TC_SCHEDULER_HOOKS_DIR) still wins.
    other = tmp_path / "other-hooks"
    write(other, "g/nightly.yml", valid_hook())
    given = invoke("check", "--hooks-dir", str(other), config=config, env=environment)
    assert f"{other}: OK (1 hook)" in given.stderr
    from_env = invoke(
        "check", config=config, env={**environment, "TC_SCHEDULER_HOOKS_DIR": str(other)}
    )
    assert f"{other}: OK (1 hook)" in from_env.stderr


def test_check_reads_only_the_configurations_hooks_dir_so_ci_needs_no_secrets(
    tmp_path: Path,
) -> None:
    write(tmp_path / "hooks", "g/nightly.yml", valid_hook())
    config = tmp_path / "service.yml"
    config.write_text(
        "hooks-dir: hooks\nnotify: {sentry: {environment: ci}}\nprojects: []\n"
    )  # no root URL, no DSN: what `run` needs, not what checking the folder does
    checked = CliRunner().invoke(hooks_group, ["check", "--config", str(config)], env={})
    assert checked.exit_code == 0, checked.output
    assert f"{tmp_path / 'hooks'}: OK (1 hook)" in checked.stderr
    config.write_text("hooks-dir: nowhere\nprojects: []\n")
    missing = CliRunner().invoke(hooks_group, ["check", "--config", str(config)], env={})
    assert missing.exit_code == 1
    assert "hooks-dir" in missing.stderr
    assert "there is no such folder" in missing.stderr


def test_check_validates_without_calling_anything(tmp_path: Path) -> None:
    write(tmp_path, "g/nightly.yml", valid_hook())
    ok = CliRunner().invoke(hooks_group, ["check", "--hooks-dir", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "OK (1 hook)" in ok.stderr
    write(tmp_path, "g/other.yml", valid_hook(hook="weekly"))
    bad = CliRunner().invoke(hooks_group, ["check", "--hooks-dir", str(tmp_path)])
    assert bad.exit_code == 1
    assert f"{tmp_path}/g/other.yml:2:9: error: hookId is `weekly`" in bad.stderr


# -- fire ---------------------------------------------------------------------------------------

TRIGGER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["revision", "flavor"],
    "properties": {
        "revision": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        "flavor": {"enum": ["promote", "ship"]},
        "options": {
            "type": "object",
            "properties": {"build_number": {"type": "integer", "minimum": 1}},
        },
    },
}


@pytest.fixture
def undeclared_hook(emulator: Emulator, hooks_api: Any) -> HookKey:
    """A hook of the deployment that no folder declares, with an id holding a slash."""
    key = HookKey("project-releng", "in-tree-action-3-promote/93267a5f84")
    now = emulator.clock.now()
    hooks_api.createHook(
        key.group_id,
        key.hook_id,
        {
            "metadata": {"name": "promote", "description": "d", "owner": "releng@example.com"},
            "triggerSchema": TRIGGER_SCHEMA,
            "task": {
                "taskQueueId": "proj-test/worker",
                "created": {"$fromNow": "0 seconds"},
                "deadline": {"$fromNow": "1 hour"},
                "payload": {"input": {"$eval": "payload"}},
                "metadata": {
                    "name": "promote ${payload.revision}",
                    "description": "d",
                    "owner": "releng@example.com",
                    "source": f"https://example.com/{now:%Y}",
                },
            },
        },
    )
    emulator.set_role(f"hook-id:{key}", ["queue:create-task:*", "queue:scheduler-id:-"])
    return key


def test_fire_triggers_any_hook_and_prints_the_task_and_its_link(
    emulator: Emulator, environment: dict[str, str], config: Path, undeclared_hook: HookKey
) -> None:
    payload = {"revision": REVISION, "flavor": "ship", "options": {"build_number": 2}}
    result = invoke(
        "fire",
        str(undeclared_hook),
        "--payload",
        json.dumps(payload),
        config=config,
        env=environment,
    )
    assert result.exit_code == 0, result.output
    [task] = emulator.tasks()
    assert result.stdout.splitlines() == [
        f"triggered {undeclared_hook}: task {task.task_id}",
        f"{emulator.root_url}/tasks/{task.task_id}",
    ]
    assert task.definition["payload"] == {"input": payload}
    [entry] = audit_log(config, environment)
    assert (entry.action, entry.target, entry.ok) == ("hook-fire", str(undeclared_hook), True)
    assert entry.input == {"payload": payload, "dry_run": False}


def test_fire_reads_the_payload_from_a_file(
    emulator: Emulator,
    environment: dict[str, str],
    config: Path,
    undeclared_hook: HookKey,
    tmp_path: Path,
) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps({"revision": REVISION, "flavor": "promote"}))
    result = invoke(
        "fire",
        str(undeclared_hook),
        "--payload",
        f"@{payload_file}",
        config=config,
        env=environment,
    )
    assert result.exit_code == 0, result.output
    assert len(emulator.tasks()) == 1
    missing = invoke(
        "fire",
        str(undeclared_hook),
        "--payload",
        f"@{tmp_path}/none.json",
        config=config,
        env=environment,
    )
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr


def test_a_payload_that_breaks_the_trigger_schema_is_refused_before_the_trigger_call(
    emulator: Emulator, environment: dict[str, str], config: Path, undeclared_hook: HookKey
) -> None:
    tripwire(emulator, "hooks.triggerHook")
    payload = {"revision": "abc", "flavour": "ship", "options": {"build_number": "2"}}
    result = invoke(
        "fire",
        str(undeclared_hook),
        "--payload",
        json.dumps(payload),
        config=config,
        env=environment,
    )
    assert result.exit_code == 1
    # Not a terminal: the error is the last line of the command's log, its problems listed.
    [said] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (said["level"], said["error"]) == ("error", "payload-rejected")
    assert said["event"] == (
        f"the payload does not match the triggerSchema of {undeclared_hook}, so it was "
        "not triggered (4 problems)"
    )
    assert said["details"] == [
        "payload.flavor: is required; add it",
        "payload.flavour: is not a field of this hook's payload (allowed: revision, flavor, "
        "options)",
        'payload.options.build_number: must be an integer (got the string "2"; write the '
        "number without quotes or leading zeros)",
        'payload.revision: must match the pattern ^[0-9a-f]{40}$ (got "abc")',
    ]
    assert emulator.faults.injected == [], "hooks.triggerHook was called"
    assert emulator.tasks() == []
    [entry] = audit_log(config, environment)
    assert (entry.action, entry.ok) == ("hook-fire", False)
    assert "payload.flavor: is required" in entry.result


def test_fire_dry_run_checks_the_payload_and_triggers_nothing(
    emulator: Emulator, environment: dict[str, str], config: Path, undeclared_hook: HookKey
) -> None:
    tripwire(emulator, "hooks.triggerHook")
    payload = json.dumps({"revision": REVISION, "flavor": "ship"})
    result = invoke(
        "fire",
        str(undeclared_hook),
        "--payload",
        payload,
        "--dry-run",
        config=config,
        env=environment,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"dry run: the payload matches the triggerSchema of {undeclared_hook}"
    )
    assert emulator.faults.injected == []
    assert emulator.tasks() == []


def test_fire_reports_an_unknown_hook_and_bad_arguments(
    environment: dict[str, str], config: Path
) -> None:
    unknown = invoke("fire", "project-releng/nope", config=config, env=environment)
    assert unknown.exit_code == 1
    assert "has no hook project-releng/nope" in unknown.stderr
    assert "Traceback" not in unknown.output
    bad_name = invoke("fire", "nope", config=config, env=environment)
    assert bad_name.exit_code == 2
    assert "is not GROUP/ID" in bad_name.stderr
    not_an_object = invoke("fire", "g/h", "--payload", "[1]", config=config, env=environment)
    assert not_an_object.exit_code == 2
    assert "must be a JSON object" in not_an_object.stderr


def test_payload_problems_use_the_schemas_draft_and_name_nested_fields() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"kinds": {"type": "array", "items": {"enum": ["toolchain", "fetch"]}}},
    }
    assert [str(p) for p in payload_problems(schema, {"kinds": ["fetch", "docker"]})] == [
        'payload.kinds[1]: must be one of "toolchain", "fetch" (got "docker")'
    ]
    assert payload_problems(schema, {"kinds": ["fetch"]}) == []


@pytest.mark.process
def test_the_hooks_commands_load_without_the_service_commands() -> None:
    """Each group of commands loads by itself: `hooks` imports none of the service's."""
    code = (
        "import sys, scheduler.cli.hooks\n"
        "assert 'scheduler.cli.service' not in sys.modules, 'imported at load time'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# -- a hook in words (the hooks page) ----------------------------------------------------------


def test_schedules_schemas_and_example_payloads_in_short() -> None:
    assert schedule_words([]) is None
    assert schedule_words(["0 0 3 * * *"]) == "daily at 03:00 UTC"
    assert schedule_words(["0 15 * * * *"]) == "hourly at :15"
    assert schedule_words(["0 30 6 * * 1"]) == "every Monday at 06:30 UTC"
    assert schedule_words(["0 0 0 1 * *", "0 0,30 * * * *"]) == (
        "monthly on day 1 at 00:00 UTC; cron 0 0,30 * * * * (UTC)"
    )
    assert schema_summary({"type": "object", "additionalProperties": False}) == (
        "an empty object: {}"
    )
    assert schema_summary({"type": "object"}) == "any object"
    assert schema_summary(PAGE_SCHEMA) == (
        'revision (a string matching ^[0-9a-f]{40}$, required), flavor (one of "ship" | '
        '"promote", required), build_number (an integer)'
    )
    assert example_payload(PAGE_SCHEMA) == {"revision": "", "flavor": "ship"}
    nested = copy.deepcopy(PAGE_SCHEMA)
    nested["properties"]["options"] = {
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer", "default": 2}},
    }
    nested["required"].append("options")
    assert example_payload(nested)["options"] == {"n": 2}
