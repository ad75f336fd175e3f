"""A local Slack Web API and incoming webhook for tests and benchmarks, spoken to by `slack_sdk`.

Owns the four methods the scheduler uses, the webhook, token checks, messages and injected faults.
"""

from __future__ import annotations

import copy
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.emulator import serving

METHODS = ("chat.postMessage", "chat.update", "auth.test", "conversations.info")
WEBHOOK = "webhook"
"""The name faults and `Call`s give the incoming webhook, beside the Web API's methods."""
TEAM = {"team": "Fake Team", "team_id": "T0FAKE", "user": "tc-scheduler", "user_id": "U0FAKE"}
WEBHOOK_PATH = "/services/T0FAKE/B0FAKE/"
# The HTTP status Slack's incoming webhooks answer each of their errors with (plain-text body).
WEBHOOK_ERRORS = {
    "invalid_payload": 400,
    "invalid_blocks": 400,
    "no_text": 400,
    "too_many_attachments": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "posting_to_general_channel_denied": 403,
    "no_service": 404,
    "channel_not_found": 404,
    "channel_is_archived": 410,
}


@dataclass(frozen=True)
class Version:
    """The content of a message before one of its updates."""

    text: str | None
    blocks: list[Any] | None


@dataclass
class Message:
    """One posted message as the fake stores it; `history` holds what updates replaced."""

    channel: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    thread_ts: str | None = None
    attachments: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    history: list[Version] = field(default_factory=list)

    @property
    def edited(self) -> bool:
        return bool(self.history)

    def as_slack(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "ts": self.ts,
            "user": TEAM["user_id"],
            "bot_id": "B0FAKE",
            "text": self.text or "",
        }
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.attachments is not None:
            body["attachments"] = self.attachments
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        return body


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it. Whether auth passed is kept; the token never is."""

    method: str
    authed: bool
    status: int
    error: str | None
    injected: bool


@dataclass
class _Fault:
    method: str | None
    remaining: int
    status: int
    error: str
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, *, webhook: bool = False) -> Response:
        if self.status >= 500:
            # A proxy or a crashed backend answers 5xx without Slack's JSON envelope.
            return PlainTextResponse("fake slack: injected server error", self.status)
        if webhook:
            # Webhooks answer errors as plain text, with a 4xx instead of `ok: false`.
            if self.status == 429:
                return PlainTextResponse("rate_limited", 429, headers=self.headers)
            return PlainTextResponse(self.error, WEBHOOK_ERRORS.get(self.error, 400))
        return _fail(self.error, self.status, headers=self.headers)


class ApiError(Exception):
    """A Slack `{"ok": false}` answer, raised inside a handler."""

    def __init__(self, error: str, status: int = 200) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


class FakeSlack(serving.LocalServer):
    """Slack's Web API at `<url>/api/<method>`; give `slack_sdk` `base_url=fake.api_url`.

    Also one incoming webhook at `webhook_url`, posting into `webhook_channel` (an id or name;
    the first channel by default), for `slack_sdk.webhook.WebhookClient`.
    """

    def __init__(
        self,
        token: str | Iterable[str] = "xoxb-test",
        channels: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        webhook_channel: str | None = None,
        webhook_secret: str = "fake0webhook0secret0123456789",
    ) -> None:
        tokens = [token] if isinstance(token, str) else list(token)
        self._tokens = [t.encode() for t in tokens]
        # id -> name, e.g. {"C0123": "releng"}.
        self.channels: dict[str, str] = dict(channels or {"C0123": "releng"})
        if webhook_channel is None:
            self.webhook_channel = next(iter(self.channels))
        else:
            found = self._channel_id(webhook_channel)
            if found is None:
                raise ValueError(f"the webhook's channel {webhook_channel} is not a channel")
            self.webhook_channel = found
        if not webhook_secret or "/" in webhook_secret:
            raise ValueError("a webhook secret is one non-empty path segment")
        self._webhook_secret = webhook_secret.encode()
        self._clock = clock
        self._last_ts_us = 0
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        super().__init__()
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/services/{path:path}", self._webhook_endpoint, methods=["POST"]),
            ]
        )

    @property
    def api_url(self) -> str:
        """What `slack_sdk.WebClient(base_url=...)` wants: with the trailing slash."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        """The incoming webhook's URL, secret included, as Slack hands it out."""
        return f"{self.url}{WEBHOOK_PATH}{self._webhook_secret.decode()}"

    # -- what the test reads ---------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Every posted message (replies included) in posting order; copies, safe to keep."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def messages_in(self, channel: str) -> list[Message]:
        """Messages in a channel, named by id, name or #name."""
        channel_id = self._channel_id(channel) or channel
        return [m for m in self.messages if m.channel == channel_id]

    def thread(self, ts: str) -> list[Message]:
        """A thread's parent followed by its replies, oldest first."""
        return [m for m in self.messages if ts in (m.ts, m.thread_ts)]

    def message(self, ts: str) -> Message:
        for found in self.messages:
            if found.ts == ts:
                return found
        raise KeyError(ts)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def reset(self) -> None:
        """Forget messages, calls and pending faults; channels and tokens stay."""
        with self._lock:
            self._messages.clear()
            self._calls.clear()
            self._faults.clear()

    # -- misbehaviour on demand ------------------------------------------------------------

    def rate_limit(
        self, times: int = 1, *, retry_after: int = 0, method: str | None = None
    ) -> None:
        """Answer the next `times` calls (to `method`, or any) with 429 and Retry-After.

        `method="webhook"` targets the incoming webhook, as for the other faults.
        """
        headers = {"Retry-After": str(retry_after)}
        self._add_fault(_Fault(method, times, 429, "ratelimited", headers))

    def server_error(self, times: int = 1, *, status: int = 500, method: str | None = None) -> None:
        """Answer the next `times` calls with an HTTP 5xx and a non-JSON body, as a proxy would."""
        if not 500 <= status <= 599:
            raise ValueError(f"not a server error status: {status}")
        self._add_fault(_Fault(method, times, status, f"http_{status}"))

    def api_error(self, error: str, times: int = 1, *, method: str | None = None) -> None:
        """Answer the next `times` calls with HTTP 200 and `{"ok": false, "error": error}`.

        The webhook answers such a fault as Slack's webhooks do: `error` as plain text, with
        the status of `WEBHOOK_ERRORS` (400 for an error not listed there).
        """
        self._add_fault(_Fault(method, times, 200, error))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.method is not None and fault.method not in (*METHODS, WEBHOOK):
            raise ValueError(f"the fake Slack does not serve {fault.method}")
        if fault.remaining < 1:
            raise ValueError("a fault must apply to at least one call")
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- the HTTP side ---------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        method = request.path_params["method"]
        try:
            params = await _params(request)
        except ValueError:
            params = {}
            malformed = True
        else:
            malformed = False
        authed, auth_error = self._check_auth(request, params)
        params.pop("token", None)

        fault = self._take_fault(method) if method in METHODS else None
        if fault is not None:
            response = fault.response()
            self._record(Call(method, authed, response.status_code, fault.error, injected=True))
            return response
        try:
            if method not in METHODS:
                raise ApiError("unknown_method", 404)
            if malformed:
                raise ApiError("invalid_form_data")
            if auth_error is not None:
                raise ApiError(auth_error)
            body = self._handle(method, params)
        except ApiError as failure:
            self._record(Call(method, authed, failure.status, failure.error, injected=False))
            extra = {"req_method": method} if failure.error == "unknown_method" else {}
            return _fail(failure.error, failure.status, extra)
        self._record(Call(method, authed, 200, None, injected=False))
        return JSONResponse({"ok": True, **body})

    async def _webhook_endpoint(self, request: Request) -> Response:
        # Constant-time, as for tokens; a wrong team, bot or secret is all one to Slack.
        path = f"/services/{request.path_params['path']}".encode()
        authed = hmac.compare_digest(path, WEBHOOK_PATH.encode() + self._webhook_secret)
        fault = self._take_fault(WEBHOOK)
        if fault is not None:
            response = fault.response(webhook=True)
            self._record(Call(WEBHOOK, authed, response.status_code, fault.error, injected=True))
            return response
        try:
            if not authed:
                raise ApiError("no_service", 404)
            try:
                params = json.loads(await request.body())
            except ValueError:
                raise ApiError("invalid_payload", 400) from None
            if not isinstance(params, dict):
                raise ApiError("invalid_payload", 400)
            self._post_by_webhook(params)
        except ApiError as failure:
            status = WEBHOOK_ERRORS.get(failure.error, 400)
            self._record(Call(WEBHOOK, authed, status, failure.error, injected=False))
            return PlainTextResponse(failure.error, status)
        self._record(Call(WEBHOOK, authed, 200, None, injected=False))
        return PlainTextResponse("ok")

    def _post_by_webhook(self, params: dict[str, Any]) -> None:
        text, blocks, attachments = _content(params)
        if not (text or blocks or attachments):
            raise ApiError("no_text")
        # A webhook posts into its own channel, never in a thread; the rest is kept as sent.
        extra = {k: v for k, v in params.items() if k not in _CONTENT_KEYS}
        with self._lock:
            message = Message(
                self.webhook_channel, self._next_ts(), text, blocks, None, attachments, extra
            )
            self._messages.append(message)

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _check_auth(self, request: Request, params: dict[str, Any]) -> tuple[bool, str | None]:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        token = credential.strip() if scheme.lower() == "bearer" else ""
        token = token or str(params.get("token") or "")
        if not token:
            return False, "not_authed"
        # Constant-time, so the fake cannot teach a timing leak by example.
        if any(hmac.compare_digest(token.encode(), known) for known in self._tokens):
            return True, None
        return False, "invalid_auth"

    def _handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"url": "https://fake-slack.test/", **TEAM, "bot_id": "B0FAKE"}
        if method == "conversations.info":
            channel_id = str(params.get("channel") or "")
            if channel_id not in self.channels:  # Slack wants an id here, not a name.
                raise ApiError("channel_not_found")
            return {"channel": _channel_info(channel_id, self.channels[channel_id])}
        if method == "chat.postMessage":
            return self._post(params)
        return self._update(params)

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        text, blocks, attachments = _content(params)
        if not (text or blocks or attachments):
            raise ApiError("no_text")
        extra = {k: v for k, v in params.items() if k not in _CONTENT_KEYS}
        with self._lock:
            thread_ts = params.get("thread_ts") or None
            if thread_ts is not None:
                parent = self._find(channel_id, str(thread_ts))
                if parent is None:
                    raise ApiError("thread_not_found")  # Stricter than Slack, on purpose.
                # A reply to a reply lands in the parent's thread, as in Slack.
                thread_ts = parent.thread_ts or parent.ts
            message = Message(
                channel_id, self._next_ts(), text, blocks, thread_ts, attachments, extra
            )
            self._messages.append(message)
            return {"channel": channel_id, "ts": message.ts, "message": message.as_slack()}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._require_channel(params)
        text, blocks, attachments = _content(params)
        if not (text or blocks or attachments):
            raise ApiError("no_text")
        with self._lock:
            message = self._find(channel_id, str(params.get("ts") or ""))
            if message is None:
                raise ApiError("message_not_found")
            message.history.append(Version(message.text, message.blocks))
            if text is not None:
                message.text = text
            # Slack keeps whatever part of the message an update leaves out.
            if blocks is not None:
                message.blocks = blocks
            if attachments is not None:
                message.attachments = attachments
            return {
                "channel": channel_id,
                "ts": message.ts,
                "text": message.text or "",
                "message": message.as_slack(),
            }

    def _require_channel(self, params: dict[str, Any]) -> str:
        channel_id = self._channel_id(str(params.get("channel") or ""))
        if channel_id is None:
            raise ApiError("channel_not_found")
        return channel_id

    def _channel_id(self, channel: str) -> str | None:
        if channel in self.channels:
            return channel
        name = channel.removeprefix("#")
        return next((cid for cid, known in self.channels.items() if known == name), None)

    def _find(self, channel_id: str, ts: str) -> Message | None:
        return next((m for m in self._messages if m.channel == channel_id and m.ts == ts), None)

    def _next_ts(self) -> str:
        # Slack's ts is seconds.microseconds; bumping keeps it unique when the clock repeats.
        micros = max(int(self._clock() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


_CONTENT_KEYS = {"channel", "text", "blocks", "attachments", "thread_ts", "ts"}


def _fail(
    error: str,
    status: int = 200,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error, **(extra or {})}, status, headers)


def _channel_info(channel_id: str, name: str) -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": name,
        "is_channel": True,
        "is_private": False,
        "is_archived": False,
        "is_member": True,
    }


def _content(params: dict[str, Any]) -> tuple[str | None, list[Any] | None, list[Any] | None]:
    text = params.get("text")
    return (
        None if text is None else str(text),
        _json_list(params.get("blocks"), "invalid_blocks"),
        _json_list(params.get("attachments"), "invalid_attachments"),
    )


def _json_list(value: Any, error: str) -> list[Any] | None:
    # Form bodies carry blocks as a JSON string; JSON bodies carry the list itself.
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError(error) from None
    if not isinstance(value, list):
        raise ApiError(error)
    return value


async def _params(request: Request) -> dict[str, Any]:
    """Query string plus body, whichever encoding the SDK chose; raises ValueError if garbled."""
    params: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    if not raw:
        return params
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/json"):
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("a JSON body must be an object")
        params.update(body)
    elif content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        parsed = BytesParser(policy=HTTP).parsebytes(head + raw)
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                params[name] = payload.decode()
    else:
        params.update(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
    return params
