"""Three replicas on one PostgreSQL ledger through a catch-up: every fire made once.

Three `tc-scheduler run` processes start together after an outage of several slots (policy
`all`) and race for every fire of every project, on a fresh schema of the PostgreSQL server.
In the full form the first replica to fire is then killed mid-catch-up, and the other two
must finish what it held once its claims' leases run out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from scheduler.cron import slot_of
from scheduler.ledger import SlotOutcome
from tests.emulator import Emulator
from tests.faults.harness import Cli, Figures, clock_at, full_size, opened, poll, report, sized
from tests.faults.worlds import (
    DONE,
    QUARTER,
    decision_repository,
    every_fire,
    project_entry,
    slots_from,
    tally_decision_tasks,
    write_config,
)
from tests.support.ledger_backends import postgresql_schema_url

REPLICAS = 3


def test_three_replicas_on_postgresql_fire_a_catch_up_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    projects = [f"demo-{n}" for n in range(sized(2, 5))]
    jobs = [f"job-{n}" for n in range(sized(3, 20))]
    missed = sized(3, 22)  # slots of the outage, within the default max-lateness of 6 h
    kill_one = full_size()
    repositories = {name: decision_repository(tmp_path / name, jobs) for name in projects}
    now_slot = slot_of(datetime.now(UTC))
    first_missed = now_slot - QUARTER * missed
    with postgresql_schema_url() as ledger_url:
        with opened(ledger_url) as ledger:  # the last slot evaluated before the outage
            for name in projects:
                ledger.record_slot(
                    name,
                    first_missed - QUARTER,
                    revision=None,
                    outcome=SlotOutcome.EVALUATED,
                    error=None,
                    replica="before-outage",
                    now=first_missed - QUARTER,
                )
        config = write_config(
            tmp_path / "service.yml",
            f"ledger: {ledger_url}\ncatch-up: {{policy: all}}\napi: {{listen: 'off'}}\n",
            *(project_entry(name, repositories[name]) for name in projects),
        )
        # Halfway through the slot: no boundary passes in a quick trial, so the replicas' last
        # tick is never cut short by their stop.
        env = clock_at(emulator, now_slot + QUARTER / 2)
        # Each is its own replica, named after its host and process id.
        replicas = [Cli(["run", "--config", str(config)], env) for _ in range(REPLICAS)]
        killed = None

        def all_done() -> bool:
            with opened(ledger_url) as ledger:
                rows = ledger.fires()
            expected = len(projects) * len(jobs) * (missed + 1)
            return len(rows) >= expected and all(row.state in DONE for row in rows)

        try:
            if kill_one:
                poll(lambda: any(r.named("fired") for r in replicas), "a first fire")
                killed = next(r for r in replicas if r.named("fired"))
                killed.kill()
                poll(all_done, "the other replicas finishing the killed one's fires", every=1)
            for replica in replicas:
                if replica is not killed:
                    assert replica.wait_for_event("slot evaluated", len(projects)), replica.text
        finally:
            statuses = [replica.stop() for replica in replicas if replica is not killed]
        assert statuses == [0] * len(statuses), [replica.text for replica in replicas]
        with opened(ledger_url) as ledger:
            rows = ledger.fires()

    # Every slot from the first missed one to the one the replicas started in (the next, if
    # a slot boundary passed meanwhile) has its fires, once.
    last = max(row.slot for row in rows)
    assert last in (now_slot, now_slot + QUARTER)
    slots = slots_from(first_missed, (last - first_missed) // QUARTER + 1)
    tally = tally_decision_tasks(emulator, every_fire(projects, jobs, slots))
    by_replica: dict[str, int] = {}
    for row in rows:
        by_replica[row.replica] = by_replica.get(row.replica, 0) + 1
    report(
        Figures(
            "three replicas on PostgreSQL through a catch-up"
            + (", one killed" if kill_one else ""),
            fires=tally.expected,
            duplicates=len(tally.duplicates) + max(0, len(rows) - tally.expected),
            missing=len(tally.missing),
            late=tally.late,
            notes={"slots": len(slots), "fires_by_replica": sorted(by_replica.values())},
        )
    )
    assert tally.exact, tally.explain()
    assert len(rows) == tally.expected, "one ledger row per fire"
    assert {row.state for row in rows} <= DONE
