"""`kill -9` of `tc-scheduler run` mid-tick, then a restart: the slot's fires are all made soon.

The service runs on the emulator's clock, a minute into a slot, with createTask slow (so the
kill lands while fires are in flight, some made and none recorded). Restarted under the same
`replica` name it takes over its own claims at once, in its start-up tick; under a new name,
once the dead one's leases run out, in its recover rounds; either way well before the next slot.
The lateness printed is from the restart to the last fire made, by the service's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.cron import format_slot, slot_of
from tests.emulator import Emulator
from tests.faults.harness import (
    Cli,
    Figures,
    clock_at,
    ledger_fires,
    poll,
    report,
    same_or_new_replica_name,
    sized,
    sqlite_url,
)
from tests.faults.worlds import (
    DONE,
    QUARTER,
    decision_repository,
    every_fire,
    project_entry,
    tally_decision_tasks,
    write_config,
)


def service_config(tmp_path: Path, jobs: list[str], replica: str) -> Path:
    return write_config(
        tmp_path / f"{replica}.yml",
        f"ledger: {sqlite_url(tmp_path / 'ledger.db')}\n"
        f"state-dir: {tmp_path / 'state'}\n"
        f"replica: {replica}\n"
        "api: {listen: 'off'}\n",
        project_entry("demo", decision_repository(tmp_path / "repo", jobs)),
    )


@same_or_new_replica_name
def test_restart_after_kill_makes_the_slots_fires_soon(
    emulator: Emulator, tmp_path: Path, same_name: bool
) -> None:
    jobs = [f"job-{n}" for n in range(sized(4, 20))]
    ledger_url = sqlite_url(tmp_path / "ledger.db")
    slot = slot_of(datetime.now(UTC))
    env = clock_at(emulator, slot + timedelta(minutes=1))
    emulator.faults.add("queue.createTask", latency_ms=300, jitter_ms=3000)
    victim = Cli(["run", "--config", str(service_config(tmp_path, jobs, "first"))], env)
    assert victim.wait_for_event("fired"), victim.text
    victim.kill()
    held = [fire for fire in ledger_fires(ledger_url) if fire.state not in DONE]
    made_before = len(emulator.tasks())
    emulator.faults.clear()

    restarted_at = emulator.clock.now()
    name = "first" if same_name else "second"
    restarted = Cli(["run", "--config", str(service_config(tmp_path, jobs, name))], env)
    try:
        assert restarted.wait_for_event("slot evaluated"), restarted.text
        if not same_name:

            def all_made() -> bool:
                fires = ledger_fires(ledger_url)
                return len(fires) == len(jobs) and all(fire.state in DONE for fire in fires)

            poll(all_made, "the restarted service making the slot's fires", every=0.5)
    finally:
        assert restarted.stop() == 0, restarted.text

    # Its own claims are taken over at once: its start-up tick leaves none waiting.
    waited = restarted.named("claimed by another replica") if same_name else []
    fires = ledger_fires(ledger_url)
    made = [fire.finished_at for fire in fires if fire.finished_at is not None]
    last_made = max(made) if len(made) == len(jobs) else None
    tally = tally_decision_tasks(
        emulator, every_fire(["demo"], jobs, [slot]), ledger_url=ledger_url
    )
    report(
        Figures(
            f"restart after kill -9, {'same' if same_name else 'new'} replica name",
            fires=tally.expected,
            duplicates=len(tally.duplicates),
            missing=len(tally.missing) + len(tally.wrong_states),
            late=None if last_made is None else last_made - restarted_at,
            notes={"held_by_the_dead": len(held), "made_before_the_kill": made_before},
        )
    )
    assert held, "the kill came after the tick: the trial proved nothing"
    assert not waited, f"left waiting for the dead process's leases: {waited}"
    assert tally.exact, tally.explain()
    assert last_made is not None
    # Made by the restarted service, in this slot: never left for the next tick.
    assert {fire.replica for fire in fires if fire.id in {h.id for h in held}} == {name}
    assert last_made < slot + QUARTER, f"made at {format_slot(last_made)}, in the next slot"
