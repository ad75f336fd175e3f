"""The hook definitions this deployment manages: the `hooks/` folder's schema, hook keys, and
one file's text parsed into a definition with its problems. Pure: no file reading."""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from jsonschema import Draft7Validator, FormatChecker, ValidationError

from scheduler.common.diagnostics import START, Diagnostic, Position, Severity
from scheduler.common.schema_messages import Explainer, describe, json_path, shown
from scheduler.common.yamldoc import Document, YamlError, non_json_values, parse
from scheduler.hooks.payloads import trigger_schema_problem
from scheduler.hooks.schedules import schedule_problem

# One file per hook: <folder>/<hookGroupId>/<hookId>.yml. A hookId may contain `/`, so the
# folders below the group's spell it out; a flat `<group>--<id>.yml` name could not say where
# the group ends when either id contains `--`.
SUFFIX = ".yml"

GROUP_ID_PATTERN = "^([a-zA-Z0-9-_]*)$"
HOOK_ID_PATTERN = "^([a-zA-Z0-9-_/]*)$"
MAX_ID_LENGTH = 1000

# What the service stores when a request leaves the field out (its schema's defaults); a
# definition is compared with a deployed hook after filling these in.
DEFAULT_SCHEDULE: list[str] = []
DEFAULT_TRIGGER_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False}
DEFAULT_EMAIL_ON_ERROR = True

# Taskcluster's hooks/v1/create-hook-request.json (with hook-metadata.json and bindings.json
# inlined), kept next to the code that uses it so nothing is read from elsewhere at run time.
# tests/test_hooks.py checks that it accepts and rejects what the served schema does.
# `x-expected` says in words what to write (see schema_messages.Explainer); validators ignore it.
CREATE_HOOK_REQUEST: dict[str, Any] = {
    "title": "Hook creation request",
    "type": "object",
    "additionalProperties": False,
    "required": ["metadata", "task"],
    "properties": {
        "hookGroupId": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LENGTH,
            "pattern": GROUP_ID_PATTERN,
            "x-expected": "1 to 1000 letters, digits, - or _ (the name of the file's folder)",
        },
        "hookId": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LENGTH,
            "pattern": HOOK_ID_PATTERN,
            "x-expected": "1 to 1000 letters, digits, -, _ or / (the file's name without .yml)",
        },
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "description", "owner"],
            "properties": {
                "name": {
                    "type": "string",
                    "maxLength": 255,
                    "x-expected": "a name of at most 255 characters",
                },
                "description": {
                    "type": "string",
                    "maxLength": 32768,
                    "x-expected": "a text of at most 32768 characters",
                },
                "owner": {
                    "type": "string",
                    "format": "email",
                    "maxLength": 255,
                    "x-expected": "the email address of the person or group responsible",
                },
                "emailOnError": {"type": "boolean", "default": DEFAULT_EMAIL_ON_ERROR},
            },
        },
        "schedule": {
            "type": "array",
            "uniqueItems": True,
            "default": DEFAULT_SCHEDULE,
            "items": {
                "type": "string",
                "x-expected": "a cron pattern in UTC, as a string, like '0 0 3 * * *'",
            },
            "x-expected": "a list of distinct cron patterns (UTC), like ['0 0 3 * * *'], "
            "or [] to fire only on demand",
        },
        "task": {
            "type": "object",
            "x-expected": "a mapping: the task definition, a JSON-e template rendered when the "
            "hook fires",
        },
        "triggerSchema": {
            "type": "object",
            "default": DEFAULT_TRIGGER_SCHEMA,
            "x-expected": "a mapping: the JSON schema that trigger payloads must match",
        },
        "bindings": {
            "type": "array",
            "uniqueItems": True,
            "x-expected": "a list of distinct {exchange, routingKeyPattern} mappings",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["exchange", "routingKeyPattern"],
                "properties": {
                    "exchange": {
                        "type": "string",
                        "minLength": 1,
                        "x-expected": "a Pulse exchange, like exchange/taskcluster-github/v1/push",
                    },
                    "routingKeyPattern": {
                        "type": "string",
                        "minLength": 1,
                        "x-expected": "a routing key pattern, like primary.my-org.my-repo",
                    },
                },
            },
        },
    },
}

# A file must also say which hook it defines (the request takes the ids from the URL).
HOOK_FILE_SCHEMA: dict[str, Any] = {
    **CREATE_HOOK_REQUEST,
    "required": ["hookGroupId", "hookId", "metadata", "task"],
}
# The service checks `format: email` (ajv-formats); jsonschema checks formats only when asked.
FORMATS = FormatChecker(["email"])
HOOK_FILE_VALIDATOR = Draft7Validator(HOOK_FILE_SCHEMA, format_checker=FORMATS)

EXAMPLES = {
    "hookGroupId": "hookGroupId: project-releng",
    "hookId": "hookId: nightly-decision",
    "metadata": "metadata: {name: ..., description: ..., owner: releng@example.com}",
    "task": "task: {taskQueueId: ..., payload: ..., metadata: ...}",
    "name": "name: Nightly decision task",
    "description": "description: What the hook does, and who fires it",
    "owner": "owner: releng@example.com",
    "exchange": "exchange: exchange/taskcluster-github/v1/push",
    "routingKeyPattern": "routingKeyPattern: primary.my-org.my-repo",
}
EXPLAINER = Explainer(examples=EXAMPLES, entry_noun="hook")


@dataclass(frozen=True, order=True)
class HookKey:
    """Which hook: `hookGroupId/hookId`, as the Hooks service and its scopes name it."""

    group_id: str
    hook_id: str

    def __str__(self) -> str:
        return f"{self.group_id}/{self.hook_id}"

    @classmethod
    def parse(cls, text: str) -> HookKey:
        """`GROUP/ID` (the id may contain more slashes); ValueError says what is wrong."""
        group_id, slash, hook_id = text.partition("/")
        if not slash or not group_id or not hook_id:
            raise ValueError(f"{text!r} is not GROUP/ID, like project-releng/nightly-decision")
        problem = id_problem("hookGroupId", group_id, GROUP_ID_PATTERN) or id_problem(
            "hookId", hook_id, HOOK_ID_PATTERN
        )
        if problem:
            raise ValueError(problem)
        return cls(group_id, hook_id)


@dataclass(frozen=True)
class DeclaredHook:
    """One file of the folder: the hook it defines and its createHook request body."""

    key: HookKey
    path: str
    definition: dict[str, Any]


@dataclass(frozen=True)
class HookFolder:
    """The folder's hooks, the groups it manages (one sub-folder each) and its problems."""

    directory: str
    hooks: tuple[DeclaredHook, ...]
    groups: frozenset[str]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def parse_hook(
    source: str | bytes, display: str, relative: PurePosixPath
) -> tuple[DeclaredHook | None, list[Diagnostic]]:
    """One hook file, at `relative` inside the folder: its hook, or None and why not."""
    problems: list[Diagnostic] = []
    expected = key_of(relative)
    if isinstance(expected, str):
        problems.append(error_at(display, START, expected))
    try:
        document = parse(source)
    except YamlError as error:
        return None, [*problems, error_at(display, error.position, error.message)]
    for duplicate in document.duplicate_keys:
        problems.append(
            error_at(
                display,
                duplicate.again,
                f"key {shown(duplicate.path[-1])} is written twice in this mapping (first at "
                f"line {duplicate.first.line}); YAML keeps only the last one, so remove or "
                "merge the other",
            )
        )
    reported: set[Position] = set()
    for invalid in sorted(HOOK_FILE_VALIDATOR.iter_errors(document.data), key=_error_order):
        for position, message in EXPLAINER.explain(invalid, document):
            reported.add(position)
            problems.append(error_at(display, position, message))
    for path, value in non_json_values(document.data):
        position = document.position_of(path)
        if position not in reported:
            problems.append(
                error_at(
                    display,
                    position,
                    f"{_field(path)} is {describe(value)}, which JSON cannot carry to the "
                    "Hooks service; quote it to make it a string",
                )
            )
    data = document.data
    if isinstance(data, dict):
        problems.extend(
            problem
            for problem in _semantic_problems(data, document, display, expected)
            if problem.position not in reported
        )
    if any(p.is_error for p in problems) or isinstance(expected, str):
        return None, problems
    return DeclaredHook(expected, display, data), problems


def key_of(relative: PurePosixPath) -> HookKey | str:
    """The hook a file at `relative` (inside the folder) must define, or why it cannot."""
    if len(relative.parts) < 2 or relative.suffix != SUFFIX:
        return (
            f"a hook file must be <hookGroupId>/<hookId>{SUFFIX} inside the hooks folder; "
            f"move it into its group's folder"
        )
    group_id = relative.parts[0]
    hook_id = str(PurePosixPath(*relative.parts[1:]))[: -len(SUFFIX)]
    problem = id_problem("the group folder's name", group_id, GROUP_ID_PATTERN) or id_problem(
        "the hookId the file's name gives", hook_id, HOOK_ID_PATTERN
    )
    if problem:
        return f"{problem}; rename the file to <hookGroupId>/<hookId>{SUFFIX}"
    return HookKey(group_id, hook_id)


def _semantic_problems(
    data: dict[str, Any], document: Document, display: str, expected: HookKey | str
) -> Iterator[Diagnostic]:
    """What the schema cannot say: the ids match the file's place, each schedule entry is one
    the Hooks service takes (six fields), triggerSchema is a schema."""
    if isinstance(expected, HookKey):
        for field_name, wanted in (
            ("hookGroupId", expected.group_id),
            ("hookId", expected.hook_id),
        ):
            written = data.get(field_name)
            if isinstance(written, str) and written != wanted:
                yield error_at(
                    display,
                    document.position_of((field_name,)),
                    f"{field_name} is {shown(written)} but the file's place says {shown(wanted)}; "
                    f"a hook's file is <hookGroupId>/<hookId>{SUFFIX}, so change {field_name} "
                    f"or move the file",
                )
    schedule = data.get("schedule")
    for index, entry in enumerate(schedule if isinstance(schedule, list) else ()):
        problem = schedule_problem(entry) if isinstance(entry, str) else None
        if problem:
            yield error_at(display, document.position_of(("schedule", index)), problem)
    trigger_schema = data.get("triggerSchema")
    if isinstance(trigger_schema, dict):
        problem = trigger_schema_problem(trigger_schema)
        if problem:
            yield error_at(display, document.position_of(("triggerSchema",)), problem)


def _field(path: Sequence[Hashable]) -> str:
    return json_path(path) if path else "the file"


def id_problem(what: str, value: str, pattern: str) -> str | None:
    # fullmatch, not the pattern's `$`, which Python lets match before a final newline.
    if not 1 <= len(value) <= MAX_ID_LENGTH or not re.fullmatch(pattern.strip("^$"), value):
        allowed = "letters, digits, -, _ or /" if "/" in pattern else "letters, digits, - or _"
        return f"{what} {shown(value)} must be 1 to {MAX_ID_LENGTH} {allowed}"
    return None


def error_at(path: str, position: Position, message: str) -> Diagnostic:
    return Diagnostic(path, position, Severity.ERROR, message)


def _error_order(error: ValidationError) -> list[str]:
    return list(map(str, error.absolute_path))
