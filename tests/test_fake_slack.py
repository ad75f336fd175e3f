"""The local Slack fake, driven through the unmodified slack_sdk clients.

Posting, threads, updates, token checks and the faults tests inject (429, 5xx, ok: false).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookClient

from tests.emulator.slack import FakeSlack
from tests.support.fakes import SLACK_CHANNELS, SLACK_TOKEN

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*decision task* failed"}}]


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return WebClient(token=SLACK_TOKEN, base_url=slack.api_url)


def raw_call(slack: FakeSlack, method: str, body: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(f"{slack.api_url}{method}", body, headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_post_message_is_recorded_with_text_and_blocks(slack: FakeSlack, client: WebClient) -> None:
    response = client.chat_postMessage(channel="C0RELENG", text="decision failed", blocks=BLOCKS)

    assert response["ok"] is True
    assert response["channel"] == "C0RELENG"
    assert response["message"]["text"] == "decision failed"
    [message] = slack.messages_in("releng")
    assert (message.channel, message.ts, message.text) == (
        "C0RELENG",
        response["ts"],
        "decision failed",
    )
    assert message.blocks == BLOCKS
    assert message.thread_ts is None
    assert slack.messages_in("C0NIGHTLY") == []


def test_post_by_channel_name_answers_with_the_id(slack: FakeSlack, client: WebClient) -> None:
    response = client.chat_postMessage(channel="#nightly", text="hello")

    assert response["channel"] == "C0NIGHTLY"
    assert [m.text for m in slack.messages_in("C0NIGHTLY")] == ["hello"]


def test_timestamps_are_unique_and_increasing_even_on_a_frozen_clock() -> None:
    with FakeSlack.running(
        token=SLACK_TOKEN, channels=SLACK_CHANNELS, clock=lambda: 1_700_000_000.0
    ) as fake:
        client = WebClient(token=SLACK_TOKEN, base_url=fake.api_url)
        stamps = [client.chat_postMessage(channel="C0RELENG", text=str(i))["ts"] for i in range(3)]

    assert stamps == ["1700000000.000000", "1700000000.000001", "1700000000.000002"]


def test_replies_are_recorded_in_their_thread(slack: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0RELENG", text="nightly failed")["ts"]
    first = client.chat_postMessage(channel="C0RELENG", text="retrying", thread_ts=parent)
    # A reply to a reply belongs to the parent's thread, as in Slack.
    client.chat_postMessage(channel="C0RELENG", text="fixed", thread_ts=first["ts"])
    client.chat_postMessage(channel="C0RELENG", text="unrelated")

    thread = slack.thread(parent)
    assert [m.text for m in thread] == ["nightly failed", "retrying", "fixed"]
    assert [m.thread_ts for m in thread] == [None, parent, parent]
    assert first["message"]["thread_ts"] == parent


def test_reply_to_an_unknown_thread_is_refused(slack: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0RELENG", text="orphan", thread_ts="1.000001")

    assert raised.value.response["error"] == "thread_not_found"
    assert slack.messages == []


def test_update_replaces_the_text_and_keeps_the_history(
    slack: FakeSlack, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel="C0RELENG", text="running", blocks=BLOCKS)["ts"]

    response = client.chat_update(channel="C0RELENG", ts=ts, text="done")
    client.chat_update(channel="C0RELENG", ts=ts, text="done", blocks=[{"type": "divider"}])

    assert response["ts"] == ts
    assert response["message"]["text"] == "done"
    message = slack.message(ts)
    assert (message.text, message.blocks) == ("done", [{"type": "divider"}])
    assert [(v.text, v.blocks) for v in message.history] == [
        ("running", BLOCKS),
        ("done", BLOCKS),
    ]
    assert len(slack.messages) == 1


def test_update_of_an_unknown_message_is_message_not_found(
    slack: FakeSlack, client: WebClient
) -> None:
    client.chat_postMessage(channel="C0RELENG", text="kept")

    with pytest.raises(SlackApiError) as raised:
        client.chat_update(channel="C0RELENG", ts="1.000001", text="nope")

    assert raised.value.response["error"] == "message_not_found"
    assert [m.text for m in slack.messages] == ["kept"]
    assert not slack.messages[0].edited


def test_auth_test_describes_the_bot(client: WebClient) -> None:
    response = client.auth_test()

    assert response["ok"] is True
    assert response["user_id"] == "U0FAKE"
    assert response["team_id"] == "T0FAKE"


def test_conversations_info_knows_the_configured_channels(client: WebClient) -> None:
    assert client.conversations_info(channel="C0NIGHTLY")["channel"]["name"] == "nightly"

    with pytest.raises(SlackApiError) as raised:
        client.conversations_info(channel="C9999")
    assert raised.value.response["error"] == "channel_not_found"


def test_unknown_channel_is_refused_and_nothing_is_recorded(
    slack: FakeSlack, client: WebClient
) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="#nowhere", text="lost")

    assert raised.value.response["error"] == "channel_not_found"
    assert slack.messages == []


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
def test_a_message_needs_text_or_blocks(slack: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0RELENG")

    assert raised.value.response["error"] == "no_text"
    assert slack.messages == []


@pytest.mark.parametrize(
    ("token", "error"), [(None, "not_authed"), ("xoxb-wrong-secret", "invalid_auth")]
)
def test_bad_tokens_are_refused(slack: FakeSlack, token: str | None, error: str) -> None:
    client = WebClient(token=token, base_url=slack.api_url)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0RELENG", text="sneaky")

    # Slack answers auth failures with HTTP 200 and ok: false.
    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == error
    assert slack.messages == []
    assert [(c.authed, c.error) for c in slack.calls] == [(False, error)]


def test_tokens_never_leak_into_records_responses_or_logs(
    slack: FakeSlack, client: WebClient, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "xoxb-wrong-secret-value"
    caplog.set_level(logging.DEBUG)
    client.chat_postMessage(channel="C0RELENG", text="hello")
    with pytest.raises(SlackApiError) as raised:
        WebClient(token=wrong, base_url=slack.api_url).auth_test()

    seen = " ".join(
        [repr(slack.calls), repr(slack.messages), json.dumps(raised.value.response.data)]
    )
    assert SLACK_TOKEN not in seen
    assert wrong not in seen
    fake_logs = [r for r in caplog.records if not r.name.startswith("slack_sdk")]
    assert all(SLACK_TOKEN not in r.getMessage() and wrong not in r.getMessage() for r in fake_logs)


def test_form_multipart_and_body_token_are_understood(slack: FakeSlack, client: WebClient) -> None:
    # params= goes form-encoded, data= multipart; blocks then travel as a JSON string.
    client.api_call(
        "chat.postMessage", params={"channel": "C0RELENG", "text": "form", "blocks": "[]"}
    )
    client.api_call("chat.postMessage", data={"channel": "C0RELENG", "text": "multipart"})
    answer = raw_call(
        slack,
        "chat.postMessage",
        f"token={SLACK_TOKEN}&channel=C0RELENG&text=token+in+body".encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert answer["ok"] is True
    assert [m.text for m in slack.messages] == ["form", "multipart", "token in body"]
    assert slack.messages[0].blocks == []
    assert all(c.authed for c in slack.calls)


def test_malformed_blocks_and_unknown_methods_are_refused(
    slack: FakeSlack, client: WebClient
) -> None:
    with pytest.raises(SlackApiError) as bad_blocks:
        client.api_call("chat.postMessage", params={"channel": "C0RELENG", "blocks": "{not json"})
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("chat.delete", params={"channel": "C0RELENG", "ts": "1.0"})

    assert bad_blocks.value.response["error"] == "invalid_blocks"
    assert unknown.value.response.status_code == 404
    assert unknown.value.response["error"] == "unknown_method"
    assert slack.messages == []


def test_rate_limit_without_a_retry_handler_raises_with_retry_after(
    slack: FakeSlack, client: WebClient
) -> None:
    slack.rate_limit(retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0RELENG", text="too fast")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"
    assert slack.messages == []
    # The fault was for one call only.
    client.chat_postMessage(channel="C0RELENG", text="later")
    assert [m.text for m in slack.messages] == ["later"]


def test_rate_limit_retry_handler_retries_once_and_posts_once(slack: FakeSlack) -> None:
    client = WebClient(
        token=SLACK_TOKEN,
        base_url=slack.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.rate_limit(retry_after=0, method="chat.postMessage")

    response = client.chat_postMessage(channel="C0RELENG", text="eventually")

    assert response["ok"] is True
    assert [m.text for m in slack.messages] == ["eventually"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]


def test_server_errors_surface_and_record_nothing(slack: FakeSlack, client: WebClient) -> None:
    slack.server_error(times=2, status=503)

    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            client.chat_postMessage(channel="C0RELENG", text="down")
        assert raised.value.response.status_code == 503

    assert slack.messages == []
    client.chat_postMessage(channel="C0RELENG", text="up")
    assert [m.text for m in slack.messages] == ["up"]


def test_faults_for_one_method_leave_the_others_alone(slack: FakeSlack, client: WebClient) -> None:
    slack.api_error("channel_is_archived", method="chat.postMessage")

    assert client.auth_test()["ok"] is True
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C0RELENG", text="archived")

    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == "channel_is_archived"
    assert slack.messages == []
    assert [(c.method, c.injected) for c in slack.calls] == [
        ("auth.test", False),
        ("chat.postMessage", True),
    ]


def test_fault_controls_reject_nonsense(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="does not serve"):
        slack.api_error("x", method="chat.delete")
    with pytest.raises(ValueError, match="server error"):
        slack.server_error(status=404)
    with pytest.raises(ValueError, match="at least one"):
        slack.rate_limit(times=0)


def test_async_client_posts_reads_and_retries(slack: FakeSlack) -> None:
    async def scenario() -> tuple[str, str]:
        client = AsyncWebClient(
            token=SLACK_TOKEN,
            base_url=slack.api_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
        )
        slack.rate_limit(retry_after=0, method="chat.postMessage")
        posted = await client.chat_postMessage(channel="C0RELENG", text="async", blocks=BLOCKS)
        # conversations.info goes as a GET with a query string from this client.
        info = await client.conversations_info(channel="C0RELENG")
        return posted["ts"], info["channel"]["name"]

    ts, name = asyncio.run(scenario())

    assert name == "releng"
    assert slack.message(ts).blocks == BLOCKS
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]


def test_the_url_needs_a_running_fake() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        FakeSlack().url  # noqa: B018


# -- the incoming webhook ------------------------------------------------------------------------


def post_raw(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_webhook_posts_into_its_channel(slack: FakeSlack) -> None:
    webhook = WebhookClient(slack.webhook_url)

    response = webhook.send(text="nightly failed", blocks=BLOCKS, unfurl_links=False)

    assert (response.status_code, response.body) == (200, "ok")
    [message] = slack.messages_in("releng")  # The first channel, by default.
    assert (message.text, message.blocks, message.thread_ts) == ("nightly failed", BLOCKS, None)
    assert message.extra == {"unfurl_links": False}
    assert [(c.method, c.authed, c.status) for c in slack.calls] == [("webhook", True, 200)]


def test_webhook_channel_is_configurable_by_name() -> None:
    with FakeSlack.running(
        token=SLACK_TOKEN, channels=SLACK_CHANNELS, webhook_channel="#nightly"
    ) as fake:
        WebhookClient(fake.webhook_url).send(text="to nightly")
        assert [m.text for m in fake.messages_in("C0NIGHTLY")] == ["to nightly"]
        assert fake.messages_in("C0RELENG") == []

    with pytest.raises(ValueError, match="not a channel"):
        FakeSlack(channels=SLACK_CHANNELS, webhook_channel="#nowhere")


def test_webhook_refuses_a_wrong_secret_garbage_and_nothing(slack: FakeSlack) -> None:
    url = slack.webhook_url
    secret = url.rsplit("/", 1)[1]
    wrong = url[: -len(secret)] + "x" * len(secret)

    answers = [
        post_raw(wrong, json.dumps({"text": "sneaky"}).encode()),
        post_raw(url.replace("T0FAKE", "T0OTHER"), json.dumps({"text": "sneaky"}).encode()),
        post_raw(url, b"{not json"),
        post_raw(url, b"[1, 2]"),
        post_raw(url, json.dumps({"blocks": {"not": "a list"}}).encode()),
        post_raw(url, json.dumps({"unfurl_links": False}).encode()),
    ]

    assert answers == [
        (404, "no_service"),
        (404, "no_service"),
        (400, "invalid_payload"),
        (400, "invalid_payload"),
        (400, "invalid_blocks"),
        (400, "no_text"),
    ]
    assert slack.messages == []
    assert [c.authed for c in slack.calls] == [False, False, True, True, True, True]
    assert secret not in repr(slack.calls)


def test_webhook_faults_answer_as_slacks_webhooks_do(slack: FakeSlack) -> None:
    webhook = WebhookClient(slack.webhook_url)
    slack.rate_limit(retry_after=3, method="webhook")
    slack.server_error(status=503, method="webhook")
    slack.api_error("channel_is_archived", method="webhook")
    slack.api_error("action_prohibited", method="webhook")
    slack.api_error("some_new_error", method="webhook")

    answers = [webhook.send(text="try") for _ in range(5)]

    assert [(a.status_code, a.body) for a in answers] == [
        (429, "rate_limited"),
        (503, "fake slack: injected server error"),
        (410, "channel_is_archived"),
        (403, "action_prohibited"),
        (400, "some_new_error"),
    ]
    assert answers[0].headers["Retry-After"] == "3"
    assert slack.messages == []
    assert all(c.injected and c.method == "webhook" for c in slack.calls)
    assert webhook.send(text="through").status_code == 200
    assert [m.text for m in slack.messages] == ["through"]


def test_webhook_and_web_api_faults_keep_to_their_target(
    slack: FakeSlack, client: WebClient
) -> None:
    slack.server_error(method="chat.postMessage")
    slack.rate_limit(method="webhook")

    assert WebhookClient(slack.webhook_url).send(text="hook").status_code == 429
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C0RELENG", text="api")

    assert [(c.method, c.status) for c in slack.calls] == [
        ("webhook", 429),
        ("chat.postMessage", 500),
    ]
    assert slack.messages == []
