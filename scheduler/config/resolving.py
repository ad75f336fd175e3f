"""Resolving a valid configuration (its projects are `projects`'): defaults, the environment,
files it names (credentials, secrets), the checks no schema can make (which secrets go together).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from scheduler.common.redaction import redact
from scheduler.common.schema_messages import shown
from scheduler.common.yamldoc import Document
from scheduler.config.bounds import (
    check_fires_outlive_lateness,
    resolve_call_bounds,
    resolve_retention,
)
from scheduler.config.errors import ConfigError, Problems
from scheduler.config.model import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LEDGER_WAIT,
    ApiSettings,
    ApiToken,
    Config,
    Credentials,
    LedgerSettings,
)
from scheduler.config.projects import resolve_projects
from scheduler.config.schema import SET_CREDENTIALS
from scheduler.config.urls import root_url_problem, with_password
from scheduler.durations import format_duration, parse_duration
from scheduler.notify.events import EventKind
from scheduler.notify.settings import NotifySettings, SentrySettings, SlackRoute, SlackSettings
from scheduler.queue_rules import DEFAULT_MAX_DEADLINE


@dataclass
class Resolver:
    """Turns a valid configuration's data into a Config, reading the files it names and the
    environment; records every further problem in `problems` and raises them together."""

    data: dict[str, Any]
    document: Document
    problems: Problems
    environ: Mapping[str, str]
    base_dir: Path
    # Every secret read so far (an access token, a token, a webhook URL, a DSN), even from a
    # configuration that turns out unusable: what must be masked wherever it shows up.
    secrets_read: list[str] = field(default_factory=list)

    def resolve(self) -> Config:
        taskcluster = self.data.get("taskcluster", {})
        root_url = self._root_url(taskcluster)
        credentials = self._credentials(taskcluster)
        proxy_url = self._proxy_url(credentials is not None)
        calls = resolve_call_bounds(taskcluster, self.document, self.problems)
        dry_run_setting = self.data.get("dry-run", "auto")
        signs = credentials is not None or proxy_url is not None
        if dry_run_setting is False and not signs:
            self.problems.error(
                self.document.position_of(("dry-run",)),
                f"dry-run is false but no Taskcluster credentials are set; {SET_CREDENTIALS} "
                "(or run in a task with TASKCLUSTER_PROXY_URL)",
            )
        state_dir = self._state_dir()
        hooks_dir = self._hooks_dir()
        projects = resolve_projects(self.data, self.document, self.problems)
        notify = self._notify(self.data.get("notify", {}))
        retention = resolve_retention(self.data.get("retention", {}), self.document, self.problems)
        check_fires_outlive_lateness(retention, projects, self.document, self.problems)
        ledger_url = self._ledger_url(state_dir)
        if self.problems.diagnostics:
            raise ConfigError(self.problems.diagnostics)
        assert root_url is not None
        return Config(
            root_url=str(root_url).rstrip("/"),
            credentials=credentials,
            ledger_url=ledger_url,
            state_dir=state_dir,
            concurrency=self.data.get("concurrency", DEFAULT_CONCURRENCY),
            dry_run=not signs if dry_run_setting == "auto" else bool(dry_run_setting),
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
            retention=retention,
            ledger_wait=self._ledger_wait(),
            calls=calls,
            hooks_dir=hooks_dir,
            proxy_url=proxy_url,
        )

    def ledger_url(self) -> str:
        """The ledger's URL alone, with its password (no other setting resolved, none of them
        checked); ConfigError if the password cannot be read."""
        url = self._ledger_url(self._state_dir())
        if self.problems.diagnostics:
            raise ConfigError(self.problems.diagnostics)
        return url

    def hooks_dir(self) -> Path | None:
        """The hooks folder alone (no other setting resolved); ConfigError if it is no folder."""
        hooks_dir = self._hooks_dir()
        if self.problems.diagnostics:
            raise ConfigError(self.problems.diagnostics)
        return hooks_dir

    def _proxy_url(self, has_credentials: bool) -> str | None:
        """TASKCLUSTER_PROXY_URL, which a task with the proxy feature has (None: not in one)."""
        proxy_url = self.environ.get("TASKCLUSTER_PROXY_URL")
        if not proxy_url:
            return None
        where = self.document.position_of(("taskcluster",) if "taskcluster" in self.data else ())
        problem = root_url_problem(proxy_url)
        if problem:
            self.problems.error(where, f"TASKCLUSTER_PROXY_URL {shown(proxy_url)} {problem}")
        elif has_credentials:
            self.problems.error(
                where,
                "both TASKCLUSTER_PROXY_URL and Taskcluster credentials are set: through the "
                "proxy, calls carry the task's scopes and credentials are not used; unset one",
            )
        return None if problem else proxy_url.rstrip("/")

    def _root_url(self, taskcluster: Mapping[str, Any]) -> str | None:
        """TASKCLUSTER_ROOT_URL, else taskcluster.root-url (the schema checked that one)."""
        from_environment = self.environ.get("TASKCLUSTER_ROOT_URL")
        root_url = from_environment or taskcluster.get("root-url")
        where = self.document.position_of(("taskcluster", "root-url") if root_url else ())
        if not root_url:
            self.problems.error(
                where, "no Taskcluster root URL: set taskcluster.root-url, or TASKCLUSTER_ROOT_URL"
            )
            return None
        problem = root_url_problem(root_url)
        if problem:
            named = "TASKCLUSTER_ROOT_URL" if from_environment else "taskcluster.root-url"
            self.problems.error(where, f"{named} {shown(root_url)} {problem}")
            return None
        return str(root_url)

    def ledger_settings(self) -> LedgerSettings:
        """The ledger's URL, retention and wait (no other setting checked); ConfigError if the
        retention is not usable."""
        retention = resolve_retention(self.data.get("retention", {}), self.document, self.problems)
        if self.problems.diagnostics:
            raise ConfigError(self.problems.diagnostics)
        return LedgerSettings(self.ledger_url(), retention, self._ledger_wait())

    def _ledger_wait(self) -> timedelta:
        return parse_duration(self.data.get("ledger-wait", format_duration(DEFAULT_LEDGER_WAIT)))

    def _state_dir(self) -> Path:
        return self._path(self.data.get("state-dir", ".tc-scheduler"))

    def _hooks_dir(self) -> Path | None:
        """The hooks folder `hooks-dir` names, which must be a folder (None: not set)."""
        written = self.data.get("hooks-dir")
        if written is None:
            return None
        path = self._path(written)
        if not path.is_dir():
            reason = "it is not a folder" if path.exists() else "there is no such folder"
            self.problems.error(
                self.document.position_of(("hooks-dir",)),
                f"hooks-dir {path}: {reason}; create it, correct the path (a relative one is "
                f"read from {self.base_dir}), or remove hooks-dir if this deployment manages "
                "no hooks",
            )
            return None
        return path

    def _path(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def _ledger_url(self, state_dir: Path) -> str:
        url = self.data.get("ledger")
        if url is None:
            url = f"sqlite:///{state_dir / 'ledger.db'}"
        elif url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            relative = url.removeprefix("sqlite:///")
            url = f"sqlite:///{self._path(relative)}" if relative else url
        # The password from its file, given to the driver in the URL (PGPASSWORD needs nothing
        # here: libpq reads it); one written in the URL is refused with the secrets (loading).
        if "ledger-password-file" not in self.data:
            return str(url)
        password = self._secret(self.data, (), "ledger-password-file", "PGPASSWORD")
        if password is None:
            return str(url)
        with_it = with_password(str(url), password)
        if with_it is None:
            self.problems.error(
                self.document.position_of(("ledger",) if "ledger" in self.data else ()),
                "ledger-password-file is set but the ledger URL "
                f"{shown(redact(str(url)))} names no database server and user to give it for; "
                "write ledger: postgresql+psycopg://USER@HOST/DATABASE, or remove the setting",
            )
            return str(url)
        return with_it

    def _credentials(self, taskcluster: Mapping[str, Any]) -> Credentials | None:
        client_id = self.environ.get("TASKCLUSTER_CLIENT_ID")
        access_token = self.environ.get("TASKCLUSTER_ACCESS_TOKEN")
        if client_id and access_token:
            self.secrets_read.append(access_token)
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
        self.secrets_read.append(loaded["accessToken"])
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
        if listen == "off" or listen is False:
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
                "notify.sentry needs a DSN; set SENTRY_DSN, or notify.sentry.dsn-file",
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
        """A secret from its file (named in the configuration) or else its variable."""
        if file_key not in data:
            from_variable = self.environ.get(variable) or None
            if from_variable:
                self.secrets_read.append(from_variable)
            return from_variable
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
        self.secrets_read.append(value)
        return value
