"""The emulator's request checks: a body gets its schema's defaults and its errors, the same
whether the compiled schema or jsonschema judges it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.emulator import schemas
from tests.emulator.server import _routes
from tests.support.emulated import task_definition

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CREATE_TASK = next(r for r in _routes("queue") if r.name == "createTask").input_schema


def filled_by_jsonschema(schema_path: str, body: Any) -> tuple[Any, list[str]]:
    filled = copy.deepcopy(body)
    errors = schemas._input_validator(schema_path).iter_errors(filled)
    return filled, sorted(schemas.describe(error) for error in errors)


@pytest.mark.parametrize(
    "body",
    [
        task_definition(NOW),
        task_definition(NOW, extra={"a": 1}, priority="high", routes=["index.a.b"]),
    ],
)
def test_a_valid_body_gets_the_defaults_jsonschema_gives_it(body: dict[str, Any]) -> None:
    assert CREATE_TASK is not None
    expected, expected_errors = filled_by_jsonschema(CREATE_TASK, body)
    assert schemas.input_errors(CREATE_TASK, body) == [] == expected_errors
    assert body == expected
    assert body["priority"] in ("lowest", "high")
    assert body["dependencies"] == []


def test_an_invalid_body_gets_jsonschemas_errors_in_path_order() -> None:
    assert CREATE_TASK is not None
    body = task_definition(NOW, priority="urgent", retries="five")
    del body["metadata"]["owner"]
    _, expected = filled_by_jsonschema(CREATE_TASK, body)
    errors = [schemas.describe(error) for error in schemas.input_errors(CREATE_TASK, body)]
    assert sorted(errors) == expected
    assert [error.split(":")[0] for error in errors] == ["metadata", "priority", "retries"]


def test_every_request_schema_of_the_corpus_places_its_defaults_by_properties() -> None:
    paths = {
        route.input_schema
        for service in ("queue", "index", "hooks")
        for route in _routes(service)
        if route.input_schema is not None
    }
    assert paths
    assert all(
        schemas._defaults_plan(path) is not None or not _has_defaults(path) for path in paths
    )


def _has_defaults(path: str) -> bool:
    return schemas._count_keys(schemas._inlined(path), "default") > 0
