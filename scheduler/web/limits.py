"""The API's limit on request bodies: one request cannot fill the ledger (a fire's input, a
hook's payload and the audit row that keeps it) or the service's memory.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The largest request body the API reads: far more than any input or payload a person writes.
MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = (
    f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB, the most the API takes; "
    "send a smaller input (large data belongs in an artifact the task fetches)"
)


class BodyTooLarge(HTTPException):
    """Raised by the body as it is read, so that the app answers it as any error of its own."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail=TOO_LARGE)


class BodyLimit:
    """ASGI middleware: a request whose body is over `MAX_BODY_BYTES` gets `too_large()` (a
    413) and is read no further; at once when its Content-Length says so, else as soon as the
    body, read as it streams in, passes the limit."""

    def __init__(self, app: ASGIApp, *, too_large: Callable[[], Response]) -> None:
        self.app = app
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            await self.too_large()(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # Read outside a route (where the app would have answered it): answered here.
            if started:
                raise
            await self.too_large()(scope, receive, send)
