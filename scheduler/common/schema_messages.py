"""Turning jsonschema's validation errors into messages that say what to write, with positions.

Shared by every YAML input the service reads (`.cron.yml`, the service config).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jsonschema import ValidationError

from scheduler.common.diagnostics import Position
from scheduler.common.yamldoc import Document, JsonPath

TYPE_PHRASES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}


# A key json_path writes after a dot; any other is quoted in brackets.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Failures explained as "<label> must be <expected>"; others need the schema's `x-expected`.
_PLAIN = frozenset({"type", "enum", "const", "minimum", "maximum", "multipleOf"})


@dataclass(frozen=True)
class Explainer:
    """Explains errors found in entries of one list (`jobs`, `projects`) or in the whole file.

    `examples` maps a required key to what to write; `quoted` names keys whose mapping is
    called by its key (`job`) rather than by the entry (`the job`).
    """

    examples: Mapping[str, str] = field(default_factory=dict)
    list_name: str = "entries"
    entry_noun: str = "entry"
    quoted: Sequence[str] = ()

    def explain(
        self, error: ValidationError, document: Document, base: JsonPath = ()
    ) -> Iterator[tuple[Position, str]]:
        path: JsonPath = (*base, *error.absolute_path)
        relative: JsonPath = tuple(error.absolute_path)
        instance, schema = error.instance, _schema_of(error)
        here = document.position_of(path)
        label = self._label(relative, base)

        if "propertyNames" in error.relative_schema_path:
            yield (
                document.position_of((*path, instance), key=True),
                f"keys of {label} must be strings (got {describe(instance)})",
            )
        elif error.validator == "required" and isinstance(instance, dict):
            for key in _listed(error.validator_value):
                if key not in instance:
                    example = self.examples.get(key)
                    hint = f", for example `{example}`" if example else ""
                    yield here, f"{self._owner(relative, base)} is missing `{key}`; add it{hint}"
        elif error.validator == "additionalProperties" and isinstance(instance, dict):
            allowed = list(schema.get("properties", {}))
            for key in instance:
                if key in allowed:
                    continue
                suggestion = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (
                    f"did you mean `{suggestion[0]}`?"
                    if suggestion
                    else f"allowed keys are {', '.join(allowed)}"
                )
                yield (
                    document.position_of((*path, key), key=True),
                    f"unknown key {shown(key)} in {self._owner(relative, base)}; {hint}",
                )
        elif error.validator in _PLAIN or "x-expected" in schema:
            yield here, f"{label} must be {_expected(error)} (got {describe(instance)})"
        else:
            yield here, f"{label}: {error.message}"

    def _label(self, relative: JsonPath, base: JsonPath) -> str:
        """A short name for the value at `relative` (inside the entry, or the file at base ())."""
        if not relative:
            return f"each entry of {self.list_name}" if base else "the file"
        *parents, last = relative
        if isinstance(last, int):
            owner = next((p for p in reversed(parents) if isinstance(p, str)), self.list_name)
            return f"{owner}[{last}]"
        return str(last)

    def _owner(self, relative: JsonPath, base: JsonPath) -> str:
        if not relative:
            return f"the {self.entry_noun}" if base else "the file"
        if len(relative) == 1 and relative[0] in self.quoted:
            return f"`{relative[0]}`"
        return self._label(relative, base)


def _schema_of(error: ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _listed(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _expected(error: ValidationError) -> str:
    expected = _schema_of(error).get("x-expected")
    if isinstance(expected, str):
        return expected
    value = error.validator_value
    if error.validator == "type":
        return TYPE_PHRASES.get(str(value), f"of type {value}")
    if error.validator == "const":
        return repr(value)
    if error.validator == "enum":
        return "one of " + ", ".join(map(str, _listed(value)))
    return f"{error.validator} {value}"


def shown(value: object, limit: int = 60) -> str:
    """A name from the file, quoted, and shortened if it is long."""
    text = str(value)
    return f"`{text if len(text) <= limit else text[: limit - 3] + '...'}`"


def describe(value: Any) -> str:
    """What a value from the file is, in words, for messages like "(got ...)"."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        quoted = json.dumps(value if len(value) <= 40 else value[:37] + "...")
        if re.fullmatch(r"[+-]?\d+", value.strip()):
            return f"the string {quoted}; write the number without quotes or leading zeros"
        return quoted
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return f"the YAML date {value.isoformat()}"
    return f"a YAML {type(value).__name__}"


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
