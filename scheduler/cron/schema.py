"""The JSON Schema of `.cron.yml`: build-decision's language, with its bounds fixed.

`x-expected` on a property says, in words, what to write there; error messages quote it.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MINUTES = (0, 15, 30, 45)

SCHEDULE: dict[str, Any] = {
    "type": "object",
    "description": "One instant of the day at which the job fires; omitted fields match any.",
    "x-expected": "a mapping such as {hour: 5, minute: 0}",
    "additionalProperties": False,
    "properties": {
        "weekday": {
            "enum": list(WEEKDAYS),
            "x-expected": "one of " + ", ".join(WEEKDAYS),
        },
        "day": {
            "type": "integer",
            "minimum": 1,
            "maximum": 31,
            "description": "Day of the month.",
            "x-expected": "an integer from 1 to 31, the day of the month",
        },
        "hour": {
            "type": "integer",
            "minimum": 0,
            "maximum": 23,
            "description": "Hour of the day, UTC.",
            "x-expected": "an integer from 0 to 23, the hour in UTC",
        },
        "minute": {
            "type": "integer",
            "minimum": 0,
            "maximum": 45,
            "multipleOf": 15,
            "description": "Minute of the hour; jobs fire on 15-minute slots.",
            "x-expected": "one of " + ", ".join(str(minute) for minute in MINUTES),
        },
    },
}

SCHEDULE_LIST: dict[str, Any] = {
    "type": "array",
    "x-expected": "a list of schedules such as [{hour: 5, minute: 0}], or [] for never",
    "items": SCHEDULE,
}

WHEN: dict[str, Any] = {
    "description": "When the job fires: a list of schedules, or one list per project.",
    "if": {"type": "object"},
    "then": {
        "required": ["by-project"],
        "additionalProperties": False,
        "properties": {
            "by-project": {
                "type": "object",
                "x-expected": "a mapping from project name (or regular expression, or "
                "`default`) to a list of schedules",
                "propertyNames": {"type": "string"},
                "additionalProperties": SCHEDULE_LIST,
            },
        },
    },
    "else": SCHEDULE_LIST,
}

STRING_LIST: dict[str, Any] = {
    "type": "array",
    "x-expected": "a list of names",
    "items": {"type": "string", "x-expected": "a name (a string)"},
}

DECISION_TASK: dict[str, Any] = {
    "required": ["type", "treeherder-symbol", "target-tasks-method"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "decision-task"},
        "treeherder-symbol": {"type": "string", "description": "Treeherder symbol of the task."},
        "target-tasks-method": {
            "type": "string",
            "description": "Passed as `--target-tasks-method` to `taskgraph decision`.",
        },
        "optimize-target-tasks": {
            "type": "boolean",
            "description": "Whether target tasks may be optimized away; the project's default "
            "when absent.",
        },
        "include-push-tasks": {
            "type": "boolean",
            "description": "Reuse tasks from the on-push graph.",
        },
        "rebuild-kinds": {
            **STRING_LIST,
            "description": "Kinds not to reuse from the on-push graph.",
        },
        "include-cron-input": {
            "type": "boolean",
            "description": "Expose the fire's input to .taskcluster.yml as `cron.input`.",
        },
    },
}

TRIGGER_ACTION: dict[str, Any] = {
    "required": ["type", "action-name"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "trigger-action"},
        "action-name": {
            "type": "string",
            "description": "Name of the action of the revision's decision task to trigger.",
        },
        "include-cron-input": {
            "type": "boolean",
            "description": "Pass the fire's input to the action.",
        },
        "extra-input": {
            "type": "object",
            "x-expected": "a mapping of action input",
            "description": "Input for the action; overrides the fire's input key by key.",
        },
    },
}

JOB_TYPES = {"decision-task": DECISION_TASK, "trigger-action": TRIGGER_ACTION}

JOB: dict[str, Any] = {
    "type": "object",
    "x-expected": "a job such as {name: nightly, job: {...}, when: [...]}",
    "required": ["name", "job"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "description": "Name of the job, unique in the file."},
        "job": {
            "type": "object",
            "x-expected": "a mapping with a `type` and that type's settings",
            "required": ["type"],
            "properties": {
                "type": {
                    "enum": list(JOB_TYPES),
                    "x-expected": "one of " + ", ".join(JOB_TYPES),
                },
            },
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                    "then": schema,
                }
                for name, schema in JOB_TYPES.items()
            ],
        },
        "run-on-projects": {
            **STRING_LIST,
            "description": "Projects the job runs on; every project when absent.",
        },
        "when": WHEN,
    },
}

CRON_FILE: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": ".cron.yml",
    "type": "object",
    "x-expected": "a mapping with a `jobs` list, such as `jobs: []`",
    "required": ["jobs"],
    "additionalProperties": False,
    "properties": {
        "jobs": {
            "type": "array",
            "x-expected": "a list of jobs, or [] for none",
            "items": JOB,
        },
    },
}

# The file is checked in two steps, so that one bad job does not hide the others:
# the outline (a mapping with a `jobs` list), then each job on its own.
OUTLINE_VALIDATOR = Draft7Validator(
    {**CRON_FILE, "properties": {"jobs": {**CRON_FILE["properties"]["jobs"], "items": True}}}
)
JOB_VALIDATOR = Draft7Validator(JOB)
