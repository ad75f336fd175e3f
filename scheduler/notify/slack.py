"""Slack delivery: posting a `SlackMessage` with a bot token or an incoming webhook, Slack's
errors mapped to retryable or not and to what to do, secrets kept out of both.
"""

# slack_sdk is imported when a sender is made or fails, not here: a process without Slack
# configured (`tick`, `run` with Sentry or nothing) never loads it.

from __future__ import annotations

import http.client
import logging
import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.error import URLError
from urllib.parse import urlsplit

from scheduler.common.redaction import remember_secret, scrub
from scheduler.notify.slack_message import SlackMessage

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.handler import RetryHandler
    from slack_sdk.webhook import WebhookClient

# Retries within one `post`: seconds at most. The outbox retries across minutes. The three
# handlers share one attempt counter per request, so a request is tried at most 1 + 2 times.
RETRIES = 2
DEFAULT_TIMEOUT = 10
TOKEN_SETTING = "SLACK_BOT_TOKEN"
WEBHOOK_SETTING = "SLACK_WEBHOOK_URL"


class DeliveryError(Exception):
    """Slack did not take a message. `retryable` says whether trying again later can help.

    The message says what to do and never holds a token or a webhook URL. `retry_after` is the
    wait Slack asked for, in seconds, when it rate limited us.
    """

    def __init__(self, message: str, retryable: bool, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Posted:
    """Where a message went: the channel id and ts Slack answered (None for a webhook)."""

    channel: str | None
    ts: str | None


_T = TypeVar("_T")

_RETRYABLE_CODES = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)
_OUR_BUG = "a tc-scheduler bug in the message it built: please report it"
_ADMIN = "a Slack admin of the workspace has to allow it"
# What to do about each permanent error of chat.postMessage and auth.test.
_API_ADVICE = {
    "invalid_auth": f"Slack does not accept the bot token; check {TOKEN_SETTING}",
    "not_authed": f"no bot token reached Slack: check {TOKEN_SETTING}",
    "account_inactive": f"the bot was deactivated: reinstall the app and update {TOKEN_SETTING}",
    "token_revoked": f"the bot token was revoked: reinstall the app and update {TOKEN_SETTING}",
    "token_expired": f"the bot token expired: update {TOKEN_SETTING}",
    "missing_scope": "the Slack app lacks the chat:write scope: add it and reinstall the app",
    "channel_not_found": "Slack knows no channel {channel} that the bot can see: check the "
    "channel in the notification config (a private channel needs the bot invited)",
    "not_in_channel": "the bot is not in {channel}: invite the bot to {channel}",
    "is_archived": "{channel} is archived: unarchive it or notify another channel",
    "channel_is_archived": "{channel} is archived: unarchive it or notify another channel",
    "thread_not_found": "the message to reply to in {channel} is gone",
    "restricted_action": f"the bot may not post in {{channel}}: {_ADMIN}",
    "restricted_action_read_only_channel": f"{{channel}} is read-only: {_ADMIN}",
    "restricted_action_thread_only_channel": f"{{channel}} takes thread replies only: {_ADMIN}",
    "restricted_action_non_threadable_channel": "{channel} does not allow threads",
    "team_access_not_granted": f"the bot token has no access to this workspace: {_ADMIN}",
    "ekm_access_denied": f"the workspace's key management refused the message: {_ADMIN}",
    "invalid_blocks": _OUR_BUG,
    "invalid_blocks_format": _OUR_BUG,
    "msg_blocks_too_long": _OUR_BUG,
    "msg_too_long": _OUR_BUG,
    "no_text": _OUR_BUG,
    "too_many_attachments": _OUR_BUG,
    "invalid_arguments": _OUR_BUG,
    "invalid_form_data": _OUR_BUG,
    "invalid_json": _OUR_BUG,
    "json_not_object": _OUR_BUG,
}
_NEW_WEBHOOK = f"create a new incoming webhook and update {WEBHOOK_SETTING}"
# What to do about each error an incoming webhook answers with a 4xx.
_WEBHOOK_ADVICE = {
    "no_service": f"the webhook was removed or disabled: {_NEW_WEBHOOK}",
    "invalid_token": f"the webhook's token was revoked: {_NEW_WEBHOOK}",
    "no_active_hooks": f"the webhook is disabled: {_NEW_WEBHOOK}",
    "team_disabled": f"the webhook's workspace is disabled: {_NEW_WEBHOOK}",
    "channel_not_found": f"the webhook's channel was deleted: {_NEW_WEBHOOK}",
    "channel_is_archived": f"the webhook's channel is archived: unarchive it or {_NEW_WEBHOOK}",
    "action_prohibited": f"posting to the webhook's channel is restricted: {_ADMIN}",
    "posting_to_general_channel_denied": f"only admins may post to the channel: {_NEW_WEBHOOK}",
    "invalid_payload": _OUR_BUG,
    "invalid_blocks": _OUR_BUG,
    "no_text": _OUR_BUG,
    "too_many_attachments": _OUR_BUG,
}
_CODE = re.compile(r"[a-z][a-z0-9_.]{0,79}")


class SlackSender:
    """Posts `SlackMessage`s with a bot token (`chat.postMessage`) or an incoming webhook.

    Synchronous: run `post` in a thread. Rate limits, 5xx and connection errors are retried a
    couple of times within a call; what still fails raises `DeliveryError`.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        webhook_url: str | None = None,
        base_url: str | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        retries: int = RETRIES,
    ) -> None:
        from slack_sdk import WebClient  # noqa: PLC0415 - see the top
        from slack_sdk.webhook import WebhookClient  # noqa: PLC0415

        if bool(token) == bool(webhook_url):
            raise ValueError("give a SlackSender exactly one of a bot token and a webhook URL")
        secrets = [token or "", (token or "").strip()]
        if webhook_url:
            if urlsplit(webhook_url).scheme not in ("http", "https"):
                # Not the URL itself in the message: it is the webhook's secret.
                raise ValueError(f"{WEBHOOK_SETTING} must be an https:// URL")
            path = urlsplit(webhook_url).path
            secrets += [webhook_url, path, path.rstrip("/").rsplit("/", 1)[-1]]
            if base_url is not None:
                raise ValueError("base_url is for a bot token; a webhook URL is complete")
        for secret in secrets:
            remember_secret(secret)
        self._scrub = scrub
        self._web: WebClient | None = None
        self._webhook: WebhookClient | None = None
        if token:
            self._web = WebClient(
                token=token,
                timeout=timeout,
                retry_handlers=_retry_handlers(retries),
                logger=_ScrubbingLogger("slack_sdk.web.base_client", self._scrub),
                base_url=base_url or WebClient.BASE_URL,
            )
        else:
            assert webhook_url is not None
            self._webhook = WebhookClient(
                webhook_url,
                timeout=timeout,
                retry_handlers=_retry_handlers(retries),
                logger=_ScrubbingLogger("slack_sdk.webhook.client", self._scrub),
            )
        self._timeout = timeout

    def __repr__(self) -> str:
        if self._web is not None:
            return f"SlackSender(bot token, base_url={self._web.base_url!r})"
        return "SlackSender(incoming webhook)"

    def post(
        self, message: SlackMessage, *, channel: str | None, thread_ts: str | None = None
    ) -> Posted:
        """Post `message` to `channel` (id, name or #name), in the thread of `thread_ts` if given.

        A webhook posts where it was made for: `channel` and `thread_ts` are ignored, and the
        answer is `Posted(None, None)`.
        """
        if self._webhook is not None:
            self._send_webhook(self._webhook, message)
            return Posted(None, None)
        web = self._web
        assert web is not None
        if not channel:
            raise DeliveryError("no Slack channel is configured for this notification", False)
        response = self._call(
            lambda: web.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            ),
            channel,
        )
        return Posted(_str_or_none(response.get("channel")), _str_or_none(response.get("ts")))

    def check(self) -> str:
        """One line about who posts: "bot tc-scheduler in Fake Team"; asks Slack for a token."""
        web = self._web
        if web is None:
            return "incoming webhook"
        response = self._call(web.auth_test, None)
        return f"bot {response.get('user', '?')} in {response.get('team', '?')}"

    # -- errors ----------------------------------------------------------------------------

    def _call(self, call: Callable[[], _T], channel: str | None) -> _T:
        from slack_sdk.errors import SlackApiError  # noqa: PLC0415 - see the top

        try:
            return call()
        except SlackApiError as failure:
            raise self._api_error(failure, channel) from None
        except Exception as failure:
            raise self._transport_error(failure) from None

    def _api_error(self, failure: SlackApiError, channel: str | None) -> DeliveryError:
        response = failure.response
        status = int(response.status_code)
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or "")
        code = code if _CODE.fullmatch(code) else ""
        label = f" ({code})" if code else ""
        if status == 429 or code in ("ratelimited", "rate_limited"):
            return self._rate_limited(response.headers)
        if status >= 500:
            return self._error(f"Slack answered HTTP {status} (temporary)", True)
        if code in _API_ADVICE:
            advice = _API_ADVICE[code].format(channel=_channel_label(channel))
            return self._error(f"Slack refused{label}: {advice}", False)
        if code in _RETRYABLE_CODES:
            return self._error(f"Slack had a passing problem{label} (temporary)", True)
        if not code:
            return self._error(
                f"Slack answered HTTP {status} without an error code (temporary)", True
            )
        # An error this module does not know: permanent if Slack said so with a 4xx.
        return self._error(f"Slack refused the request{label}, HTTP {status}", status == 200)

    def _send_webhook(self, webhook: WebhookClient, message: SlackMessage) -> None:
        try:
            response = webhook.send(
                text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as failure:
            raise self._transport_error(failure) from None
        status = int(response.status_code)
        if 200 <= status < 300:
            return
        body = str(response.body or "").strip()
        code = body if _CODE.fullmatch(body) else ""
        label = f" ({code})" if code else ""
        if status == 429:
            raise self._rate_limited(response.headers)
        if status >= 500 or status < 400:
            raise self._error(f"the Slack webhook answered HTTP {status}{label} (temporary)", True)
        advice = _WEBHOOK_ADVICE.get(code, f"check {WEBHOOK_SETTING}")
        raise self._error(f"the Slack webhook refused{label}, HTTP {status}: {advice}", False)

    def _rate_limited(self, headers: Mapping[str, Any]) -> DeliveryError:
        wait = _retry_after(headers)
        after = f": it asks to wait {wait:g} s" if wait is not None else ""
        return self._error(f"Slack is rate limiting us (temporary){after}", True, wait)

    def _transport_error(self, failure: Exception) -> DeliveryError:
        from slack_sdk.errors import SlackClientError  # noqa: PLC0415 - see the top

        if isinstance(failure, TimeoutError) or (
            isinstance(failure, URLError) and isinstance(failure.reason, TimeoutError)
        ):
            return self._error(f"Slack did not answer within {self._timeout} s (temporary)", True)
        if isinstance(failure, URLError):
            return self._error(f"could not reach Slack (temporary): {failure.reason}", True)
        if isinstance(failure, (OSError, http.client.HTTPException)):
            kind = type(failure).__name__
            return self._error(f"the connection to Slack failed (temporary): {kind}", True)
        if isinstance(failure, SlackClientError):
            return self._error(f"the Slack client refused to send ({failure})", False)
        kind = type(failure).__name__
        return self._error(f"posting to Slack failed unexpectedly ({kind}): {_OUR_BUG}", False)

    def _error(self, message: str, retryable: bool, wait: float | None = None) -> DeliveryError:
        return DeliveryError(self._scrub(message), retryable, retry_after=wait)


def _retry_handlers(retries: int) -> list[RetryHandler]:
    from slack_sdk.http_retry.builtin_handlers import (  # noqa: PLC0415 - see the top
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    return [
        RateLimitErrorRetryHandler(max_retry_count=retries),
        ServerErrorRetryHandler(max_retry_count=retries),
        ConnectionErrorRetryHandler(max_retry_count=retries),
    ]


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _channel_label(channel: str | None) -> str:
    """`#releng` for a name, the id as is (Slack's ids are upper case; names never are)."""
    if not channel:
        return "the channel"
    if channel.startswith("#") or re.fullmatch(r"[CGD][A-Z0-9]+", channel):
        return channel
    return f"#{channel}"


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


class _ScrubbingLogger(logging.Logger):
    """The logger one sender gives `slack_sdk`, which logs request URLs (a webhook's is its
    secret) at INFO when it retries. Records lose the secrets, then go on to the handlers of
    `slack_sdk`'s own logger of that name, as its records would. Not registered with `logging`.
    """

    def __init__(self, name: str, scrub: Callable[[str], str]) -> None:
        super().__init__(name)
        self._target = logging.getLogger(name)
        self.parent = self._target
        self._scrub_text = scrub

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        # Unregistered, this logger's level cache would never be cleared: ask the real one.
        return self._target.isEnabledFor(level)

    def getEffectiveLevel(self) -> int:  # noqa: N802 - logging's name
        return self._target.getEffectiveLevel()

    def handle(self, record: logging.LogRecord) -> None:
        record.msg = self._scrub_text(record.getMessage())
        record.args = None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = self._scrub_text(text)
            record.exc_info = None
        super().handle(record)
