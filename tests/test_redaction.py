"""Secret scrubbing: what is masked, what must survive, the registry, and the logs that use it.

Canary secrets are made up per test; a test fails if any of them reaches what people read.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import string
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from scheduler.common import logs, redaction
from scheduler.common.redaction import (
    MASK,
    is_secret_key,
    redact,
    remember_secret,
    scrub,
    scrub_data,
    without_userinfo,
)

BASE64URL = string.ascii_letters + string.digits + "-_"
HEX = "0123456789abcdef"
# Two slugids, as Taskcluster's auth service makes access tokens.
TC_TOKEN = "QAGF9Y1ZS_2tgzS1zeVqfgSt0hmnLvjUMsFVrA1STyqg"


def canary(prefix: str = "", length: int = 24) -> str:
    return prefix + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(length)
    )


# -- patterns -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("clone https://user:hunter22@hg.example/repo", "clone https://***@hg.example/repo"),
        # Over http(s) a lone user is a token (`https://<token>@github.com`).
        ("clone https://ghp_abc123@github.com/o/r", "clone https://***@github.com/o/r"),
        ("pip git+https://ghp_abc123@github.com/o/r", "pip git+https://***@github.com/o/r"),
        ("ssh://deploy:hunter22@github.com/o/r", "ssh://***@github.com/o/r"),
        ("postgresql://u:hunter22@localhost/x", "postgresql://***@localhost/x"),
        # Without a scheme, as text derived from a URL has it; the password may hold : and @.
        (
            "assume:repo:bot:hunter22@github.com/org/private:cron:*",
            "***@github.com/org/private:cron:*",
        ),
        ("fetch bot:p@ss:w0rd@host.example/x", "fetch ***@host.example/x"),
        ("dial u:hunter22@localhost:5432", "dial ***@localhost:5432"),
        ("{'url': 'bot:hunter22@10.0.0.1/x'}", "{'url': '***@10.0.0.1/x'}"),
        ("xoxb-1234-5678-AbCdEfGh in use", "xoxb-*** in use"),
        ("user token xoxp-1-2-3-abcdef", "user token xoxp-***"),
        ("refresh xoxe.xoxp-1-Mi0yLTE", "refresh xoxe.xoxp-***"),
        ("app xapp-1-A0123-456-abcdef", "app xapp-***"),
        (
            "posting to https://hooks.slack.com/services/T0001/B0002/XXXXXXXXXXXXXXXX failed",
            "posting to https://hooks.slack.com/services/*** failed",
        ),
        ("Bearer eyJhbGciOi.eyJzdWIi.sig-_== rest", "Bearer *** rest"),
        ('Authorization: Hawk id="c", ts="1", mac="m"\nnext', "Authorization: ***\nnext"),
        ('curl -H "Authorization: Basic dXNlcjpwYXNz" url', 'curl -H "Authorization: ***" url'),
        ("GET /v1/x?access_token=abc123&limit=5", "GET /v1/x?access_token=***&limit=5"),
        (
            '{"accessToken": "abc\\"def", "clientId": "me"}',
            '{"accessToken": "***", "clientId": "me"}',
        ),
        ("{'password': 'p w', 'user': 'u'}", "{'password': '***', 'user': 'u'}"),
        ("{'Authorization': b'Hawk id=\"x\"'}", "{'Authorization': b'***'}"),
        ("SLACK_TOKEN=abc def", "SLACK_TOKEN=*** def"),
        ("secret: s3kr1t, next: 1", "secret: ***, next: 1"),
        ("Creds(api_key='k e y', region=us)", "Creds(api_key=***, region=us)"),
        ("SENTRY_DSN=https://abc@o1.ingest.sentry.io/2", "SENTRY_DSN=***"),
        ("client_secret = abc", "client_secret = ***"),
        ("PRIVATE_KEY: abc", "PRIVATE_KEY: ***"),
        (f"credentials rejected for {TC_TOKEN}.", "credentials rejected for ***."),
        (f"TASKCLUSTER_ACCESS_TOKEN={TC_TOKEN}", "TASKCLUSTER_ACCESS_TOKEN=***"),
    ],
)
def test_secret_looking_text_is_masked(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Task ids, revisions and hashes are what people read a message for.
        "task fQi4vhuYRxi7LaPfrpr3sw in group JFHOaNjqQZiYdsu4qlbPlQ failed",
        "revision 0123456789abcdef0123456789abcdef01234567 of mozilla-central",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "https://firefox-ci-tc.services.mozilla.com/tasks/fQi4vhuYRxi7LaPfrpr3sw",
        "gecko.v2.mozilla-central.revision.0123456789abcdef0123456789abcdef01234567.firefox",
        "hook project-releng/cron-task-mozilla-central-nightly-desktop fired",
        # 44 characters, but a lowercase name, not a token.
        "job release-notify-promote-firefox-rc-shippable fired",
        "check-in 9ec79c33ec9942ab8353589fcb2e04dc, trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "tokens: 5, token_count=6, secret_name=relay, passwordless login",
        "2024-05-01T10:15:00Z slot, uuid 123e4567-e89b-12d3-a456-426614174000",
        "xoxb- is where a bot token starts",
        "see https://hooks.slack.com/ and Bearer-less requests",
        # A login name alone is not a credential: ssh authenticates with keys.
        "cloning ssh://git@github.com/mozilla/gecko.git",
        "hg pull ssh://hg@hg.mozilla.org/mozilla-central",
        "git+ssh://git@github.com/o/r and git@github.com:o/r.git",
        "ledger postgresql+psycopg://scheduler@db:5432/scheduler",
        "image mozillareleases/taskgraph:decision-v1@sha256:0123abcd",
        "mail releng@mozilla.com at 10:15",
    ],
)
def test_what_people_read_a_message_for_survives(text: str) -> None:
    assert scrub(text) == text


@given(st.text(BASE64URL, min_size=22, max_size=22))
def test_any_slugid_survives(slug: str) -> None:
    text = f"task {slug} failed"
    assert scrub(text) == text


@given(st.sampled_from([40, 64]).flatmap(lambda n: st.text(HEX, min_size=n, max_size=n)))
def test_any_git_revision_or_hash_survives(digest: str) -> None:
    text = f"at {digest}: done"
    assert scrub(text) == text


def _secret_forms() -> st.SearchStrategy[tuple[str, str]]:
    """(text that leaks a secret, the secret): each shape `scrub` knows."""
    token = st.text(string.ascii_letters + string.digits, min_size=12, max_size=40)
    slack = st.tuples(
        st.sampled_from(["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xapp-"]), token
    )
    key = st.sampled_from(
        [
            "access_token",
            "accessToken",
            "token",
            "password",
            "Secret",
            "api_key",
            "APIKEY",
            "dsn",
            "client_secret",
            "private_key",
            "TASKCLUSTER_ACCESS_TOKEN",
        ]
    )
    separator = st.sampled_from(["=", ": ", " = ", ":"])
    return st.one_of(
        slack.map(lambda p: (p[0] + p[1], p[1])),
        token.map(lambda t: (f"https://hooks.slack.com/services/T1/B2/{t}", t)),
        token.map(lambda t: (f"Bearer {t}", t)),
        token.map(lambda t: (f"https://ci:{t}@example.com/x", t)),
        token.map(lambda t: (f"https://{t}@github.com/x", t)),
        token.map(lambda t: (f"assume:repo:ci:{t}@github.com/o/r:cron:*", t)),
        st.tuples(key, separator, token).map(lambda p: (f"{p[0]}{p[1]}{p[2]}", p[2])),
        st.tuples(key, token).map(lambda p: (json.dumps({p[0]: p[1]}), p[1])),
        st.tuples(key, token).map(lambda p: (repr({p[0]: p[1]}), p[1])),
        # A Taskcluster token: 44 characters with at least one of each case.
        st.text(BASE64URL, min_size=42, max_size=42).map(lambda t: ("aZ" + t, "aZ" + t)),
    )


@given(
    _secret_forms(),
    st.text(string.ascii_letters + " .,()", max_size=30),
    st.text(string.ascii_letters + " .,()", max_size=30),
)
def test_secret_is_gone_whatever_surrounds_it(
    form: tuple[str, str], before: str, after: str
) -> None:
    leaked, secret = form
    scrubbed = scrub(f"{before} {leaked} {after}")
    # The surroundings may happen to spell the secret themselves; only theirs may remain.
    assert scrubbed.count(secret) <= before.count(secret) + after.count(secret)
    assert MASK in scrubbed
    assert scrub(scrubbed) == scrubbed


def test_the_key_stays_visible() -> None:
    assert scrub("refresh_token=abcdefgh1234 and SLACK_WEBHOOK_URL=x") == (
        "refresh_token=*** and SLACK_WEBHOOK_URL=***"
    )


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("access_token", True),
        ("accessToken", True),
        ("TASKCLUSTER_ACCESS_TOKEN", True),
        ("Authorization", True),
        ("sentry_dsn", True),
        ("apiKey", True),
        ("client-secret", True),
        ("token_count", False),
        ("tokens", False),
        ("project", False),
        ("task_id", False),
        ("key", False),
    ],
)
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_redact_and_without_userinfo_are_unchanged() -> None:
    url = "https://x-access-token:ghs_abc@github.com/mozilla/gecko"
    assert redact(url) == "https://***@github.com/mozilla/gecko"
    assert without_userinfo(url) == "https://github.com/mozilla/gecko"


def test_redact_masks_a_password_given_as_a_query_parameter() -> None:
    url = "postgresql+psycopg://scheduler@db:5432/ledger?password=s3cretvalue&sslmode=require"
    assert redact(url) == (
        "postgresql+psycopg://scheduler@db:5432/ledger?password=***&sslmode=require"
    )


def test_redact_keeps_a_login_name_and_without_userinfo_drops_it() -> None:
    url = "ssh://git@github.com/mozilla/gecko"
    assert redact(url) == url
    assert redact("bot:hunter22@github.com:org/private") == "***@github.com:org/private"
    assert without_userinfo(url) == "ssh://github.com/mozilla/gecko"


# -- the hints: what each rule needs before its pattern runs ---------------------------------

# Pieces of what the patterns look for, and of what they must not take for it.
PIECES = [
    *"aAbBtTkKoOeEnNsSpPwWdDrRcCiI_-.:=@/\"' \n&;,)]}x019·é",
    *("token", "Token", "TOKEN", "password", "secret", "api_key", "Authorization", "Bearer "),
    *("https://", "git+ssh://", "user:pw@", "host.example.com", "xoxb-", "xapp-", "dsn", ": "),
    *("hooks.slack.com/services/", "\u0130", "\u0131", "\u017f", "\u212a", "\ud800", TC_TOKEN),
]


def _every_rule(text: str) -> str:
    """What scrub did before it had hints: every pattern, in order, over the whole text."""
    for pattern, replacement, _ in redaction._RULES:
        text = pattern.sub(replacement, text)
    return text


@given(st.lists(st.sampled_from(PIECES), max_size=40), st.integers(0, 300))
def test_the_hints_change_nothing_that_is_masked(pieces: list[str], padding: int) -> None:
    text = "".join(pieces)
    assert scrub(text) == _every_rule(text)
    # A page's length (no short text remembered), the same.
    page = f"{'<p>row</p>' * padding}{text}"
    assert scrub(page) == _every_rule(page)


# Digits and the punctuation of times: scrub runs no rule over text made only of these.
INERT = "0123456789:.+TZ-"


@given(st.text(INERT) | st.lists(st.sampled_from(["2026-11-24T10:15:00Z", *INERT])).map("".join))
def test_no_rule_matches_digits_and_the_punctuation_of_times(text: str) -> None:
    """What lets scrub leave a slot, a date or a count as it is without running the rules."""
    assert redaction._INERT.fullmatch(text)
    assert [rule.pattern.pattern for rule in redaction._RULES if rule.pattern.search(text)] == []
    assert scrub(text) == _every_rule(text) == text


def test_a_remembered_secret_of_digits_is_masked_in_a_time() -> None:
    digits = "".join(secrets.choice(string.digits) for _ in range(16))
    remember_secret(digits)

    assert scrub(f"{digits}-11-24T10:15:00Z") == "***-11-24T10:15:00Z"
    assert scrub_data({"slot": f"2026-{digits}"}) == {"slot": "2026-***"}


def test_the_ascii_twins_are_every_character_a_pattern_takes_for_an_ascii_letter() -> None:
    letters = re.compile("[a-z]", re.IGNORECASE)
    twins = {
        chr(code): letter
        for code in range(0x80, sys.maxunicode + 1)
        if letters.fullmatch(chr(code))
        for letter in string.ascii_lowercase
        if re.fullmatch(letter, chr(code), re.IGNORECASE)
    }
    assert twins == dict(redaction._ASCII_TWINS)
    assert "".join(twins).lower() != "".join(twins.values())  # why str.lower() alone is not enough


# -- the registry ---------------------------------------------------------------------------


def test_a_remembered_secret_is_masked_whatever_it_looks_like() -> None:
    plain = canary("plain words ")  # Looks like nothing: only the registry knows it.
    assert scrub(f"said {plain}!") == f"said {plain}!"

    remember_secret(plain)

    assert scrub(f"said {plain}!") == "said ***!"
    encoded = plain.replace(" ", "%20")
    assert scrub(f"GET /x?q={encoded}") == "GET /x?q=***"


def test_the_longest_remembered_secret_is_masked_whole() -> None:
    short = canary(length=10)
    longer = short + canary(length=10)
    remember_secret(short)
    remember_secret(longer)

    assert scrub(f"[{longer}] [{short}]") == "[***] [***]"


def test_short_values_are_not_remembered() -> None:
    remember_secret("")
    remember_secret("gecko")  # A project name as a "secret" would blank every message.

    assert scrub("gecko nightly") == "gecko nightly"


def test_a_secret_with_pattern_characters_is_matched_literally() -> None:
    odd = canary("a.b*c(d)[e]") + "\\"
    remember_secret(odd)

    assert scrub(f"x {odd} y") == "x *** y"
    assert scrub("x a_b*c(d)[e] y") == "x a_b*c(d)[e] y"


# -- scrub_data -----------------------------------------------------------------------------


def test_scrub_data_masks_keys_and_values_and_returns_a_copy() -> None:
    token = canary("xoxb-")
    data: dict[str, Any] = {
        "project": "gecko",
        "credentials": {"clientId": "static/x", "accessToken": TC_TOKEN},
        "headers": [("Authorization", "Bearer abcdefghij"), ("Accept", "application/json")],
        "password": 12345678,
        "api_key": None,
        "has_secret": False,
        "note": f"posted with {token}",
        "slot": "2024-05-01T10:15:00Z",
        "count": 3,
    }
    original = json.dumps(data)

    scrubbed = scrub_data(data)

    assert scrubbed == {
        "project": "gecko",
        "credentials": MASK,
        "headers": [("Authorization", "Bearer ***"), ("Accept", "application/json")],
        "password": MASK,
        "api_key": None,
        "has_secret": False,
        "note": "posted with xoxb-***",
        "slot": "2024-05-01T10:15:00Z",
        "count": 3,
    }
    assert isinstance(scrubbed["headers"][0], tuple)
    assert json.dumps(data) == original


def test_scrub_data_leaves_other_objects_alone() -> None:
    marker = object()
    assert scrub_data([marker, 1.5, b"bytes"]) == [marker, 1.5, b"bytes"]


# -- logs -----------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure(stream=stream, json=True)
    yield stream
    # configure changes the process-wide structlog setup; put the library's back.
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class Holder:
    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"Holder(slack={self.token})"


def test_structlog_lines_are_scrubbed(log_stream: io.StringIO) -> None:
    token, password, remembered = canary("xoxb-"), canary(), canary("known-")
    remember_secret(remembered)
    log = structlog.get_logger().bind(project="gecko", url=f"https://ci:{password}@hg.example/x")

    log.info(
        f"posted with {token}",
        headers={"Authorization": f"Bearer {password}", "Accept": "json"},
        access_token=remembered,
        holder=Holder(token),
        task_id="fQi4vhuYRxi7LaPfrpr3sw",
    )

    [line] = lines(log_stream)
    text = log_stream.getvalue()
    assert token not in text
    assert password not in text
    assert remembered not in text
    assert line["event"] == "posted with xoxb-***"
    assert line["url"] == "https://***@hg.example/x"
    assert line["headers"] == {"Authorization": "***", "Accept": "json"}
    assert line["access_token"] == MASK
    assert line["holder"] == "Holder(slack=xoxb-***)"
    assert (line["project"], line["task_id"]) == ("gecko", "fQi4vhuYRxi7LaPfrpr3sw")


def test_tracebacks_in_structlog_lines_are_scrubbed(log_stream: io.StringIO) -> None:
    remembered = canary("known-")
    remember_secret(remembered)

    def fail(token: str) -> None:
        raise RuntimeError(f"createTask refused {TC_TOKEN} with {token}")

    try:
        fail(remembered)
    except RuntimeError:
        structlog.get_logger().exception("fire failed", job="nightly")

    [line] = lines(log_stream)
    assert "RuntimeError: createTask refused *** with ***" in line["exception"]
    assert TC_TOKEN not in log_stream.getvalue()
    assert remembered not in log_stream.getvalue()
    assert line["job"] == "nightly"


def test_console_lines_are_scrubbed_too() -> None:
    stream = io.StringIO()
    token = canary("xoxp-")
    logs.configure(stream=stream, json=False)
    try:
        structlog.get_logger().warning("slack refused", token=token, note=f"with {token}")
    finally:
        structlog.reset_defaults()

    assert token not in stream.getvalue()
    assert "slack refused" in stream.getvalue()


def test_standard_library_records_are_scrubbed(
    log_stream: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    password = canary()
    # What a client library logs, through the root handlers that configure set up.
    logger = logging.getLogger("taskcluster.test_redaction")

    logger.warning("retrying %s", f"https://ci:{password}@queue.example/v1/task")
    try:
        raise ConnectionError(f"reset by https://ci:{password}@queue.example")
    except ConnectionError:
        logger.exception("gave up")

    assert [r.getMessage() for r in caplog.records] == [
        "retrying https://***@queue.example/v1/task",
        "gave up",
    ]
    assert password not in caplog.text
    assert "ConnectionError: reset by https://***@queue.example" in caplog.text


def test_scrub_filter_on_a_handler_covers_child_loggers() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ScrubFilter())
    parent = logging.getLogger("tc-scheduler-test-parent")
    parent.addHandler(handler)
    parent.propagate = False
    token = canary("xoxb-")
    try:
        child = logging.getLogger("tc-scheduler-test-parent.child")
        child.error("token %s, %d tries", token, 3)
        # Arguments that do not fit the message still reach the handler, masked.
        child.error("only %s", token, 3)
    finally:
        parent.removeHandler(handler)

    assert stream.getvalue().splitlines() == [
        "token xoxb-***, 3 tries",
        "only %s ('xoxb-***', 3)",
    ]
