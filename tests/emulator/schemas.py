"""The corpus schemas the emulator checks calls against: inlined and compiled once, each
request body given its schema's defaults (as ajv's useDefaults does), each reply checked whole.
"""

from __future__ import annotations

import copy
import functools
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema.validators
import jsonschema_rs

from tests.support import corpus


def _unique_items(
    validator: Any, unique: bool, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    # jsonschema compares items pairwise; listings of 1,000 entries need a linear check.
    if unique and validator.is_type(instance, "array"):
        seen = {json.dumps(item, sort_keys=True) for item in instance}
        if len(seen) != len(instance):
            yield jsonschema.ValidationError(f"{instance!r:.200} has non-unique elements")


def _properties_with_defaults(
    validator: Any, properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    # Taskcluster validates input with ajv's useDefaults: missing properties get their default.
    if validator.is_type(instance, "object"):
        for name, subschema in properties.items():
            if isinstance(subschema, Mapping) and "default" in subschema:
                instance.setdefault(name, copy.deepcopy(subschema["default"]))
    yield from _CHECK_PROPERTIES(validator, properties, instance, schema)


_CHECK_PROPERTIES = jsonschema.Draft7Validator.VALIDATORS["properties"]
_Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"uniqueItems": _unique_items}
)
_InputValidator = jsonschema.validators.extend(
    _Validator, {"properties": _properties_with_defaults}
)


@functools.cache
def reply_validator(schema_path: str) -> Any:
    """Checks replies against their schema, saying where one breaks it."""
    return _Validator(_inlined(schema_path))


@functools.cache
def _compiled(schema_path: str) -> jsonschema_rs.Validator:
    """The schema compiled once: every item of a 1,000-entry listing is checked in well
    under a millisecond, where jsonschema takes tens (more than the benchmarks' call latency).
    Formats are not checked, as `reply_validator` does not check them either."""
    return jsonschema_rs.Draft7Validator(_inlined(schema_path), validate_formats=False)


def reply_conforms(schema_path: str, result: Any) -> bool:
    """Whether every item of the reply, not a sample, matches its schema."""
    try:
        return _compiled(schema_path).is_valid(result)
    except ValueError:  # not JSON (bytes, say): jsonschema judges it
        return False


@functools.cache
def _input_validator(schema_path: str) -> Any:
    """Checks a request body, filling in the defaults its schema declares."""
    return _InputValidator(_inlined(schema_path))


@functools.cache
def _inlined(schema_path: str) -> dict[str, Any]:
    """The schema with every `$ref` replaced by what it points to.

    Resolving references on every call was most of the cost of a createTask; the served
    schemas do not refer to themselves, so inlining them once is exact.
    """
    registry = corpus.schema_registry()
    resolver = registry.resolver()
    base = corpus.SCHEMA_BASE + schema_path

    def inline(node: Any, base: str, trail: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [inline(item, base, trail) for item in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            target = urllib.parse.urljoin(base, node["$ref"])
            if target in trail:
                raise ValueError(f"{schema_path} refers to itself through {target}")
            contents = resolver.lookup(target).contents
            return inline(contents, target.split("#")[0], trail | {target})
        return {
            key: inline(value, base, trail)
            for key, value in node.items()
            if key not in ("$id", "$schema")
        }

    inlined: dict[str, Any] = inline(registry.contents(base), base, frozenset())
    return inlined


def describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path) or "(the whole body)"
    return f"{where}: {error.message[:300]}"


def input_errors(schema_path: str, body: Any) -> list[jsonschema.ValidationError]:
    """What is wrong with a request body, in the order of its paths, after its schema's
    defaults were filled in.

    Where every default sits under a chain of `properties` (all the corpus's request schemas),
    the defaults are filled by that chain and the compiled schema judges the body; only a body
    it rejects pays for jsonschema, which fills the same defaults and says what is wrong.
    """
    plan = _defaults_plan(schema_path)
    if plan is not None:
        _fill_defaults(plan, body)
        try:
            if _compiled(schema_path).is_valid(body):
                return []
        except ValueError:  # not JSON: jsonschema judges it
            pass
    errors = _input_validator(schema_path).iter_errors(body)
    return sorted(errors, key=lambda error: list(error.absolute_path))


@dataclass(frozen=True)
class _Defaults:
    """The defaults of one object's properties, and the plans of the properties below it."""

    values: dict[str, Any]
    below: dict[str, _Defaults]


def _fill_defaults(plan: _Defaults, instance: Any) -> None:
    if not isinstance(instance, dict):
        return
    for name, default in plan.values.items():
        if name not in instance:
            instance[name] = copy.deepcopy(default)
    for name, inner in plan.below.items():
        if name in instance:
            _fill_defaults(inner, instance[name])


@functools.cache
def _defaults_plan(schema_path: str) -> _Defaults | None:
    """Where the schema's defaults go, if each is under a chain of `properties` from its root;
    None if any other keyword (`items`, `anyOf`, ...) leads to one."""
    schema = _inlined(schema_path)

    def plan(node: Any) -> _Defaults | None:
        properties = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(properties, dict):
            return None
        values: dict[str, Any] = {}
        below: dict[str, _Defaults] = {}
        for name, subschema in properties.items():
            if isinstance(subschema, dict) and "default" in subschema:
                values[name] = subschema["default"]
            inner = plan(subschema)
            if inner is not None:
                below[name] = inner
        return _Defaults(values, below) if values or below else None

    found = plan(schema)
    placed = 0 if found is None else _count_placed(found)
    return found if placed == _count_keys(schema, "default") else None


def _count_placed(plan: _Defaults) -> int:
    return len(plan.values) + sum(_count_placed(inner) for inner in plan.below.values())


def _count_keys(node: Any, key: str) -> int:
    if isinstance(node, list):
        return sum(_count_keys(item, key) for item in node)
    if not isinstance(node, dict):
        return 0
    return (key in node) + sum(_count_keys(value, key) for value in node.values())
