"""The emulator's HTTP plumbing: routes, bodies, schemas, errors, faults and the standalone runner."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import aiohttp
import mohawk
import pytest
import requests
import slugid
import taskcluster
import taskcluster.aio
from taskcluster.exceptions import TaskclusterConnectionError, TaskclusterRestFailure

from tests.emulator import Emulator
from tests.emulator.clock import format_time
from tests.emulator.faults import Faults
from tests.emulator.server import MAX_BODY_BYTES
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import task_definition
from tests.support.waiting import HANG_GUARD, wait_until


def signed_post(emulator: Emulator, path: str, content: bytes) -> requests.Response:
    url = f"{emulator.root_url}{path}"
    root = emulator.root_credentials
    sender = mohawk.Sender(
        {"id": root["clientId"], "key": root["accessToken"], "algorithm": "sha256"},
        url,
        "PUT",
        content=content,
        content_type="application/json",
    )
    headers = {"Authorization": sender.request_header, "Content-Type": "application/json"}
    return requests.put(url, data=content, headers=headers, timeout=30)


def assert_error_body(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert set(body["requestInfo"]) >= {"method", "params", "payload", "time"}
    return body


@pytest.mark.parametrize("service", ["queue", "index", "hooks", "auth"])
def test_every_service_answers_ping(emulator: Emulator, service: str) -> None:
    response = requests.get(f"{emulator.root_url}/api/{service}/v1/ping", timeout=10)
    assert response.json()["alive"] is True


def test_unknown_routes_are_404_with_a_real_error_body(emulator: Emulator) -> None:
    for path in ("/api/queue/v1/no/such/route", "/api/nothing/v1/ping", "/elsewhere"):
        body = assert_error_body(
            requests.get(emulator.root_url + path, timeout=10), 404, "ResourceNotFound"
        )
        assert body["message"]


def test_unimplemented_route_says_so(emulator: Emulator) -> None:
    response = requests.get(f"{emulator.root_url}/api/queue/v1/provisioners", timeout=10)
    assert (
        "does not implement queue.listProvisioners"
        in assert_error_body(response, 501, "NotImplemented")["message"]
    )


def test_malformed_json_body_is_400(emulator: Emulator) -> None:
    response = signed_post(emulator, f"/api/queue/v1/task/{slugid.nice()}", b'{"not json')
    assert_error_body(response, 400, "MalformedPayload")


def test_oversized_body_is_413(emulator: Emulator) -> None:
    content = json.dumps({"payload": "x" * (MAX_BODY_BYTES + 1)}).encode()
    response = signed_post(emulator, f"/api/queue/v1/task/{slugid.nice()}", content)
    assert_error_body(response, 413, "InputTooLarge")


def test_invalid_input_is_400_input_validation_error(emulator: Emulator) -> None:
    queue = taskcluster.Queue(emulator.options())
    definition = task_definition(emulator.clock.now(), priority="urgent")
    del definition["metadata"]
    with pytest.raises(TaskclusterRestFailure) as raised:
        queue.createTask(slugid.nice(), definition)
    body = raised.value.body
    assert (raised.value.status_code, body["code"]) == (400, "InputValidationError")
    assert "metadata" in body["message"]
    assert "priority" in body["message"]
    assert body["requestInfo"]["payload"]["priority"] == "urgent"


def test_unknown_query_parameter_is_400(emulator: Emulator) -> None:
    response = requests.get(f"{emulator.root_url}/api/index/v1/tasks/a?sort=up", timeout=10)
    assert_error_body(response, 400, "InvalidRequestArguments")


def test_path_parameters_may_contain_encoded_slashes(emulator: Emulator) -> None:
    hooks = taskcluster.Hooks(emulator.options())
    definition = {
        "metadata": {"name": "n", "description": "d", "owner": "o@example.com"},
        "task": {},
    }
    hooks.createHook("group", "nested/hook/id", definition)
    assert hooks.hook("group", "nested/hook/id")["hookId"] == "nested/hook/id"
    assert hooks.getHookStatus("group", "nested/hook/id") == {"lastFire": {"result": "no-fire"}}
    assert "%2F" in hooks.buildUrl("getHookStatus", "group", "nested/hook/id")


def test_schemas_are_served_where_a_deployment_serves_them(emulator: Emulator) -> None:
    schema = requests.get(
        f"{emulator.root_url}/schemas/queue/v1/create-task-request.json", timeout=10
    ).json()
    assert schema["$id"] == "/schemas/queue/v1/create-task-request.json#"
    missing = requests.get(f"{emulator.root_url}/schemas/queue/v1/nothing.json", timeout=10)
    assert missing.status_code == 404


def test_a_reply_that_breaks_its_schema_fails_loudly(emulator: Emulator) -> None:
    queue = taskcluster.Queue(emulator.options(maxRetries=0))
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    emulator.add_artifact(task_id, "public/odd", b"", storage_type="carrier-pigeon")
    with pytest.raises(TaskclusterRestFailure) as raised:
        queue.listLatestArtifacts(task_id)
    assert raised.value.status_code == 500
    assert "list-artifacts-response" in emulator.schema_violations[0]
    with pytest.raises(AssertionError, match="broke their schemas"):
        emulator.assert_conforming()
    emulator.schema_violations.clear()


@pytest.mark.parametrize("broken", [0, 500, 999])
def test_every_item_of_a_listing_is_checked_against_its_schema(
    emulator: Emulator, broken: int
) -> None:
    # Checking only the first and last items let a broken one in the middle of a page through.
    index = taskcluster.Index(emulator.options(maxRetries=0))
    expires = emulator.clock.now() + timedelta(days=30)
    with emulator.lock:
        for number in range(1000):
            task_id = "not a task id" if number == broken else slugid.nice()
            emulator.index.insert(f"listed.{number:04d}", task_id, expires=expires)
    with pytest.raises(TaskclusterRestFailure) as raised:
        index.listTasks("listed")
    assert raised.value.status_code == 500
    assert f"tasks/{broken}/taskId" in emulator.schema_violations[0]
    emulator.schema_violations.clear()


# -- faults --------------------------------------------------------------------------------


def test_scripted_faults_are_retried_by_the_client(emulator: Emulator) -> None:
    emulator.faults.add("queue.createTask", script=["500", "502", "reset", "503"])
    queue = taskcluster.Queue(emulator.options())
    task_id = slugid.nice()
    assert (
        queue.createTask(task_id, task_definition(emulator.clock.now()))["status"]["taskId"]
        == task_id
    )
    assert [outcome for _, outcome in emulator.faults.injected] == ["500", "502", "reset", "503"]


def test_fault_after_the_call_took_effect_loses_only_the_reply(emulator: Emulator) -> None:
    emulator.faults.add("queue.createTask", script=["500-after"])
    queue = taskcluster.Queue(emulator.options(maxRetries=0))
    task_id = slugid.nice()
    with pytest.raises(TaskclusterRestFailure):
        queue.createTask(task_id, task_definition(emulator.clock.now()))
    assert queue.status(task_id)["status"]["state"] == "pending"


def test_429_carries_retry_after(emulator: Emulator) -> None:
    emulator.faults.add("index.*", script=["429"])
    response = requests.get(f"{emulator.root_url}/api/index/v1/tasks/a", timeout=10)
    assert_error_body(response, 429, "TooManyRequests")
    assert response.headers["Retry-After"] == "1"


def test_faults_apply_only_to_matching_routes(emulator: Emulator) -> None:
    emulator.faults.add("queue.createTask", error_rate=1.0, errors=["500"])
    assert requests.get(f"{emulator.root_url}/api/queue/v1/ping", timeout=10).status_code == 200
    assert emulator.faults.injected == []


def test_error_rate_is_seeded() -> None:
    def outcomes(seed: int) -> list[str]:
        faults = Faults(seed)
        faults.add("queue.*", error_rate=0.2)
        return [faults.decide("queue.createTask").outcome for _ in range(200)]

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)
    failed = sum(outcome != "ok" for outcome in outcomes(7))
    assert 20 < failed < 60


def test_latency_is_added(emulator: Emulator) -> None:
    emulator.faults.add("auth.*", latency_ms=10, jitter_ms=5)
    assert emulator.faults.decide("auth.currentScopes").delay_seconds >= 0.010
    assert emulator.faults.decide("queue.task").delay_seconds == 0


def test_stall_past_the_client_timeout_is_retried(emulator: Emulator) -> None:
    emulator.faults.stall_seconds = 6
    emulator.faults.add("queue.status", script=["stall"])
    task_id = slugid.nice()
    taskcluster.Queue(emulator.options()).createTask(task_id, task_definition(emulator.clock.now()))

    async def status() -> str:
        # Past it only for the stalled call: the retry has time enough on a loaded machine.
        timeout = aiohttp.ClientTimeout(sock_read=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            queue = taskcluster.aio.Queue(emulator.options(), session=session)
            return (await queue.status(task_id))["status"]["state"]

    assert asyncio.run(status()) == "pending"
    assert emulator.faults.injected == [("queue.status", "stall")]


def test_a_held_call_is_unanswered_until_released_then_takes_effect(emulator: Emulator) -> None:
    """Through the control surface, as another process holds and releases calls."""
    control = f"{emulator.root_url}/_emulator/faults"
    task_id = slugid.nice()
    rule = {"pattern": "queue.createTask", "script": ["hold"], "params": {"taskId": task_id}}
    assert requests.post(control, json=rule, timeout=10).status_code == 200
    queue = taskcluster.Queue(emulator.options(maxRetries=0))
    definition = task_definition(emulator.clock.now())
    answered: list[str] = []
    creating = threading.Thread(
        target=lambda: answered.append(queue.createTask(task_id, definition)["status"]["taskId"])
    )
    creating.start()
    try:
        assert wait_until(lambda: emulator.faults.holding == 1)
        assert answered == []
        assert emulator.tasks() == [], "a held call has not taken effect"
    finally:
        released = requests.post(f"{control}/release", timeout=10)
    assert released.status_code == 200
    creating.join(HANG_GUARD)
    assert answered == [task_id]
    assert [task.task_id for task in emulator.tasks()] == [task_id]
    assert emulator.faults.holding == 0
    assert emulator.faults.injected == [("queue.createTask", "hold")]


def test_a_fault_with_params_applies_to_those_calls_only() -> None:
    faults = Faults()
    faults.add("queue.task", error_rate=1.0, errors=["503"], params={"taskId": "a"})
    assert faults.decide("queue.task", {"taskId": "a"}).outcome == "503"
    assert faults.decide("queue.task", {"taskId": "b"}).outcome == "ok"
    assert faults.decide("queue.task").outcome == "ok"


def test_connection_resets_exhaust_the_clients_retries(emulator: Emulator) -> None:
    emulator.faults.add("auth.currentScopes", error_rate=1.0, errors=["reset"])
    with pytest.raises(TaskclusterConnectionError):
        taskcluster.Auth(emulator.options(maxRetries=1)).currentScopes()


def test_unknown_fault_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault outcome"):
        Faults().add("*", script=["explode"])


# -- control surface and standalone ----------------------------------------------------------


def test_http_control_surface_moves_the_clock_and_resolves_tasks(emulator: Emulator) -> None:
    queue = taskcluster.Queue(emulator.options())
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    control = f"{emulator.root_url}/_emulator"
    assert requests.post(
        f"{control}/tasks/{task_id}/resolve", json={"state": "completed"}, timeout=10
    ).ok
    assert queue.status(task_id)["status"]["state"] == "completed"
    before = emulator.clock.now()
    requests.post(f"{control}/clock", json={"advanceSeconds": 3600}, timeout=10)
    assert emulator.clock.now() - before >= timedelta(hours=1)
    bad = requests.post(
        f"{control}/tasks/{slugid.nice()}/resolve", json={"state": "completed"}, timeout=10
    )
    assert bad.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "tasks/not-a-slugid/run", {}),
        ("POST", "tasks/not-a-slugid/resolve", {"state": "completed"}),
        ("POST", "tasks/not-a-slugid/artifacts", {"name": "public/x", "content": "x"}),
        ("GET", "artifacts/not-a-slugid/0/public/x", None),
        ("POST", "index", {"entries": [{"namespace": "a", "taskId": "x", "expires": "2099"}]}),
    ],
)
def test_control_surface_refuses_task_ids_that_are_not_slugids(
    emulator: Emulator, method: str, path: str, body: dict | None
) -> None:
    url = f"{emulator.root_url}/_emulator/{path}"
    response = requests.request(method, url, json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["code"] == "ControlError"
    assert "is not a valid taskId: it must be a slugid" in response.json()["message"]


def test_control_surface_seeds_nothing_if_one_task_id_is_bad(emulator: Emulator) -> None:
    expires = format_time(emulator.clock.now() + timedelta(days=1))
    tasks = [{"taskId": slugid.nice(), "expires": expires}, {"taskId": "bad", "expires": expires}]
    response = requests.post(
        f"{emulator.root_url}/_emulator/tasks", json={"tasks": tasks}, timeout=10
    )
    assert response.status_code == 400
    assert "'bad' is not a valid taskId" in response.json()["message"]
    assert emulator.tasks() == []


def test_control_surface_says_what_is_missing_or_malformed(emulator: Emulator) -> None:
    control = f"{emulator.root_url}/_emulator"
    missing = requests.post(f"{control}/tasks/{slugid.nice()}/resolve", json={}, timeout=10)
    assert (missing.status_code, missing.json()["message"]) == (
        400,
        "the request body lacks 'state'",
    )
    run = requests.get(f"{control}/artifacts/{slugid.nice()}/first/public/x", timeout=10)
    assert run.status_code == 400
    assert "'first' is not a valid runId" in run.json()["message"]


def test_standalone_prints_credentials_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator", "--port", "0", "--latency-ms", "1"],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert set(line) == {"rootUrl", "clientId", "accessToken"}
        assert requests.get(f"{line['rootUrl']}/api/queue/v1/ping", timeout=10).json()["alive"]
        auth = taskcluster.Auth({"rootUrl": line["rootUrl"], "credentials": line})
        assert auth.currentScopes() == {"scopes": ["*"]}
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=HANG_GUARD) in (0, -signal.SIGTERM)


def test_standalone_serves_a_private_deployment_when_asked() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator", "--private"],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        anonymous = taskcluster.Auth({"rootUrl": line["rootUrl"], "maxRetries": 0})
        with pytest.raises(TaskclusterRestFailure) as raised:
            anonymous.currentScopes()
        assert raised.value.status_code == 403
    finally:
        process.terminate()
        process.wait(timeout=HANG_GUARD)


def test_standalone_rejects_a_bad_clients_file(tmp_path) -> None:
    clients = tmp_path / "clients.yml"
    clients.write_text("- not a mapping\n")
    result = subprocess.run(
        [sys.executable, "-m", "tests.emulator", "--clients", str(clients)],
        check=False,
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "clients.yml" in result.stderr
    assert "Traceback" not in result.stderr


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_standalone_starts_quickly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator"],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        json.loads(process.stdout.readline())
        # The work it did to start, which a loaded machine does not stretch as it does the
        # time it took. Generous: the acceptance asks for 2 s; this catches pathologies.
        assert cpu_seconds(process.pid) < 10
    finally:
        process.terminate()
        process.wait(timeout=HANG_GUARD)
