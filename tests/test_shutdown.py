"""Stopping the service, in this process on the emulator's clock: at once `/readyz` answers 503
and the API refuses acts while it still answers reads; an act already running finishes within
the grace, or is cut off, answered 503, audited and its claim released; `run` returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from scheduler.config.model import ApiSettings, ApiToken, CallBounds, Config
from scheduler.ledger import FireKind, FireState, Ledger
from scheduler.operations.audit import CUT_OFF
from scheduler.service import run
from scheduler.web.auth import hash_token
from scheduler.web.draining import REFUSED
from tests.emulator import Emulator
from tests.support.projects import NIGHTLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository
from tests.support.waiting import HANG_GUARD, until_while_running

T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # nightly fires at 02:00: no tick fires it now
TOKEN = "operator-token-for-shutdown"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIRE = "/api/v1/projects/alpha/jobs/nightly/fire"
# Attempts and calls that never time out while the test holds a call.
PATIENT = CallBounds(timeout=timedelta(seconds=HANG_GUARD), deadline=timedelta(seconds=HANG_GUARD))


@pytest.fixture
def config(emulator: Emulator, tmp_path: Path) -> Iterator[Config]:
    """A service with an operator token and one project, on the emulator's clock stopped at T;
    every createTask is held until the test releases it."""
    emulator.clock.set(T, frozen=True)
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": NIGHTLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    token = ApiToken("ops", "operator", hash_token(TOKEN))
    yield make_config(
        emulator,
        tmp_path,
        project("alpha", repository),
        api=ApiSettings(host="127.0.0.1", port=0, tokens=(token,)),
        calls=PATIENT,
    )
    emulator.faults.clear()


@dataclass
class Stopped:
    """What the API answered around the stop, and what the ledger holds afterwards."""

    answers: dict[str, httpx.Response]
    fires: list[Any]
    audit: list[Any]


def _serving(logged: list[MutableMapping[str, Any]]) -> str | None:
    urls = [line["url"] for line in logged if line["event"] == "serving the API"]
    return str(urls[0]) if urls else None


def stop_while_a_fire_is_held(
    emulator: Emulator,
    config: Config,
    then: Callable[[httpx.AsyncClient], Coroutine[Any, Any, dict[str, httpx.Response]]],
    **given: Any,
) -> Stopped:
    """Run the service; fire nightly through the API, its createTask held; ask what `then` asks
    before the stop, and set the stop; then let `then` go on, and wait for `run` to return."""
    emulator.faults.add("queue.createTask", error_rate=1.0, errors=["hold"])

    async def scenario() -> dict[str, httpx.Response]:
        stop = asyncio.Event()
        with capture_logs() as logged:
            running = asyncio.create_task(run(config, clock=emulator.clock.now, stop=stop, **given))
            await until_while_running(lambda: _serving(logged) is not None, running)
            url = _serving(logged)
            assert url is not None
            async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=HANG_GUARD) as client:
                before = await client.get("/readyz")
                firing = asyncio.create_task(client.post(FIRE, json={}))
                await until_while_running(lambda: emulator.faults.holding == 1, running)
                stop.set()
                answers = {"ready before": before, **await then(client)}
                answers["fire"] = await firing
            await asyncio.wait_for(running, HANG_GUARD)
        return answers

    answers = asyncio.run(scenario())
    with Ledger.open(config.ledger_url) as ledger:
        fires = [fire for fire in ledger.fires() if fire.kind is FireKind.MANUAL]
        return Stopped(answers, fires, ledger.audit_log())


def test_a_stop_refuses_acts_and_readiness_at_once_and_lets_the_running_act_finish(
    emulator: Emulator, config: Config
) -> None:
    async def meanwhile(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
        answers = {
            "ready": await client.get("/readyz"),
            "pause": await client.post("/api/v1/projects/alpha/pause", json={"reason": "x"}),
            "resume": await client.delete("/api/v1/projects/alpha/pause"),
            "projects": await client.get("/api/v1/projects"),
            "fires": await client.get("/api/v1/fires"),
            "alive": await client.get("/livez"),
        }
        emulator.faults.release()  # the fire running goes on, and finishes
        return answers

    stopped = stop_while_a_fire_is_held(emulator, config, meanwhile)

    answers = stopped.answers
    assert answers["ready before"].status_code == 200, answers["ready before"].text
    assert answers["ready"].status_code == 503
    assert answers["ready"].json()["error"] == "shutting-down"
    assert "stopping" in answers["ready"].json()["message"]
    for act in ("pause", "resume"):
        assert answers[act].status_code == 503, answers[act].text
        assert answers[act].json() == {"error": "shutting-down", "message": REFUSED}
    for read in ("projects", "fires", "alive"):
        assert answers[read].status_code == 200, answers[read].text
    assert answers["fire"].status_code == 200, answers["fire"].text
    assert answers["fire"].json()["state"] == "created"
    [fire] = stopped.fires
    assert fire.state is FireState.CREATED
    # Only the act that ran is in the audit log; the refused ones never started.
    assert [(entry.action, entry.ok) for entry in stopped.audit] == [("fire", True)]


def test_an_act_still_running_when_the_grace_ends_is_cut_off_audited_and_released(
    emulator: Emulator, config: Config
) -> None:
    async def nothing(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
        return {}

    # No grace: the held fire is cut off at once (its createTask stays held).
    stopped = stop_while_a_fire_is_held(emulator, config, nothing, grace=timedelta(0))

    cut_off = stopped.answers["fire"]
    assert cut_off.status_code == 503, cut_off.text
    assert cut_off.json()["error"] == "shutting-down"
    assert "cut off" in cut_off.json()["message"]
    [fire] = stopped.fires
    # Still open, and released: another replica may take it over now (the clock stands at T).
    assert fire.state is FireState.CLAIMED
    assert fire.lease_until == T
    [act] = stopped.audit
    assert (act.action, act.target, act.ok, act.result) == ("fire", "alpha/nightly", False, CUT_OFF)
