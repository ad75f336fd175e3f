"""The local Taskcluster: one ASGI app serving queue, index, hooks and auth under one root URL.

Every call goes the way a deployment's does: route from the API reference, faults, Hawk, body
and input schema, scopes, handler, output schema, `{code, message, requestInfo}` errors.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from tests.emulator import auth, control, hawk, schemas, serving
from tests.emulator.api import ApiError, Call, Handler, Identity, Reply, Route, known
from tests.emulator.clock import Clock, format_time, parse_time
from tests.emulator.faults import HOLD, Faults
from tests.emulator.hooks import Hooks
from tests.emulator.index import Index
from tests.emulator.queue import Queue, Task
from tests.support import corpus

ROOT_CLIENT_ID = "static/taskcluster/root"
HOOKS_CLIENT_ID = "static/taskcluster/hooks"
INDEX_CLIENT_ID = "static/taskcluster/index"
MAX_BODY_BYTES = 10 * 1024 * 1024
SERVICES = ("queue", "index", "hooks", "auth")
MONITORING = ("ping", "lbheartbeat", "version", "heartbeat")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Emulator:
    """Taskcluster's queue, index, hooks and auth on 127.0.0.1, for the real client to talk to.

    Use it as a context manager (`with Emulator() as tc:`), then `tc.options()` gives the
    `taskcluster` client options of the root client; `tc.add_client(...)` makes restricted ones.

    By default it is a public deployment, as Firefox CI is: the `anonymous` role (which every
    call holds) grants the read-only scopes of Taskcluster's docs. `private=True` makes a
    private one, without that role: then a call may do only what its credentials allow.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        clients: Mapping[str, Mapping[str, Any]] | None = None,
        roles: Mapping[str, Sequence[str]] | None = None,
        max_deadline: timedelta = timedelta(days=5),
        root_access_token: str | None = None,
        seed: int = 0,
        private: bool = False,
    ) -> None:
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.faults = Faults(seed)
        self.root_url = ""
        self.schema_violations: list[str] = []
        # Every API call as it arrived, before any latency injected: (service.method, its URL
        # parameters, the emulator's time then). Benchmarks time the service by it.
        self.received: list[tuple[str, dict[str, str], datetime]] = []
        self.started = time.monotonic()
        now = self.clock.now()
        self.auth = auth.Auth()
        if not private:
            self.auth.set_role("anonymous", auth.ANONYMOUS_SCOPES, now)
        for role_id, role_scopes in (roles or {}).items():
            self.auth.set_role(role_id, role_scopes, now)
        self.root_credentials = {
            "clientId": ROOT_CLIENT_ID,
            "accessToken": self.auth.add_client(
                ROOT_CLIENT_ID, ["*"], now, root_access_token, description="root"
            ).access_token,
        }
        self.auth.add_client(INDEX_CLIENT_ID, ["queue:get-artifact:*"], now)
        for client_id, spec in (clients or {}).items():
            self.auth.add_client(client_id, spec.get("scopes", []), now, spec.get("accessToken"))
        self.queue = Queue(max_deadline=max_deadline, artifact_url=self._artifact_download_url)
        self.queue.on_completed.append(self._index_completed)
        self.index = Index(self._latest_artifact_url)
        self.hooks = Hooks(self._create_task_for_hook)
        self.authenticator = hawk.Authenticator(
            lambda client_id: self.auth.credentials(client_id, self.clock.now()),
            self.auth.expand,
            self.clock.now,
        )
        handlers: dict[str, Mapping[str, Handler]] = {
            "queue": self.queue.handlers(),
            "index": self.index.handlers(),
            "hooks": self.hooks.handlers(),
            "auth": self.auth.handlers(),
        }
        self.routes = {
            service: [(route, handlers[service].get(route.name)) for route in _routes(service)]
            for service in SERVICES
        }
        # Each request looks among its service's routes for its method only.
        self._by_method: dict[tuple[str, str], list[tuple[Route, Handler | None]]] = {}
        for service, entries in self.routes.items():
            for route, handler in entries:
                self._by_method.setdefault((service, route.method), []).append((route, handler))
        self._served: serving.Served | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, port: int = 0) -> Emulator:
        self._served = serving.start(self, port)
        self.root_url = self._served.url
        return self

    def stop(self) -> None:
        self.faults.release()  # nothing held outlives the emulator
        if self._served is not None:
            self._served.stop()
            self._served = None

    def __enter__(self) -> Emulator:
        return self.start() if self._served is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- credentials ----------------------------------------------------------------------

    def options(self, credentials: Mapping[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        """Options for `taskcluster.Queue(...)` etc.; the root client unless told otherwise."""
        return {
            "rootUrl": self.root_url,
            "credentials": dict(credentials or self.root_credentials),
            **extra,
        }

    def add_client(self, client_id: str, scopes: Sequence[str]) -> dict[str, str]:
        with self.lock:
            client = self.auth.add_client(client_id, scopes, self.clock.now())
        return {"clientId": client.client_id, "accessToken": client.access_token}

    def set_role(self, role_id: str, scopes: Sequence[str]) -> None:
        with self.lock:
            self.auth.set_role(role_id, scopes, self.clock.now())

    # -- the control surface (tests only; no deployment has it) ------------------------------

    def add_task(self, task_id: str, definition: Mapping[str, Any]) -> Task:
        """Create a task as the root client would, without HTTP: for seeding thousands."""
        route = next(r for r, _ in self.routes["queue"] if r.name == "createTask")
        with self.lock:
            now = self.clock.now()
            owned = copy.deepcopy(dict(definition))
            call = Call(route, {"taskId": task_id}, {}, owned, known(self._root()), now)
            return self.queue.create(task_id, owned, call)

    def _root(self) -> Identity:
        return Identity(ROOT_CLIENT_ID, ["*"])

    def run_task(self, task_id: str) -> Task:
        with self.lock:
            return self.queue.run(task_id, self.clock.now())

    def resolve_task(self, task_id: str, state: str, reason: str | None = None) -> Task:
        """Resolve as completed, failed or exception (with `reason`, e.g. `canceled`)."""
        with self.lock:
            return self.queue.resolve(task_id, state, self.clock.now(), reason)

    def expire_task(self, task_id: str) -> None:
        """Make the task and its index entries expire now, as the expiration crontask would."""
        with self.lock:
            now = self.clock.now()
            task = self.queue.need(task_id, now)
            task.expires = now
            for entry in self.index.entries.values():
                if entry.task_id == task_id:
                    entry.expires = now

    def add_artifact(
        self,
        task_id: str,
        name: str,
        content: bytes | str | Mapping[str, Any] | list[Any] = b"",
        *,
        content_type: str | None = None,
        expires: datetime | None = None,
        storage_type: str = "s3",
        url: str | None = None,
    ) -> None:
        """Attach an artifact to the task's latest run; dicts and lists are stored as JSON."""
        if isinstance(content, Mapping | list):
            content = json.dumps(content).encode()
            content_type = content_type or "application/json"
        elif isinstance(content, str):
            content = content.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        with self.lock:
            self.queue.add_artifact(
                task_id,
                name,
                self.clock.now(),
                content=content,
                content_type=content_type or "application/octet-stream",
                expires=expires,
                storage_type=storage_type,
                url=url,
            )

    def tasks(self) -> list[Task]:
        with self.lock:
            now = self.clock.now()
            return [t for t in (self.queue.get(i, now) for i in list(self.queue.tasks)) if t]

    def assert_conforming(self) -> None:
        """Fail if any reply the emulator sent broke its own published schema."""
        if self.schema_violations:
            raise AssertionError(
                "emulator replies broke their schemas:\n" + "\n".join(self.schema_violations)
            )

    # -- wiring between services -----------------------------------------------------------

    def _artifact_download_url(self, task_id: str, run_id: int, name: str) -> str:
        return f"{self.root_url}/_emulator/artifacts/{task_id}/{run_id}/{urllib.parse.quote(name)}"

    def _latest_artifact_url(self, task_id: str, name: str) -> str:
        """Where the index redirects for an artifact: signed by the index for private ones."""
        url = f"{self.root_url}/api/queue/v1/task/{task_id}/artifacts/" + urllib.parse.quote(
            name, safe=""
        )
        if name.startswith("public/"):
            return url
        credentials = self.auth.credentials(INDEX_CLIENT_ID, self.clock.now())
        assert credentials is not None
        return hawk.signed_url(url, credentials)

    def _index_completed(self, task: Task, now: datetime) -> None:
        """What Taskcluster's index-handlers do when a task with `index.` routes completes."""
        extra = task.definition.get("extra", {}).get("index", {})
        expires = parse_time(extra["expires"]) if "expires" in extra else task.expires
        for route in task.definition["routes"]:
            if route.startswith("index."):
                self.index.insert(
                    route.removeprefix("index."),
                    task.task_id,
                    rank=extra.get("rank", 0),
                    data=extra.get("data", {}),
                    expires=expires,
                )

    def _create_task_for_hook(
        self, task_id: str, definition: dict[str, Any], role_id: str, now: datetime
    ) -> str:
        route = next(r for r, _ in self.routes["queue"] if r.name == "createTask")
        problems = schemas.input_errors(route.input_schema, definition)
        if problems:
            raise ApiError(
                "InputValidationError",
                f"the hook's task is not a valid task: {schemas.describe(problems[0])}",
            )
        # The hooks service calls the queue with authorizedScopes [assume:<role>]; like every
        # call, that one holds the anonymous role as well.
        identity = Identity(
            HOOKS_CLIENT_ID, self.auth.expand([f"assume:{role_id}", hawk.ANONYMOUS])
        )
        # A copy: the rendered task may share values with the hook's trigger payload.
        owned = copy.deepcopy(definition)
        call = Call(route, {"taskId": task_id}, {}, owned, known(identity), now)
        return self.queue.create(task_id, owned, call).state

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        segments = raw_path.split("/")[1:]
        query = urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        if segments[:1] == ["schemas"]:
            await _respond(send, self._schema(scope["path"]))
        elif segments[:1] == ["_emulator"]:
            body = await _read_body(receive, MAX_BODY_BYTES)
            await _respond(send, control.handle(self, scope["method"], segments[1:], body))
        elif len(segments) >= 3 and segments[0] == "api" and segments[2] == "v1":
            await self._api(scope, receive, send, segments[1], segments[3:], dict(query))
        else:
            missing = ApiError("ResourceNotFound", f"no such path {raw_path}")
            await _respond(send, _error_reply(missing, {"time": self._now_text()}))

    def _now_text(self) -> str:
        return format_time(self.clock.now())

    def _schema(self, path: str) -> Reply:
        schema = corpus.served_schemas().get(path.removesuffix("#"))
        if schema is None:
            return _error_reply(ApiError("ResourceNotFound", f"no schema at {path}"), {})
        return Reply(200, schema, {})

    async def _api(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        service: str,
        path: list[str],
        query: dict[str, str],
    ) -> None:
        method = scope["method"]
        found = self._match(service, method, path)
        if found is None:
            info = {"method": method, "path": "/" + "/".join(path), "time": self._now_text()}
            message = f"no {service} v1 route for {method} /{'/'.join(path)}"
            await _respond(send, _error_reply(ApiError("ResourceNotFound", message), info))
            return
        route, handler, params = found
        self.received.append((f"{service}.{route.name}", params, self.clock.now()))
        decision = self.faults.decide(f"{service}.{route.name}", params)
        if decision.delay_seconds:
            await asyncio.sleep(decision.delay_seconds)
        if decision.outcome == "stall":
            await asyncio.sleep(self.faults.stall_seconds)
            await _drop(send)
            return
        if not decision.after:
            if decision.outcome == "reset":
                await _drop(send)
                return
            if decision.status is not None:
                await _respond(send, _fault_reply(decision.status, route))
                return
        try:
            body = await _read_body(receive, MAX_BODY_BYTES)
        except ApiError as error:
            await _respond(send, _error_reply(error, {"method": route.name, "params": params}))
            return
        if decision.outcome == HOLD:
            await self.faults.hold()
        headers = _headers(scope, (b"host", b"authorization", b"content-type"))
        url = f"http://{headers.get('host', 'localhost')}{scope.get('raw_path', b'').decode('latin-1')}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = hawk.Request(
            method=method,
            url=url,
            authorization=headers.get("authorization"),
            content=body,
            content_type=headers.get("content-type", ""),
        )
        with self.lock:
            reply = self._handle(route, handler, params, query, request)
        if decision.after:
            if decision.outcome == "reset-after":
                await _drop(send)
                return
            assert decision.status is not None
            reply = _fault_reply(decision.status, route)
        await _respond(send, reply)

    def _match(
        self, service: str, method: str, path: list[str]
    ) -> tuple[Route, Handler | None, dict[str, str]] | None:
        candidates = self._by_method.get((service, method), [])
        # Exact lengths first, so `/hooks/<g>/<id>/status` is not read as a hook id with a slash.
        for exact in (True, False):
            for route, handler in candidates:
                if exact and len(route.pattern) != len(path):
                    continue
                params = route.match(path)
                if params is not None:
                    return route, handler, params
        return None

    def _handle(
        self,
        route: Route,
        handler: Handler | None,
        params: dict[str, str],
        query: dict[str, str],
        request: hawk.Request,
    ) -> Reply:
        now = self.clock.now()
        info: dict[str, Any] = {"method": route.name, "params": params, "time": format_time(now)}
        try:
            if route.name in MONITORING:
                return Reply(200, self._monitoring(route.name), {})
            if handler is None:
                raise ApiError(
                    "NotImplemented",
                    f"the emulator does not implement {route.service}.{route.name}",
                )
            # taskcluster-lib-api's order: body, scopes (when the URL says enough), query,
            # input schema, handler. Authentication happens only when a scope check needs it.
            body = _parse_body(request.content, route)
            info["payload"] = body if body is not None else {}
            call = Call(route, params, query, body, self._authenticate(request), now)
            if route.scopes is not None and route.template_params <= params.keys():
                call.authorize()
            unknown = sorted(set(query) - set(route.query) - {"bewit"})
            if unknown:
                raise ApiError("InvalidRequestArguments", f"unknown query parameters: {unknown}")
            if route.input_schema is not None:
                errors = schemas.input_errors(route.input_schema, body)
                if errors:
                    raise ApiError(
                        "InputValidationError",
                        f"the request body does not match {route.input_schema}:\n"
                        + "\n".join(f"- {schemas.describe(error)}" for error in errors[:10]),
                    )
            result = handler(call)
            if route.scopes is not None and not call.authorized:
                raise AssertionError(f"emulator bug: {route.name} did not check scopes")
            if route.output_schema is not None and result is not None and call.status != 204:
                violation = self._check_output(route, result)
                if violation:
                    raise ApiError("InternalServerError", violation)
            return Reply(call.status, result, call.headers)
        except ApiError as error:
            return _error_reply(error, info)

    def _authenticate(self, request: hawk.Request) -> Callable[[], Identity]:
        return lambda: self.authenticator.identify(request)

    def _monitoring(self, name: str) -> dict[str, Any]:
        if name == "ping":
            return {"alive": True, "uptime": time.monotonic() - self.started}
        if name == "version":
            return {"source": "tc-scheduler emulator", "version": "106.0.0"}
        return {}

    def _check_output(self, route: Route, result: Any) -> str | None:
        assert route.output_schema is not None
        if schemas.reply_conforms(route.output_schema, result):
            return None
        # Only a broken reply pays for jsonschema, whose errors say where the reply broke.
        errors = list(schemas.reply_validator(route.output_schema).iter_errors(result))
        if not errors:
            return None
        violation = (
            f"the emulator's reply to {route.service}.{route.name} breaks "
            f"{route.output_schema}: {schemas.describe(errors[0])}"
        )
        self.schema_violations.append(violation)
        return violation


# -- helpers ------------------------------------------------------------------------------


def _routes(service: str) -> list[Route]:
    entries = auth.REFERENCE if service == "auth" else corpus.api_reference(service)["entries"]
    return [
        Route.from_entry(service, e) for e in entries if e.get("type", "function") == "function"
    ]


def _headers(scope: Scope, names: tuple[bytes, ...]) -> dict[str, str]:
    """The request's headers of these (lower-case) names; the last of a repeated one wins."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered in names:
            found[lowered.decode("latin-1")] = value.decode("latin-1")
    return found


def _parse_body(content: bytes, route: Route) -> Any:
    if not content:
        return None if route.input_schema is None else {}
    try:
        return json.loads(content)
    except (UnicodeDecodeError, ValueError) as error:
        raise ApiError("MalformedPayload", f"the request body is not valid JSON: {error}") from None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError("InputTooLarge", f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _error_reply(error: ApiError, info: Mapping[str, Any]) -> Reply:
    request_info = {"method": "", "params": {}, "payload": {}, "time": "", **info}
    message = f"{error.message}\n\n---\n\n* method:     {request_info['method']}\n* errorCode:  {error.code}\n* statusCode: {error.status}\n* time:       {request_info['time']}"
    body = {"code": error.code, "message": message, "requestInfo": request_info}
    return Reply(error.status, body, {})


def _fault_reply(status: int, route: Route) -> Reply:
    if status == 429:
        error = ApiError("TooManyRequests", "injected fault: too many requests")
        return Reply(429, _error_reply(error, {"method": route.name}).body, {"Retry-After": "1"})
    codes = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
    error = ApiError(codes[status], f"injected fault: {status}")
    return Reply(status, _error_reply(error, {"method": route.name}).body, {})


async def _respond(send: Send, reply: Reply) -> None:
    if isinstance(reply.body, bytes):
        content = reply.body
    elif reply.status == 204 or reply.body is None:
        content = b""
    else:
        content = json.dumps(reply.body).encode()
    fields = {"content-type": "application/json; charset=utf-8"}
    fields.update((name.lower(), value) for name, value in reply.headers.items())
    fields["content-length"] = str(len(content))
    headers = [(name.encode(), value.encode("latin-1")) for name, value in fields.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


class _DroppedConnectionError(Exception):
    """Raised mid-response so the server closes the connection, as a network fault does."""


async def _drop(send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
    )
    raise _DroppedConnectionError
