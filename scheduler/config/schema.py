"""The service configuration's JSON schema, what validating it explains, and the keys that
hold secrets (refused in the file: secrets come from variables or files it names).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator

from scheduler.common.schema_messages import Explainer
from scheduler.durations import DURATION_SCHEMA
from scheduler.notify.settings import NOTIFY_SCHEMA

SECRET_KEYS = frozenset(
    {"access-token", "accessToken", "access_token", "credentials", "token", "webhook-url", "dsn"}
)
SET_CREDENTIALS = (
    "set TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN, or taskcluster.credentials-file"
)
# Where each section's secrets come from instead (by default, Taskcluster's: SET_CREDENTIALS).
SECRET_HINTS = {
    ("notify", "slack", "webhook-url"): "set SLACK_WEBHOOK_URL, or notify.slack.webhook-url-file",
    ("notify", "slack"): "set SLACK_BOT_TOKEN, or notify.slack.token-file",
    ("notify", "sentry"): "set SENTRY_DSN, or notify.sentry.dsn-file",
}

_CATCH_UP_FIELDS = {
    "policy": {
        "enum": ["latest", "all", "none"],
        "x-expected": "latest (the newest missed slot), all (each, capped) or none",
    },
    "max-lateness": DURATION_SCHEMA,
    "max-slots": {"type": "integer", "minimum": 1, "x-expected": "a whole number of at least 1"},
}
_CATCH_UP = {"type": "object", "additionalProperties": False, "properties": _CATCH_UP_FIELDS}
_OVERLAP_FIELDS = {
    "policy": {
        "enum": ["allow", "skip", "replace"],
        "x-expected": "allow (fire while the previous fire runs), skip (not while it runs) or "
        "replace (cancel the previous fire's task group, then fire)",
    },
}
_OVERLAP = {"type": "object", "additionalProperties": False, "properties": _OVERLAP_FIELDS}
_EXPIRY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "namespaces": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "x-expected": "a list of index namespaces, like [gecko.cache.level-3]",
        },
        "task-groups": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"},
                    "kinds": {"type": "array", "items": {"type": "string"}},
                    "label-prefix": {"type": "string"},
                },
            },
        },
        "threshold": DURATION_SCHEMA,
        "action": {"type": "string", "minLength": 1},
        "input": {"type": "object"},
        "every": DURATION_SCHEMA,
        "cooldown": DURATION_SCHEMA,
        "artifacts": {"type": "boolean"},
        "concurrency": {
            "type": "integer",
            "minimum": 1,
            "maximum": 200,
            "x-expected": "a whole number from 1 to 200",
        },
        "decision-index": {
            "type": "string",
            "minLength": 1,
            "x-expected": "an index path, like gecko.v2.mozilla-central.latest.taskgraph.decision",
        },
    },
}
_PROJECT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "repository", "trust-domain"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
            "x-expected": "a project name of letters, digits, '.', '_' and '-'",
        },
        "repository": {"type": "string", "minLength": 1, "x-expected": "a git URL"},
        "fetch-from": {"type": "string", "minLength": 1, "x-expected": "a git URL"},
        "branch": {"type": "string", "minLength": 1, "x-expected": "a branch name"},
        "level": {"enum": [1, 2, 3], "x-expected": "1, 2 or 3"},
        "trust-domain": {
            "type": "string",
            "pattern": r"^[a-z0-9-]+$",
            "x-expected": "a trust domain like gecko or tcs",
        },
        "repository-type": {"enum": ["git", "hg"]},
        "scopes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "pattern": r"^[\x20-\x7e]*$"},
            "x-expected": "a list of scopes, like ['assume:repo:github.com/org/repo:cron:*']",
        },
        "catch-up": {
            **_CATCH_UP,
            "properties": {
                **_CATCH_UP_FIELDS,
                "jobs": {"type": "object", "additionalProperties": _CATCH_UP},
            },
        },
        "overlap": {
            **_OVERLAP,
            "properties": {
                **_OVERLAP_FIELDS,
                "jobs": {"type": "object", "additionalProperties": _OVERLAP},
            },
        },
        "expiry": _EXPIRY,
        "watch-task-groups": {
            "anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
            "x-expected": "true, false or a list of job names",
        },
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["projects"],
    "properties": {
        "taskcluster": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "root-url": {"type": "string", "pattern": "^https?://", "x-expected": "a URL"},
                "credentials-file": {"type": "string", "minLength": 1},
                "max-task-deadline": DURATION_SCHEMA,
                "call-timeout": DURATION_SCHEMA,
                "call-deadline": DURATION_SCHEMA,
            },
        },
        "ledger": {"type": "string", "minLength": 1, "x-expected": "a database URL"},
        "ledger-password-file": {
            "type": "string",
            "minLength": 1,
            "x-expected": "the path of a file holding the ledger's password",
        },
        "ledger-wait": DURATION_SCHEMA,
        "retention": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "fires": DURATION_SCHEMA,
                "letters": DURATION_SCHEMA,
                "audit": DURATION_SCHEMA,
            },
        },
        "state-dir": {"type": "string", "minLength": 1},
        "hooks-dir": {
            "type": "string",
            "minLength": 1,
            "x-expected": "the hooks folder's path, like hooks (relative to this file's folder)",
        },
        "concurrency": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000,
            "x-expected": "a whole number from 1 to 1000",
        },
        "dry-run": {"enum": ["auto", True, False], "x-expected": "auto, true or false"},
        "render-workers": {
            "type": "integer",
            "minimum": 0,
            "maximum": 64,
            "x-expected": "a whole number from 0 (render in the service's process) to 64",
        },
        "replica": {"type": "string", "minLength": 1},
        "api": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "listen": {
                    # YAML reads a bare `off` as false.
                    "anyOf": [
                        {"type": "string", "pattern": r"^(off|[A-Za-z0-9.:\[\]-]+:[0-9]{1,5})$"},
                        {"const": False},
                    ],
                    "x-expected": "host:port, like 127.0.0.1:8080, or off",
                },
                "public-reads": {"type": "boolean"},
                "tokens": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "role", "sha256"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "role": {"enum": ["viewer", "operator"]},
                            "sha256": {
                                "type": "string",
                                "pattern": "^[0-9a-f]{64}$",
                                "x-expected": "the token's SHA-256 in hex: `tc-scheduler api "
                                "new-token NAME` makes a token and prints this entry",
                            },
                        },
                    },
                },
            },
        },
        "claim-lease": DURATION_SCHEMA,
        "manual-fire-interval": DURATION_SCHEMA,
        "catch-up": _CATCH_UP,
        "overlap": _OVERLAP,
        "watch-every": DURATION_SCHEMA,
        "notify": NOTIFY_SCHEMA,
        "projects": {"type": "array", "items": _PROJECT},
    },
}
VALIDATOR = Draft7Validator(SCHEMA)
EXPLAINER = Explainer(
    examples={
        "projects": "projects: [{name: my-project, repository: https://..., trust-domain: x}]",
        "name": "name: mozilla-central",
        "repository": "repository: https://github.com/org/repo",
        "trust-domain": "trust-domain: gecko",
    },
    list_name="projects",
    entry_noun="project",
)
