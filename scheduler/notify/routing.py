"""Where each event goes: Slack channels by project, job and kind, Sentry for check-ins.

Pure: destinations are strings the outbox stores (`slack:#releng`, `slack-webhook`, `sentry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from scheduler.notify.events import Event, EventKind
from scheduler.notify.settings import NotifySettings, SlackRoute, SlackSettings

SLACK_PREFIX = "slack:"
SLACK_WEBHOOK = "slack-webhook"
SENTRY = "sentry"


@dataclass(frozen=True)
class Router:
    settings: NotifySettings

    def destinations(self, event: Event) -> tuple[str, ...]:
        """The Slack destination of `event` (none when Slack is not configured)."""
        slack = self.settings.slack
        if slack is None:
            return ()
        if slack.webhook_url is not None:
            return (SLACK_WEBHOOK,)
        channel = self._route(slack, event)[0]
        return (f"{SLACK_PREFIX}{channel}",) if channel else ()

    def check_ins(self) -> tuple[str, ...]:
        sentry = self.settings.sentry
        return (SENTRY,) if sentry is not None and sentry.monitors else ()

    def mentions(self, event: Event) -> tuple[str, ...]:
        """Who a failure message calls on: its route's mentions, or the default ones."""
        slack = self.settings.slack
        return () if slack is None else self._route(slack, event)[1]

    @staticmethod
    def _route(slack: SlackSettings, event: Event) -> tuple[str | None, tuple[str, ...]]:
        for route in slack.routes:
            if _takes(route, event):
                return route.channel, route.mentions or slack.mentions
        return slack.channel, slack.mentions


def channel_of(destination: str) -> str | None:
    """The channel a `slack:` destination posts to; None for a webhook."""
    return destination.removeprefix(SLACK_PREFIX) if destination.startswith(SLACK_PREFIX) else None


def _takes(route: SlackRoute, event: Event) -> bool:
    if route.projects and not any(fnmatchcase(event.project, p) for p in route.projects):
        return False
    if route.jobs and not (event.job and any(fnmatchcase(event.job, j) for j in route.jobs)):
        return False
    # A test message goes wherever its project and job would go, whatever the route's kinds.
    return not route.events or event.kind in route.events or event.kind is EventKind.TEST
