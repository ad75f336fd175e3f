"""The `notify` configuration (Slack, Sentry, what is reported) and where events are routed.

Secrets are made up per test: a test fails if one of them shows up where people read.
"""

from __future__ import annotations

import json
import secrets
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.common.diagnostics import Diagnostic
from scheduler.common.redaction import scrub
from scheduler.config.errors import ConfigError
from scheduler.config.loading import load_config, parse_config, remember_secrets
from scheduler.config.model import Config
from scheduler.notify.events import Event, EventKind
from scheduler.notify.routing import Router
from scheduler.notify.settings import NotifySettings, SentrySettings, SlackRoute, SlackSettings

TASKCLUSTER = """\
taskcluster:
  root-url: https://tc.example.com
"""
PROJECTS = """\
projects:
  - name: mozilla-central
    repository: https://hg.mozilla.org/mozilla-central
    trust-domain: gecko
"""
# The notify block starts on line 7 of what `with_notify` builds.
NOTIFY_LINE = 7
T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SHERIFFS = "<!subteam^S0SHERIFF>"


def canary(prefix: str = "") -> str:
    """A made-up secret that matches none of scrub's patterns: only remembering masks it."""
    return prefix + "".join(secrets.choice(string.ascii_letters) for _ in range(28))


def slack_token() -> str:
    return f"xoxb-4242-{canary()}"


def with_notify(notify: str, *, extra: str = "") -> str:
    return TASKCLUSTER + PROJECTS + "notify:\n" + notify + extra


def load(text: str, environ: dict[str, str], base_dir: Path) -> Config:
    return load_config(text, "service.yml", environ, base_dir=base_dir)


def diagnostics(text: str, environ: dict[str, str], base_dir: Path) -> list[Diagnostic]:
    with pytest.raises(ConfigError) as raised:
        load(text, environ, base_dir)
    return list(raised.value.diagnostics)


# Resolving a notify block


FULL = """\
taskcluster:
  root-url: https://tc.example.com
watch-every: 45s
notify:
  slack:
    api-url: http://127.0.0.1:9/api/
    channel: '#releng'
    mentions: ['<!subteam^S0SHERIFF>', '@here']
    routes:
      - projects: [mozilla-*]
        jobs: [nightly-*, weekly]
        events: [task-failed, group-failed, recovered]
        channel: '#nightly'
        mentions: ['<@U0NIGHT>']
      - projects: [try]
        channel: C0TRY
  sentry:
    environment: staging
    monitors: false
  canceled: true
  deadline-exceeded: false
  give-up-after: 6h
projects:
  - name: mozilla-central
    repository: https://hg.mozilla.org/mozilla-central
    trust-domain: gecko
    watch-task-groups: true
  - name: try
    repository: https://hg.mozilla.org/try
    trust-domain: gecko
    watch-task-groups: [nightly, weekly]
  - name: autoland
    repository: https://hg.mozilla.org/autoland
    trust-domain: gecko
"""


def test_a_full_notify_block_resolves(tmp_path: Path) -> None:
    token, dsn = slack_token(), f"https://{canary()}@o1.ingest.sentry.io/42"

    config = load(FULL, {"SLACK_BOT_TOKEN": token, "SENTRY_DSN": dsn}, tmp_path)

    assert config.watch_every == timedelta(seconds=45)
    assert config.notify == NotifySettings(
        slack=SlackSettings(
            token=token,
            api_url="http://127.0.0.1:9/api/",
            channel="#releng",
            mentions=(SHERIFFS, "@here"),
            routes=(
                SlackRoute(
                    channel="#nightly",
                    projects=("mozilla-*",),
                    jobs=("nightly-*", "weekly"),
                    events=(EventKind.TASK_FAILED, EventKind.GROUP_FAILED, EventKind.RECOVERED),
                    mentions=("<@U0NIGHT>",),
                ),
                SlackRoute(channel="C0TRY", projects=("try",)),
            ),
        ),
        sentry=SentrySettings(dsn=dsn, environment="staging", monitors=False),
        canceled=True,
        deadline_exceeded=False,
        give_up_after=timedelta(hours=6),
    )
    central, try_, autoland = config.projects
    assert central.watch_task_groups is True
    assert central.watches_group_of("anything")
    assert try_.watch_task_groups == ("nightly", "weekly")
    assert try_.watches_group_of("weekly")
    assert not try_.watches_group_of("hourly")
    assert autoland.watch_task_groups is False
    assert not autoland.watches_group_of("nightly")


def test_without_a_notify_block_nothing_is_notified(tmp_path: Path) -> None:
    config = load(TASKCLUSTER + PROJECTS, {"SLACK_BOT_TOKEN": slack_token()}, tmp_path)

    assert config.notify == NotifySettings()
    assert (config.notify.slack, config.notify.sentry) == (None, None)
    assert (config.notify.canceled, config.notify.deadline_exceeded) == (False, False)
    assert config.notify.give_up_after == timedelta(days=2)
    assert config.watch_every == timedelta(seconds=30)
    assert config.projects[0].watch_task_groups is False


def test_the_token_and_dsn_can_come_from_files(tmp_path: Path) -> None:
    token, dsn = slack_token(), f"https://{canary()}@sentry.example.com/7"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "slack-token").write_text(f"{token}\n")
    (tmp_path / "secrets" / "sentry-dsn").write_text(f"  {dsn}\n\n")
    notify = (
        "  slack:\n"
        "    token-file: secrets/slack-token\n"
        "    channel: C0RELENG\n"
        "  sentry:\n"
        f"    dsn-file: {tmp_path / 'secrets' / 'sentry-dsn'}\n"
    )
    # A file named in the configuration wins over the variable.
    environ = {"SLACK_BOT_TOKEN": slack_token(), "SENTRY_DSN": "https://other@sentry/1"}

    config = load(with_notify(notify), environ, tmp_path)

    assert config.notify.slack is not None
    assert (config.notify.slack.token, config.notify.slack.webhook_url) == (token, None)
    assert config.notify.slack.channel == "C0RELENG"
    assert config.notify.sentry == SentrySettings(dsn=dsn, environment="production", monitors=True)


def test_a_webhook_from_the_environment_needs_no_channel(tmp_path: Path) -> None:
    webhook = f"https://hooks.slack.com/services/T0/B0/{canary()}"

    config = load(with_notify("  slack: {}\n"), {"SLACK_WEBHOOK_URL": webhook}, tmp_path)

    assert config.notify.slack == SlackSettings(webhook_url=webhook)


def test_a_webhook_can_come_from_a_file(tmp_path: Path) -> None:
    webhook = f"https://hooks.slack.com/services/T0/B0/{canary()}"
    (tmp_path / "webhook").write_text(webhook)

    config = load(with_notify("  slack: {webhook-url-file: webhook}\n"), {}, tmp_path)

    assert config.notify.slack is not None
    assert (config.notify.slack.webhook_url, config.notify.slack.token) == (webhook, None)


def test_the_sentry_environment_defaults_to_its_variable(tmp_path: Path) -> None:
    environ = {"SENTRY_DSN": f"https://{canary()}@sentry/1", "SENTRY_ENVIRONMENT": "staging"}

    config = load(with_notify("  sentry: {}\n"), environ, tmp_path)

    assert config.notify.sentry is not None
    assert config.notify.sentry.environment == "staging"
    assert config.notify.slack is None


# What is refused, where, and what to write instead


@pytest.mark.parametrize(
    ("block", "key", "fix"),
    [
        ("  slack:\n    channel: '#releng'\n    token: {value}\n", "token", "SLACK_BOT_TOKEN"),
        (
            "  slack:\n    channel: '#r'\n    webhook-url: {value}\n",
            "webhook-url",
            "SLACK_WEBHOOK_URL",
        ),
        ("  sentry:\n    environment: prod\n    dsn: {value}\n", "dsn", "SENTRY_DSN"),
    ],
)
def test_secrets_written_in_the_file_are_refused_with_where_to_put_them(
    tmp_path: Path, block: str, key: str, fix: str
) -> None:
    value = canary("xoxb-")
    environ = {"SLACK_BOT_TOKEN": slack_token(), "SENTRY_DSN": "https://k@sentry/1"}

    [problem] = diagnostics(with_notify(block.format(value=value)), environ, tmp_path)

    assert (problem.line, problem.column) == (NOTIFY_LINE + 3, 5)
    assert f"`{key}`: secrets never go in the configuration file" in problem.message
    assert fix in problem.message
    assert value not in str(problem)


def test_a_bot_token_and_a_webhook_together_are_refused(tmp_path: Path) -> None:
    environ = {
        "SLACK_BOT_TOKEN": slack_token(),
        "SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T/B/{canary()}",
    }

    [problem] = diagnostics(with_notify("  slack:\n    channel: '#releng'\n"), environ, tmp_path)

    assert problem.line == NOTIFY_LINE + 2
    assert "both a bot token and an incoming webhook" in problem.message
    assert "SLACK_BOT_TOKEN" in problem.message
    assert "SLACK_WEBHOOK_URL" in problem.message


def test_slack_without_a_token_or_a_webhook_is_refused(tmp_path: Path) -> None:
    [problem] = diagnostics(with_notify("  slack:\n    channel: '#releng'\n"), {}, tmp_path)

    assert problem.line == NOTIFY_LINE + 2
    assert "needs a bot token or an incoming webhook" in problem.message
    assert "set SLACK_BOT_TOKEN" in problem.message
    assert "SLACK_WEBHOOK_URL" in problem.message


def test_a_bot_token_needs_a_channel_or_routes(tmp_path: Path) -> None:
    environ = {"SLACK_BOT_TOKEN": slack_token()}
    no_channel = with_notify("  slack:\n    mentions: ['@here']\n")
    routes_only = with_notify("  slack:\n    routes: [{projects: [try], channel: C0TRY}]\n")

    [problem] = diagnostics(no_channel, environ, tmp_path)
    config = load(routes_only, environ, tmp_path)

    assert problem.line == NOTIFY_LINE + 2
    assert "needs a channel" in problem.message
    assert "channel: '#your-channel'" in problem.message
    assert config.notify.slack is not None
    assert config.notify.slack.channel is None


def test_an_unknown_event_kind_in_a_route_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    block = (
        "  slack:\n"
        "    channel: '#releng'\n"
        "    routes:\n"
        "      - channel: '#nightly'\n"
        "        events: [task-failed, exploded]\n"
    )

    [problem] = diagnostics(with_notify(block), {"SLACK_BOT_TOKEN": slack_token()}, tmp_path)

    assert problem.line == NOTIFY_LINE + 5
    assert '"exploded"' in problem.message
    assert "task-failed" in problem.message
    assert "recovered" in problem.message


def test_an_unreadable_token_file_is_refused_where_it_is_named(tmp_path: Path) -> None:
    block = "  slack:\n    channel: '#releng'\n    token-file: missing-token\n"

    problems = diagnostics(with_notify(block), {"SLACK_BOT_TOKEN": slack_token()}, tmp_path)

    assert (problems[0].line, problems[0].column) == (NOTIFY_LINE + 3, 17)
    assert "cannot read token-file" in problems[0].message
    assert str(tmp_path / "missing-token") in problems[0].message


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("  \n")
    block = "  slack:\n    channel: '#releng'\n    token-file: token\n"

    problems = diagnostics(with_notify(block), {}, tmp_path)

    assert problems[0].line == NOTIFY_LINE + 3
    assert problems[0].message == f"token-file {tmp_path / 'token'} is empty"


def test_sentry_without_a_dsn_is_refused(tmp_path: Path) -> None:
    [problem] = diagnostics(with_notify("  sentry:\n    environment: prod\n"), {}, tmp_path)

    assert problem.line == NOTIFY_LINE + 2
    assert "notify.sentry needs a DSN" in problem.message
    assert "SENTRY_DSN" in problem.message
    assert "dsn-file" in problem.message


def test_an_unreadable_dsn_file_is_refused(tmp_path: Path) -> None:
    problems = diagnostics(with_notify("  sentry: {dsn-file: nope}\n"), {}, tmp_path)

    assert problems[0].line == NOTIFY_LINE + 1
    assert "cannot read dsn-file" in problems[0].message


def test_schema_errors_in_notify_are_positioned(tmp_path: Path) -> None:
    block = "  give-up-after: soon\n  canceled: sometimes\n"

    problems = diagnostics(with_notify(block, extra="watch-every: often\n"), {}, tmp_path)

    messages = {(p.line, p.message.split(" must ")[0]) for p in problems}
    assert messages == {
        (NOTIFY_LINE + 1, "give-up-after"),
        (NOTIFY_LINE + 2, "canceled"),
        (NOTIFY_LINE + 3, "watch-every"),
    }


# Secrets stay secret


def test_masked_says_set_and_never_shows_a_secret(tmp_path: Path) -> None:
    token, dsn = slack_token(), f"https://{canary()}@o1.ingest.sentry.io/42"

    config = load(FULL, {"SLACK_BOT_TOKEN": token, "SENTRY_DSN": dsn}, tmp_path)
    masked = config.masked()

    dumped = json.dumps(masked)
    assert token not in dumped
    assert dsn not in dumped
    assert token not in repr(config)
    assert dsn not in repr(config)
    notify = masked["notify"]
    assert (notify["slack"]["token"], notify["slack"]["webhook-url"]) == ("<set>", None)
    assert notify["sentry"] == {"dsn": "<set>", "environment": "staging", "monitors": False}
    assert notify["slack"]["routes"][0]["events"] == ["task-failed", "group-failed", "recovered"]
    assert (notify["canceled"], notify["deadline-exceeded"]) == (True, False)
    assert notify["give-up-after"] == "6h"
    assert masked["watch-every"] == "45s"
    assert [p["watch-task-groups"] for p in masked["projects"]] == [
        True,
        ["nightly", "weekly"],
        False,
    ]


def test_masked_shows_a_webhook_as_set(tmp_path: Path) -> None:
    webhook = f"https://hooks.slack.com/services/T0/B0/{canary()}"

    config = load(with_notify("  slack: {}\n"), {"SLACK_WEBHOOK_URL": webhook}, tmp_path)

    dumped = json.dumps(config.masked())
    assert webhook not in dumped
    assert webhook.rsplit("/", 1)[1] not in dumped
    assert config.masked()["notify"]["slack"]["webhook-url"] == "<set>"
    assert config.masked()["notify"]["slack"]["token"] is None
    assert config.masked()["notify"]["sentry"] is None


def test_masked_hides_credentials_in_the_slack_api_url(tmp_path: Path) -> None:
    password = canary()
    block = f"  slack:\n    api-url: https://relay:{password}@slack.example.com/api/\n"
    block += "    channel: '#releng'\n"

    config = load(with_notify(block), {"SLACK_BOT_TOKEN": slack_token()}, tmp_path)

    assert password not in json.dumps(config.masked())


def test_secret_named_variables_are_remembered_and_scrubbed_afterwards(tmp_path: Path) -> None:
    remembered = {
        "MY_API_TOKEN": canary(),
        "DEPLOY_PASSWORD": canary(),
        "SENTRY_DSN": canary(),
        "GITHUB_WEBHOOK_URL": f"https://example.com/hook/{canary()}",
    }
    ordinary = {"MY_GREETING": canary(), "TOKEN_COUNT": canary()}
    before = " ".join([*remembered.values(), *ordinary.values()])
    assert scrub(before) == before, "the canaries look like nothing scrub knows by itself"

    load(TASKCLUSTER + PROJECTS, {**remembered, **ordinary}, tmp_path)

    text = "; ".join(f"{name} is {value}" for name, value in {**remembered, **ordinary}.items())
    scrubbed = scrub(text)
    for value in remembered.values():
        assert value not in scrubbed
    for value in ordinary.values():
        assert value in scrubbed, "a variable whose name says nothing is not masked"
    assert "MY_API_TOKEN is ***" in scrubbed


def test_secrets_read_from_files_are_remembered(tmp_path: Path) -> None:
    token = canary()
    (tmp_path / "token").write_text(token)
    block = "  slack:\n    token-file: token\n    channel: '#releng'\n"
    assert scrub(f"posting with {token}") == f"posting with {token}"

    load(with_notify(block), {}, tmp_path)

    assert scrub(f"posting with {token}") == "posting with ***"


def test_parsing_alone_remembers_no_secret(tmp_path: Path) -> None:
    token, variable = canary(), canary()
    (tmp_path / "token").write_text(token)
    block = "  slack:\n    token-file: token\n    channel: '#releng'\n"
    text = f"posting with {token} and {variable}"

    environ = {"MY_TOKEN": variable}
    config = parse_config(with_notify(block), "service.yml", environ, base_dir=tmp_path)

    assert config.notify.slack is not None
    assert config.notify.slack.token == token
    assert scrub(text) == text, "only remember_secrets touches what redaction remembers"
    remember_secrets(config, environ)
    assert scrub(text) == "posting with *** and ***"


# Where events go


def event(
    kind: EventKind = EventKind.TASK_FAILED,
    *,
    project: str = "mozilla-central",
    job: str | None = "nightly-desktop",
) -> Event:
    return Event(
        key=f"{kind}/{project}/{job}", kind=kind, project=project, title="t", at=T, job=job
    )


ROUTED = SlackSettings(
    token="xoxb-routing",
    channel="#releng",
    mentions=(SHERIFFS,),
    routes=(
        SlackRoute(
            channel="#nightly",
            projects=("mozilla-*",),
            jobs=("nightly-*",),
            events=(EventKind.TASK_FAILED, EventKind.RECOVERED),
            mentions=("<@U0NIGHT>",),
        ),
        SlackRoute(channel="#central", projects=("mozilla-central",)),
        SlackRoute(channel="#try", projects=("try",), jobs=("*",)),
    ),
)


def test_events_no_route_takes_go_to_the_default_channel() -> None:
    router = Router(NotifySettings(slack=SlackSettings(token="xoxb-x", channel="#releng")))

    assert router.destinations(event()) == ("slack:#releng",)
    assert router.destinations(event(EventKind.PROJECT_BROKEN, job=None)) == ("slack:#releng",)
    assert router.mentions(event()) == ()


def test_the_first_matching_route_wins() -> None:
    router = Router(NotifySettings(slack=ROUTED))

    # Matches the first route, and the second too: the first wins.
    assert router.destinations(event()) == ("slack:#nightly",)
    assert router.mentions(event()) == ("<@U0NIGHT>",)
    # Not a kind the first route takes: the second, with the default mentions.
    assert router.destinations(event(EventKind.FIRE_FAILED)) == ("slack:#central",)
    assert router.mentions(event(EventKind.FIRE_FAILED)) == (SHERIFFS,)
    # A job the first route's pattern does not match.
    assert router.destinations(event(job="weekly")) == ("slack:#central",)
    # Another project matching the first route's pattern.
    assert router.destinations(event(project="mozilla-beta")) == ("slack:#nightly",)


def test_a_route_with_job_patterns_does_not_take_events_about_no_job() -> None:
    router = Router(NotifySettings(slack=ROUTED))

    assert router.destinations(event(project="try", job="hourly")) == ("slack:#try",)
    assert router.destinations(event(EventKind.PROJECT_BROKEN, project="try", job=None)) == (
        "slack:#releng",
    )


def test_patterns_are_case_sensitive_shell_patterns() -> None:
    router = Router(NotifySettings(slack=ROUTED))

    assert router.destinations(event(project="Mozilla-Central", job="nightly-x")) == (
        "slack:#releng",
    )
    assert router.destinations(event(project="mozilla-beta", job="nightly")) == ("slack:#releng",)


def test_a_test_message_goes_where_its_project_and_job_would_whatever_the_kind() -> None:
    router = Router(NotifySettings(slack=ROUTED))

    assert router.destinations(event(EventKind.TEST)) == ("slack:#nightly",)
    assert router.destinations(event(EventKind.SLOTS_SKIPPED)) == ("slack:#central",)


def test_without_a_default_channel_events_no_route_takes_go_nowhere() -> None:
    routes_only = SlackSettings(
        token="xoxb-x", routes=(SlackRoute(channel="C0TRY", projects=("try",)),)
    )
    router = Router(NotifySettings(slack=routes_only))

    assert router.destinations(event(project="try")) == ("slack:C0TRY",)
    assert router.destinations(event(project="mozilla-central")) == ()


def test_a_webhook_is_one_destination() -> None:
    webhook = SlackSettings(
        webhook_url="https://hooks.slack.com/services/T/B/X", mentions=("@here",)
    )
    router = Router(NotifySettings(slack=webhook))

    assert router.destinations(event()) == ("slack-webhook",)
    assert router.destinations(event(EventKind.EXPIRED, job=None)) == ("slack-webhook",)
    assert router.mentions(event()) == ("@here",)


def test_without_slack_there_is_no_destination_and_no_mention() -> None:
    router = Router(NotifySettings(sentry=SentrySettings(dsn="https://k@sentry/1")))

    assert router.destinations(event()) == ()
    assert router.mentions(event()) == ()


def test_check_ins_go_to_sentry_only_when_its_monitors_are_on() -> None:
    dsn = "https://k@sentry/1"

    assert Router(NotifySettings(sentry=SentrySettings(dsn=dsn))).check_ins() == ("sentry",)
    assert Router(NotifySettings(sentry=SentrySettings(dsn=dsn, monitors=False))).check_ins() == ()
    assert Router(NotifySettings(slack=ROUTED)).check_ins() == ()


def test_a_loaded_configuration_routes_as_written(tmp_path: Path) -> None:
    config = load(FULL, {"SLACK_BOT_TOKEN": slack_token(), "SENTRY_DSN": "https://k@s/1"}, tmp_path)
    router = Router(config.notify)

    assert router.destinations(event(job="weekly")) == ("slack:#nightly",)
    assert router.destinations(event(project="try", job=None)) == ("slack:C0TRY",)
    assert router.destinations(event(project="autoland")) == ("slack:#releng",)
    assert router.mentions(event(project="autoland")) == (SHERIFFS, "@here")
    assert router.check_ins() == ()
