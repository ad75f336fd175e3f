"""What notifying is configured to do: Slack (token or webhook, channels, routes), Sentry, and
which outcomes are reported; the `notify` section's schema and its masked form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from scheduler.common.redaction import redact
from scheduler.durations import DURATION_SCHEMA, format_duration
from scheduler.notify.events import EventKind


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

    @property
    def secrets(self) -> tuple[str, ...]:
        """The Slack token or webhook URL and the Sentry DSN that are set."""
        slack, sentry = self.slack, self.sentry
        held = (
            slack.token if slack else None,
            slack.webhook_url if slack else None,
            sentry.dsn if sentry else None,
        )
        return tuple(secret for secret in held if secret)

    def masked(self) -> dict[str, Any]:
        """The settings as shown to people: whether each secret is set, never its value."""
        slack, sentry = self.slack, self.sentry
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
            "canceled": self.canceled,
            "deadline-exceeded": self.deadline_exceeded,
            "give-up-after": format_duration(self.give_up_after),
        }


_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_MENTIONS = {
    **_NAMES,
    "x-expected": "a list of mentions, like ['<!subteam^S0123>', '<@U0123>', '@here']",
}
_EVENT_KINDS = {"type": "array", "items": {"enum": [kind.value for kind in EventKind]}}
_CHANNEL = {"type": "string", "minLength": 1, "x-expected": "a channel, like '#releng' or C0123"}
# The `notify` section of the service configuration (secrets come from variables or files).
NOTIFY_SCHEMA: dict[str, Any] = {
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
        "give-up-after": DURATION_SCHEMA,
    },
}
