"""The emulator's test-only HTTP control surface under `<root>/_emulator/`, for other processes.

In-process tests call the Emulator's methods; a benchmark or a manual session that started
`python -m tests.emulator` uses these routes instead:

- `GET  artifacts/<taskId>/<runId>/<name>`: an artifact's content (where artifact URLs point)
- `POST clock` `{"set": ISO, "advanceSeconds": N, "frozen": bool}`: move the emulator's time
- `POST faults` `{"pattern", "latencyMs", "jitterMs", "errorRate", "errors", "script"}`; `DELETE faults`
- `POST tasks/<taskId>/run`, `POST tasks/<taskId>/resolve` `{"state", "reason"}`
- `POST tasks/<taskId>/artifacts` `{"name", "content", "contentType", "expires"}`
- `POST tasks` `{"tasks": [{"taskId", "expires"}]}`: seed completed tasks in bulk
- `POST index` `{"entries": [{"namespace", "taskId", "expires", "rank"}]}`: seed the index in bulk
"""

from __future__ import annotations

import gc
import json
import urllib.parse
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.emulator.api import ApiError, Reply
from tests.emulator.clock import format_time, parse_time

if TYPE_CHECKING:
    from tests.emulator.server import Emulator


def handle(emulator: Emulator, method: str, segments: list[str], body: bytes) -> Reply:
    try:
        payload: Any = json.loads(body) if body else {}
        return _dispatch(emulator, method, segments, payload)
    except ApiError as error:
        return Reply(error.status, {"code": error.code, "message": error.message}, {})
    except (ValueError, KeyError, TypeError) as error:
        return Reply(400, {"code": "ControlError", "message": str(error)}, {})


def _dispatch(emulator: Emulator, method: str, segments: list[str], payload: Any) -> Reply:
    match method, segments:
        case "GET", ["artifacts", task_id, run_id, *name]:
            with emulator.lock:
                artifact = emulator.queue.artifact_content(
                    task_id, int(run_id), urllib.parse.unquote("/".join(name))
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
        case "POST", ["faults"]:
            emulator.faults.add(
                payload.get("pattern", "*"),
                latency_ms=float(payload.get("latencyMs", 0)),
                jitter_ms=float(payload.get("jitterMs", 0)),
                error_rate=float(payload.get("errorRate", 0)),
                errors=tuple(payload.get("errors", ("500", "502", "503", "reset"))),
                script=payload.get("script", ()),
            )
            return Reply(200, {}, {})
        case "DELETE", ["faults"]:
            emulator.faults.clear(payload.get("seed"))
            return Reply(200, {}, {})
        case "POST", ["tasks", task_id, "run"]:
            return Reply(200, {"status": emulator.run_task(task_id).status()}, {})
        case "POST", ["tasks", task_id, "resolve"]:
            task = emulator.resolve_task(task_id, payload["state"], payload.get("reason"))
            return Reply(200, {"status": task.status()}, {})
        case "POST", ["tasks", task_id, "artifacts"]:
            emulator.add_artifact(
                task_id,
                payload["name"],
                payload.get("content", ""),
                content_type=payload.get("contentType"),
                expires=parse_time(payload["expires"]) if "expires" in payload else None,
            )
            return Reply(200, {}, {})
        case "POST", ["tasks"]:
            for task in payload["tasks"]:
                _seed_task(emulator, task["taskId"], parse_time(task["expires"]))
            _keep_seeded()
            return Reply(200, {"created": len(payload["tasks"])}, {})
        case "POST", ["index"]:
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
