"""The hook definitions this deployment manages: the `hooks/` folder, its schema, and diffs.

Pure: it reads files and compares definitions; hook_calls.py talks to the Hooks service.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from jsonschema import Draft7Validator, FormatChecker, SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from scheduler.diagnostics import START, Diagnostic, Position, Severity
from scheduler.errors import Category, SchedulerError
from scheduler.schema_messages import TYPE_PHRASES, Explainer, describe, shown
from scheduler.yamldoc import MAX_BYTES, Document, JsonPath, YamlError, non_json_values, parse

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
        problem = _id_problem("hookGroupId", group_id, GROUP_ID_PATTERN) or _id_problem(
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


def load_folder(directory: Path) -> HookFolder:
    """Read and validate every hook file under `directory`. Never raises for bad content."""
    hooks: list[DeclaredHook] = []
    groups: set[str] = set()
    diagnostics: list[Diagnostic] = []
    for path in sorted(directory.rglob("*")):
        relative = PurePosixPath(path.relative_to(directory).as_posix())
        if any(part.startswith(".") for part in relative.parts):
            continue  # .gitkeep, editor swap files, .DS_Store
        display = str(path)
        if path.is_dir():
            if len(relative.parts) == 1:
                problem = _id_problem("the group folder's name", relative.name, GROUP_ID_PATTERN)
                if problem:
                    diagnostics.append(_error(display, START, problem))
                else:
                    groups.add(relative.name)
            continue
        if path.suffix == ".yaml":
            diagnostics.append(
                _error(display, START, f"hook files end in {SUFFIX}; rename it to {path.stem}.yml")
            )
            continue
        if path.suffix != SUFFIX:
            continue  # README.md and other notes
        try:
            source = _read_bounded(path)
        except OSError as error:
            diagnostics.append(_error(display, START, f"cannot read: {error.strerror or error}"))
            continue
        hook, problems = load_hook(source, display, relative)
        diagnostics.extend(problems)
        if hook is not None:
            hooks.append(hook)
    return HookFolder(
        directory=str(directory),
        hooks=tuple(hooks),
        groups=frozenset(groups),
        diagnostics=tuple(sorted(diagnostics, key=lambda d: (d.path, *d.sort_key()))),
    )


def load_hook(
    source: str | bytes, display: str, relative: PurePosixPath
) -> tuple[DeclaredHook | None, list[Diagnostic]]:
    """One hook file, at `relative` inside the folder: its hook, or None and why not."""
    problems: list[Diagnostic] = []
    expected = key_of(relative)
    if isinstance(expected, str):
        problems.append(_error(display, START, expected))
    try:
        document = parse(source)
    except YamlError as error:
        return None, [*problems, _error(display, error.position, error.message)]
    for duplicate in document.duplicate_keys:
        problems.append(
            _error(
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
            problems.append(_error(display, position, message))
    for path, value in non_json_values(document.data):
        position = document.position_of(path)
        if position not in reported:
            problems.append(
                _error(
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
    problem = _id_problem("the group folder's name", group_id, GROUP_ID_PATTERN) or _id_problem(
        "the hookId the file's name gives", hook_id, HOOK_ID_PATTERN
    )
    if problem:
        return f"{problem}; rename the file to <hookGroupId>/<hookId>{SUFFIX}"
    return HookKey(group_id, hook_id)


def _semantic_problems(
    data: dict[str, Any], document: Document, display: str, expected: HookKey | str
) -> Iterator[Diagnostic]:
    """What the schema cannot say: the ids match the file's place, triggerSchema is a schema."""
    if isinstance(expected, HookKey):
        for field_name, wanted in (
            ("hookGroupId", expected.group_id),
            ("hookId", expected.hook_id),
        ):
            written = data.get(field_name)
            if isinstance(written, str) and written != wanted:
                yield _error(
                    display,
                    document.position_of((field_name,)),
                    f"{field_name} is {shown(written)} but the file's place says {shown(wanted)}; "
                    f"a hook's file is <hookGroupId>/<hookId>{SUFFIX}, so change {field_name} "
                    f"or move the file",
                )
    trigger_schema = data.get("triggerSchema")
    if isinstance(trigger_schema, dict):
        problem = trigger_schema_problem(trigger_schema)
        if problem:
            yield _error(display, document.position_of(("triggerSchema",)), problem)


def trigger_schema_problem(trigger_schema: Mapping[str, Any]) -> str | None:
    """Why `trigger_schema` is not a JSON schema the service can check payloads with, if it
    is not (the service refuses to create such a hook)."""
    try:
        _validator_class(trigger_schema).check_schema(dict(trigger_schema))
    except SchemaError as error:
        where = _field(("triggerSchema", *error.absolute_path))
        return f"triggerSchema is not a valid JSON schema: {where}: {error.message}"
    return None


# -- comparing with the deployment ---------------------------------------------------------


class Absent(enum.Enum):
    """A field one side of a comparison does not have."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


@dataclass(frozen=True)
class FieldChange:
    path: JsonPath
    old: Any
    new: Any

    @property
    def where(self) -> str:
        return json_path(self.path)

    def __str__(self) -> str:
        return f"{self.where}: {shown_value(self.old)} → {shown_value(self.new)}"


class Change(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    # In a managed group, deployed, and in no file: removed only with --prune.
    UNDECLARED = "undeclared"


@dataclass(frozen=True)
class HookPlan:
    key: HookKey
    change: Change
    declared: DeclaredHook | None
    fields: tuple[FieldChange, ...] = ()


def plan(folder: HookFolder, deployed: Mapping[HookKey, Mapping[str, Any]]) -> list[HookPlan]:
    """What it takes to make the deployment's hooks in the folder's groups match the folder.

    `deployed` holds the service's definitions (`hooks.hook` replies); hooks of groups the
    folder does not manage are left out of the plan, whatever `deployed` holds.
    """
    plans: list[HookPlan] = []
    declared = {hook.key: hook for hook in folder.hooks}
    for key, hook in declared.items():
        current = deployed.get(key)
        if current is None:
            plans.append(HookPlan(key, Change.CREATE, hook))
            continue
        changes = field_changes(as_stored(current), as_stored(hook.definition))
        change = Change.UPDATE if changes else Change.UNCHANGED
        plans.append(HookPlan(key, change, hook, tuple(changes)))
    for key in deployed:
        if key not in declared and key.group_id in folder.groups:
            plans.append(HookPlan(key, Change.UNDECLARED, None))
    return sorted(plans, key=lambda p: p.key)


def as_stored(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The fields this folder manages, as the service stores them (defaults filled in)."""
    metadata = definition.get("metadata")
    if isinstance(metadata, dict):
        metadata = {
            **metadata,
            "emailOnError": metadata.get("emailOnError", DEFAULT_EMAIL_ON_ERROR),
        }
    return {
        "metadata": metadata,
        "schedule": definition.get("schedule", DEFAULT_SCHEDULE),
        "task": definition.get("task"),
        "triggerSchema": definition.get("triggerSchema", DEFAULT_TRIGGER_SCHEMA),
        "bindings": definition.get("bindings", []),
    }


def field_changes(old: Any, new: Any, path: JsonPath = ()) -> list[FieldChange]:
    """Each leaf that differs between two JSON values, with its path.

    Mappings are compared key by key, lists of equal length item by item; a list that grew
    or shrank is one change. Numbers compare by value (JSON has no 1.0 apart from 1), but
    true is not 1.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[FieldChange] = []
        for key in [*new, *(key for key in old if key not in new)]:
            changes.extend(field_changes(old.get(key, ABSENT), new.get(key, ABSENT), (*path, key)))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            change
            for index, (before, after) in enumerate(zip(old, new, strict=True))
            for change in field_changes(before, after, (*path, index))
        ]
    return [] if same_json(old, new) else [FieldChange(path, old, new)]


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON values: numbers by value, booleans only to booleans."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same_json, left, right))
    return type(left) is type(right) and bool(left == right)


# -- trigger payloads ----------------------------------------------------------------------


@dataclass(frozen=True)
class PayloadProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def payload_problems(trigger_schema: Mapping[str, Any], payload: Any) -> list[PayloadProblem]:
    """How `payload` breaks the hook's triggerSchema, each naming the field (empty if fine).

    The caller checks `trigger_schema_problem` first: an invalid schema cannot judge payloads.
    Raises UncheckablePayloadError when the schema needs what is not here (a remote `$ref`, a
    pattern only JavaScript reads).
    """
    validator = _validator_class(trigger_schema)(trigger_schema)
    problems: dict[PayloadProblem, None] = {}
    try:
        for error in validator.iter_errors(payload):
            for problem in _payload_problems(error):
                problems.setdefault(problem, None)
    except Unresolvable as error:
        raise UncheckablePayloadError(
            f"its triggerSchema refers to {error}, which is not here"
        ) from None
    except re.error as error:
        raise UncheckablePayloadError(
            f"its triggerSchema has a pattern Python cannot read: {error}"
        ) from None
    return sorted(problems, key=lambda p: (p.path, p.message))


class UncheckablePayloadError(SchedulerError, ValueError):
    """The triggerSchema cannot be applied here, so the payload cannot be checked."""

    category = Category.REJECTED
    error_code = "uncheckable-payload"


def _validator_class(schema: Mapping[str, Any]) -> type[Validator]:
    """The draft the schema's `$schema` names; draft 7, as the service's ajv, otherwise."""
    if not isinstance(schema.get("$schema", ""), str):
        return Draft7Validator
    return validator_for(schema, default=Draft7Validator)


def _payload_problems(error: ValidationError) -> Iterator[PayloadProblem]:
    path: JsonPath = ("payload", *error.absolute_path)
    instance = error.instance
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "required" and isinstance(instance, dict):
        for key in _listed(error.validator_value):
            if key not in instance:
                yield PayloadProblem(json_path((*path, key)), "is required; add it")
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in instance:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            allowed = f"allowed: {', '.join(known)}" if known else "it takes no other fields"
            yield PayloadProblem(
                json_path((*path, key)), f"is not a field of this hook's payload ({allowed})"
            )
    elif error.validator == "type":
        expected = " or ".join(
            TYPE_PHRASES.get(t, t) for t in _listed_or_one(error.validator_value)
        )
        yield PayloadProblem(json_path(path), f"must be {expected} (got {describe(instance)})")
    elif error.validator == "enum":
        choices = ", ".join(json.dumps(v) for v in _listed(error.validator_value))
        yield PayloadProblem(
            json_path(path), f"must be one of {choices} (got {describe(instance)})"
        )
    elif error.validator == "pattern":
        yield PayloadProblem(
            json_path(path),
            f"must match the pattern {error.validator_value} (got {describe(instance)})",
        )
    else:
        yield PayloadProblem(json_path(path), error.message)


def _listed(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _listed_or_one(value: object) -> list[Any]:
    return _listed(value) if isinstance(value, list | tuple) else [value]


# -- shared helpers ------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def json_path(parts: Iterable[Hashable]) -> str:
    """`task.payload.env.HOME`, `schedule[0]`, `task.extra["a.b"]`: a place in a JSON value."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(str(part))}]"
    return text or "(the whole value)"


def shown_value(value: Any, limit: int = 100) -> str:
    """A JSON value on one line, shortened if long; `(absent)` for a missing field."""
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field(path: Sequence[Hashable]) -> str:
    return json_path(path) if path else "the file"


def _id_problem(what: str, value: str, pattern: str) -> str | None:
    # fullmatch, not the pattern's `$`, which Python lets match before a final newline.
    if not 1 <= len(value) <= MAX_ID_LENGTH or not re.fullmatch(pattern.strip("^$"), value):
        allowed = "letters, digits, -, _ or /" if "/" in pattern else "letters, digits, - or _"
        return f"{what} {shown(value)} must be 1 to {MAX_ID_LENGTH} {allowed}"
    return None


def _error(path: str, position: Position, message: str) -> Diagnostic:
    return Diagnostic(path, position, Severity.ERROR, message)


def _error_order(error: ValidationError) -> list[str]:
    return list(map(str, error.absolute_path))


def _read_bounded(path: Path) -> bytes:
    """The file, but never more than one byte past what the YAML parser accepts."""
    with path.open("rb") as stream:
        return stream.read(MAX_BYTES + 1)
