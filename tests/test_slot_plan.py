"""`plan_slot`, `plan_catch_up` and `plan_open_fires`: every branch by a table, and properties.

Pure: no ledger, no emulator, no git. Pauses and catch-up rules are plain values here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.config.model import CatchUp
from scheduler.cron import CronFile, DecisionTask, Job, PlannedFire, Schedule, fires_between
from scheduler.cron.loading import load_cron
from scheduler.cron.slots import (
    FutureSlotError,
    GiveUp,
    Occasion,
    OpenFire,
    Skip,
    SkipReason,
    SlotPlan,
    plan_catch_up,
    plan_open_fires,
    plan_slot,
)
from scheduler.cron.timing import SLOT_LENGTH, slot_of
from scheduler.retrying import ROUND_GRACE

DAY = datetime(2026, 12, 1, tzinfo=UTC)  # a Tuesday
HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)
PROJECT = "p"
CRON = load_cron(
    """\
jobs:
  - name: hourly
    job: {type: decision-task, treeherder-symbol: H, target-tasks-method: hourly}
    when: [{minute: 0}]
  - name: nightly
    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}
    when: [{hour: 2, minute: 0}]
  - name: elsewhere
    job: {type: decision-task, treeherder-symbol: E, target-tasks-method: e}
    when: [{minute: 0}]
    run-on-projects: [other]
"""
)
BROKEN = load_cron(
    """\
jobs:
  - name: hourly
    job: {type: decision-task, treeherder-symbol: H, target-tasks-method: hourly}
    when: [{minute: 0}]
  - name: picky
    job: {type: decision-task, treeherder-symbol: P, target-tasks-method: p}
    when: {by-project: {other: [{minute: 0}]}}
  - name: bad
    job: {type: no-such-type}
    when: [{minute: 0}]
"""
)


@dataclass(frozen=True)
class Held:
    """A pause in force, as the plan sees one: of `job`, or of the project (job None)."""

    job: str | None = None

    def covers(self, job: str) -> bool:
        return self.job is None or self.job == job

    @property
    def summary(self) -> str:
        return f"paused: {self.job or 'the project'} is held"


def at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


LATEST = CatchUp()


def rules(default: CatchUp = LATEST, **per_job: CatchUp) -> Any:
    """Each job's catch-up rule: `default`, or the one named for it."""
    return lambda job: per_job.get(job, default)


def plan(
    slot: datetime,
    *,
    last: datetime | None = None,
    open_fires: Iterable[OpenFire] = (),
    pauses: Iterable[Held] = (),
    catch_up: Any = None,
    now: datetime | None = None,
    cron: CronFile = CRON,
) -> SlotPlan:
    return plan_slot(
        cron,
        PROJECT,
        slot,
        last_evaluated=last,
        open_fires=tuple(open_fires),
        pauses=tuple(pauses),
        catch_up_of=catch_up or rules(),
        now=now or slot + timedelta(minutes=3),
    )


def made(result: SlotPlan) -> list[tuple[str, str, Occasion]]:
    return [(d.fire.job_name, f"{d.fire.slot:%H:%M}", d.occasion) for d in result.fires]


def skips(found: Iterable[Skip]) -> list[tuple[str, str, SkipReason]]:
    return [(s.fire.job_name, f"{s.fire.slot:%H:%M}", s.why) for s in found]


def ended(found: Iterable[GiveUp]) -> list[tuple[str, str, SkipReason | None]]:
    return [(g.open_fire.job, f"{g.open_fire.slot:%H:%M}", g.skip) for g in found]


S, C, R = Occasion.SCHEDULED, Occasion.CATCH_UP, Occasion.RETRY
NONE = CatchUp("none")
ALL = CatchUp("all")


# -- the slot itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slot", "expected"),
    [
        (at(2), [("hourly", "02:00", S), ("nightly", "02:00", S)]),
        (at(3), [("hourly", "03:00", S)]),
        (at(3, 15), []),  # nothing due; `elsewhere` never runs on this project
    ],
)
def test_the_jobs_due_at_the_slot_fire_as_scheduled(
    slot: datetime, expected: list[tuple[str, str, Occasion]]
) -> None:
    result = plan(slot)
    assert made(result) == expected
    assert result.skipped == result.paused == result.given_up == result.waiting == ()


@pytest.mark.parametrize("last", [None, at(2) - SLOT_LENGTH, at(2), at(5)])
def test_without_a_gap_nothing_is_caught_up(last: datetime | None) -> None:
    """Never evaluated, the slot before, the slot itself again, or a later one: no gap."""
    assert made(plan(at(2), last=last)) == [("hourly", "02:00", S), ("nightly", "02:00", S)]


def test_a_slot_that_has_not_begun_is_refused() -> None:
    with pytest.raises(FutureSlotError, match="has not begun"):
        plan(at(3), now=at(3) - TICK)
    assert made(plan(at(3), now=at(3))) == [("hourly", "03:00", S)]  # the instant it begins


def test_jobs_left_out_are_reported_with_the_files_errors() -> None:
    result = plan(at(3), cron=BROKEN)
    assert made(result) == [("hourly", "03:00", S)]
    assert [d.job for d in result.left_out] == [d.job for d in BROKEN.errors] + ["picky"]
    assert "by-project has no entry for project `p`" in str(result.left_out[-1])


# -- catch-up after a gap ---------------------------------------------------------------------

GAP = {"last": at(0), "now": at(4, 7)}  # evaluated at midnight, back at 04:07


@pytest.mark.parametrize(
    ("catch_up", "fired", "skipped"),
    [
        pytest.param(
            rules(),
            [("nightly", "02:00", C), ("hourly", "03:00", C)],
            [
                ("hourly", "01:00", SkipReason.NOT_NEWEST),
                ("hourly", "02:00", SkipReason.NOT_NEWEST),
            ],
            id="latest",
        ),
        pytest.param(
            rules(CatchUp("latest", timedelta(minutes=90))),
            [("hourly", "03:00", C)],
            [
                ("hourly", "01:00", SkipReason.NOT_NEWEST),
                ("hourly", "02:00", SkipReason.NOT_NEWEST),
                ("nightly", "02:00", SkipReason.TOO_LATE),
            ],
            id="latest-too-late",
        ),
        pytest.param(
            rules(ALL),
            [
                ("hourly", "01:00", C),
                ("hourly", "02:00", C),
                ("nightly", "02:00", C),
                ("hourly", "03:00", C),
            ],
            [],
            id="all",
        ),
        pytest.param(
            rules(CatchUp("all", max_slots=2)),
            [("hourly", "02:00", C), ("nightly", "02:00", C), ("hourly", "03:00", C)],
            [("hourly", "01:00", SkipReason.OVER_CAP)],
            id="all-capped",
        ),
        pytest.param(
            rules(NONE),
            [],
            [
                ("hourly", "01:00", SkipReason.POLICY_NONE),
                ("hourly", "02:00", SkipReason.POLICY_NONE),
                ("nightly", "02:00", SkipReason.POLICY_NONE),
                ("hourly", "03:00", SkipReason.POLICY_NONE),
            ],
            id="none",
        ),
        pytest.param(
            rules(NONE, nightly=ALL),
            [("nightly", "02:00", C)],
            [
                ("hourly", "01:00", SkipReason.POLICY_NONE),
                ("hourly", "02:00", SkipReason.POLICY_NONE),
                ("hourly", "03:00", SkipReason.POLICY_NONE),
            ],
            id="per-job",
        ),
    ],
)
def test_a_gap_is_caught_up_by_each_jobs_policy(
    catch_up: Any,
    fired: list[tuple[str, str, Occasion]],
    skipped: list[tuple[str, str, SkipReason]],
) -> None:
    result = plan(at(4), catch_up=catch_up, **GAP)
    assert made(result) == [*fired, ("hourly", "04:00", S)]
    assert skips(result.skipped) == skipped
    assert all(s.occasion is C and s.reason for s in result.skipped)


def test_skip_reasons_are_worded_for_history() -> None:
    result = plan(at(4), catch_up=rules(CatchUp("latest", timedelta(minutes=90))), **GAP)
    assert [s.reason for s in result.skipped] == [
        "catch-up policy latest fires only the newest missed slot, 2026-12-01T03:00:00Z",
        "catch-up policy latest fires only the newest missed slot, 2026-12-01T03:00:00Z",
        "missed by more than max-lateness 1h30m",
    ]
    capped = plan(at(4), catch_up=rules(CatchUp("all", max_slots=2)), **GAP)
    assert [s.reason for s in capped.skipped] == ["catch-up policy all is capped at max-slots 2"]
    none = plan(at(4), catch_up=rules(NONE), **GAP)
    assert {s.reason for s in none.skipped} == {"catch-up policy is none"}


@pytest.mark.parametrize(
    ("now", "fired"), [(at(3) + 6 * HOUR, True), (at(3) + 6 * HOUR + TICK, False)]
)
def test_latest_fires_within_max_lateness_inclusive(now: datetime, fired: bool) -> None:
    """The 04:00 slot evaluated late: the newest missed slot, 03:00, is 6h old at most."""
    result = plan(at(4), last=at(0), now=now, cron=hourly_only())
    caught = [d.fire.slot for d in result.fires if d.occasion is C]
    assert caught == ([at(3)] if fired else [])
    newest = [s for s in result.skipped if s.fire.slot == at(3)]
    assert [s.why for s in newest] == ([] if fired else [SkipReason.TOO_LATE])


def hourly_only() -> CronFile:
    return CronFile(CRON.path, (job("hourly"),), ())


def job(name: str, *schedules: Schedule) -> Job:
    kind = DecisionTask(treeherder_symbol="X", target_tasks_method=name)
    return Job(name, kind, schedules or (Schedule(minute=0),))


def test_latest_catch_up_respects_max_lateness() -> None:
    """Moved here from test_engine (plan_catch_up was the engine's)."""
    missed = fires_between(hourly_only(), PROJECT, DAY, DAY.replace(hour=3)).fires
    now = DAY.replace(hour=9)
    latest = plan_catch_up(missed, rules(CatchUp("latest", timedelta(hours=6))), now)
    assert latest.fires == ()
    assert [skip.reason for skip in latest.skips][-1].startswith("missed by more than")
    capped = plan_catch_up(missed, rules(CatchUp("all", timedelta(hours=6), 2)), now)
    assert [f.slot.hour for f in capped.fires] == [1, 2]
    assert [skip.fire.slot.hour for skip in capped.skips] == [0]


def test_catch_up_of_nothing_missed_is_nothing() -> None:
    assert plan_catch_up((), rules(), at(5)).fires == ()
    assert plan_catch_up((), rules(), at(5)).skips == ()


# -- pauses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pauses", "fired", "paused"),
    [
        pytest.param(
            [Held()], [], ["nightly 02:00 C", "hourly 03:00 C", "hourly 04:00 S"], id="project"
        ),
        pytest.param(
            [Held("hourly")],
            ["nightly 02:00 C"],
            ["hourly 03:00 C", "hourly 04:00 S"],
            id="job",
        ),
        pytest.param(
            [Held("elsewhere")],
            ["nightly 02:00 C", "hourly 03:00 C", "hourly 04:00 S"],
            [],
            id="other",
        ),
    ],
)
def test_pauses_hold_what_would_fire_and_say_so(
    pauses: list[Held], fired: list[str], paused: list[str]
) -> None:
    result = plan(at(4), pauses=pauses, **GAP)
    assert [f"{j} {t} {o.name[0]}" for j, t, o in made(result)] == fired
    assert [
        f"{s.fire.job_name} {s.fire.slot:%H:%M} {s.occasion.name[0]}" for s in result.paused
    ] == paused
    assert all(
        s.why is SkipReason.PAUSED and s.reason.startswith("paused: ") for s in result.paused
    )
    # The catch-up policy's own skips stay its own, paused or not.
    assert skips(result.skipped) == skips(plan(at(4), **GAP).skipped)


# -- unfinished fires of earlier slots ---------------------------------------------------------

DIED = OpenFire(at(1), "hourly", replica="r1", task_id="T1")
RETRYING = OpenFire(at(1), "hourly", retrying=True, attempts=3, error="queue down")


@pytest.mark.parametrize(
    ("open_fire", "now", "outcome"),
    [
        pytest.param(DIED, at(1) + 6 * HOUR, "retry", id="died-at-the-limit"),
        pytest.param(DIED, at(1) + 6 * HOUR + TICK, "failed", id="died-past-the-limit"),
        pytest.param(RETRYING, at(1) + 6 * HOUR + ROUND_GRACE, "retry", id="retry-within-grace"),
        pytest.param(RETRYING, at(1) + 6 * HOUR + ROUND_GRACE + TICK, "failed", id="retry-late"),
        pytest.param(OpenFire(at(1), "gone"), at(1) + HOUR, SkipReason.JOB_GONE, id="job-gone"),
    ],
)
def test_open_fires_are_retried_within_max_lateness_and_given_up_after(
    open_fire: OpenFire, now: datetime, outcome: str | SkipReason
) -> None:
    result = plan(slot_of(now), open_fires=[open_fire], now=now, cron=hourly_only())
    retried = [d for d in result.fires if d.occasion is R]
    if outcome == "retry":
        assert [(d.fire.slot, d.retried) for d in retried] == [(at(1), open_fire)]
        assert result.given_up == ()
        return
    assert retried == []
    [given_up] = result.given_up
    assert given_up.open_fire == open_fire
    assert given_up.skip == (None if outcome == "failed" else outcome)
    assert given_up.failed is (outcome == "failed")


def test_given_up_fires_say_why() -> None:
    late = at(8)
    once = OpenFire(at(1, 15), "nightly", retrying=True, attempts=1, error="x")
    result = plan(late, open_fires=[DIED, once], now=late)
    reasons = {g.open_fire.job: g.reason for g in result.given_up}
    assert reasons["hourly"] == (
        "given up: replica r1 claimed it and stopped before recording how it ended, and its "
        "max-lateness 6h has passed; task T1 may exist"
    )
    assert reasons["nightly"] == (
        "given up after 1 attempt: its max-lateness 6h has passed; the last one: x"
    )
    no_task = plan(late, open_fires=[OpenFire(at(1), "hourly", replica="r2")], now=late)
    assert no_task.given_up[0].reason.endswith("its max-lateness 6h has passed")
    retried = plan(late, open_fires=[RETRYING], now=late + 6 * HOUR)
    assert retried.given_up[0].reason == (
        "given up after 3 attempts: its max-lateness 6h has passed; the last one: queue down"
    )
    gone = plan(late, open_fires=[OpenFire(at(1), "gone")], now=late)
    assert gone.given_up[0].reason == "not fired: gone is no longer a job of .cron.yml"
    assert gone.given_up[0].job is None


@pytest.mark.parametrize(
    ("now", "pauses", "retried", "given_up", "waiting"),
    [
        pytest.param(at(3), [Held("hourly")], [], [], [DIED], id="paused-waits"),
        pytest.param(at(3), [Held()], [], [], [DIED], id="project-paused-waits"),
        pytest.param(at(3), [Held("nightly")], [DIED], [], [], id="other-job-paused"),
        pytest.param(at(8), [Held("hourly")], [], [SkipReason.PAUSED], [], id="paused-too-late"),
    ],
)
def test_a_paused_jobs_open_fires_wait_and_end_skipped_when_too_late(
    now: datetime,
    pauses: list[Held],
    retried: list[OpenFire],
    given_up: list[SkipReason],
    waiting: list[OpenFire],
) -> None:
    result = plan(slot_of(now), open_fires=[DIED], pauses=pauses, now=now)
    assert [d.retried for d in result.fires if d.occasion is R] == retried
    assert [g.skip for g in result.given_up] == given_up
    assert list(result.waiting) == waiting
    if given_up:
        assert result.given_up[0].reason == Held("hourly").summary


def test_open_fires_of_the_slot_itself_or_later_are_left_alone() -> None:
    own = OpenFire(at(3), "hourly")
    result = plan(at(3), open_fires=[own, OpenFire(at(4), "hourly")], now=at(5))
    assert made(result) == [("hourly", "03:00", S)]
    assert result.given_up == result.waiting == ()


def test_a_retry_comes_before_the_slots_fires_and_replaces_its_catch_up() -> None:
    open_fire = OpenFire(at(3), "hourly", retrying=True)
    result = plan(at(4), open_fires=[open_fire], catch_up=rules(ALL), **GAP)
    assert made(result) == [
        ("hourly", "01:00", C),
        ("hourly", "02:00", C),
        ("nightly", "02:00", C),
        ("hourly", "03:00", R),
        ("hourly", "04:00", S),
    ]
    assert result.fires[3].retried == open_fire


def test_recovery_plans_open_fires_up_to_the_current_slot() -> None:
    now = at(3, 20)
    reopen = plan_open_fires(
        CRON,
        [DIED, OpenFire(at(3, 15), "nightly"), OpenFire(at(3, 30), "hourly")],
        [],
        rules(),
        now,
        before=slot_of(now) + SLOT_LENGTH,
    )
    assert [(d.fire.job_name, d.fire.slot) for d in reopen.retries] == [
        ("hourly", at(1)),
        ("nightly", at(3, 15)),
    ]
    assert reopen.given_up == reopen.waiting == ()


# -- properties -------------------------------------------------------------------------------

NAMES = ("a", "b", "c")
minutes = st.sampled_from([None, 0, 15, 30, 45])
hours = st.one_of(st.none(), st.integers(0, 23))
schedules = st.builds(Schedule, minute=minutes, hour=hours)
catch_ups = st.builds(
    CatchUp,
    policy=st.sampled_from(["latest", "all", "none"]),
    max_lateness=st.timedeltas(timedelta(0), timedelta(hours=30)),
    max_slots=st.integers(1, 6),
)


@st.composite
def situations(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    jobs = tuple(job(n, *draw(st.lists(schedules, min_size=1, max_size=3))) for n in names)
    slot = DAY + SLOT_LENGTH * draw(st.integers(0, 4 * 24 * 3))
    gap = draw(st.one_of(st.none(), st.integers(1, 4 * 30)))
    last = None if gap is None else slot - SLOT_LENGTH * gap
    now = slot + draw(st.timedeltas(timedelta(0), timedelta(hours=40)))
    open_fires = draw(
        st.lists(
            st.builds(
                OpenFire,
                slot=st.integers(-4 * 40, 4).map(lambda n: slot + SLOT_LENGTH * n),
                job=st.sampled_from((*NAMES, "gone")),
                retrying=st.booleans(),
                attempts=st.integers(1, 5),
            ),
            max_size=5,
            unique_by=lambda f: (f.slot, f.job),
        )
    )
    pauses = draw(st.lists(st.sampled_from([Held(), *(Held(n) for n in NAMES)]), max_size=2))
    policies = draw(st.fixed_dictionaries(dict.fromkeys((*NAMES, "gone"), catch_ups)))
    return {
        "cron": CronFile("x", jobs, ()),
        "slot": slot,
        "last": last,
        "now": now,
        "open_fires": tuple(open_fires),
        "pauses": tuple(pauses),
        "catch_up": policies.__getitem__,
    }


def keys(fires: Iterable[Any]) -> set[tuple[str, datetime]]:
    found = set()
    for item in fires:
        if isinstance(item, OpenFire):
            found.add((item.job, item.slot))
        else:
            fire = item if isinstance(item, PlannedFire) else item.fire
            found.add((fire.job_name, fire.slot))
    return found


@settings(max_examples=60)
@given(situations())
def test_no_slot_later_than_now_is_fired_skipped_or_given_up(case: dict[str, Any]) -> None:
    result = plan(**case)
    for item in (*result.fires, *result.skipped, *result.paused):
        assert item.fire.slot <= case["now"]
        assert item.fire.slot <= case["slot"]
    assert all(g.open_fire.slot < case["slot"] for g in result.given_up)


@settings(max_examples=60)
@given(situations())
def test_each_policy_bounds_what_it_catches_up(case: dict[str, Any]) -> None:
    result = plan(**case)
    for name in NAMES:
        rule = case["catch_up"](name)
        caught = [
            x
            for x in (*result.fires, *result.paused)
            if x.occasion is C and x.fire.job_name == name
        ]
        if rule.policy == "none":
            assert caught == []
        elif rule.policy == "latest":
            assert len(caught) <= 1
            assert all(case["now"] - x.fire.slot <= rule.max_lateness for x in caught)
        else:
            assert len(caught) <= rule.max_slots


@settings(max_examples=60)
@given(situations())
def test_every_missed_slot_is_fired_or_skipped_with_a_reason(case: dict[str, Any]) -> None:
    result = plan(**case)
    if case["last"] is None or case["slot"] - case["last"] <= SLOT_LENGTH:
        assert all(d.occasion is not C for d in result.fires)
        assert result.skipped == ()
        return
    missed = fires_between(case["cron"], PROJECT, case["last"] + SLOT_LENGTH, case["slot"])
    accounted = keys(result.fires) | keys(result.skipped) | keys(result.paused)
    assert keys(missed.fires) <= accounted
    assert all(s.reason for s in (*result.skipped, *result.paused))
    assert keys(result.skipped) <= keys(missed.fires)


@settings(max_examples=60)
@given(situations())
def test_pauses_win(case: dict[str, Any]) -> None:
    result = plan(**case)
    free = plan(**{**case, "pauses": ()})
    pauses = case["pauses"]
    assert not any(p.covers(d.fire.job_name) for p in pauses for d in result.fires)
    assert keys(free.fires) == keys(result.fires) | keys(result.paused) | keys(result.waiting)
    assert keys(g.open_fire for g in free.given_up) == keys(g.open_fire for g in result.given_up)
    assert [(s.fire, s.why, s.reason) for s in result.skipped] == [
        (s.fire, s.why, s.reason) for s in free.skipped
    ]
    for given_up in result.given_up:
        paused = any(p.covers(given_up.open_fire.job) for p in pauses)
        assert given_up.failed is (given_up.job is not None and not paused)


@settings(max_examples=60)
@given(situations())
def test_every_earlier_open_fire_is_retried_given_up_or_waits(case: dict[str, Any]) -> None:
    result = plan(**case)
    retried = [d.retried for d in result.fires if d.occasion is R]
    given_up = [g.open_fire for g in result.given_up]
    earlier = [f for f in case["open_fires"] if f.slot < case["slot"]]
    assert sorted([*retried, *given_up, *result.waiting]) == sorted(earlier)


@settings(max_examples=60)
@given(situations())
def test_fires_come_in_order_earlier_slots_first(case: dict[str, Any]) -> None:
    result = plan(**case)
    occasions = [d.occasion for d in result.fires]
    earlier = [d.fire for d in result.fires if d.occasion is not S]
    assert occasions == sorted(occasions, key=lambda o: o is S)
    assert earlier == sorted(earlier)
    assert len(keys(result.fires)) == len(result.fires)
    scheduled = [d.fire for d in result.fires if d.occasion is S]
    assert all(f.slot == case["slot"] for f in scheduled)


@settings(max_examples=60)
@given(situations())
def test_a_future_slot_is_never_planned(case: dict[str, Any]) -> None:
    with pytest.raises(FutureSlotError):
        plan(**{**case, "now": case["slot"] - TICK})


def test_catch_up_fires_carry_their_jobs() -> None:
    result = plan(at(4), catch_up=rules(ALL), **GAP)
    assert all(
        isinstance(d.fire, PlannedFire) and d.fire.job.name == d.fire.job_name for d in result.fires
    )
