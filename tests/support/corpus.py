"""Where the research corpus is, and Taskcluster's own schemas and API references from it.

The corpus is read in place from ../shared/corpus (or $TC_SCHEDULER_CORPUS); it is never copied.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(
    os.environ.get("TC_SCHEDULER_CORPUS", REPOSITORY_ROOT.parent / "shared" / "corpus")
).resolve()
RENDERED = CORPUS / "taskcluster-schemas" / "rendered"
SCHEMA_BASE = "https://schemas.test.invalid"


def corpus_missing_message() -> str | None:
    if (CORPUS / "cron").is_dir():
        return None
    return (
        f"the research corpus is not at {CORPUS}; check out ../shared next to this "
        "repository or set TC_SCHEDULER_CORPUS to its corpus directory"
    )


def corpus_cron_files() -> list[Path]:
    return sorted((CORPUS / "cron").glob("*.cron.yml"))


def corpus_templates() -> list[Path]:
    return sorted((CORPUS / "taskcluster-yml").glob("*.taskcluster.yml"))


@functools.cache
def served_schemas() -> dict[str, dict[str, Any]]:
    """Every schema a deployment serves, keyed by its path (`/schemas/queue/v1/task.json`)."""
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted((RENDERED / "schemas").rglob("*.json")):
        schema: dict[str, Any] = json.loads(path.read_text())
        schemas[schema["$id"].rstrip("#")] = schema
    return schemas


@functools.cache
def schema_registry() -> Registry:
    """The served schemas, keyed by absolute URL under SCHEMA_BASE, ready for validation."""
    resources = []
    for path, served in served_schemas().items():
        schema = dict(served)
        # Taskcluster's metaschema is a draft-06/07 dialect; validate as draft 7.
        schema.pop("$schema", None)
        schema["$id"] = SCHEMA_BASE + path
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT7)))
    return Registry().with_resources(resources)


@functools.cache
def api_reference(service: str) -> dict[str, Any]:
    reference: dict[str, Any] = json.loads(
        (RENDERED / "references" / service / "v1" / "api.json").read_text()
    )
    return reference
