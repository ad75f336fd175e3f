"""A local Sentry ingest endpoint for tests and benchmarks, fed by the unmodified `sentry_sdk`.

Owns envelope decoding (encodings, auth, item framing), the per-type item record and faults.
"""

from __future__ import annotations

import gzip
import hmac
import json
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.emulator import serving

try:
    import brotli  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # Without brotli the SDK never sends br, so the fake need not read it.
    brotli = None

REDACTED = "[redacted]"
DEFAULT_TIMEOUT = 60.0  # only a hang guard: the SDK sends from its own thread


@dataclass(frozen=True)
class Item:
    """One envelope item: its header, its payload (parsed JSON when it is JSON) and envelope."""

    type: str
    headers: dict[str, Any]
    payload: Any
    envelope: dict[str, Any]

    @property
    def json(self) -> dict[str, Any]:
        if not isinstance(self.payload, dict):
            raise TypeError(f"the {self.type} item is not a JSON object")
        return self.payload


@dataclass(frozen=True)
class Delivery:
    """One request as the fake answered it. Never holds the key that was offered."""

    status: int
    encoding: str
    item_types: tuple[str, ...] = ()
    reason: str | None = None
    injected: bool = False

    @property
    def accepted(self) -> bool:
        return self.status == 200


@dataclass
class _Fault:
    remaining: int
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class EnvelopeError(ValueError):
    """The body is not a well-formed envelope."""


class FakeSentry(serving.LocalServer):
    """Sentry's ingest API for one project; point `sentry_sdk.init(dsn=fake.dsn)` at it."""

    def __init__(self, public_key: str = "publickey", project_id: int | str = 1) -> None:
        if not public_key:
            raise ValueError("a DSN needs a public key")
        self._key = public_key
        self.project_id = str(project_id)
        self._changed = threading.Condition(threading.RLock())
        self._items: list[Item] = []
        self._deliveries: list[Delivery] = []
        self._faults: list[_Fault] = []
        super().__init__()
        routes = [
            Route("/api/{project_id}/envelope/", self._envelope, methods=["POST"]),
            Route("/api/{project_id}/store/", self._store, methods=["POST"]),
        ]
        self.app = Starlette(routes=routes)

    # -- running ---------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        return f"http://{self._key}@127.0.0.1:{self.port}/{self.project_id}"

    # -- what the test reads ---------------------------------------------------------------

    @property
    def items(self) -> list[Item]:
        with self._changed:
            return list(self._items)

    def items_of(self, *types: str) -> list[Item]:
        return [i for i in self.items if i.type in types]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Errors and messages (`event` items, and bodies sent to the legacy store endpoint)."""
        return [i.json for i in self.items_of("event")]

    @property
    def transactions(self) -> list[dict[str, Any]]:
        return [i.json for i in self.items_of("transaction")]

    @property
    def check_ins(self) -> list[dict[str, Any]]:
        """Cron check-ins: monitor_slug, status, check_in_id, duration, monitor_config, ..."""
        return [i.json for i in self.items_of("check_in")]

    @property
    def sessions(self) -> list[dict[str, Any]]:
        """Single session updates and aggregates alike."""
        return [i.json for i in self.items_of("session", "sessions")]

    @property
    def deliveries(self) -> list[Delivery]:
        """Every request, accepted or not, in arrival order."""
        with self._changed:
            return list(self._deliveries)

    @property
    def rejections(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.accepted]

    def wait_until(self, predicate: Callable[[FakeSentry], bool], timeout: float) -> None:
        """Block until `predicate(self)` holds; the SDK sends from its own thread."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"the fake Sentry did not get what was expected in {timeout}s")

    def wait_for(self, *types: str, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[Item]:
        """Wait for at least `count` items of these types (any type if none); returns them."""
        self.wait_until(lambda fake: len(fake._matching(types)) >= count, timeout)
        return self._matching(types)

    def _matching(self, types: Iterable[str]) -> list[Item]:
        wanted = set(types)
        return [i for i in self.items if not wanted or i.type in wanted]

    def reset(self) -> None:
        with self._changed:
            self._items.clear()
            self._deliveries.clear()
            self._faults.clear()

    # -- misbehaviour on demand ------------------------------------------------------------

    def rate_limit(
        self, times: int = 1, *, retry_after: int = 60, categories: Iterable[str] = ()
    ) -> None:
        """Refuse the next `times` envelopes with 429 for `categories` (all when empty)."""
        # Relay's format: retry_after:categories:scope; the SDK honours it over Retry-After.
        limits = f"{retry_after}:{';'.join(categories)}:organization"
        headers = {"Retry-After": str(retry_after), "X-Sentry-Rate-Limits": limits}
        self._add_fault(_Fault(times, 429, headers))

    def server_error(self, times: int = 1, *, status: int = 503) -> None:
        if not 500 <= status <= 599:
            raise ValueError(f"not a server error status: {status}")
        self._add_fault(_Fault(times, status))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("a fault must apply to at least one envelope")
        with self._changed:
            self._faults.append(fault)

    def _take_fault(self) -> _Fault | None:
        with self._changed:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.pop(0)
            return fault

    # -- the HTTP side ---------------------------------------------------------------------

    async def _envelope(self, request: Request) -> Response:
        return await self._ingest(request, _parse_envelope)

    async def _store(self, request: Request) -> Response:
        return await self._ingest(request, _parse_store)

    async def _ingest(
        self, request: Request, parse: Callable[[bytes], tuple[dict[str, Any], list[Item]]]
    ) -> Response:
        encoding = request.headers.get("content-encoding", "").strip().lower()
        refusal = self._refusal(request)
        if refusal is not None:
            return self._answer(Delivery(refusal[0], encoding, reason=refusal[1]))
        try:
            envelope, items = parse(_decode(await request.body(), encoding))
        except EnvelopeError as error:
            return self._answer(Delivery(400, encoding, reason=str(error)))
        types = tuple(i.type for i in items)
        fault = self._take_fault()
        if fault is not None:
            reason = "rate limited" if fault.status == 429 else "server error"
            delivery = Delivery(fault.status, encoding, types, reason, injected=True)
            return self._answer(delivery, headers=fault.headers)
        # The SDK copies the DSN and its key into envelope headers (`dsn`, `trace.public_key`);
        # payloads stay as sent so that tests can still catch a real leak.
        scrubbed = _scrub(envelope, self._key)
        accepted = [Item(i.type, i.headers, i.payload, scrubbed) for i in items]
        return self._answer(Delivery(200, encoding, types), accepted, envelope.get("event_id"))

    def _answer(
        self,
        delivery: Delivery,
        items: Iterable[Item] = (),
        event_id: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        with self._changed:
            self._deliveries.append(delivery)
            self._items.extend(items)
            self._changed.notify_all()
        if delivery.accepted:
            return JSONResponse({"id": event_id})
        return JSONResponse({"detail": delivery.reason}, delivery.status, headers)

    def _refusal(self, request: Request) -> tuple[int, str] | None:
        if request.path_params["project_id"] != self.project_id:
            return 404, "unknown project"
        offered = _auth_fields(request.headers.get("x-sentry-auth", "")).get("sentry_key")
        # Browsers and tunnels pass the key in the query string instead.
        offered = offered or request.query_params.get("sentry_key")
        if offered is None:
            return 401, "missing authorization"
        if not hmac.compare_digest(offered.encode(), self._key.encode()):
            return 401, "invalid public key"
        return None


def _scrub(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, REDACTED)
    if isinstance(value, dict):
        return {k: _scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    return value


def _auth_fields(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "sentry":
        return {}
    pairs = (part.strip().partition("=") for part in rest.split(","))
    return {key: value for key, _, value in pairs if key}


def _decode(body: bytes, encoding: str) -> bytes:
    try:
        if encoding in ("", "identity"):
            return body
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return _inflate(body)
        if encoding == "br" and brotli is not None:
            return bytes(brotli.decompress(body))
    except (OSError, zlib.error, EOFError) as error:
        raise EnvelopeError(f"the body is not valid {encoding}") from error
    raise EnvelopeError(f"unsupported content encoding {encoding!r}")


def _inflate(body: bytes) -> bytes:
    # HTTP's deflate is zlib-wrapped, but some clients send the raw stream; accept both.
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, wbits=-zlib.MAX_WBITS)


def _parse_envelope(body: bytes) -> tuple[dict[str, Any], list[Item]]:
    """Header line, then items: a header line with `type` and maybe `length`, then payload."""
    header_line, _, rest = body.partition(b"\n")
    envelope = _json_object(header_line, "envelope header")
    items: list[Item] = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        headers = _json_object(line, "item header")
        length = headers.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            if not isinstance(length, int) or length < 0 or length > len(rest):
                raise EnvelopeError("an item length runs past the end of the envelope")
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        item_type = headers.get("type")
        if not isinstance(item_type, str):
            raise EnvelopeError("an item header has no type")
        items.append(Item(item_type, headers, _payload(payload, headers), envelope))
    return envelope, items


def _parse_store(body: bytes) -> tuple[dict[str, Any], list[Item]]:
    event = _json_object(body, "event")
    envelope = {"event_id": event.get("event_id")}
    item_type = "transaction" if event.get("type") == "transaction" else "event"
    return envelope, [Item(item_type, {"type": item_type}, event, envelope)]


def _payload(raw: bytes, headers: dict[str, Any]) -> Any:
    # Attachments and unknown items may be binary: keep the bytes when they are not JSON.
    if headers.get("type") == "attachment":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise EnvelopeError(f"the {what} is not JSON") from error
    if not isinstance(value, dict):
        raise EnvelopeError(f"the {what} is not a JSON object")
    return value
