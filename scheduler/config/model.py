"""The resolved service configuration: projects, their catch-up, overlap and expiry watch, the API,
Taskcluster credentials, and the form shown to people (no secret in it). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from scheduler.common.redaction import redact
from scheduler.config.errors import UnknownProjectError
from scheduler.durations import format_duration
from scheduler.notify.settings import NotifySettings
from scheduler.queue_rules import DEFAULT_MAX_DEADLINE
from scheduler.scopes import default_project_scopes

CatchUpPolicy = Literal["latest", "all", "none"]
# What a job's fire does while the job's previous fire has not resolved: fire all the same,
# skip, or cancel the previous fire's task group and fire.
OverlapPolicy = Literal["allow", "skip", "replace"]
# Fires in flight at once (each a createTask or a hook trigger). A fire is mostly waiting for
# Taskcluster's answer, so a slot of many fires is created no sooner than
# ceil(fires / concurrency) x the call's latency: 500 fires at 100 ms take 1 s at 50 (2.5 s at
# 20), while the service's own CPU per fire is what bounds it beyond that.
DEFAULT_CONCURRENCY = 50
# The fewest and most HTTP connections of the remote reads (`Config.remote_connections`).
REMOTE_CONNECTIONS = (32, 100)
# The most `taskcluster.call-timeout` may be: a trigger whose answer did not come is looked
# for a while after it was sent (actions/triggering.py's SETTLE), which must outlast it.
LONGEST_CALL_TIMEOUT = timedelta(minutes=1)
# The most `taskcluster.call-deadline` may be: a tick stalled on Taskcluster must still end
# well before the next slot's, 15 minutes after its own.
LONGEST_CALL_DEADLINE = timedelta(minutes=10)


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
    overlap: OverlapPolicy = "allow"
    job_overlap: Mapping[str, OverlapPolicy] = field(default_factory=dict)
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

    def overlap_for(self, job: str) -> OverlapPolicy:
        return self.job_overlap.get(job, self.overlap)

    def watches_group_of(self, job: str) -> bool:
        if isinstance(self.watch_task_groups, bool):
            return self.watch_task_groups
        return job in self.watch_task_groups


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
class Retention:
    """How long the ledger keeps each kind of row; the service prunes what is older once a day
    (`tc-scheduler ledger prune` at any time), keeping whatever something still needs."""

    # Fires, their watches and slot evaluations; incidents, once closed.
    fires: timedelta = timedelta(days=90)
    # Notification letters, once sent or given up on.
    letters: timedelta = timedelta(days=30)
    # The audit log's acts.
    audit: timedelta = timedelta(days=365)

    def shown(self) -> dict[str, str]:
        """As the configuration writes it."""
        return {
            "fires": format_duration(self.fires),
            "letters": format_duration(self.letters),
            "audit": format_duration(self.audit),
        }


# No retention may be shorter: the engine reads the last days' fires (manual-fire checks,
# retries within max-lateness), and a slot whose fire was forgotten could be claimed again.
MIN_RETENTION = timedelta(days=1)
# How long `run` waits at start for a ledger that does not answer, then exits.
DEFAULT_LEDGER_WAIT = timedelta(minutes=10)


@dataclass(frozen=True)
class LedgerSettings:
    """What the commands that work on the ledger alone need of the configuration."""

    url: str
    retention: Retention = Retention()
    # How long a ledger that does not answer is waited for (`ledger-wait`).
    wait: timedelta = DEFAULT_LEDGER_WAIT


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
class CallBounds:
    """How long a Taskcluster call may take: `timeout`, an attempt receiving nothing (it is
    then tried again); `deadline`, the call with all its attempts (it is then given up)."""

    timeout: timedelta = timedelta(seconds=30)
    deadline: timedelta = timedelta(minutes=2)


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
    notify: NotifySettings = field(default_factory=NotifySettings)
    # How often the watcher reads the status of what the service started.
    watch_every: timedelta = timedelta(seconds=30)
    api: ApiSettings = ApiSettings()
    # A job fired by hand is not fired by hand again within this: a double click or a script
    # loop cannot start a storm.
    manual_fire_interval: timedelta = timedelta(minutes=1)
    # The longest deadline the deployment's queue accepts (its maxTaskDeadlineDays).
    max_task_deadline: timedelta = DEFAULT_MAX_DEADLINE
    # How long the ledger keeps history, and how long `run` waits for it at start.
    retention: Retention = Retention()
    ledger_wait: timedelta = DEFAULT_LEDGER_WAIT
    # How long each Taskcluster call may take (`taskcluster.call-timeout`, `call-deadline`).
    calls: CallBounds = CallBounds()
    # The folder of hook definitions this deployment manages (`hooks-dir`); None: no folder.
    hooks_dir: Path | None = None
    # Inside a Taskcluster task with the proxy feature (TASKCLUSTER_PROXY_URL): calls go to
    # the proxy unsigned, and it signs them with the task's credentials, so they carry the
    # task's scopes (no project's authorizedScopes: those need credentials of our own).
    proxy_url: str | None = None

    @property
    def proxy_note(self) -> str | None:
        """What calling through the proxy means for the projects' scopes (None: no proxy)."""
        if self.proxy_url is None:
            return None
        return (
            f"calls go through the task's Taskcluster proxy ({self.proxy_url}), which signs "
            "them for the task, so Taskcluster bounds them by the task's scopes, not by each "
            "project's (authorizedScopes need credentials of the service's own), "
            "so what one project here may do, every project may; give the task only the scopes "
            "its projects need, or run with credentials to keep projects apart"
        )

    @property
    def signs_calls(self) -> bool:
        """Whether calls to Taskcluster carry scopes: with credentials, or through the proxy
        (without either, the anonymous role's)."""
        return self.credentials is not None or self.proxy_url is not None

    @property
    def connections(self) -> int:
        """HTTP connections to Taskcluster: enough for the fires and for every expiry scan."""
        return max([self.concurrency, *(p.expiry.concurrency for p in self.projects)])

    @property
    def remote_connections(self) -> int:
        """HTTP connections of the remote reads (git's heads, Mercurial's): as many as fires at
        once, since at a boundary each project's head is read before its fires are made; at
        least `REMOTE_CONNECTIONS[0]`, so that a host that hangs leaves the others some, and at
        most `REMOTE_CONNECTIONS[1]`, which one host takes well."""
        fewest, most = REMOTE_CONNECTIONS
        return min(max(self.concurrency, fewest), most)

    def project(self, name: str) -> Project | None:
        return next((p for p in self.projects if p.name == name), None)

    def require_project(self, name: str) -> Project:
        """The project called `name`; UnknownProjectError, naming the configured ones, if none."""
        project = self.project(name)
        if project is None:
            known = ", ".join(p.name for p in self.projects)
            raise UnknownProjectError(f"no project {name!r} is configured; configured: {known}")
        return project

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets the configuration holds: the Taskcluster access token, the ledger's
        password and notify's."""
        token = (self.credentials.access_token,) if self.credentials else ()
        password = urlsplit(self.ledger_url).password  # from ledger-password-file
        ledger = (unquote(password),) if password else ()
        return (*token, *ledger, *self.notify.secrets)

    def masked(self) -> dict[str, Any]:
        """The resolved configuration as shown to people: no secret in it."""
        return {
            "source": self.source,
            "taskcluster": {
                "root-url": self.root_url,
                "proxy-url": self.proxy_url,
                "client-id": self.credentials.client_id if self.credentials else None,
                "access-token": "<set>" if self.credentials else None,
                "max-task-deadline": format_duration(self.max_task_deadline),
                "call-timeout": format_duration(self.calls.timeout),
                "call-deadline": format_duration(self.calls.deadline),
            },
            "ledger": redact(self.ledger_url),
            "ledger-wait": format_duration(self.ledger_wait),
            "retention": self.retention.shown(),
            "state-dir": str(self.state_dir),
            "hooks-dir": None if self.hooks_dir is None else str(self.hooks_dir),
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
            "notify": self.notify.masked(),
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
                    "overlap": p.overlap,
                    "job-overlap": dict(p.job_overlap),
                    "watch-task-groups": (
                        p.watch_task_groups
                        if isinstance(p.watch_task_groups, bool)
                        else list(p.watch_task_groups)
                    ),
                }
                for p in self.projects
            ],
        }


def _catch_up_json(catch_up: CatchUp) -> dict[str, Any]:
    return {
        "policy": catch_up.policy,
        "max-lateness": format_duration(catch_up.max_lateness),
        "max-slots": catch_up.max_slots,
    }
