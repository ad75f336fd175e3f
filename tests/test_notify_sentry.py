"""Sentry through the real sentry_sdk into the local fake: no secret arrives, context does.

Also monitor slugs, check-in ids, and check-ins opened and closed with their monitor config.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk
from hypothesis import given
from hypothesis import strategies as st
from sentry_sdk.integrations.logging import LoggingIntegration

from scheduler.common.redaction import remember_secret, scrub
from scheduler.notify import sentry
from tests.emulator.sentry import FakeSentry, Item
from tests.support.fakes import SENTRY_KEY

FLUSH = 60.0  # only a hang guard: flushing returns once everything is sent
REVISION = "0123456789abcdef0123456789abcdef01234567"
TAGS = {"project": "gecko", "job": "nightly-desktop", "slot": "2024-05-01T10:15:00Z"}

Configure = Callable[..., None]


def canary(prefix: str = "") -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


@pytest.fixture
def configure(fake_sentry: FakeSentry) -> Iterator[Configure]:
    def init(**options: Any) -> None:
        sentry.configure(
            fake_sentry.dsn,
            environment="test",
            release="tc-scheduler@test",
            # Integrations patch libraries process-wide (Starlette included, which the fakes
            # run on); a test must not leave them behind.
            default_integrations=False,
            auto_enabling_integrations=False,
            **options,
        )

    # Tags, breadcrumbs and the trace (whose header names the DSN's key) live on scopes that
    # outlast a client: keep this test's to itself.
    with sentry_sdk.isolation_scope() as scope:
        scope.set_new_propagation_context()
        yield init
    sentry.close(timeout=FLUSH)


def everything_received(fake_sentry: FakeSentry) -> str:
    return json.dumps([[item.headers, _text(item.payload)] for item in fake_sentry.items])


def _text(payload: Any) -> Any:
    return payload.decode(errors="replace") if isinstance(payload, bytes) else payload


class Canaries:
    """Secrets of every kind, made up for one test, each where a secret may hide."""

    def __init__(self) -> None:
        self.tc_token = "Ab" + "".join(
            secrets.choice(string.ascii_letters + string.digits + "-_") for _ in range(42)
        )
        self.slack_token = canary("xoxb-1234-")
        self.webhook_path = canary("T0/B0/")
        self.bearer = canary()
        self.password = canary()
        self.remembered = canary("plain ")  # Looks like nothing: only the registry knows it.
        self.in_a_tag = canary("xoxp-")
        self.in_a_breadcrumb = canary()
        self.in_a_repr = canary()
        self.in_an_extra = canary()

    @property
    def values(self) -> list[str]:
        return [v for k, v in vars(self).items() if not k.startswith("_")]


class Client:
    """An object whose repr, made only when Sentry serializes the frame, shows a secret."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"Client(https://hooks.slack.com/services/{self.token})"


def in_scope(*values: object) -> None:
    """Nothing: the fire's locals are there for Sentry to read from the frame."""


def fire(canaries: Canaries) -> None:
    # Local variables as a failing fire would have them: secrets among the useful context.
    # Sentry sends the first ten of a frame's locals: keep them at ten.
    project = "gecko"
    task_id = "fQi4vhuYRxi7LaPfrpr3sw"
    access_token = canaries.tc_token
    options = {
        "credentials": {"clientId": "static/tc-scheduler", "accessToken": access_token},
        "slack": canaries.slack_token,
    }
    webhook = f"https://hooks.slack.com/services/{canaries.webhook_path}"
    headers = [("Authorization", f"Bearer {canaries.bearer}")]
    repository = f"https://ci:{canaries.password}@hg.example/gecko"
    note = f"said {canaries.remembered} once"
    client = Client(canaries.in_a_repr)
    in_scope(options, webhook, headers, repository, note, client)
    raise RuntimeError(
        f"createTask for {project} at {REVISION} ({task_id}) refused with token "
        f"{access_token}: Bearer {canaries.bearer}, {canaries.remembered}"
    )


def test_a_captured_exception_keeps_context_and_no_secret(
    fake_sentry: FakeSentry, configure: Configure
) -> None:
    canaries = Canaries()
    remember_secret(canaries.remembered)
    configure()
    sentry_sdk.set_tag("note", f"posted with {canaries.in_a_tag}")
    sentry_sdk.add_breadcrumb(
        category="http",
        message=f"POST https://ci:{canaries.in_a_breadcrumb}@hooks.example",
        data={"token": canaries.in_a_breadcrumb, "url": "https://queue.example/v1/task"},
    )
    sentry_sdk.set_extra("request", {"api_key": canaries.password, "attempt": 2})
    # Its repr is only made when the event is serialized, after the event scrubber ran.
    sentry_sdk.set_extra("client", Client(canaries.in_an_extra))

    try:
        fire(canaries)
    except RuntimeError as error:
        sentry.capture_exception(error, tags=TAGS)
    sentry_sdk.flush(FLUSH)

    [event] = [item.json for item in fake_sentry.wait_for("event")]
    received = everything_received(fake_sentry)
    leaked = [value for value in canaries.values if value in received]
    assert leaked == []
    assert SENTRY_KEY not in received
    # What people read the event for is still there.
    assert {k: event["tags"][k] for k in TAGS} == TAGS
    assert event["tags"]["note"] == "posted with xoxp-***"
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"].startswith(
        "createTask for gecko at 0123456789abcdef0123456789abcdef01234567 "
        "(fQi4vhuYRxi7LaPfrpr3sw) refused with token ***: Bearer ***, ***"
    )
    frame = exception["stacktrace"]["frames"][-1]
    assert frame["function"] == "fire"
    assert frame["vars"]["project"] == "'gecko'"
    assert frame["vars"]["task_id"] == "'fQi4vhuYRxi7LaPfrpr3sw'"
    assert len(frame["vars"]) == 10
    assert frame["vars"]["client"] == "Client(https://hooks.slack.com/services/***)"
    [crumb] = event["breadcrumbs"]["values"]
    assert crumb["message"] == "POST https://***@hooks.example"
    assert crumb["data"]["url"] == "https://queue.example/v1/task"
    assert event["extra"]["request"]["attempt"] == 2
    assert event["environment"] == "test"
    assert event["release"] == "tc-scheduler@test"


def test_a_secret_is_masked_before_a_long_value_is_cut(
    fake_sentry: FakeSentry, configure: Configure
) -> None:
    token = Canaries().tc_token
    configure(max_value_length=80)

    sentry.capture_exception(RuntimeError("x" * 60 + f" refused {token}"), tags=TAGS)
    sentry_sdk.flush(FLUSH)

    [event] = [item.json for item in fake_sentry.wait_for("event")]
    [exception] = event["exception"]["values"]
    assert exception["value"] == "x" * 60 + " refused ***"
    # Cut first, the token's head would have gone out: too short for any pattern to know it.
    assert token[:8] not in everything_received(fake_sentry)


def test_the_test_event_arrives(fake_sentry: FakeSentry, configure: Configure) -> None:
    configure()

    event_id = sentry.test(timeout=FLUSH)

    [event] = [item.json for item in fake_sentry.wait_for("event")]
    assert event["event_id"] == event_id
    assert (event["level"], event["message"]) == (
        "info",
        "tc-scheduler notify test: Sentry is set up",
    )


def test_without_a_client_the_test_event_goes_nowhere(fake_sentry: FakeSentry) -> None:
    assert sentry.test(timeout=0) is None
    assert fake_sentry.items == []


def test_tags_apply_to_one_event_only(fake_sentry: FakeSentry, configure: Configure) -> None:
    configure()

    sentry.capture_exception(LookupError("no such hook"), tags=TAGS)
    sentry_sdk.capture_message("later")
    sentry_sdk.flush(FLUSH)

    first, second = (item.json for item in fake_sentry.wait_for("event", count=2))
    assert first["tags"] == TAGS
    assert "project" not in second.get("tags", {})


def test_the_dsn_is_remembered_as_a_secret(fake_sentry: FakeSentry, configure: Configure) -> None:
    configure()

    assert scrub(f"sending to {fake_sentry.dsn}") == "sending to ***"
    assert (
        scrub(f"X-Sentry-Auth: Sentry sentry_key={SENTRY_KEY}")
        == "X-Sentry-Auth: Sentry sentry_key=***"
    )
    assert scrub(f"key {SENTRY_KEY} alone") == "key *** alone"


def test_pii_is_off_and_the_denylist_extends_sentrys(
    fake_sentry: FakeSentry, configure: Configure
) -> None:
    configure()

    client = sentry_sdk.get_client()
    assert not client.should_send_default_pii()
    scrubber = client.options["event_scrubber"]
    assert scrubber.recursive
    assert {"password", "cookie", "access_token", "accesstoken", "dsn", "client_secret"} <= set(
        scrubber.denylist
    )


def test_a_transaction_is_scrubbed(fake_sentry: FakeSentry, configure: Configure) -> None:
    token = canary("xoxb-")
    configure(traces_sample_rate=1.0)

    with (
        sentry_sdk.start_transaction(name="tick", op="cron.tick"),
        sentry_sdk.start_span(op="slack", name=f"chat.postMessage with {token}"),
    ):
        pass
    sentry_sdk.flush(FLUSH)

    [transaction] = [item.json for item in fake_sentry.wait_for("transaction")]
    assert token not in everything_received(fake_sentry)
    assert [s["description"] for s in transaction["spans"]] == ["chat.postMessage with xoxb-***"]


def test_error_logs_become_scrubbed_events_and_breadcrumbs(
    fake_sentry: FakeSentry, configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    token = canary("xoxb-")
    configure(integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)])
    logger = logging.getLogger("slack_sdk.test_notify_sentry")
    caplog.set_level(logging.INFO, logger=logger.name)

    logger.info("posting with %s", token)
    logger.error("post failed with %s", token)
    sentry_sdk.flush(FLUSH)

    [event] = [item.json for item in fake_sentry.wait_for("event")]
    assert token not in everything_received(fake_sentry)
    assert event["logentry"]["formatted"] == "post failed with xoxb-***"
    messages = [crumb["message"] for crumb in event["breadcrumbs"]["values"]]
    assert "posting with xoxb-***" in messages


# -- monitor slugs and check-in ids ---------------------------------------------------------


@pytest.mark.parametrize(
    ("project", "job", "slug"),
    [
        ("gecko", "nightly-desktop", "gecko_nightly-desktop"),
        ("mozilla-central", "l10n_bumper", "mozilla-central_l10n_bumper"),
    ],
)
def test_plain_names_make_readable_slugs(project: str, job: str, slug: str) -> None:
    assert sentry.monitor_slug(project, job) == slug


def test_names_that_need_changing_get_a_hash() -> None:
    slug = sentry.monitor_slug("Mozilla.Central", "Nightly Desktop")

    assert re.fullmatch(r"mozilla-central_nightly-desktop-[0-9a-f]{8}", slug)
    assert sentry.monitor_slug("Mozilla.Central", "Nightly Desktop") == slug
    assert sentry.monitor_slug("mozilla.central", "Nightly Desktop") != slug


def test_long_names_are_cut_with_a_hash() -> None:
    job = "release-promotion-" + "x" * 60
    first, second = sentry.monitor_slug("gecko", job + "a"), sentry.monitor_slug("gecko", job + "b")

    assert first != second
    assert len(first) == len(second) == sentry.MAX_SLUG_LENGTH
    assert first.startswith("gecko_release-promotion-xxx")


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80)


@given(names, names)
def test_every_slug_is_valid(project: str, job: str) -> None:
    slug = sentry.monitor_slug(project, job)

    assert re.fullmatch(r"[a-z0-9_-]{1,50}", slug)
    assert not slug.isdigit()


@given(st.tuples(names, names), st.tuples(names, names))
def test_different_names_make_different_slugs(a: tuple[str, str], b: tuple[str, str]) -> None:
    if a != b:
        assert sentry.monitor_slug(*a) != sentry.monitor_slug(*b)


def test_split_between_project_and_job_is_unambiguous() -> None:
    assert sentry.monitor_slug("a-b", "c") != sentry.monitor_slug("a", "b-c")
    assert sentry.monitor_slug("a_b", "c") != sentry.monitor_slug("a", "b_c")


def test_check_in_ids_are_derived_alike_and_differ_per_name() -> None:
    first = sentry.check_in_id_for("gecko/nightly/2024-05-01T10:15:00Z")

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert sentry.check_in_id_for("gecko/nightly/2024-05-01T10:15:00Z") == first
    assert sentry.check_in_id_for("gecko/nightly/2024-05-01T10:30:00Z") != first


def test_a_malformed_check_in_id_is_refused() -> None:
    with pytest.raises(ValueError, match="32 lowercase hex"):
        sentry.check_in("gecko_nightly", "ok", check_in_id="not-an-id", schedule=None)


# -- check-ins ------------------------------------------------------------------------------


def check_ins(fake_sentry: FakeSentry, count: int) -> list[dict[str, Any]]:
    items: list[Item] = fake_sentry.wait_for("check_in", count=count)
    return [item.json for item in items]


def test_check_in_opened_by_one_replica_is_closed_by_another(
    fake_sentry: FakeSentry, configure: Configure
) -> None:
    configure()
    slug = sentry.monitor_slug("gecko", "nightly-desktop")
    run = "gecko/nightly-desktop/2024-05-01T10:00:00Z"

    sentry.check_in(
        slug,
        "in_progress",
        check_in_id=sentry.check_in_id_for(run),
        schedule="0 10,22 * * *",
        max_runtime_minutes=120,
        checkin_margin_minutes=15,
    )
    # The other replica knows the run, not the id: it derives the same one.
    sentry.check_in(
        slug, "ok", check_in_id=sentry.check_in_id_for(run), schedule="0 10,22 * * *", duration=42.5
    )
    sentry_sdk.flush(FLUSH)

    opened, closed = check_ins(fake_sentry, 2)
    assert opened["monitor_slug"] == closed["monitor_slug"] == "gecko_nightly-desktop"
    assert opened["check_in_id"] == closed["check_in_id"] == sentry.check_in_id_for(run)
    assert (opened["status"], closed["status"]) == ("in_progress", "ok")
    assert opened["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "0 10,22 * * *"},
        "timezone": "UTC",
        "checkin_margin": 15,
        "max_runtime": 120,
    }
    assert closed["duration"] == 42.5
    assert closed["monitor_config"]["schedule"]["value"] == "0 10,22 * * *"


def test_an_error_check_in_without_schedule_sends_no_config(
    fake_sentry: FakeSentry, configure: Configure
) -> None:
    configure()
    check_in_id = sentry.check_in_id_for("gecko/weekly/2024-05-06T00:00:00Z")

    sentry.check_in("gecko_weekly", "in_progress", check_in_id=check_in_id, schedule=None)
    sentry.check_in("gecko_weekly", "error", check_in_id=check_in_id, schedule=None, duration=3.0)
    sentry_sdk.flush(FLUSH)

    opened, failed = check_ins(fake_sentry, 2)
    assert (opened["status"], failed["status"]) == ("in_progress", "error")
    assert failed["check_in_id"] == check_in_id
    assert "monitor_config" not in opened
    assert failed["duration"] == 3.0


def test_close_lets_the_next_configure_start_afresh(
    fake_sentry: FakeSentry, configure: Configure
) -> None:
    configure()
    sentry.close(timeout=FLUSH)

    sentry_sdk.capture_message("after close")
    assert not sentry_sdk.get_client().is_active()

    configure()
    sentry_sdk.capture_message("after configure")
    sentry_sdk.flush(FLUSH)

    [event] = [item.json for item in fake_sentry.wait_for("event")]
    assert event["message"] == "after configure"
