"""Slack notifications: rendering events as Block Kit messages, and posting them to the local
fake Slack through the real `slack_sdk`, with a bot token and with an incoming webhook.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from scheduler.notify.events import Event, EventKind, EventSeverity, FailedTask
from scheduler.notify.slack import DeliveryError, Posted, SlackSender
from scheduler.notify.slack_message import SlackMessage, escape, render
from tests.emulator.slack import FakeSlack
from tests.support.fakes import SLACK_TOKEN, SLACK_WEBHOOK_SECRET

ROOT = "https://tc.example.test"
TASK = "fQ2ZC0mNRjyy3Ey2Uy4zSA"
GROUP = "Kx6bPvzhRQ2ahPZ2C1aLCg"
AT = datetime(2024, 5, 1, 3, 17, 42, tzinfo=UTC)
MENTIONS = ("<!subteam^S123>", "<@U456>", "@here", "@channel")


def event(kind: EventKind = EventKind.TASK_FAILED, **changes: Any) -> Event:
    base = Event(
        key=f"{kind.value}/mozilla-central/nightly/2024-05-01T03:15",
        kind=kind,
        project="mozilla-central",
        title="nightly-desktop failed",
        at=AT,
        job="nightly-desktop",
        # 05:15 at UTC+2: the slot is shown in UTC.
        slot=datetime(2024, 5, 1, 5, 15, tzinfo=timezone(timedelta(hours=2))),
        fire_kind="scheduled",
        revision="0123456789abcdef0123456789abcdef01234567",
        task_id=TASK,
        task_group_id=GROUP,
        error="queue.createTask: 403 InsufficientScopes",
        advice="grant the hook role the missing scope, then fire the job again",
    )
    return replace(base, **changes)


def sections(message: SlackMessage) -> list[str]:
    """The mrkdwn text of every `section` with text, in order."""
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]


def fields(message: SlackMessage) -> dict[str, str]:
    """Every field, as label -> value."""
    found: dict[str, str] = {}
    for block in message.blocks:
        for field in block.get("fields", ()):
            label, _, value = field["text"].partition("\n")
            found[label.strip("*")] = value
    return found


def context(message: SlackMessage) -> str:
    [block] = [b for b in message.blocks if b["type"] == "context"]
    return " ".join(element["text"] for element in block["elements"])


def all_text(message: SlackMessage) -> str:
    return message.text + json.dumps(message.blocks)


# -- rendering ---------------------------------------------------------------------------------


def test_task_failure_leads_with_the_task_link_and_the_details() -> None:
    message = render(event(), root_url=ROOT + "/")

    task_url = f"{ROOT}/tasks/{TASK}"
    first = sections(message)[0]
    assert first == f":red_circle: *<{task_url}|nightly-desktop failed>*"
    assert message.text == ":red_circle: nightly-desktop failed"
    assert fields(message) == {
        "Project": "mozilla-central",
        "Job": "nightly-desktop",
        "Slot": "2024-05-01 03:15 UTC",
        "Revision": "`0123456789ab`",
        "Fire kind": "scheduled",
        "Task": f"<{task_url}|{TASK}>",
        "Task group": f"<{ROOT}/tasks/groups/{GROUP}|{GROUP}>",
    }
    assert "*Error*\n```queue.createTask: 403 InsufficientScopes```" in sections(message)
    assert (
        "*What to do:* grant the hook role the missing scope, then fire the job again"
        in sections(message)
    )
    assert context(message) == "`task-failed` · 2024-05-01 03:17:42 UTC"
    assert "//tasks" not in all_text(message)  # The root URL's trailing slash is gone.
    assert not any(b["type"] in ("actions", "header") for b in message.blocks)


def test_without_a_task_the_group_is_the_link_and_without_either_there_is_none() -> None:
    group_only = render(event(task_id=None), root_url=ROOT)
    neither = render(
        event(
            EventKind.PROJECT_BROKEN,
            task_id=None,
            task_group_id=None,
            job=None,
            slot=None,
            revision=None,
            fire_kind=None,
            title="mozilla-central: .cron.yml is broken",
        ),
        root_url=ROOT,
    )

    assert sections(group_only)[0].startswith(f":red_circle: *<{ROOT}/tasks/groups/{GROUP}|")
    assert "Task" not in fields(group_only)
    assert sections(neither)[0] == ":red_circle: *mozilla-central: .cron.yml is broken*"
    assert fields(neither) == {"Project": "mozilla-central"}
    assert "/tasks" not in all_text(neither)


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_renders_with_its_severity_and_mentions_only_failures(kind: EventKind) -> None:
    message = render(event(kind), root_url=ROOT, mentions=MENTIONS)

    failure = event(kind).severity is EventSeverity.FAILURE
    emoji = {
        EventSeverity.FAILURE: ":red_circle:",
        EventSeverity.RECOVERY: ":large_green_circle:",
        EventSeverity.WARNING: ":warning:",
        EventSeverity.INFO: ":information_source:",
    }[event(kind).severity]
    tags = "<!subteam^S123> <@U456> <!here> <!channel>"
    if failure:
        assert message.text == f"{tags} {emoji} nightly-desktop failed"
        assert sections(message)[0].startswith(f"{tags}\n{emoji} *<")
    else:
        assert message.text == f"{emoji} nightly-desktop failed"
        assert sections(message)[0].startswith(f"{emoji} *<")
        for tag in ("<!", "<@", "@here", "@channel", "subteam"):
            assert tag not in all_text(message)
    assert context(message).startswith(f"`{kind.value}` · ")
    assert 1 <= len(message.blocks) <= 50


def test_text_from_the_event_is_escaped_but_links_are_not() -> None:
    message = render(
        event(
            EventKind.GROUP_FAILED,
            title="<b>build & test</b> failed",
            project="proj<&>",
            error="expected '<' & got '>'",
            advice="run `a && b` > log",
            failed_tasks=(FailedTask("abc", "test <linux> & co", "failed", "reason<1>"),),
            facts=(("Owner <x>", "a&b"),),
        ),
        root_url=f"{ROOT}/proxy?a=1&b=2",
    )

    text = all_text(message)
    assert message.text == ":red_circle: &lt;b&gt;build &amp; test&lt;/b&gt; failed"
    assert "&lt;b&gt;build &amp; test&lt;/b&gt; failed" in sections(message)[0]
    assert fields(message)["Project"] == "proj&lt;&amp;&gt;"
    assert fields(message)["Owner &lt;x&gt;"] == "a&amp;b"
    assert "expected '&lt;' &amp; got '&gt;'" in text
    assert "*What to do:* run `a &amp;&amp; b` &gt; log" in sections(message)
    assert f"<{ROOT}/proxy?a=1&b=2/tasks/abc|test &lt;linux&gt; &amp; co> failed" in text
    assert "(reason&lt;1&gt;)" in text
    # Every < and > left is a link or a mention we built; none came from the event.
    for mrkdwn in sections(message):
        for link in re.findall(r"<([^>]*)>", mrkdwn):
            assert link.startswith(f"{ROOT}/proxy?a=1&b=2/tasks/")


def test_group_failure_lists_ten_failed_tasks_then_how_many_more() -> None:
    failed = tuple(
        FailedTask(f"task{i:02d}", f"test-linux64/opt-{i}", "exception" if i % 2 else "failed")
        for i in range(25)
    )
    failed = (replace(failed[0], reason="deadline-exceeded"), *failed[1:])
    message = render(
        event(
            EventKind.GROUP_FAILED,
            title="nightly-desktop: tasks of the group failed",
            failed_tasks=failed,
            total_tasks=412,
        ),
        root_url=ROOT,
    )

    assert "25 of 412 tasks failed" in sections(message)[0]
    assert "(25 of 412 tasks failed)" in message.text
    [listing] = [s for s in sections(message) if s.startswith("*Failed tasks*")]
    lines = listing.splitlines()[1:]
    assert len(lines) == 11
    assert lines[0] == f"• <{ROOT}/tasks/task00|test-linux64/opt-0> failed (deadline-exceeded)"
    assert lines[1] == f"• <{ROOT}/tasks/task01|test-linux64/opt-1> exception"
    assert [re.search(r"/tasks/(task\d+)\|", line)[1] for line in lines[:10]] == [  # type: ignore[index]
        f"task{i:02d}" for i in range(10)
    ]
    assert lines[10] == f"…and 15 more in <{ROOT}/tasks/groups/{GROUP}|the task group>"


def test_the_count_is_not_repeated_when_the_title_has_it_and_no_more_line_for_few() -> None:
    failed = tuple(FailedTask(f"t{i}", f"test-{i}", "failed") for i in range(3))
    message = render(
        event(
            EventKind.GROUP_FAILED,
            title="nightly: 3 of 412 tasks failed",
            failed_tasks=failed,
            total_tasks=412,
        ),
        root_url=ROOT,
    )

    assert all_text(message).count("3 of 412") == 2  # Once in text, once in the first section.
    assert message.text == ":red_circle: nightly: 3 of 412 tasks failed"
    [listing] = [s for s in sections(message) if s.startswith("*Failed tasks*")]
    assert len(listing.splitlines()) == 4
    assert "more" not in listing


def test_a_long_error_is_truncated_and_says_so() -> None:
    error = "Traceback & more\n" + "x" * 9000 + "\nthe last line"
    message = render(event(error=error), root_url=ROOT)

    [shown] = [s for s in sections(message) if s.startswith("*Error*")]
    assert len(shown) < 2500
    assert "truncated" in shown.splitlines()[0]
    body = shown.split("```")[1]
    # The one & shown takes 5 characters as &amp;.
    assert f"{len(error) - (len(body) - 4):,} more characters" in shown
    assert shown.split("```")[1].startswith("Traceback &amp; more\nxxx")
    assert "the last line" not in shown


def test_short_errors_are_whole_and_cannot_close_their_code_block() -> None:
    message = render(event(error="``` *bold* ```"), root_url=ROOT)

    [shown] = [s for s in sections(message) if s.startswith("*Error*")]
    assert "truncated" not in shown
    assert shown.count("```") == 2


def test_truncation_never_cuts_an_entity_in_half() -> None:
    message = render(event(error="&" * 5000), root_url=ROOT)

    [shown] = [s for s in sections(message) if s.startswith("*Error*")]
    body = shown.split("```")[1]
    assert body == "&amp;" * (len(body) // 5)
    assert f"{5000 - len(body) // 5:,} more characters" in shown


def test_facts_are_extra_fields() -> None:
    message = render(
        event(
            EventKind.EXPIRING,
            facts=(("Expires", "2024-06-01"), ("Artifact", "public/image.tar.zst")),
        ),
        root_url=ROOT,
    )

    assert fields(message)["Expires"] == "2024-06-01"
    assert fields(message)["Artifact"] == "public/image.tar.zst"


def test_block_kit_limits_hold_for_an_enormous_event() -> None:
    huge = event(
        EventKind.GROUP_FAILED,
        title="T&" * 2000,
        error="<" * 50_000,
        advice="A" * 10_000,
        failed_tasks=tuple(
            FailedTask(f"t{i}", "N<" * 500, "failed", "R>" * 500) for i in range(300)
        ),
        total_tasks=5000,
        facts=tuple((f"fact {i}", "v&" * 3000) for i in range(100)),
    )
    message = render(huge, root_url=ROOT, mentions=MENTIONS)

    assert len(message.blocks) <= 50
    assert len(message.text) <= 3000
    for block in message.blocks:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        assert len(block.get("fields", ())) <= 10
        for field in block.get("fields", ()):
            assert len(field["text"]) <= 2000
    # Cut values end on whole entities and say they were cut.
    assert re.fullmatch(r"(v&amp;)+v?…", fields(message)["fact 0"])
    [listing] = [s for s in sections(message) if s.startswith("*Failed tasks*")]
    assert listing.splitlines()[-1].startswith("…and ")
    assert "of 5000 tasks failed" in sections(message)[0]
    assert context(message).startswith("`group-failed`")


def test_escape_handles_exactly_the_three_characters() -> None:
    assert escape("a & b < c > d \" ' *") == "a &amp; b &lt; c &gt; d \" ' *"


# -- posting -----------------------------------------------------------------------------------


@pytest.fixture
def bot(slack: FakeSlack) -> SlackSender:
    return SlackSender(token=SLACK_TOKEN, base_url=slack.api_url)


@pytest.fixture
def hook(slack: FakeSlack) -> SlackSender:
    return SlackSender(webhook_url=slack.webhook_url)


MESSAGE = render(event(), root_url=ROOT, mentions=MENTIONS)


def test_bot_token_posts_and_answers_channel_id_and_ts(slack: FakeSlack, bot: SlackSender) -> None:
    posted = bot.post(MESSAGE, channel="#releng")

    [message] = slack.messages
    assert posted == Posted(channel="C0RELENG", ts=message.ts)
    assert message.channel == "C0RELENG"
    assert (message.text, message.blocks) == (MESSAGE.text, MESSAGE.blocks)
    assert message.thread_ts is None
    # Task links would unfurl into big previews otherwise.
    assert message.extra.get("unfurl_links") in (False, "0", "false")


def test_replies_go_into_the_thread(slack: FakeSlack, bot: SlackSender) -> None:
    parent = bot.post(MESSAGE, channel="C0NIGHTLY")
    recovery = render(
        event(EventKind.RECOVERED, title="nightly-desktop works again"), root_url=ROOT
    )

    reply = bot.post(recovery, channel="C0NIGHTLY", thread_ts=parent.ts)

    assert reply.channel == "C0NIGHTLY"
    assert reply.ts not in (None, parent.ts)
    assert parent.ts is not None
    assert [m.text for m in slack.thread(parent.ts)] == [MESSAGE.text, recovery.text]
    assert slack.message(reply.ts or "").thread_ts == parent.ts


def test_webhook_posts_into_its_channel_without_threads(
    slack: FakeSlack, hook: SlackSender
) -> None:
    posted = hook.post(MESSAGE, channel="C0NIGHTLY", thread_ts="1700000000.000001")

    assert posted == Posted(None, None)
    [message] = slack.messages
    assert message.channel == slack.webhook_channel == "C0RELENG"
    assert (message.text, message.blocks, message.thread_ts) == (MESSAGE.text, MESSAGE.blocks, None)
    assert [(c.method, c.status) for c in slack.calls] == [("webhook", 200)]


def test_rate_limit_then_server_error_then_ok_posts_exactly_once(
    slack: FakeSlack, bot: SlackSender
) -> None:
    slack.rate_limit(retry_after=0, method="chat.postMessage")
    slack.server_error(status=500, method="chat.postMessage")

    posted = bot.post(MESSAGE, channel="C0RELENG")

    assert [m.ts for m in slack.messages] == [posted.ts]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 500, 200]


def test_webhook_retries_rate_limits_and_server_errors_too(
    slack: FakeSlack, hook: SlackSender
) -> None:
    slack.rate_limit(retry_after=0, method="webhook")
    slack.server_error(status=503, method="webhook")

    hook.post(MESSAGE, channel=None)

    assert len(slack.messages) == 1
    assert [c.status for c in slack.calls_to("webhook")] == [429, 503, 200]


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("invalid_auth", "check SLACK_BOT_TOKEN"),
        ("not_authed", "check SLACK_BOT_TOKEN"),
        ("account_inactive", "SLACK_BOT_TOKEN"),
        ("token_revoked", "SLACK_BOT_TOKEN"),
        ("channel_not_found", "#releng"),
        ("not_in_channel", "invite the bot to #releng"),
        ("is_archived", "#releng is archived"),
        ("invalid_blocks", "bug"),
        ("msg_too_long", "bug"),
        ("no_text", "bug"),
    ],
)
def test_permanent_errors_are_not_retryable_and_say_what_to_do(
    slack: FakeSlack, bot: SlackSender, code: str, hint: str
) -> None:
    slack.api_error(code, method="chat.postMessage")

    with pytest.raises(DeliveryError) as raised:
        bot.post(MESSAGE, channel="releng")

    error = raised.value
    assert error.retryable is False
    assert code in str(error)
    assert hint in str(error)
    assert SLACK_TOKEN not in str(error) + repr(error) + repr(error.args)
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert len(slack.calls_to("chat.postMessage")) == 1  # Not retried within the call.
    assert slack.messages == []


def test_real_refusals_map_like_injected_ones(slack: FakeSlack) -> None:
    wrong = "xoxb-canary-wrong-4d1e8a"
    with pytest.raises(DeliveryError) as bad_token:
        SlackSender(token=wrong, base_url=slack.api_url).post(MESSAGE, channel="C0RELENG")
    with pytest.raises(DeliveryError) as no_channel:
        SlackSender(token=SLACK_TOKEN, base_url=slack.api_url).post(MESSAGE, channel="#nowhere")

    assert not bad_token.value.retryable
    assert "invalid_auth" in str(bad_token.value)
    assert wrong not in str(bad_token.value)
    assert not no_channel.value.retryable
    assert "channel_not_found" in str(no_channel.value)
    assert "#nowhere" in str(no_channel.value)


def test_server_errors_beyond_the_retries_are_retryable(slack: FakeSlack, bot: SlackSender) -> None:
    slack.server_error(times=3, status=503, method="chat.postMessage")

    with pytest.raises(DeliveryError) as raised:
        bot.post(MESSAGE, channel="C0RELENG")

    assert raised.value.retryable is True
    assert "503" in str(raised.value)
    assert slack.messages == []
    # One try and two retries, then the outbox's turn; the fake was left with nothing pending.
    assert len(slack.calls_to("chat.postMessage")) == 3
    bot.post(MESSAGE, channel="C0RELENG")
    assert len(slack.messages) == 1


def test_rate_limits_beyond_the_retries_are_retryable_with_the_wait(
    slack: FakeSlack, bot: SlackSender
) -> None:
    slack.rate_limit(times=3, retry_after=0, method="chat.postMessage")

    with pytest.raises(DeliveryError) as raised:
        bot.post(MESSAGE, channel="C0RELENG")

    assert raised.value.retryable is True
    assert raised.value.retry_after == 0
    assert "rate limiting" in str(raised.value)
    assert slack.messages == []


@pytest.mark.parametrize(
    ("fault", "retryable", "words"),
    [
        ("channel_is_archived", False, "archived"),
        ("action_prohibited", False, "admin"),
        ("invalid_payload", False, "bug"),
        ("rate_limit", True, "rate limiting"),
        ("server_error", True, "HTTP 500"),
    ],
)
def test_webhook_errors_map_to_retryable_or_not(
    slack: FakeSlack, hook: SlackSender, fault: str, retryable: bool, words: str
) -> None:
    if fault == "rate_limit":
        slack.rate_limit(times=3, retry_after=0, method="webhook")
    elif fault == "server_error":
        slack.server_error(times=3, method="webhook")
    else:
        slack.api_error(fault, method="webhook")

    with pytest.raises(DeliveryError) as raised:
        hook.post(MESSAGE, channel=None)

    assert raised.value.retryable is retryable
    assert words in str(raised.value)
    assert SLACK_WEBHOOK_SECRET not in str(raised.value)
    assert slack.messages == []


def test_a_removed_webhook_says_to_make_a_new_one_without_showing_its_url(
    slack: FakeSlack,
) -> None:
    gone = slack.webhook_url.replace(SLACK_WEBHOOK_SECRET, "canary0removed0hook0a1b2c3")
    sender = SlackSender(webhook_url=gone)

    with pytest.raises(DeliveryError) as raised:
        sender.post(MESSAGE, channel=None)

    error = raised.value
    assert error.retryable is False
    assert "no_service" in str(error)
    assert "create a new incoming webhook" in str(error)
    assert "canary0removed0hook0a1b2c3" not in str(error) + repr(error) + repr(sender)
    assert "/services/" not in str(error) + repr(sender)


@pytest.mark.integration
def test_connection_refused_is_retryable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # Bound, never listening: connections are refused.
        port = closed.getsockname()[1]
        sender = SlackSender(token=SLACK_TOKEN, base_url=f"http://127.0.0.1:{port}/api/")

        with pytest.raises(DeliveryError) as raised:
            sender.post(MESSAGE, channel="C0RELENG")

    assert raised.value.retryable is True
    assert "could not reach Slack" in str(raised.value)
    assert SLACK_TOKEN not in str(raised.value)


@pytest.mark.integration
def test_a_silent_server_times_out_retryably() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # Connections complete in the backlog, and nobody ever answers.
        port = silent.getsockname()[1]
        sender = SlackSender(webhook_url=f"http://127.0.0.1:{port}/services/T/B/x1", timeout=1)

        with pytest.raises(DeliveryError) as raised:
            sender.post(MESSAGE, channel=None)

    assert raised.value.retryable is True
    assert "did not answer within 1 s" in str(raised.value)


def test_check_describes_the_bot_or_the_webhook(
    slack: FakeSlack, bot: SlackSender, hook: SlackSender
) -> None:
    assert bot.check() == "bot tc-scheduler in Fake Team"
    assert hook.check() == "incoming webhook"
    assert [c.method for c in slack.calls] == ["auth.test"]

    with pytest.raises(DeliveryError) as raised:
        SlackSender(token="xoxb-canary-bad-99", base_url=slack.api_url).check()
    assert not raised.value.retryable
    assert "SLACK_BOT_TOKEN" in str(raised.value)


def test_a_bot_token_needs_a_channel(slack: FakeSlack, bot: SlackSender) -> None:
    with pytest.raises(DeliveryError) as raised:
        bot.post(MESSAGE, channel=None)

    assert not raised.value.retryable
    assert slack.calls == []


def test_secrets_stay_out_of_reprs_errors_and_logs(
    slack: FakeSlack, bot: SlackSender, hook: SlackSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Retries make slack_sdk log the request URL, which for a webhook is its secret.
    slack.rate_limit(retry_after=0, method="webhook")
    slack.server_error(times=3, method="webhook")
    slack.api_error("invalid_auth", method="chat.postMessage")
    errors: list[DeliveryError] = []
    for sender in (bot, hook):
        with pytest.raises(DeliveryError) as raised:
            sender.post(MESSAGE, channel="C0RELENG")
        errors.append(raised.value)
    hook.post(MESSAGE, channel=None)
    bot.check()

    seen = [repr(bot), repr(hook), str(bot), str(hook)]
    seen += [str(e) for e in errors] + [repr(e) for e in errors]
    seen += [r.getMessage() for r in caplog.records]
    seen += [caplog.text]
    # slack_sdk did log the webhook's URL on its retries: as *** only.
    assert any("retry" in r.getMessage() and "***" in r.getMessage() for r in caplog.records)
    for text in seen:
        assert SLACK_TOKEN not in text
        assert SLACK_WEBHOOK_SECRET not in text
    assert repr(bot).startswith("SlackSender(bot token")
    assert repr(hook) == "SlackSender(incoming webhook)"


def test_a_sender_takes_exactly_one_credential_and_never_echoes_it() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SlackSender()
    with pytest.raises(ValueError, match="exactly one"):
        SlackSender(
            token=SLACK_TOKEN, webhook_url=f"https://hooks.example/services/{SLACK_WEBHOOK_SECRET}"
        )
    with pytest.raises(ValueError, match="https") as raised:
        SlackSender(webhook_url=f"hooks.example/services/{SLACK_WEBHOOK_SECRET}")
    assert SLACK_WEBHOOK_SECRET not in str(raised.value)
    with pytest.raises(ValueError, match="base_url"):
        SlackSender(webhook_url="https://hooks.example/services/x", base_url="https://x/")
