"""The emulator's test-only HTTP control surface under `<root>/_emulator/`, for other processes.

In-process tests call the Emulator's methods; a benchmark or a manual session that started
`python -m tests.emulator` uses these routes instead:

- `GET  artifacts/<taskId>/<runId>/<name>`: an artifact's content (where artifact URLs point)
- `GET  received/<service>.<method>` (e.g. `queue.createTask`): each such call as it arrived,
  before any injected latency: `{"received": [{"params", "at"}]}` on the emulator's clock
- `POST clock` `{"set": ISO, "advanceSeconds": N, "frozen": bool}`: move the emulator's time
- `POST faults` `{"pattern", "latencyMs", "jitterMs", "errorRate", "errors", "script", "params"}`;
  `DELETE faults`; `POST faults/release` lets the calls held (outcome `hold`) go on
- `POST tasks/<taskId>/run`, `POST tasks/<taskId>/resolve` `{"state", "reason"}`
- `POST tasks/<taskId>/artifacts` `{"name", "content", "contentType", "expires"}`
- `POST tasks` `{"tasks": [{"taskId", "expires"}]}`: seed completed tasks in bulk
- `POST index` `{"entries": [{"namespace", "taskId", "expires", "rank"}]}`: seed the index in bulk

A request it cannot act on is a 400 `ControlError` saying why, e.g. a taskId that is not a slugid.
"""

from __future__ import annotations

import functools
import gc
import json
import re
import urllib.parse
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.emulator.api import ApiError, Reply
from tests.emulator.clock import format_time, parse_time
from tests.support import corpus

if TYPE_CHECKING:
    from tests.emulator.server import Emulator


def handle(emulator: Emulator, method: str, segments: list[str], body: bytes) -> Reply:
    try:
        payload: Any = json.loads(body) if body else {}
        return _dispatch(emulator, method, segments, payload)
    except ApiError as error:
        return Reply(error.status, {"code": error.code, "message": error.message}, {})
    except KeyError as error:
        return _refused(f"the request body lacks {error}")
    except (ValueError, TypeError) as error:
        return _refused(str(error))


def _refused(message: str) -> Reply:
    return Reply(400, {"code": "ControlError", "message": message}, {})


def _dispatch(emulator: Emulator, method: str, segments: list[str], payload: Any) -> Reply:
    match method, segments:
        case "GET", ["artifacts", task_id, run_id, *name]:
            with emulator.lock:
                artifact = emulator.queue.artifact_content(
                    _task_id(task_id), _run_id(run_id), urllib.parse.unquote("/".join(name))
                )
            if artifact is None:
                return Reply(404, {"code": "ResourceNotFound", "message": "no such artifact"}, {})
            return Reply(200, artifact.content, {"content-type": artifact.content_type})
        case "POST", ["clock"]:
            if "set" in payload:
                emulator.clock.set(parse_time(payload["set"]), frozen=payload.get("frozen"))
            if "advanceSeconds" in payload:
                emulator.clock.advance(timedelta(seconds=float(payload["advanceSeconds"])))
            return Reply(200, {"now": format_time(emulator.clock.now())}, {})
        case "GET", ["clock"]:
            return Reply(200, {"now": format_time(emulator.clock.now())}, {})
        case "GET", ["received", name]:
            calls = [
                {"params": params, "at": format_time(at)}
                for called, params, at in list(emulator.received)
                if called == name
            ]
            return Reply(200, {"received": calls}, {})
        case "POST", ["faults"]:
            emulator.faults.add(
                payload.get("pattern", "*"),
                latency_ms=float(payload.get("latencyMs", 0)),
                jitter_ms=float(payload.get("jitterMs", 0)),
                error_rate=float(payload.get("errorRate", 0)),
                errors=tuple(payload.get("errors", ("500", "502", "503", "reset"))),
                script=payload.get("script", ()),
                params=payload.get("params"),
            )
            return Reply(200, {}, {})
        case "POST", ["faults", "release"]:
            emulator.faults.release()
            return Reply(200, {}, {})
        case "DELETE", ["faults"]:
            emulator.faults.clear(payload.get("seed"))
            return Reply(200, {}, {})
        case "POST", ["tasks", task_id, "run"]:
            return Reply(200, {"status": emulator.run_task(_task_id(task_id)).status()}, {})
        case "POST", ["tasks", task_id, "resolve"]:
            task = emulator.resolve_task(_task_id(task_id), payload["state"], payload.get("reason"))
            return Reply(200, {"status": task.status()}, {})
        case "POST", ["tasks", task_id, "artifacts"]:
            emulator.add_artifact(
                _task_id(task_id),
                payload["name"],
                payload.get("content", ""),
                content_type=payload.get("contentType"),
                expires=parse_time(payload["expires"]) if "expires" in payload else None,
            )
            return Reply(200, {}, {})
        case "POST", ["tasks"]:
            # All ids are checked before any task is made, so a refusal changes nothing.
            seeds = [(_task_id(task["taskId"]), task["expires"]) for task in payload["tasks"]]
            for task_id, expires in seeds:
                _seed_task(emulator, task_id, parse_time(expires))
            _keep_seeded()
            return Reply(200, {"created": len(payload["tasks"])}, {})
        case "POST", ["index"]:
            for entry in payload["entries"]:
                _task_id(entry["taskId"])
            with emulator.lock:
                for entry in payload["entries"]:
                    emulator.index.insert(
                        entry["namespace"],
                        entry["taskId"],
                        rank=entry.get("rank", 0),
                        expires=parse_time(entry["expires"]),
                    )
            _keep_seeded()
            return Reply(200, {"inserted": len(payload["entries"])}, {})
    return Reply(404, {"code": "ResourceNotFound", "message": "no such control route"}, {})


def _task_id(value: object) -> str:
    """`value` if it is a slugid, the only kind of taskId Taskcluster takes; else ValueError."""
    if not isinstance(value, str) or _task_id_pattern().fullmatch(value) is None:
        raise ValueError(
            f"{value!r} is not a valid taskId: it must be a slugid (22 characters of URL-safe "
            "base64, as slugid.nice() makes), matching " + _task_id_pattern().pattern
        )
    return value


def _run_id(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{value!r} is not a valid runId: it must be a run's number (0, 1...)")
    return int(value)


@functools.cache
def _task_id_pattern() -> re.Pattern[str]:
    """The taskId pattern of Taskcluster's own schemas (task-status.json)."""
    schema = corpus.served_schemas()["/schemas/queue/v1/task-status.json"]
    return re.compile(schema["properties"]["taskId"]["pattern"])


def _keep_seeded() -> None:
    """Seeded data lives as long as the emulator: keep the collector from rescanning it."""
    gc.freeze()


def _seed_task(emulator: Emulator, task_id: str, expires: datetime) -> None:
    now = emulator.clock.now()
    emulator.add_task(
        task_id,
        {
            "taskQueueId": "proj-seeded/worker",
            "created": format_time(now),
            "deadline": format_time(now + timedelta(hours=1)),
            "expires": format_time(expires),
            "payload": {},
            "metadata": {
                "name": "seeded task",
                "description": "seeded through the emulator's control surface",
                "owner": "emulator@example.com",
                "source": "https://example.com/emulator",
            },
        },
    )
    emulator.resolve_task(task_id, "completed")
