"""Slack delivery: an `Event` rendered as a Block Kit message, and posting it with a bot token
or an incoming webhook, Slack's errors mapped to retryable or not, secrets kept out of both.
"""

from __future__ import annotations

import http.client
import logging
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.error import URLError
from urllib.parse import quote, urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from scheduler.common.redaction import remember_secret, scrub
from scheduler.notify.events import Event, EventSeverity, FailedTask

# Block Kit's limits (https://api.slack.com/reference/block-kit/blocks), with room to spare.
MAX_BLOCKS = 50
MAX_FIELDS = 10
FIELD_SECTIONS = 3
"""Sections of fields at most: the details, then the event's facts, 10 to a section."""
FIELD_LIMIT = 2000
SECTION_LIMIT = 3000
TITLE_LIMIT = 300
ERROR_LIMIT = 2000
"""Escaped characters of an error shown; the rest is cut, and the message says so."""
LISTED_TASKS = 10
TASK_NAME_LIMIT = 80
REASON_LIMIT = 100

EMOJI = {
    EventSeverity.FAILURE: ":red_circle:",
    EventSeverity.RECOVERY: ":large_green_circle:",
    EventSeverity.WARNING: ":warning:",
    EventSeverity.INFO: ":information_source:",
}
_SPECIAL_MENTIONS = {"@here": "<!here>", "@channel": "<!channel>", "@everyone": "<!everyone>"}
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

# Retries within one `post`: seconds at most. The outbox retries across minutes. The three
# handlers share one attempt counter per request, so a request is tried at most 1 + 2 times.
RETRIES = 2
DEFAULT_TIMEOUT = 10
TOKEN_SETTING = "SLACK_BOT_TOKEN"
WEBHOOK_SETTING = "SLACK_WEBHOOK_URL"


# -- rendering (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackMessage:
    """What `chat.postMessage` or a webhook takes: the notification line and the blocks."""

    text: str
    blocks: list[dict[str, Any]]


def render(event: Event, *, root_url: str, mentions: Sequence[str] = ()) -> SlackMessage:
    """The message a sheriff reads at 3 a.m.: what broke, the link to click first, the details.

    `mentions` are in Slack syntax (`<!subteam^S123>`, `<@U123>`; `@here`, `@channel` are
    converted) and apply to failures only. Text from the event is escaped; links are built from
    `root_url` and the event's task and task group ids.
    """
    links = _Links(root_url)
    emoji = EMOJI[event.severity]
    title = _clip(event.title.strip() or event.kind.value, TITLE_LIMIT)
    summary = _failure_summary(event)
    tags = _mentions(mentions) if event.severity is EventSeverity.FAILURE else []

    primary = links.task(event.task_id) or links.group(event.task_group_id)
    head = f"*<{primary}|{title}>*" if primary else f"*{title}*"
    lines = [" ".join(tags)] if tags else []
    lines.append(f"{emoji} {head}")
    if summary:
        lines.append(summary)
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]

    fields = _fields(event, links)
    shown = fields[: MAX_FIELDS * FIELD_SECTIONS]
    for start in range(0, len(shown), MAX_FIELDS):
        chunk = shown[start : start + MAX_FIELDS]
        blocks.append({"type": "section", "fields": [_mrkdwn(f) for f in chunk]})
    if len(fields) > len(shown):
        blocks.append(_section(f"…and {len(fields) - len(shown)} more facts"))
    if event.error:
        label = "Error" if event.severity is EventSeverity.FAILURE else "Details"
        blocks.append(_section(_error(event.error, label)))
    if event.advice:
        blocks.append(_section(f"*What to do:* {_clip(event.advice.strip(), SECTION_LIMIT - 100)}"))
    if event.failed_tasks:
        blocks.append(_section(_failed_tasks(event, links)))
    blocks.append(
        {
            "type": "context",
            "elements": [
                _mrkdwn(f"`{escape(event.kind.value)}` · {_when(event.at, seconds=True)}")
            ],
        }
    )

    text = " ".join([*tags, emoji, title] + ([f"({summary})"] if summary else []))
    return SlackMessage(text=text, blocks=blocks[:MAX_BLOCKS])


def escape(text: str) -> str:
    """`text` as Slack wants it in any text field: `&`, `<` and `>` as entities."""
    return "".join(_ESCAPES.get(char, char) for char in text)


class _Links:
    """Taskcluster UI links under one root URL."""

    def __init__(self, root_url: str) -> None:
        self.root = root_url.rstrip("/")

    def task(self, task_id: str | None) -> str | None:
        return f"{self.root}/tasks/{quote(task_id, safe='')}" if task_id else None

    def group(self, task_group_id: str | None) -> str | None:
        return (
            f"{self.root}/tasks/groups/{quote(task_group_id, safe='')}" if task_group_id else None
        )


def _fields(event: Event, links: _Links) -> list[str]:
    """`*Label*\\nvalue` for each detail the event has, then its facts."""
    values: list[tuple[str, str | None]] = [
        ("Project", escape(event.project) if event.project else None),
        ("Job", escape(event.job) if event.job else None),
        ("Slot", _when(event.slot) if event.slot else None),
        ("Revision", f"`{escape(event.revision[:12])}`" if event.revision else None),
        ("Fire kind", escape(event.fire_kind) if event.fire_kind else None),
        ("Task", _link(links.task(event.task_id), event.task_id)),
        ("Task group", _link(links.group(event.task_group_id), event.task_group_id)),
    ]
    fields = [f"*{label}*\n{value}" for label, value in values if value]
    for label, value in event.facts:
        label_text = _clip(label, 100)
        fields.append(f"*{label_text}*\n{_clip(value, FIELD_LIMIT - len(label_text) - 10)}")
    return fields


def _link(url: str | None, label: str | None) -> str | None:
    return f"<{url}|{escape(label)}>" if url and label else None


def _failure_summary(event: Event) -> str | None:
    """ "3 of 412 tasks failed", unless the title says so already."""
    if not event.failed_tasks or event.total_tasks is None:
        return None
    count = f"{len(event.failed_tasks)} of {event.total_tasks}"
    return None if count in event.title else f"{count} tasks failed"


def _failed_tasks(event: Event, links: _Links) -> str:
    lines = ["*Failed tasks*"]
    size = len(lines[0])
    listed = 0
    for task in event.failed_tasks[:LISTED_TASKS]:
        line = _failed_task(task, links)
        # Room is kept for the "and N more" line.
        if size + 1 + len(line) > SECTION_LIMIT - 200:
            break
        lines.append(line)
        size += 1 + len(line)
        listed += 1
    more = len(event.failed_tasks) - listed
    if more > 0:
        group = links.group(event.task_group_id)
        where = f" in <{group}|the task group>" if group else ""
        lines.append(f"…and {more} more{where}")
    return "\n".join(lines)


def _failed_task(task: FailedTask, links: _Links) -> str:
    name = _clip(task.name or task.task_id, TASK_NAME_LIMIT)
    line = f"• <{links.task(task.task_id)}|{name}> {_clip(task.state, 20)}"
    if task.reason and task.reason != task.state:
        line += f" ({_clip(task.reason, REASON_LIMIT)})"
    return line


def _error(error: str, label: str) -> str:
    # A ``` inside would close the code block early; a zero-width space keeps it looking alike.
    shown, cut = _escape_within(error.strip("\n").replace("```", "`\u200b`\u200b`"), ERROR_LIMIT)
    note = ""
    if cut:
        note = f" (truncated: {cut:,} more characters; the ledger keeps it all)"
    return f"*{label}*{note}\n```{shown}```"


def _mentions(mentions: Sequence[str]) -> list[str]:
    tags = (m.strip() for m in mentions)
    return [_SPECIAL_MENTIONS.get(tag, tag) for tag in tags if tag]


def _when(at: datetime, *, seconds: bool = False) -> str:
    """`2024-05-01 03:15 UTC`; a naive time is taken as UTC already."""
    utc = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def _clip(text: str, limit: int) -> str:
    """`text` escaped, at most `limit` characters, with `…` where it was cut."""
    shown, cut = _escape_within(text, limit)
    if not cut:
        return shown
    shown, _ = _escape_within(text, limit - 1)
    return shown + "…"


def _escape_within(text: str, limit: int) -> tuple[str, int]:
    """`text` escaped and cut so the escaped form fits `limit`; and how many characters were cut.

    Cuts between characters, never inside an entity such as `&amp;`.
    """
    out: list[str] = []
    size = 0
    for index, char in enumerate(text):
        piece = _ESCAPES.get(char, char)
        if size + len(piece) > limit:
            return "".join(out), len(text) - index
        out.append(piece)
        size += len(piece)
    return "".join(out), 0


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text[:SECTION_LIMIT])}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


# -- delivery (I/O) -----------------------------------------------------------------------------


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
