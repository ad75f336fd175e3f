"""Pruning the ledger, on SQLite and PostgreSQL: exactly what is past retention goes, and nothing
an open fire, a watch, a pending letter or an open incident still needs; a dry run counts the
same and removes nothing; `tc-scheduler ledger prune` end to end, audited."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.config.loading import load_config
from scheduler.config.model import Retention
from scheduler.cron import format_slot, slot_of
from scheduler.ledger import (
    Act,
    AsyncLedger,
    AuditEntry,
    Cutoffs,
    FireKind,
    FireState,
    Health,
    Ledger,
    LetterState,
    Notice,
    Outcome,
    Pruned,
    SlotOutcome,
    WatchPhase,
    WatchSpec,
)
from scheduler.operations.ledgered import LedgerOperations
from scheduler.rounds import prune_ledger

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=100)  # past every retention but the audit log's
RETENTION = Retention()  # fires 90d, letters 30d, audit 365d
CUTOFFS = Cutoffs(
    fires=NOW - RETENTION.fires, letters=NOW - RETENTION.letters, audit=NOW - RETENTION.audit
)
LEASE = timedelta(minutes=1)
SLACK = "slack:#releng"


@dataclass
class Scene:
    """What a ledger holds, by name: what must go and what must stay."""

    fires: dict[str, int] = field(default_factory=dict)
    letters: dict[str, str] = field(default_factory=dict)  # name -> key

    def fire_ids(self, *names: str) -> set[int]:
        return {self.fires[name] for name in names}

    def keys(self, *names: str) -> set[str]:
        return {self.letters[name] for name in names}


def claim(ledger: Ledger, job: str, at: datetime, project: str = "alpha") -> Any:
    held = ledger.claim(
        project, job, slot_of(at), kind=FireKind.SCHEDULED, replica="r1", now=at, lease=LEASE
    )
    assert held is not None
    return held


def finished(
    ledger: Ledger, job: str, at: datetime, *, watched: bool = False, project: str = "alpha"
) -> int:
    held = claim(ledger, job, at, project)
    outcome = Outcome(
        held, FireState.CREATED, task_id=f"task-{job}", watch=WatchSpec() if watched else None
    )
    assert ledger.finish_many([outcome], now=at + timedelta(minutes=1)) == [True]
    return int(held.fire_id)


def notice(key: str, *, subject: str | None = None, health: Health = Health.NONE) -> Notice:
    return Notice(key, {"title": key}, (SLACK,), subject=subject, health=health)


def delivered(ledger: Ledger, at: datetime, *, fail: bool = False) -> list[str]:
    """Deliver every letter due at `at` (give them up, with `fail`); their keys."""
    taken = ledger.take_letters(replica="postman", now=at, lease=LEASE)
    for letter in taken:
        if fail:
            assert ledger.letter_failed(letter, error="channel_not_found", retry_at=None)
        else:
            assert ledger.letter_sent(letter, now=at, posted={"ts": letter.key})
    return [letter.key for letter in taken]


def queued(ledger: Ledger, at: datetime, *notices: Notice) -> None:
    ledger.report(list(notices), now=at)


def build(ledger: Ledger) -> Scene:
    """A ledger with something of every kind on each side of retention."""
    scene = Scene()
    fires = scene.fires
    # Old fires: finished and unwatched, skipped, and watched to the end: these go.
    fires["old"] = finished(ledger, "old", OLD)
    assert ledger.record_skip(
        "alpha",
        "skipped",
        slot_of(OLD),
        kind=FireKind.CATCH_UP,
        reason="late",
        replica="r1",
        now=OLD,
    )
    [skipped] = ledger.fires(job="skipped")
    fires["skipped"] = skipped.id
    fires["watched-done"] = finished(ledger, "watched-done", OLD, watched=True)
    done = ledger.watch(fires["watched-done"])
    assert done is not None
    assert ledger.advance_watch(done, WatchPhase.DONE, now=OLD, notices=[notice("done-old")])
    assert delivered(ledger, OLD) == ["done-old"]
    scene.letters["about-old-fire"] = "done-old"
    # Old fires something still needs: these stay.
    fires["still-watched"] = finished(ledger, "still-watched", OLD, watched=True)
    fires["claimed"] = claim(ledger, "claimed", OLD).fire_id
    retrying = claim(ledger, "retrying", OLD)
    ledger.finish_many(
        [Outcome(retrying, FireState.RETRYING, retry_at=NOW + timedelta(minutes=5))], now=OLD
    )
    fires["retrying"] = retrying.fire_id
    fires["reported-late"] = finished(ledger, "reported-late", OLD, watched=True)
    # Recent fires stay.
    fires["recent"] = finished(ledger, "recent", NOW - timedelta(days=10))

    # Slots: each project keeps its latest, however old; older ones past retention go.
    for project, slot in (
        ("alpha", OLD - timedelta(minutes=15)),
        ("alpha", OLD),
        ("alpha", NOW - timedelta(days=1)),
        ("beta", OLD - timedelta(minutes=15)),
        ("beta", OLD),
    ):
        ledger.record_slot(
            project,
            slot_of(slot),
            revision="abc",
            outcome=SlotOutcome.EVALUATED,
            error=None,
            replica="r1",
            now=slot,
        )

    # Letters past retention (30 days), delivered or given up: these go.
    month_ago = NOW - timedelta(days=40)
    queued(ledger, month_ago, notice("sent-old"))
    delivered(ledger, month_ago)
    queued(ledger, month_ago + timedelta(minutes=1), notice("failed-old"))
    delivered(ledger, month_ago + timedelta(minutes=1), fail=True)
    scene.letters |= {"sent-old": "sent-old", "failed-old": "failed-old"}
    # An incident opened and closed long ago: its letters and the incident go.
    queued(ledger, OLD, notice("broke-long-ago", subject="job:a/x", health=Health.FAILING))
    delivered(ledger, OLD)
    queued(
        ledger,
        OLD + timedelta(days=1),
        notice("fixed-long-ago", subject="job:a/x", health=Health.HEALTHY),
    )
    delivered(ledger, OLD + timedelta(days=1))
    scene.letters |= {"broke-long-ago": "broke-long-ago", "fixed-long-ago": "fixed-long-ago"}
    # Old letters a reply still needs: one an open incident's recovery will reply to, and one
    # a pending recovery replies to (queued below). These stay.
    queued(ledger, month_ago, notice("still-broken", subject="job:a/y", health=Health.FAILING))
    delivered(ledger, month_ago)
    queued(ledger, month_ago, notice("broke", subject="job:a/z", health=Health.FAILING))
    delivered(ledger, month_ago)
    scene.letters |= {"still-broken": "still-broken", "broke": "broke"}
    # A recent delivered letter stays.
    queued(ledger, NOW - timedelta(days=3), notice("sent-recently"))
    delivered(ledger, NOW - timedelta(days=3))
    scene.letters["sent-recently"] = "sent-recently"

    # Pending letters (never delivered) stay, however old: the recovery replying to "broke",
    # a letter the outbox has not managed to send for weeks, and one about an old fire whose
    # watch ended only now.
    queued(
        ledger, NOW - timedelta(hours=1), notice("fixed", subject="job:a/z", health=Health.HEALTHY)
    )
    queued(ledger, month_ago, notice("stuck"))
    late = ledger.watch(fires["reported-late"])
    assert late is not None
    assert ledger.advance_watch(
        late, WatchPhase.DONE, now=NOW - timedelta(hours=1), notices=[notice("reported-late")]
    )
    scene.letters |= {"fixed": "fixed", "stuck": "stuck", "reported-late": "reported-late"}

    # The audit log keeps a year.
    for at in (NOW - timedelta(days=400), NOW - timedelta(days=100)):
        ledger.record_act(Act("someone", "pause", "alpha", None), ok=True, result="ok", now=at)
    return scene


EXPECTED = Pruned(fires=3, watches=1, slots=3, incidents=1, letters=5, audit=1)


def assert_kept_exactly_what_is_needed(ledger: Ledger, scene: Scene) -> None:
    assert {fire.id for fire in ledger.fires()} == scene.fire_ids(
        "still-watched", "claimed", "retrying", "reported-late", "recent"
    )
    assert ledger.watch(scene.fires["watched-done"]) is None
    assert ledger.watch(scene.fires["still-watched"]) is not None
    assert ledger.watch(scene.fires["reported-late"]) is not None
    assert {(s.project, s.slot) for s in ledger.slots()} == {
        ("alpha", slot_of(NOW - timedelta(days=1))),
        ("beta", slot_of(OLD)),
    }
    assert ledger.last_evaluated_slot("beta") == slot_of(OLD)
    assert {letter.key for letter in ledger.letters()} == scene.keys(
        "still-broken", "broke", "sent-recently", "fixed", "stuck", "reported-late"
    )
    assert {i.subject for i in ledger.incidents()} == {"job:a/y", "job:a/z"}
    assert [entry.at for entry in ledger.audit_log()] == [NOW - timedelta(days=100)]


def test_prune_removes_exactly_what_is_past_retention_and_needed_by_nothing(
    ledger: Ledger,
) -> None:
    scene = build(ledger)

    removed = Pruned()
    while True:  # small batches: every batch boundary is crossed
        batch = ledger.prune(CUTOFFS, limit=2)
        removed += batch
        if batch.largest() < 2:
            break

    assert removed == EXPECTED
    assert_kept_exactly_what_is_needed(ledger, scene)
    assert ledger.prune(CUTOFFS) == Pruned()


def test_a_dry_run_counts_the_same_and_removes_nothing(ledger: Ledger) -> None:
    build(ledger)
    before = (ledger.fires(), ledger.slots(), ledger.letters(), ledger.incidents())

    assert ledger.prunable(CUTOFFS) == EXPECTED
    assert (ledger.fires(), ledger.slots(), ledger.letters(), ledger.incidents()) == before
    assert ledger.prune(CUTOFFS, limit=1000) == EXPECTED


def test_what_a_pending_letter_or_open_incident_needed_goes_once_it_no_longer_does(
    ledger: Ledger,
) -> None:
    scene = build(ledger)
    ledger.prune(CUTOFFS, limit=1000)

    # Everything pending is delivered, and the open incident closes (and its recovery is sent).
    later = NOW + timedelta(hours=1)
    queued(ledger, later, notice("fixed-y", subject="job:a/y", health=Health.HEALTHY))
    assert set(delivered(ledger, later)) == scene.keys("fixed", "stuck", "reported-late") | {
        "fixed-y"
    }
    assert not ledger.letters(state=LetterState.PENDING)

    # A year on, everything is past retention; each project's latest slot still stays.
    year_on = later + timedelta(days=366)
    cutoffs = Cutoffs(
        fires=year_on - RETENTION.fires,
        letters=year_on - RETENTION.letters,
        audit=year_on - RETENTION.audit,
    )
    removed = ledger.prune(cutoffs, limit=1000)

    # What is still open or followed stays; each project keeps its latest slot.
    assert removed == Pruned(fires=2, watches=1, slots=0, incidents=2, letters=7, audit=1)
    assert {fire.id for fire in ledger.fires()} == scene.fire_ids(
        "claimed", "retrying", "still-watched"
    )
    assert {s.project for s in ledger.slots()} == {"alpha", "beta"}
    assert (ledger.letters(), ledger.incidents(), ledger.audit_log()) == ([], [], [])


def test_several_replicas_pruning_at_once_remove_each_row_once(ledger: Ledger) -> None:
    scene = build(ledger)
    totals: list[Pruned] = []
    failures: list[BaseException] = []

    def prune() -> None:
        total = Pruned()
        try:
            while True:
                batch = ledger.prune(CUTOFFS, limit=1)
                total += batch
                if batch.largest() < 1:
                    break
        except BaseException as error:
            failures.append(error)
        totals.append(total)

    threads = [threading.Thread(target=prune) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sum(totals, Pruned()) == EXPECTED
    assert_kept_exactly_what_is_needed(ledger, scene)


def test_the_operation_prunes_in_batches_and_audits_the_act_once(ledger: Ledger) -> None:
    build(ledger)
    operations = LedgerOperations(AsyncLedger(ledger), lambda: NOW)

    dry = asyncio.run(operations.prune("ops@host (cli)", RETENTION, dry_run=True))
    done = asyncio.run(operations.prune("ops@host (cli)", RETENTION))

    assert (dry.dry_run, done.dry_run) == (True, False)
    counts = dict(EXPECTED.counts())
    assert dry.model_dump(include=set(counts)) == counts == done.model_dump(include=set(counts))
    assert done.fires_before == CUTOFFS.fires
    acts = [e for e in ledger.audit_log() if e.action == "ledger-prune"]
    assert [(a.actor, a.target, a.input, a.ok) for a in acts] == [
        ("ops@host (cli)", "ledger", {"dry_run": False, **RETENTION.shown()}, True),
        ("ops@host (cli)", "ledger", {"dry_run": True, **RETENTION.shown()}, True),
    ]
    assert acts[0].result.startswith("removed fires 3, watches 1, slots 3, incidents 1")
    assert acts[1].result.startswith("would remove fires 3")


def test_the_service_prunes_as_itself(ledger: Ledger) -> None:
    build(ledger)
    text = "taskcluster: {root-url: https://tc.example.com}\nreplica: scheduler-0\nprojects: []\n"
    config = load_config(text, "service.yml", {})
    operations = LedgerOperations(AsyncLedger(ledger), lambda: NOW)

    asyncio.run(prune_ledger(operations, config))

    [act] = [e for e in ledger.audit_log() if e.action == "ledger-prune"]
    assert act.actor == "tc-scheduler (scheduler-0)"
    assert ledger.prunable(CUTOFFS) == Pruned()


# The command, end to end


def id_of(entry: AuditEntry) -> int:
    return entry.id


def invoke(*arguments: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def test_ledger_prune_command_counts_removes_and_is_audited(
    ledger_url: str, tmp_path: Path
) -> None:
    with Ledger.open(ledger_url) as ledger:
        scene = build(ledger)
    config = tmp_path / "service.yml"
    config.write_text(f"ledger: '{ledger_url}'\nprojects: []\n")
    env = {"TC_SCHEDULER_NOW": format_slot(NOW)}

    dry = invoke("ledger", "prune", "--dry-run", "--json", "--config", str(config), env=env)
    assert dry.exit_code == 0, dry.output
    answer = json.loads(dry.stdout)
    assert answer["dry_run"] is True
    assert {kind: answer[kind] for kind, _ in EXPECTED.counts()} == dict(EXPECTED.counts())

    done = invoke("ledger", "prune", "--config", str(config), env=env)
    assert done.exit_code == 0, done.output
    assert "fires: removed 3 (kept 90d)" in done.stdout
    assert "letters: removed 5 (kept 30d)" in done.stdout
    assert "audit: removed 1 (kept 365d)" in done.stdout

    with Ledger.open(ledger_url) as ledger:
        # Each command's clock starts at NOW: the order they ran in is the order of their ids.
        acts = sorted((e for e in ledger.audit_log() if e.action == "ledger-prune"), key=id_of)
        assert [(a.input or {}).get("dry_run") for a in acts] == [True, False]
        assert {fire.id for fire in ledger.fires()} == scene.fire_ids(
            "still-watched", "claimed", "retrying", "reported-late", "recent"
        )


def test_ledger_prune_uses_the_configured_retention(ledger_url: str, tmp_path: Path) -> None:
    with Ledger.open(ledger_url) as ledger:
        build(ledger)
    config = tmp_path / "service.yml"
    config.write_text(
        f"ledger: '{ledger_url}'\nprojects: []\nretention: {{fires: 1000d, letters: 1000d}}\n"
    )
    env = {"TC_SCHEDULER_NOW": format_slot(NOW)}

    dry = invoke("ledger", "prune", "--dry-run", "--json", "--config", str(config), env=env)

    answer = json.loads(dry.stdout)
    assert (answer["fires"], answer["letters"], answer["audit"]) == (0, 0, 1)
