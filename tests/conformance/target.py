"""What the conformance tests run against, and how they talk to it.

A `Target` is either the local emulator (the default) or a real, disposable deployment named by
`TC_CONFORMANCE_ROOT_URL`, `TC_CONFORMANCE_CLIENT_ID` and `TC_CONFORMANCE_ACCESS_TOKEN` (a root
client). Tests create what they need through the API, under unique names, and the target removes
it again at teardown. Where a test needs a worker (to run or resolve a task, or to upload an
artifact), the target is one: through the emulator's control surface, or on a deployment through
the queue's worker API. `Api` gives one service through one client flavour (`sync` or `aio`) with
the same method names, and checks every successful reply against Taskcluster's output schema.

Every call holds `assume:anonymous`, and what that role grants differs between deployments
(nothing on a private one, read access on a public one such as Firefox CI). Tests give their
clients the scopes they need and ask the target (`anonymous_may`, `held`) what else a call holds;
`public_and_private` runs a test against an emulated deployment of each kind.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jsonschema
import pytest
import requests
import slugid
import taskcluster
import taskcluster.aio
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from tests.emulator import Emulator
from tests.support import corpus

REAL_ENVIRONMENT = (
    "TC_CONFORMANCE_ROOT_URL",
    "TC_CONFORMANCE_CLIENT_ID",
    "TC_CONFORMANCE_ACCESS_TOKEN",
)
SERVICES = ("queue", "index", "hooks", "auth")
FLAVOURS = ("sync", "aio")

# Names of everything the suite creates on a deployment, so it is easy to find and clean up.
TASK_QUEUE_ID = "proj-tc-scheduler/conformance"
SCHEDULER_ID = "tc-scheduler-conformance"
HOOK_GROUP = "tc-scheduler-conformance"
CLIENT_PREFIX = "project/tc-scheduler/conformance/"
ROLE_PREFIX = "project:tc-scheduler:conformance:"
INDEX_PREFIX = "project.tc-scheduler.conformance"
SCOPE_PREFIX = "project:tc-scheduler:conformance:"
WORKER = {"workerGroup": "tc-scheduler-conformance", "workerId": "conformance"}
ANONYMOUS = "assume:anonymous"
# Emulated deployments: public (an `anonymous` role with read scopes) or private (no such role).
DEPLOYMENTS = ("public", "private")
# How long to wait for what a deployment does in the background (dependency and index handlers
# take a few seconds); generous, since polling ends as soon as the change shows.
BACKGROUND_SECONDS = 60.0
OWNER = "tc-scheduler-conformance@example.com"
SOURCE = "https://github.com/taskcluster/tc-scheduler/tree/main/tests/conformance"

# The scopes needed to create our tasks (apart from the task's own `scopes`): held by the
# restricted clients that create tasks, and by the role `hook-id:<group>/<id>` of our hooks.
CREATE_TASK_SCOPES = (
    f"queue:create-task:lowest:{TASK_QUEUE_ID}",
    f"queue:scheduler-id:{SCHEDULER_ID}",
    "queue:create-task:project:none",
)

ApiFailure = (TaskclusterRestFailure, TaskclusterAuthFailure)
SYNC_CLIENTS: dict[str, Any] = {
    "queue": taskcluster.Queue,
    "index": taskcluster.Index,
    "hooks": taskcluster.Hooks,
    "auth": taskcluster.Auth,
}
AIO_CLIENTS: dict[str, Any] = {
    "queue": taskcluster.aio.Queue,
    "index": taskcluster.aio.Index,
    "hooks": taskcluster.aio.Hooks,
    "auth": taskcluster.aio.Auth,
}


def real_settings() -> tuple[dict[str, str] | None, str | None]:
    """The real deployment's settings, or None for the emulator; and a problem, if half-set."""
    values = {name: os.environ.get(name, "") for name in REAL_ENVIRONMENT}
    if not any(values.values()):
        return None, None
    missing = [name for name, value in values.items() if not value]
    if missing:
        return None, (
            "the conformance suite runs against a real deployment only when all of "
            f"{', '.join(REAL_ENVIRONMENT)} are set; missing: {', '.join(missing)}"
        )
    return values, None


REAL = real_settings()[0] is not None
T = TypeVar("T")
TestFunction = TypeVar("TestFunction", bound=Callable[..., Any])


def public_and_private(test: TestFunction) -> TestFunction:
    """Run the test against a public and a private emulated deployment (only the one deployment
    when `TC_CONFORMANCE_*` name one): for behaviour that depends on the `anonymous` role."""
    if REAL:
        return test
    parametrized: TestFunction = pytest.mark.parametrize("target", DEPLOYMENTS, indirect=True)(test)
    return parametrized


def eventually(
    read: Callable[[], T], ready: Callable[[T], bool], what: str, within: float = BACKGROUND_SECONDS
) -> T:
    """`read()` again until `ready` holds for its result (which is returned), for at most `within`
    seconds: for what a deployment does in the background. The emulator is ready at once."""
    deadline = time.monotonic() + within
    while True:
        value = read()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within:g} s for {what}; last seen: {value!r}")
        time.sleep(0.25)


def emulator_bug(reason: str) -> pytest.MarkDecorator:
    """Expected to fail against the emulator only: Taskcluster behaves so, the emulator does not."""
    return pytest.mark.xfail(not REAL, reason=f"emulator bug: {reason}", strict=True)


def iso(when: datetime) -> str:
    """Taskcluster's JSON time format: UTC with milliseconds and `Z`, as `Date.toJSON()` gives."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def satisfies(held: Iterable[str], required: str) -> bool:
    """Whether a set of scopes grants `required` (equal, or a `*`-ended prefix of it)."""
    return any(
        scope == required or (scope.endswith("*") and required.startswith(scope[:-1]))
        for scope in held
    )


# -- checking replies -------------------------------------------------------------------------

_FORMATS = jsonschema.FormatChecker(formats=())


_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-times, as Taskcluster's schemas require (jsonschema skips them otherwise)."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _unique_items(
    validator: jsonschema.protocols.Validator, unique: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    """`uniqueItems` in linear time (jsonschema compares objects pairwise: slow for 1000 items)."""
    if unique and validator.is_type(instance, "array"):
        seen = {json.dumps(item, sort_keys=True) for item in instance}
        if len(seen) != len(instance):
            yield jsonschema.ValidationError(f"{instance!r} has non-unique elements")


_Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"uniqueItems": _unique_items}
)


@functools.cache
def output_validator(service: str, method: str) -> jsonschema.protocols.Validator | None:
    """The validator of a method's official output schema; None if it declares none.

    The research corpus has no auth reference, so auth replies are not schema-checked.
    """
    if service == "auth":
        return None
    entries = corpus.api_reference(service)["entries"]
    entry = next(
        (e for e in entries if e.get("type", "function") == "function" and e["name"] == method),
        None,
    )
    if entry is None or not isinstance(entry.get("output"), str):
        return None
    name = entry["output"].split("#")[0].removeprefix("v1/")
    registry = corpus.schema_registry()
    schema = registry.contents(f"{corpus.SCHEMA_BASE}/schemas/{service}/v1/{name}")
    return _Validator(schema, registry=registry, format_checker=_FORMATS)


def check_reply(service: str, method: str, reply: Any) -> None:
    """Fail unless a successful reply matches the method's official output schema."""
    validator = output_validator(service, method)
    if validator is None:
        return
    problem = f"{service}.{method} declares an output schema but its reply was not JSON: {reply!r}"
    assert isinstance(reply, dict), problem
    assert "response" not in reply, problem
    problems = sorted(validator.iter_errors(reply), key=lambda e: list(e.absolute_path))
    assert not problems, f"{service}.{method} reply breaks its output schema: " + "; ".join(
        f"{'/'.join(map(str, p.absolute_path)) or '(reply)'}: {p.message[:200]}"
        for p in problems[:5]
    )


def check_error_body(body: Any, method: str | None = None) -> None:
    """Taskcluster error bodies: `{code, message, requestInfo: {method, params, payload, time}}`."""
    assert isinstance(body, dict), body
    for member in ("code", "message"):
        assert isinstance(body.get(member), str), body
        assert body[member], body
    info = body.get("requestInfo")
    assert isinstance(info, dict), body
    assert {"method", "params", "payload", "time"} <= set(info), info
    assert isinstance(info["params"], dict), info
    if method is not None:
        assert info["method"] == method, info


def expect_error(
    status: int, code: str | None, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """Call and require a Taskcluster error reply with this status and code; gives its body.

    `code=None` accepts any code (for the few tests that check the status alone).
    """
    with pytest.raises(ApiFailure) as raised:
        call(*args, **kwargs)
    error = raised.value
    assert error.status_code == status, (
        f"expected {status} {code}, got {error.status_code}: {error}"
    )
    check_error_body(error.body, getattr(call, "method", None))
    if code is not None:
        assert error.body["code"] == code, error.body
    return error.body


def expect_scope_needed(target: Target, scope: str, call: Any, *args: Any) -> Any:
    """A call from a client without `scope`: 403 naming it, or the reply if the anonymous role
    grants it (as on a public deployment)."""
    if target.anonymous_may(scope):
        return call(*args)
    body = expect_error(403, "InsufficientScopes", call, *args)
    assert scope in body["message"], body["message"]
    return None


# -- the two client flavours --------------------------------------------------------------------


class Api:
    """One service through one client flavour; method names as in the `taskcluster` client.

    `aio` runs each coroutine to completion in its own `taskcluster.aio.createSession()`, so tests
    are written once for both flavours. Helpers that are not API calls (`buildUrl`,
    `buildSignedUrl`) are the same synchronous functions in both and come from the sync client.
    """

    def __init__(self, service: str, flavour: str, options: Mapping[str, Any]) -> None:
        assert flavour in FLAVOURS, flavour
        self.service = service
        self.flavour = flavour
        self.options = dict(options)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        sync_client = SYNC_CLIENTS[self.service](copy.deepcopy(self.options))
        if method not in sync_client.funcinfo:
            return getattr(sync_client, method)  # type: ignore[no-any-return]

        def call(*args: Any, **kwargs: Any) -> Any:
            handler = kwargs.get("paginationHandler")
            if handler is not None:
                # The client hands each page to the handler and returns nothing itself.
                def checked(page: Any) -> None:
                    check_reply(self.service, method, page)
                    handler(page)

                kwargs["paginationHandler"] = checked
            if self.flavour == "sync":
                reply = getattr(sync_client, method)(*args, **kwargs)
            else:
                reply = asyncio.run(self._aio(method, args, kwargs))
            if handler is None:
                check_reply(self.service, method, reply)
            return reply

        call.method = method  # type: ignore[attr-defined]
        return call

    async def _aio(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        async with taskcluster.aio.createSession() as session:
            client = AIO_CLIENTS[self.service](copy.deepcopy(self.options), session=session)
            return await getattr(client, method)(*args, **kwargs)


class Clients:
    """The four services through one flavour: `api.queue()`, `api.auth(credentials)`..."""

    def __init__(self, target: Target, flavour: str) -> None:
        self.target = target
        self.flavour = flavour

    def client(
        self, service: str, credentials: Mapping[str, Any] | None = None, **options: Any
    ) -> Api:
        return Api(service, self.flavour, self.target.options(credentials, **options))

    def queue(self, credentials: Mapping[str, Any] | None = None, **options: Any) -> Api:
        return self.client("queue", credentials, **options)

    def index(self, credentials: Mapping[str, Any] | None = None, **options: Any) -> Api:
        return self.client("index", credentials, **options)

    def hooks(self, credentials: Mapping[str, Any] | None = None, **options: Any) -> Api:
        return self.client("hooks", credentials, **options)

    def auth(self, credentials: Mapping[str, Any] | None = None, **options: Any) -> Api:
        return self.client("auth", credentials, **options)


# -- the target ---------------------------------------------------------------------------------


class Target:
    """The emulator or a real deployment, with what tests need to create and clean up.

    Everything made through the helpers (clients, roles, tasks, hooks, index entries) is removed
    at teardown, in reverse order; "already gone" answers (404, 409, 410) are fine then.
    """

    def __init__(
        self,
        root_url: str,
        root_credentials: Mapping[str, str],
        control: Emulator | None = None,
    ) -> None:
        self.root_url = root_url.rstrip("/")
        self.root_credentials = dict(root_credentials)
        self.control = control
        self._cleanups: list[tuple[str, Callable[[], Any]]] = []

    @classmethod
    def real(cls, settings: Mapping[str, str]) -> Target:
        return cls(
            settings["TC_CONFORMANCE_ROOT_URL"],
            {
                "clientId": settings["TC_CONFORMANCE_CLIENT_ID"],
                "accessToken": settings["TC_CONFORMANCE_ACCESS_TOKEN"],
            },
        )

    @classmethod
    def emulated(cls, emulator: Emulator) -> Target:
        return cls(emulator.root_url, emulator.root_credentials, emulator)

    @property
    def is_real(self) -> bool:
        return self.control is None

    # -- basics ---------------------------------------------------------------------------

    def options(self, credentials: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """`taskcluster` client options; the root client unless `credentials` are given.

        Against the emulator nothing is retried, so a server error shows at once; against a
        deployment the client's usual five retries ride out transient 5xx.
        """
        options: dict[str, Any] = {
            "rootUrl": self.root_url,
            "credentials": dict(credentials if credentials is not None else self.root_credentials),
            "maxRetries": 5 if self.is_real else 0,
        }
        options.update(extra)
        return options

    def root(self, service: str) -> Any:
        """A sync client of the root credentials, for set-up and clean-up."""
        return SYNC_CLIENTS[service](self.options())

    def now(self) -> datetime:
        """The target's time: the emulator's clock, or (for a deployment) this machine's."""
        return self.control.clock.now() if self.control is not None else datetime.now(UTC)

    def unique(self, prefix: str = "") -> str:
        return f"{prefix}{slugid.nice()}"

    def require_control(self) -> Emulator:
        """The emulator, or skip: moving the clock needs it."""
        if self.control is None:
            pytest.skip("needs the emulator's clock; a real deployment's time cannot be moved")
        return self.control

    # -- what every call holds -------------------------------------------------------------------

    def anonymous_scopes(self) -> list[str]:
        """What the `anonymous` role grants (expanded): every call holds it."""
        return self.held([])

    def anonymous_may(self, scope: str) -> bool:
        """Whether any call, even one without credentials, holds `scope`."""
        return satisfies(self.anonymous_scopes(), scope)

    def held(self, scopes: Iterable[str]) -> list[str]:
        """What a call with these scopes holds: their expansion plus the anonymous role's,
        sorted, as `auth.currentScopes` answers."""
        reply = self.root("auth").expandScopes({"scopes": [*scopes, ANONYMOUS]})
        return sorted(reply["scopes"])

    # -- acting as the worker ------------------------------------------------------------------

    def run_task(self, task_id: str) -> None:
        """Start the task's pending run, as a worker claiming it."""
        if self.control is not None:
            self.control.run_task(task_id)
            return
        run_id = self._latest_run(task_id)
        self.root("queue").claimTask(task_id, str(run_id), WORKER)

    def resolve_task(self, task_id: str, state: str) -> None:
        """Finish the task as `completed` or `failed` (running it first if it is pending)."""
        assert state in ("completed", "failed"), state
        if self.control is not None:
            self.control.resolve_task(task_id, state)
            return
        queue = self.root("queue")
        if queue.status(task_id)["status"]["state"] == "pending":
            self.run_task(task_id)
        report = queue.reportCompleted if state == "completed" else queue.reportFailed
        report(task_id, str(self._latest_run(task_id)))

    def add_artifact(
        self, task_id: str, name: str, content: str | Mapping[str, Any], content_type: str
    ) -> None:
        """Upload an artifact to the task's running run, as its worker does."""
        if self.control is not None:
            self.control.add_artifact(task_id, name, content, content_type=content_type)
            return
        data = (content if isinstance(content, str) else json.dumps(content)).encode()
        queue = self.root("queue")
        request = {
            "storageType": "s3",
            "contentType": content_type,
            "expires": queue.task(task_id)["expires"],
        }
        reply = queue.createArtifact(task_id, str(self._latest_run(task_id)), name, request)
        upload = requests.put(
            reply["putUrl"], data=data, headers={"Content-Type": content_type}, timeout=30
        )
        upload.raise_for_status()

    def _latest_run(self, task_id: str) -> int:
        runs = self.root("queue").status(task_id)["status"]["runs"]
        assert runs, f"task {task_id} has no run yet"
        return int(runs[-1]["runId"])

    # -- things that are cleaned up -----------------------------------------------------------

    def defer(self, description: str, cleanup: Callable[[], Any]) -> None:
        self._cleanups.append((description, cleanup))

    def make_client(self, scopes: Iterable[str], *, client_id: str | None = None) -> dict[str, str]:
        """A new client with these scopes, made through `auth.createClient` and deleted later."""
        client_id = client_id or self.unique(CLIENT_PREFIX)
        reply = self.root("auth").createClient(client_id, self.client_request(scopes))
        self.forget_client(client_id)
        return {"clientId": client_id, "accessToken": reply["accessToken"]}

    def client_request(self, scopes: Iterable[str]) -> dict[str, Any]:
        return {
            "description": "tc-scheduler conformance test client; safe to delete",
            "expires": iso(self.now() + timedelta(days=7)),
            "scopes": list(scopes),
            "deleteOnExpiration": True,
        }

    def forget_client(self, client_id: str) -> None:
        self.defer(f"client {client_id}", lambda: self.root("auth").deleteClient(client_id))

    def make_role(self, role_id: str, scopes: Iterable[str]) -> None:
        """A role with these scopes, made through `auth.createRole` and deleted later."""
        self.root("auth").createRole(role_id, self.role_request(scopes))
        self.forget_role(role_id)

    def role_request(self, scopes: Iterable[str]) -> dict[str, Any]:
        return {
            "description": "tc-scheduler conformance test role; safe to delete",
            "scopes": list(scopes),
        }

    def forget_role(self, role_id: str) -> None:
        self.defer(f"role {role_id}", lambda: self.root("auth").deleteRole(role_id))

    def new_task_id(self) -> str:
        """A fresh taskId whose task (if one is created) is canceled at teardown."""
        task_id = slugid.nice()
        self.track_task(task_id)
        return task_id

    def track_task(self, task_id: str) -> None:
        self.defer(f"task {task_id}", lambda: self.root("queue").cancelTask(task_id))

    def task_definition(self, **overrides: Any) -> dict[str, Any]:
        """A valid createTask request in our task queue, timed by the target's clock.

        The deadline is short (an hour): no worker takes these tasks on a deployment.
        """
        now = self.now()
        definition: dict[str, Any] = {
            "taskQueueId": TASK_QUEUE_ID,
            "schedulerId": SCHEDULER_ID,
            "created": iso(now),
            "deadline": iso(now + timedelta(hours=1)),
            "expires": iso(now + timedelta(days=1)),
            "payload": {},
            "metadata": {
                "name": "tc-scheduler conformance task",
                "description": "Created by tc-scheduler's conformance tests; nothing runs it.",
                "owner": OWNER,
                "source": SOURCE,
            },
        }
        definition.update(overrides)
        return definition

    def create_task(self, task_id: str | None = None, **overrides: Any) -> str:
        """Create a task (as root) for tests about something else; gives its taskId."""
        task_id = task_id or self.new_task_id()
        self.root("queue").createTask(task_id, self.task_definition(**overrides))
        return task_id

    def index_namespace(self) -> str:
        """A fresh namespace for index entries (`project.tc-scheduler.conformance.<slug>`)."""
        return f"{INDEX_PREFIX}.{slugid.nice()}"

    def track_index(self, path: str) -> None:
        self.defer(f"index entry {path}", lambda: self.root("index").deleteTask(path))

    def hook_id(self, group: str = HOOK_GROUP) -> str:
        """A fresh hookId in `group`; the hook (if created) is removed at teardown."""
        hook_id = self.unique("hook-")
        self.defer(f"hook {group}/{hook_id}", lambda: self.root("hooks").removeHook(group, hook_id))
        return hook_id

    def make_hook_role(self, group: str, hook_id: str, extra: Iterable[str] = ()) -> None:
        """The role `hook-id:<group>/<id>` the hooks service creates the hook's tasks with."""
        self.make_role(f"hook-id:{group}/{hook_id}", [*CREATE_TASK_SCOPES, *extra])

    def close(self) -> list[str]:
        """Undo everything made through the helpers; gives what could not be undone."""
        problems: list[str] = []
        while self._cleanups:
            description, cleanup = self._cleanups.pop()
            try:
                cleanup()
            except ApiFailure as error:
                if getattr(error, "status_code", None) not in (404, 409, 410):
                    problems.append(f"removing {description}: {error}")
        return problems
