"""The service configuration: its schema, loading with positioned errors, and the resolved form.

Credentials never come from the YAML: only from TASKCLUSTER_* variables or a credentials file.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft7Validator

from scheduler.diagnostics import Diagnostic, Position, Severity
from scheduler.errors import Category, SchedulerError
from scheduler.notify.events import EventKind
from scheduler.queue_rules import DEFAULT_MAX_DEADLINE
from scheduler.redaction import (
    redact,
    remember_secret,
    remember_secret_variables,
    without_userinfo,
)
from scheduler.schema_messages import Explainer, shown
from scheduler.scopes import default_project_scopes
from scheduler.yamldoc import Document, YamlError, parse

CatchUpPolicy = Literal["latest", "all", "none"]
SECRET_KEYS = frozenset(
    {"access-token", "accessToken", "access_token", "credentials", "token", "webhook-url", "dsn"}
)
DEFAULT_CONCURRENCY = 20
_SET_CREDENTIALS = (
    "set TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN, or taskcluster.credentials-file"
)
# Where each section's secrets come from instead.
_SECRET_HINTS = {
    ("notify", "slack", "webhook-url"): "set SLACK_WEBHOOK_URL, or notify.slack.webhook-url-file",
    ("notify", "slack"): "set SLACK_BOT_TOKEN, or notify.slack.token-file",
    ("notify", "sentry"): "set SENTRY_DSN, or notify.sentry.dsn-file",
}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

_DURATION_SCHEMA = {
    "type": "string",
    "pattern": _DURATION.pattern,
    "minLength": 2,
    "x-expected": "a duration like 6h, 90m, 1d or 30s",
}
_CATCH_UP_FIELDS = {
    "policy": {
        "enum": ["latest", "all", "none"],
        "x-expected": "latest (the newest missed slot), all (each, capped) or none",
    },
    "max-lateness": _DURATION_SCHEMA,
    "max-slots": {"type": "integer", "minimum": 1, "x-expected": "a whole number of at least 1"},
}
_CATCH_UP = {"type": "object", "additionalProperties": False, "properties": _CATCH_UP_FIELDS}
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
        "threshold": _DURATION_SCHEMA,
        "action": {"type": "string", "minLength": 1},
        "input": {"type": "object"},
        "every": _DURATION_SCHEMA,
        "cooldown": _DURATION_SCHEMA,
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
        "expiry": _EXPIRY,
        "watch-task-groups": {
            "anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
            "x-expected": "true, false or a list of job names",
        },
    },
}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_MENTIONS = {
    **_NAMES,
    "x-expected": "a list of mentions, like ['<!subteam^S0123>', '<@U0123>', '@here']",
}
_EVENT_KINDS = {"type": "array", "items": {"enum": [kind.value for kind in EventKind]}}
_CHANNEL = {"type": "string", "minLength": 1, "x-expected": "a channel, like '#releng' or C0123"}
_NOTIFY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "slack": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "token-file": {"type": "string", "minLength": 1},
                "webhook-url-file": {"type": "string", "minLength": 1},
                "api-url": {"type": "string", "pattern": "^https?://", "x-expected": "a URL"},
                "channel": _CHANNEL,
                "mentions": _MENTIONS,
                "routes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["channel"],
                        "properties": {
                            "projects": _NAMES,
                            "jobs": _NAMES,
                            "events": _EVENT_KINDS,
                            "channel": _CHANNEL,
                            "mentions": _MENTIONS,
                        },
                    },
                },
            },
        },
        "sentry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dsn-file": {"type": "string", "minLength": 1},
                "environment": {"type": "string", "minLength": 1},
                "monitors": {"type": "boolean"},
            },
        },
        "canceled": {"type": "boolean"},
        "deadline-exceeded": {"type": "boolean"},
        "give-up-after": _DURATION_SCHEMA,
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
                "max-task-deadline": _DURATION_SCHEMA,
            },
        },
        "ledger": {"type": "string", "minLength": 1, "x-expected": "a database URL"},
        "state-dir": {"type": "string", "minLength": 1},
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
                    "type": "string",
                    "pattern": r"^(off|[A-Za-z0-9.:\[\]-]+:[0-9]{1,5})$",
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
                                "x-expected": "the token's SHA-256 in hex: tc-scheduler api "
                                "hash-token prints it",
                            },
                        },
                    },
                },
            },
        },
        "claim-lease": _DURATION_SCHEMA,
        "manual-fire-interval": _DURATION_SCHEMA,
        "catch-up": _CATCH_UP,
        "watch-every": _DURATION_SCHEMA,
        "notify": _NOTIFY,
        "projects": {"type": "array", "items": _PROJECT},
    },
}
_VALIDATOR = Draft7Validator(SCHEMA)
_EXPLAINER = Explainer(
    examples={
        "projects": "projects: [{name: my-project, repository: https://..., trust-domain: x}]",
        "name": "name: mozilla-central",
        "repository": "repository: https://github.com/org/repo",
        "trust-domain": "trust-domain: gecko",
    },
    list_name="projects",
    entry_noun="project",
)


@dataclass(frozen=True)
class CatchUp:
    policy: CatchUpPolicy = "latest"
    max_lateness: timedelta = timedelta(hours=6)
    max_slots: int = 96


@dataclass(frozen=True)
class TaskGroupWatch:
    """A task group a long pipeline reuses, and which of its tasks are cached ones."""

    task_group_id: str
    kinds: tuple[str, ...] = ()
    label_prefix: str | None = None


@dataclass(frozen=True)
class ExpiryWatch:
    """What the expiry watch looks at for a project, and what it does about it."""

    # Empty: the project's `<trust-domain>.cache.level-<level>` namespace.
    namespaces: tuple[str, ...] = ()
    task_groups: tuple[TaskGroupWatch, ...] = ()
    # More than the project's task deadline plus its longest run: see the README.
    threshold: timedelta = timedelta(days=30)
    action: str = "rebuild-cached-tasks"
    action_input: Mapping[str, Any] = field(default_factory=dict)
    every: timedelta = timedelta(hours=1)
    cooldown: timedelta = timedelta(hours=6)
    artifacts: bool = False
    # Listing calls in flight while scanning: reads of the index, cheaper than fires' writes.
    concurrency: int = 50
    # The decision task whose action rebuilds; default: the project's latest one.
    decision_index: str | None = None


@dataclass(frozen=True)
class Project:
    name: str
    repository: str
    trust_domain: str
    branch: str = "main"
    level: int = 1
    repository_type: Literal["git", "hg"] = "git"
    catch_up: CatchUp = CatchUp()
    job_catch_up: Mapping[str, CatchUp] = field(default_factory=dict)
    # Where git reads from, when not `repository` itself (a mirror); tasks name `repository`.
    fetch_from: str | None = None
    expiry: ExpiryWatch = ExpiryWatch()
    # The service scans and rebuilds only projects whose configuration has an `expiry` block.
    expiry_watched: bool = False
    # Jobs whose decision task's whole group is watched (True: every job).
    watch_task_groups: bool | tuple[str, ...] = False
    # What the project may do in Taskcluster; None: assume its repository's cron role.
    scopes: tuple[str, ...] | None = None

    @property
    def git_url(self) -> str:
        return self.fetch_from or self.repository

    @property
    def authorized_scopes(self) -> tuple[str, ...]:
        """The scopes every Taskcluster call made for the project carries, and no more: its
        `scopes`, or `assume:repo:<host>/<path>:cron:*` (empty for a repository URL without
        a host, which the configuration refuses)."""
        if self.scopes is not None:
            return self.scopes
        return default_project_scopes(self.repository) or ()

    def catch_up_for(self, job: str) -> CatchUp:
        return self.job_catch_up.get(job, self.catch_up)

    def watches_group_of(self, job: str) -> bool:
        if isinstance(self.watch_task_groups, bool):
            return self.watch_task_groups
        return job in self.watch_task_groups


@dataclass(frozen=True)
class SlackRoute:
    """Events of matching projects and jobs (shell-style patterns) go to `channel`."""

    channel: str
    projects: tuple[str, ...] = ()  # empty: every project
    jobs: tuple[str, ...] = ()  # empty: every job, and events about no job
    events: tuple[EventKind, ...] = ()  # empty: every kind
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SlackSettings:
    """A bot token (posts to channels, threads recoveries) or an incoming webhook."""

    token: str | None = field(default=None, repr=False)
    webhook_url: str | None = field(default=None, repr=False)
    api_url: str | None = None
    channel: str | None = None  # where events no route takes go
    mentions: tuple[str, ...] = ()
    routes: tuple[SlackRoute, ...] = ()


@dataclass(frozen=True)
class SentrySettings:
    dsn: str = field(repr=False)
    environment: str = "production"
    monitors: bool = True


ApiRole = Literal["viewer", "operator"]


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of the HTTP API, known by its SHA-256 only; `name` is who the audit log
    says acted."""

    name: str
    role: ApiRole
    sha256: str = field(repr=False)


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API `tc-scheduler run` serves: where, who may read, who may act."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    public_reads: bool = False  # reads without a token; acts always need an operator's
    tokens: tuple[ApiToken, ...] = ()


@dataclass(frozen=True)
class NotifySettings:
    slack: SlackSettings | None = None
    sentry: SentrySettings | None = None
    # Tasks resolved as exception for these reasons are reported only if set (as in
    # Taskcluster's notify service, a cancel is somebody's decision, not a failure).
    canceled: bool = False
    deadline_exceeded: bool = False
    # A message that could not be delivered for this long is given up on (and logged).
    give_up_after: timedelta = timedelta(days=2)


@dataclass(frozen=True)
class Credentials:
    client_id: str
    access_token: str = field(repr=False)
    certificate: str | None = field(default=None, repr=False)

    def as_options(self) -> dict[str, str]:
        """The `credentials` option of the taskcluster client."""
        options = {"clientId": self.client_id, "accessToken": self.access_token}
        if self.certificate:
            options["certificate"] = self.certificate
        return options


@dataclass(frozen=True)
class Config:
    root_url: str
    credentials: Credentials | None
    ledger_url: str
    state_dir: Path
    concurrency: int
    dry_run: bool
    replica: str
    claim_lease: timedelta
    projects: tuple[Project, ...]
    source: str
    # Processes that render .taskcluster.yml (JSON-e is most of a fire's CPU); 0: in-process.
    render_workers: int = 0
    notify: NotifySettings = NotifySettings()
    # How often the watcher reads the status of what the service started.
    watch_every: timedelta = timedelta(seconds=30)
    api: ApiSettings = ApiSettings()
    # A job fired by hand is not fired by hand again within this: a double click or a script
    # loop cannot start a storm.
    manual_fire_interval: timedelta = timedelta(minutes=1)
    # The longest deadline the deployment's queue accepts (its maxTaskDeadlineDays).
    max_task_deadline: timedelta = DEFAULT_MAX_DEADLINE

    @property
    def connections(self) -> int:
        """HTTP connections to Taskcluster: enough for the fires and for every expiry scan."""
        return max([self.concurrency, *(p.expiry.concurrency for p in self.projects)])

    def project(self, name: str) -> Project | None:
        return next((p for p in self.projects if p.name == name), None)

    def require_project(self, name: str) -> Project:
        """The project called `name`; UnknownProjectError, naming the configured ones, if none."""
        project = self.project(name)
        if project is None:
            known = ", ".join(p.name for p in self.projects)
            raise UnknownProjectError(f"no project {name!r} is configured; configured: {known}")
        return project

    def masked(self) -> dict[str, Any]:
        """The resolved configuration as shown to people: no secret in it."""
        return {
            "source": self.source,
            "taskcluster": {
                "root-url": self.root_url,
                "client-id": self.credentials.client_id if self.credentials else None,
                "access-token": "<set>" if self.credentials else None,
                "max-task-deadline": format_duration(self.max_task_deadline),
            },
            "ledger": redact(self.ledger_url),
            "state-dir": str(self.state_dir),
            "concurrency": self.concurrency,
            "dry-run": self.dry_run,
            "replica": self.replica,
            "claim-lease": format_duration(self.claim_lease),
            "manual-fire-interval": format_duration(self.manual_fire_interval),
            "render-workers": self.render_workers,
            "watch-every": format_duration(self.watch_every),
            "api": {
                "listen": f"{self.api.host}:{self.api.port}" if self.api.enabled else "off",
                "public-reads": self.api.public_reads,
                "tokens": [{"name": t.name, "role": t.role} for t in self.api.tokens],
            },
            "notify": _notify_json(self.notify),
            "projects": [
                {
                    "name": p.name,
                    "repository": redact(p.repository),
                    "fetch-from": redact(p.git_url),
                    "branch": p.branch,
                    "level": p.level,
                    "trust-domain": p.trust_domain,
                    "repository-type": p.repository_type,
                    "scopes": list(p.authorized_scopes),
                    "catch-up": _catch_up_json(p.catch_up),
                    "job-catch-up": {job: _catch_up_json(c) for job, c in p.job_catch_up.items()},
                    "watch-task-groups": (
                        p.watch_task_groups
                        if isinstance(p.watch_task_groups, bool)
                        else list(p.watch_task_groups)
                    ),
                }
                for p in self.projects
            ],
        }


class UnknownProjectError(SchedulerError, LookupError):
    """A command or request named a project the configuration does not have."""

    category = Category.NOT_CONFIGURED
    error_code = "not-found"


class ConfigError(SchedulerError):
    """The configuration cannot be used; `diagnostics` say where and what to write."""

    category = Category.INVALID
    error_code = "invalid-config"

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(map(str, diagnostics)))
        self.diagnostics = tuple(diagnostics)


def load_config(
    text: str | bytes, path: str, environ: Mapping[str, str], *, base_dir: Path | None = None
) -> Config:
    """Parse, validate and resolve a configuration. Raises ConfigError listing every problem.

    Every variable of `environ` whose name says it holds a secret (`*_TOKEN`, `*_SECRET`,
    `*_PASSWORD`, `*_DSN`, ...) is remembered as one, so that nothing shows it.
    """
    remember_secret_variables(environ)
    base_dir = base_dir or Path(path).parent
    data, document, problems = _valid(text, path)
    return _Resolver(data, document, problems, environ, base_dir).resolve()


def load_ledger_url(text: str | bytes, path: str, *, base_dir: Path | None = None) -> str:
    """Only the ledger URL of a configuration, which needs no secret: what reading the ledger
    needs. Raises ConfigError if the configuration is not valid."""
    data, document, problems = _valid(text, path)
    return _Resolver(data, document, problems, {}, base_dir or Path(path).parent).ledger_url()


def _valid(text: str | bytes, path: str) -> tuple[dict[str, Any], Document, _Problems]:
    """The configuration's data, checked against the schema (and for secrets written in it)."""
    problems = _Problems(path)
    try:
        document = parse(text)
    except YamlError as error:
        problems.error(error.position, error.message)
        raise ConfigError(problems.diagnostics) from None
    data = document.data
    if data is None:
        data = {}
    for key_path, position in document.keys.items():
        if key_path and key_path[-1] in SECRET_KEYS:
            hint = next(
                (hint for at, hint in _SECRET_HINTS.items() if _within(key_path, at)),
                _SET_CREDENTIALS,
            )
            problems.error(
                position,
                f"{shown(key_path[-1])}: secrets never go in the configuration file; {hint}",
            )
    if problems.diagnostics:
        raise ConfigError(problems.diagnostics)
    for invalid in sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.path))):
        for position, message in _EXPLAINER.explain(invalid, document):
            problems.error(position, message)
    if problems.diagnostics:
        raise ConfigError(problems.diagnostics)
    return data, document, problems


def _within(key_path: tuple[Any, ...], at: tuple[str, ...]) -> bool:
    """Whether `key_path` lies under `at`, or, when `at` ends in a key, is that key."""
    if key_path[: len(at)] == at:
        return True
    return len(at) == 3 and key_path[:2] == at[:2] and key_path[-1] == at[2]


def read_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    return load_config(_read(path), str(path), environ, base_dir=path.parent)


def read_ledger_url(path: Path) -> str:
    """`load_ledger_url` of the configuration file at `path`."""
    return load_ledger_url(_read(path), str(path), base_dir=path.parent)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(
            [Diagnostic(str(path), Position(1, 1), Severity.ERROR, f"cannot read: {reason}")]
        ) from None


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    if not match or not text:
        raise ValueError(f"not a duration: {text!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _catch_up_json(catch_up: CatchUp) -> dict[str, Any]:
    return {
        "policy": catch_up.policy,
        "max-lateness": format_duration(catch_up.max_lateness),
        "max-slots": catch_up.max_slots,
    }


def _notify_json(notify: NotifySettings) -> dict[str, Any]:
    slack, sentry = notify.slack, notify.sentry
    return {
        "slack": None
        if slack is None
        else {
            "token": "<set>" if slack.token else None,
            "webhook-url": "<set>" if slack.webhook_url else None,
            "api-url": redact(slack.api_url) if slack.api_url else None,
            "channel": slack.channel,
            "mentions": list(slack.mentions),
            "routes": [
                {
                    "channel": r.channel,
                    "projects": list(r.projects),
                    "jobs": list(r.jobs),
                    "events": [str(e) for e in r.events],
                    "mentions": list(r.mentions),
                }
                for r in slack.routes
            ],
        },
        "sentry": None
        if sentry is None
        else {"dsn": "<set>", "environment": sentry.environment, "monitors": sentry.monitors},
        "canceled": notify.canceled,
        "deadline-exceeded": notify.deadline_exceeded,
        "give-up-after": format_duration(notify.give_up_after),
    }


@dataclass
class _Problems:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, position: Position, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.path, position, Severity.ERROR, message))


@dataclass
class _Resolver:
    data: dict[str, Any]
    document: Document
    problems: _Problems
    environ: Mapping[str, str]
    base_dir: Path

    def resolve(self) -> Config:
        taskcluster = self.data.get("taskcluster", {})
        root_url = self.environ.get("TASKCLUSTER_ROOT_URL") or taskcluster.get("root-url")
        if not root_url:
            self.problems.error(
                self.document.position_of(()),
                "no Taskcluster root URL: set taskcluster.root-url, or TASKCLUSTER_ROOT_URL",
            )
        credentials = self._credentials(taskcluster)
        dry_run_setting = self.data.get("dry-run", "auto")
        if dry_run_setting is False and credentials is None:
            self.problems.error(
                self.document.position_of(("dry-run",)),
                f"dry-run is false but no Taskcluster credentials are set; {_SET_CREDENTIALS}",
            )
        state_dir = self._state_dir()
        default_catch_up = self._catch_up(self.data.get("catch-up", {}), CatchUp())
        projects = tuple(
            self._project(index, entry, default_catch_up)
            for index, entry in enumerate(self.data["projects"])
        )
        self._check_unique(projects)
        notify = self._notify(self.data.get("notify", {}))
        if self.problems.diagnostics:
            raise ConfigError(self.problems.diagnostics)
        assert root_url is not None
        return Config(
            root_url=str(root_url).rstrip("/"),
            credentials=credentials,
            ledger_url=self._ledger_url(state_dir),
            state_dir=state_dir,
            concurrency=self.data.get("concurrency", DEFAULT_CONCURRENCY),
            dry_run=credentials is None if dry_run_setting == "auto" else bool(dry_run_setting),
            replica=self.data.get("replica") or f"{socket.gethostname()}-{os.getpid()}",
            claim_lease=parse_duration(self.data.get("claim-lease", "1m")),
            manual_fire_interval=parse_duration(self.data.get("manual-fire-interval", "1m")),
            projects=projects,
            source=self.problems.path,
            render_workers=self.data.get("render-workers", 0),
            notify=notify,
            watch_every=parse_duration(self.data.get("watch-every", "30s")),
            api=self._api(self.data.get("api", {})),
            max_task_deadline=parse_duration(
                taskcluster.get("max-task-deadline", format_duration(DEFAULT_MAX_DEADLINE))
            ),
        )

    def ledger_url(self) -> str:
        """The ledger's URL alone (no other setting resolved, none of them checked)."""
        return self._ledger_url(self._state_dir())

    def _state_dir(self) -> Path:
        return self._path(self.data.get("state-dir", ".tc-scheduler"))

    def _path(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def _ledger_url(self, state_dir: Path) -> str:
        url = self.data.get("ledger")
        if url is None:
            return f"sqlite:///{state_dir / 'ledger.db'}"
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            relative = url.removeprefix("sqlite:///")
            return f"sqlite:///{self._path(relative)}" if relative else url
        return str(url)

    def _credentials(self, taskcluster: Mapping[str, Any]) -> Credentials | None:
        client_id = self.environ.get("TASKCLUSTER_CLIENT_ID")
        access_token = self.environ.get("TASKCLUSTER_ACCESS_TOKEN")
        if client_id and access_token:
            remember_secret(access_token)
            return Credentials(client_id, access_token, self.environ.get("TASKCLUSTER_CERTIFICATE"))
        if "credentials-file" not in taskcluster:
            return None
        where = self.document.position_of(("taskcluster", "credentials-file"))
        path = self._path(taskcluster["credentials-file"])
        try:
            loaded = json.loads(path.read_text())
        except OSError as error:
            self.problems.error(where, f"cannot read credentials file {path}: {error.strerror}")
            return None
        except ValueError:
            self.problems.error(
                where,
                f"credentials file {path} is not JSON; write "
                '{"clientId": "...", "accessToken": "..."}',
            )
            return None
        if not (
            isinstance(loaded, dict)
            and isinstance(loaded.get("clientId"), str)
            and isinstance(loaded.get("accessToken"), str)
        ):
            self.problems.error(
                where, f"credentials file {path} needs string clientId and accessToken"
            )
            return None
        remember_secret(loaded["accessToken"])
        certificate = loaded.get("certificate")
        if isinstance(certificate, dict):
            certificate = json.dumps(certificate)
        return Credentials(loaded["clientId"], loaded["accessToken"], certificate)

    def _api(self, data: Mapping[str, Any]) -> ApiSettings:
        listen = data.get("listen", f"{ApiSettings.host}:{ApiSettings.port}")
        tokens = tuple(ApiToken(t["name"], t["role"], t["sha256"]) for t in data.get("tokens", ()))
        names = [t.name for t in tokens]
        for index, name in enumerate(names):
            if name in names[:index]:
                self.problems.error(
                    self.document.position_of(("api", "tokens", index, "name")),
                    f"token name {shown(name)} is used twice; the audit log tells acts apart "
                    "by it, so give each token its own",
                )
        if listen == "off":
            return ApiSettings(enabled=False, public_reads=data.get("public-reads", False))
        host, _, port = listen.rpartition(":")
        if not 0 <= int(port) <= 65535:
            self.problems.error(
                self.document.position_of(("api", "listen")),
                f"api.listen: port {port} is not a port (0 to 65535; 0 picks a free one)",
            )
        return ApiSettings(
            host=host.strip("[]"),
            port=int(port),
            public_reads=data.get("public-reads", False),
            tokens=tokens,
        )

    def _notify(self, data: Mapping[str, Any]) -> NotifySettings:
        return NotifySettings(
            slack=self._slack(data["slack"]) if "slack" in data else None,
            sentry=self._sentry(data["sentry"]) if "sentry" in data else None,
            canceled=data.get("canceled", False),
            deadline_exceeded=data.get("deadline-exceeded", False),
            give_up_after=parse_duration(data.get("give-up-after", "2d")),
        )

    def _slack(self, data: Mapping[str, Any]) -> SlackSettings | None:
        token = self._secret(data, ("notify", "slack"), "token-file", "SLACK_BOT_TOKEN")
        webhook = self._secret(data, ("notify", "slack"), "webhook-url-file", "SLACK_WEBHOOK_URL")
        where = self.document.position_of(("notify", "slack"))
        if token is None and webhook is None and {"token-file", "webhook-url-file"} & set(data):
            return None  # the file that should have held it is reported already
        if token and webhook:
            self.problems.error(
                where,
                "notify.slack has both a bot token and an incoming webhook; keep one "
                "(SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL)",
            )
            return None
        if not (token or webhook):
            self.problems.error(
                where,
                "notify.slack needs a bot token or an incoming webhook: set SLACK_BOT_TOKEN "
                "(or notify.slack.token-file), or SLACK_WEBHOOK_URL (or webhook-url-file)",
            )
            return None
        routes = tuple(
            SlackRoute(
                channel=r["channel"],
                projects=tuple(r.get("projects", ())),
                jobs=tuple(r.get("jobs", ())),
                events=tuple(EventKind(e) for e in r.get("events", ())),
                mentions=tuple(r.get("mentions", ())),
            )
            for r in data.get("routes", ())
        )
        if token and not data.get("channel") and not routes:
            self.problems.error(
                where, "notify.slack needs a channel to post to: add channel: '#your-channel'"
            )
        for key in ("channel", "routes"):
            if webhook and key in data:
                self.problems.error(
                    self.document.position_of(("notify", "slack", key)),
                    f"notify.slack.{key} needs a bot token (SLACK_BOT_TOKEN): an incoming "
                    "webhook posts to the channel it was made for; remove it or use a token",
                )
        return SlackSettings(
            token=token,
            webhook_url=webhook,
            api_url=data.get("api-url"),
            channel=data.get("channel"),
            mentions=tuple(data.get("mentions", ())),
            routes=routes,
        )

    def _sentry(self, data: Mapping[str, Any]) -> SentrySettings | None:
        dsn = self._secret(data, ("notify", "sentry"), "dsn-file", "SENTRY_DSN")
        if not dsn:
            self.problems.error(
                self.document.position_of(("notify", "sentry")),
                "notify.sentry needs a DSN: set SENTRY_DSN, or notify.sentry.dsn-file",
            )
            return None
        return SentrySettings(
            dsn=dsn,
            environment=data.get("environment")
            or self.environ.get("SENTRY_ENVIRONMENT")
            or "production",
            monitors=data.get("monitors", True),
        )

    def _secret(
        self, data: Mapping[str, Any], at: tuple[str, ...], file_key: str, variable: str
    ) -> str | None:
        """A secret from its file (named in the configuration) or else its variable; from now
        on, `redaction.scrub` masks it wherever it shows up."""
        if file_key not in data:
            from_environment = self.environ.get(variable) or None
            if from_environment:
                remember_secret(from_environment)
            return from_environment
        path = self._path(data[file_key])
        try:
            value = path.read_text().strip()
        except OSError as error:
            self.problems.error(
                self.document.position_of((*at, file_key)),
                f"cannot read {file_key} {path}: {error.strerror}",
            )
            return None
        if not value:
            self.problems.error(
                self.document.position_of((*at, file_key)), f"{file_key} {path} is empty"
            )
            return None
        remember_secret(value)
        return value

    def _catch_up(self, data: Mapping[str, Any], inherited: CatchUp) -> CatchUp:
        lateness = data.get("max-lateness")
        return CatchUp(
            policy=data.get("policy", inherited.policy),
            max_lateness=parse_duration(lateness) if lateness else inherited.max_lateness,
            max_slots=data.get("max-slots", inherited.max_slots),
        )

    def _project(self, index: int, entry: Mapping[str, Any], default: CatchUp) -> Project:
        catch_up_data = entry.get("catch-up", {})
        catch_up = self._catch_up(catch_up_data, default)
        scopes = entry.get("scopes")
        repository = entry["repository"]
        if redact(repository) != repository:
            # Tasks name this URL (task definitions are public), and the ledger, the API and
            # logs show it; credentials go where only git reads them.
            plain = without_userinfo(repository)
            self.problems.error(
                self.document.position_of(("projects", index, "repository")),
                f"project {shown(entry['name'])}: repository {shown(redact(repository))} holds "
                "credentials, and tasks name this URL in public; give it without them"
                + (f" ({shown(plain)})" if redact(plain) == plain else "")
                + " and put the URL with credentials in fetch-from, which only git reads",
            )
        elif scopes is None and default_project_scopes(repository) is None:
            self.problems.error(
                self.document.position_of(("projects", index, "repository")),
                f"repository {shown(repository)} names no host, so the project's "
                "scopes cannot be assume:repo:<host>/<path>:cron:*; give the URL tasks should "
                "name (https://...) and read a local clone with fetch-from, or set scopes",
            )
        return Project(
            name=entry["name"],
            repository=entry["repository"],
            trust_domain=entry["trust-domain"],
            branch=entry.get("branch", "main"),
            level=entry.get("level", 1),
            repository_type=entry.get("repository-type", "git"),
            fetch_from=entry.get("fetch-from"),
            expiry=self._expiry(entry.get("expiry", {})),
            expiry_watched="expiry" in entry,
            watch_task_groups=(
                groups
                if isinstance(groups := entry.get("watch-task-groups", False), bool)
                else tuple(groups)
            ),
            scopes=tuple(scopes) if scopes is not None else None,
            catch_up=catch_up,
            job_catch_up={
                job: self._catch_up(overrides, catch_up)
                for job, overrides in catch_up_data.get("jobs", {}).items()
            },
        )

    @staticmethod
    def _expiry(data: Mapping[str, Any]) -> ExpiryWatch:
        default = ExpiryWatch()

        def duration(key: str, fallback: timedelta) -> timedelta:
            return parse_duration(data[key]) if key in data else fallback

        return ExpiryWatch(
            namespaces=tuple(data.get("namespaces", ())),
            task_groups=tuple(
                TaskGroupWatch(g["id"], tuple(g.get("kinds", ())), g.get("label-prefix"))
                for g in data.get("task-groups", ())
            ),
            threshold=duration("threshold", default.threshold),
            action=data.get("action", default.action),
            action_input=data.get("input", {}),
            every=duration("every", default.every),
            cooldown=duration("cooldown", default.cooldown),
            artifacts=data.get("artifacts", False),
            concurrency=data.get("concurrency", default.concurrency),
            decision_index=data.get("decision-index"),
        )

    def _check_unique(self, projects: tuple[Project, ...]) -> None:
        seen: dict[str, int] = {}
        for index, project in enumerate(projects):
            if project.name in seen:
                first = self.document.position_of(("projects", seen[project.name], "name"))
                self.problems.error(
                    self.document.position_of(("projects", index, "name")),
                    f"project {shown(project.name)} is configured twice (first at line "
                    f"{first.line}); give each project one entry",
                )
            seen.setdefault(project.name, index)


# The URL tasks of the embedded default name when this clone has no public origin: the queue
# requires `metadata.source` to be an http(s), ssh or git@ URL, never a `file://` one.
DEFAULT_PUBLIC_URL = "https://github.com/taskcluster/tc-scheduler"


def embedded_default(repository_root: Path, public_url: str = DEFAULT_PUBLIC_URL) -> str:
    """The configuration `make run` uses: this repository as its own project, SQLite, dry-run.

    Tasks name `public_url` (the clone's origin); git reads the clone itself.
    """
    return f"""\
# tc-scheduler's embedded default: schedule this repository's own .cron.yml.
taskcluster:
  root-url: https://taskcluster.example.com
state-dir: {repository_root / ".tc-scheduler"}
projects:
  - name: tc-scheduler
    repository: {public_url}
    fetch-from: {repository_root.resolve().as_uri()}
    branch: main
    level: 1
    trust-domain: tcs
"""
