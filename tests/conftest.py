"""Shared test fixtures: the research corpus and Taskcluster's own JSON schemas.

The corpus is read in place from ../shared/corpus (or $TC_SCHEDULER_CORPUS); it is never copied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(
    os.environ.get("TC_SCHEDULER_CORPUS", REPOSITORY_ROOT.parent / "shared" / "corpus")
).resolve()
SCHEMA_BASE = "https://schemas.test.invalid"


def pytest_configure(config: pytest.Config) -> None:
    if not (CORPUS / "cron").is_dir():
        raise pytest.UsageError(
            f"the research corpus is not at {CORPUS}; check out ../shared next to this "
            "repository or set TC_SCHEDULER_CORPUS to its corpus directory"
        )


def corpus_cron_files() -> list[Path]:
    return sorted((CORPUS / "cron").glob("*.cron.yml"))


def corpus_templates() -> list[Path]:
    return sorted((CORPUS / "taskcluster-yml").glob("*.taskcluster.yml"))


def load_schema_registry() -> Registry:
    """Every schema a deployment serves under /schemas/, keyed by its absolute URL."""
    resources = []
    for path in sorted((CORPUS / "taskcluster-schemas" / "rendered" / "schemas").rglob("*.json")):
        schema: dict[str, Any] = json.loads(path.read_text())
        # Taskcluster's metaschema is a draft-06/07 dialect; validate as draft 7.
        schema.pop("$schema", None)
        schema["$id"] = SCHEMA_BASE + schema["$id"].rstrip("#")
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT7)))
    return Registry().with_resources(resources)


@pytest.fixture(scope="session")
def schema_registry() -> Registry:
    return load_schema_registry()


@pytest.fixture(scope="session")
def create_task_validator(schema_registry: Registry) -> Draft7Validator:
    uri = f"{SCHEMA_BASE}/schemas/queue/v1/create-task-request.json"
    return Draft7Validator(schema_registry.contents(uri), registry=schema_registry)


@pytest.fixture(scope="session")
def task_id_pattern(schema_registry: Registry) -> str:
    task = schema_registry.contents(f"{SCHEMA_BASE}/schemas/queue/v1/task.json")
    pattern: str = task["properties"]["taskGroupId"]["pattern"]
    return pattern
