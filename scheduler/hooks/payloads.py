"""A hook's triggerSchema: whether it can check payloads here, and how a payload breaks it,
each problem naming the field. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft7Validator, SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from scheduler.common.schema_messages import TYPE_PHRASES, describe, json_path
from scheduler.common.yamldoc import JsonPath
from scheduler.errors import Category, SchedulerError


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
    validator = validator_class(trigger_schema)(trigger_schema)
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


class UncheckablePayloadError(
    SchedulerError, ValueError, category=Category.REJECTED, code="uncheckable-payload"
):
    """The triggerSchema cannot be applied here, so the payload cannot be checked."""


def validator_class(schema: Mapping[str, Any]) -> type[Validator]:
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


def trigger_schema_problem(trigger_schema: Mapping[str, Any]) -> str | None:
    """Why `trigger_schema` is not a JSON schema the service can check payloads with, if it
    is not (the service refuses to create such a hook)."""
    try:
        validator_class(trigger_schema).check_schema(dict(trigger_schema))
    except SchemaError as error:
        where = json_path(("triggerSchema", *error.absolute_path))
        return f"triggerSchema is not a valid JSON schema: {where}: {error.message}"
    return None
