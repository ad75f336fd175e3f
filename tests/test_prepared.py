"""Slots prepared ahead: renders made before the boundary, used by its tick only where every input
is what the tick would render from; nothing claimed, recorded or created before the boundary."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from scheduler.config.model import Config
from scheduler.engine import Engine
from scheduler.ids import decision_task_id
from scheduler.ledger import Act, FireState, Ledger
from scheduler.outcomes import SlotResult
from scheduler.render import RenderedTask
from scheduler.service import open_engine
from tests.emulator import Emulator
from tests.support.projects import OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository

T = TypeVar("T")
BOUNDARY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EVERY_SLOT = """\
jobs:
  - name: often
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
  - name: nightly
    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}
    when: [{hour: 2, minute: 0}]
"""


class CountingPool(ThreadPoolExecutor):
    """Render workers (threads) that count the renders they were given."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.renders = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.renders += 1
        return super().submit(fn, *args, **kwargs)


def world(emulator: Emulator, tmp_path: Path) -> tuple[Config, dict[str, Repository]]:
    repositories = {
        name: Repository(
            tmp_path / name, {".cron.yml": EVERY_SLOT, ".taskcluster.yml": OWN_TEMPLATE}
        )
        for name in ("steady", "pushed", "paused")
    }
    config = make_config(
        emulator, tmp_path, *(project(name, repo) for name, repo in repositories.items())
    )
    return config, repositories


def prepare_then_tick(
    emulator: Emulator,
    config: Config,
    meanwhile: Callable[[], None],
    tick_at: datetime = BOUNDARY,
) -> tuple[list[SlotResult], dict[tuple[str, str], RenderedTask], int, int]:
    """Prepare BOUNDARY's slot a minute before it, do `meanwhile`, then tick at `tick_at`: the
    tick's results, what was prepared, and the renders made by the prepare and by the tick."""
    pool = CountingPool()

    async def main() -> tuple[list[SlotResult], dict[tuple[str, str], RenderedTask], int, int]:
        async with open_engine(config, clock=emulator.clock.now) as engine:
            engine.render_pool = pool
            emulator.clock.set(BOUNDARY - timedelta(minutes=1), frozen=True)
            done = await engine.prepare(BOUNDARY)
            assert done.projects == 3
            prepared = _prepared(engine)
            assert emulator.tasks() == []
            made_ahead = pool.renders
            meanwhile()
            emulator.clock.set(tick_at, frozen=True)
            results = await engine.tick(tick_at)
            return results, prepared, made_ahead, pool.renders - made_ahead

    try:
        return asyncio.run(main())
    finally:
        pool.shutdown()


def _prepared(engine: Engine) -> dict[tuple[str, str], RenderedTask]:
    """What is prepared for BOUNDARY, at the revision each project was last read at."""
    found = {}
    for configured in engine.config.projects:
        last = engine.last_read(configured.name)
        assert last is not None
        revision, cron = last
        for job in cron.jobs:
            kept = engine.prepared.kept(configured.name, job.name, BOUNDARY, revision)
            if kept is not None:
                found[configured.name, job.name] = kept
    return found


def test_a_slot_is_prepared_without_a_trace_and_its_tick_creates_the_tasks_prepared(
    emulator: Emulator, tmp_path: Path
) -> None:
    config, _ = world(emulator, tmp_path)
    with Ledger.open(config.ledger_url) as ledger:
        before = ledger.fires()

    def nothing_recorded() -> None:
        with Ledger.open(config.ledger_url) as ledger:
            assert ledger.fires() == before
            assert ledger.last_evaluated_slot("steady") is None

    results, prepared, ahead, at_tick = prepare_then_tick(emulator, config, nothing_recorded)

    # Only the job due at the boundary, of each project; the tick renders none again.
    assert sorted(prepared) == [(name, "often") for name in ("paused", "pushed", "steady")]
    assert (ahead, at_tick) == (3, 0)
    created = {task.task_id: task.definition for task in emulator.tasks()}
    for (name, job), rendered in prepared.items():
        assert rendered.task_id == decision_task_id(config.root_url, name, job, BOUNDARY)
        assert {k: created[rendered.task_id][k] for k in rendered.definition} == (
            rendered.definition
        )
    assert {fire.state for result in results for fire in result.fires} == {FireState.CREATED}


def test_a_head_pushed_after_the_prepare_is_rendered_again_and_a_pause_holds_the_fire(
    emulator: Emulator, tmp_path: Path
) -> None:
    config, repositories = world(emulator, tmp_path)
    pushed: list[str] = []

    def push_and_pause() -> None:
        pushed.append(repositories["pushed"].commit({"NEWS": "pushed after the prepare\n"}))
        with Ledger.open(config.ledger_url) as ledger:
            ledger.pause(
                "paused",
                "often",
                reason="tree closed",
                until=None,
                act=Act("tests", "pause", "paused/often", None),
                now=emulator.clock.now(),
            )

    results, prepared, _, at_tick = prepare_then_tick(emulator, config, push_and_pause)

    assert at_tick == 1  # the pushed project's task, at its new head
    by_project = {result.project: result for result in results}
    assert by_project["pushed"].revision == pushed[0]
    task = next(t for t in emulator.tasks() if t.task_id == prepared["pushed", "often"].task_id)
    assert pushed[0] in str(task.definition)
    assert repositories["pushed"].git("rev-parse", "HEAD~1") not in str(task.definition)
    [held] = by_project["paused"].paused
    assert held.state is FireState.SKIPPED
    assert prepared["paused", "often"].task_id not in {t.task_id for t in emulator.tasks()}
    assert by_project["steady"].fires[0].state is FireState.CREATED


def test_a_fire_made_later_than_the_slot_window_is_rendered_at_its_own_time(
    emulator: Emulator, tmp_path: Path
) -> None:
    config, _ = world(emulator, tmp_path)
    late = BOUNDARY + timedelta(minutes=11)

    results, prepared, _, at_tick = prepare_then_tick(emulator, config, lambda: None, late)

    assert at_tick == 3  # `now` is the fire's own time, not the slot: no prepared task fits
    created = {task.task_id: task.definition for task in emulator.tasks()}
    rendered = prepared["steady", "often"]
    assert created[rendered.task_id]["created"] != rendered.definition["created"]
    assert {fire.state for result in results for fire in result.fires} == {FireState.CREATED}
