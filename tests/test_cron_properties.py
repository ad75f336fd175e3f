"""Property tests for `.cron.yml` matching, planning and loading.

The references in this file are deliberately naive and share no code with `scheduler`: slots
are counted as whole 15-minute steps since the POSIX epoch, weekdays come from `calendar`, and
plans are brute-forced slot by slot. The scheduler's own code only appears as the thing tested.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scheduler.cli import main
from scheduler.cron import (
    ByProject,
    CronFile,
    DecisionTask,
    Job,
    Schedule,
    ScheduleError,
    Severity,
    TriggerAction,
    due_jobs,
    fires_between,
    load_cron,
    next_fires,
)

# --- the naive reference -------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAIVE_EPOCH = datetime(1970, 1, 1)
QUARTER = timedelta(minutes=15)
DAY_NAMES = tuple(calendar.day_name)  # Monday .. Sunday in the C locale
ENGLISH_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MINUTE_VALUES = (0, 15, 30, 45)


def ref_offset(moment: datetime) -> timedelta:
    """Time since the epoch; a naive moment is UTC, an aware one counts its own offset."""
    if moment.tzinfo is None:
        return moment - NAIVE_EPOCH
    return moment - EPOCH  # aware subtraction applies both offsets


def ref_slot_index(moment: datetime) -> int:
    """The number of the slot `moment` falls in, counting 15-minute steps from the epoch."""
    return ref_offset(moment) // QUARTER


def ref_first_index_at_or_after(moment: datetime) -> int:
    return -(-ref_offset(moment) // QUARTER)


def ref_slot_at(index: int) -> datetime:
    return EPOCH + index * QUARTER


def ref_slot(moment: datetime) -> datetime:
    return ref_slot_at(ref_slot_index(moment))


def ref_weekday(day: date) -> str:
    return DAY_NAMES[calendar.weekday(day.year, day.month, day.day)]


Spec = dict[str, Any]  # one `when` entry as written in YAML: minute/hour/day/weekday


def slot_fields(slot: datetime) -> dict[str, Any]:
    return {
        "minute": slot.minute,
        "hour": slot.hour,
        "day": slot.day,
        "weekday": ref_weekday(slot.date()),
    }


def fields_match(spec: Spec, actual: dict[str, Any]) -> bool:
    """build-decision's match_utc, written out: every given field equals the slot's."""
    return all(spec.get(field) is None or spec[field] == actual[field] for field in actual)


def ref_matches(spec: Spec, slot: datetime) -> bool:
    return fields_match(spec, slot_fields(slot))


class UnresolvedError(Exception):
    """The reference found no single by-project entry for a project."""


def ref_resolve(when: Any, project: str) -> list[Spec]:
    """The schedule entries that apply on `project` (raise UnresolvedError when none or several)."""
    if not isinstance(when, dict):
        return list(when or [])
    alternatives: dict[str, list[Spec]] = when["by-project"]
    if project in alternatives:
        return alternatives[project]
    regex_hits = [key for key in alternatives if re.fullmatch(key, project)]
    if len(regex_hits) == 1:
        return alternatives[regex_hits[0]]
    if len(regex_hits) > 1:
        raise UnresolvedError("ambiguous")
    if "default" in alternatives:
        return alternatives["default"]
    raise UnresolvedError("no entry")


def ref_runs_on(job: Spec, project: str) -> bool:
    projects = job.get("run-on-projects")
    return projects is None or project in projects


def ref_plan(
    jobs: list[Spec], project: str, first_index: int, end_index: int
) -> tuple[list[tuple[datetime, str]], set[str]]:
    """Brute force: every slot index in [first_index, end_index), every job, in name order."""
    resolved: list[tuple[str, list[Spec]]] = []
    problems: set[str] = set()
    for job in sorted(jobs, key=lambda job: job["name"]):
        if not ref_runs_on(job, project):
            continue
        try:
            resolved.append((job["name"], ref_resolve(job.get("when"), project)))
        except UnresolvedError:
            problems.add(job["name"])
    fires = []
    for index in range(first_index, end_index if resolved else first_index):
        slot = ref_slot_at(index)
        actual = slot_fields(slot)
        fires.extend(
            (slot, name) for name, specs in resolved if any(fields_match(s, actual) for s in specs)
        )
    return fires, problems


# --- strategies ------------------------------------------------------------------------------


def _zones() -> list[tzinfo]:
    zones: list[tzinfo] = [
        UTC,
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=5, minutes=45)),
        timezone(timedelta(hours=-9, minutes=-30)),
        timezone(timedelta(hours=14)),
        timezone(timedelta(hours=-12)),
        timezone(timedelta(minutes=7, seconds=13)),  # not even a whole minute
    ]
    for name in ("Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"):
        with contextlib.suppress(ZoneInfoNotFoundError):  # no tz database on this machine
            zones.append(ZoneInfo(name))
    return zones


ZONES = _zones()
LOW, HIGH = datetime(1900, 1, 1), datetime(2200, 12, 31)
LOW_INDEX, HIGH_INDEX = ref_slot_index(LOW), ref_slot_index(HIGH)


def in_zone(utc_moment: datetime, zone: tzinfo | None) -> datetime:
    """`utc_moment` expressed in `zone` (None: a naive datetime, which means UTC)."""
    if zone is None:
        return utc_moment.astimezone(UTC).replace(tzinfo=None)
    return utc_moment.astimezone(zone)


random_instants = st.one_of(
    st.datetimes(LOW, HIGH),  # naive means UTC
    st.datetimes(LOW, HIGH, timezones=st.sampled_from(ZONES)),
)


@st.composite
def aligned_instants(draw: st.DrawFn) -> datetime:
    """On a slot boundary, or a microsecond or a few seconds on either side of one."""
    index = draw(st.integers(LOW_INDEX, HIGH_INDEX))
    nudge = draw(st.sampled_from([0, 0, 1, -1, 1_000_000, -1_000_000, 899_999_999]))
    moment = ref_slot_at(index) + timedelta(microseconds=nudge)
    return in_zone(moment, draw(st.one_of(st.none(), st.sampled_from(ZONES))))


instants = st.one_of(random_instants, aligned_instants())

weekdays = st.sampled_from(ENGLISH_DAYS)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "minute": st.sampled_from(MINUTE_VALUES),
    "hour": st.integers(0, 23),
    "day": st.integers(1, 31),
    "weekday": weekdays,
}

# How often each field is given: mostly minute and hour, so that plans have fires to compare.
FIELD_PRESENCE = {
    field: st.sampled_from([True] * given_ + [False] * left_out)
    for field, (given_, left_out) in {
        "minute": (2, 1),
        "hour": (1, 1),
        "day": (1, 5),
        "weekday": (1, 3),
    }.items()
}


@st.composite
def _schedule_specs(draw: st.DrawFn) -> Spec:
    return {
        field: draw(values) for field, values in FIELD_VALUES.items() if draw(FIELD_PRESENCE[field])
    }


schedule_specs = _schedule_specs()


def schedule_specs_near(slot: datetime) -> st.SearchStrategy[Spec]:
    """Entries whose fields are often the slot's own values, so that both outcomes are common."""
    actual = slot_fields(slot)
    return st.fixed_dictionaries(
        {},
        optional={
            field: st.one_of(st.just(actual[field]), values)
            for field, values in FIELD_VALUES.items()
        },
    )


def as_schedule(spec: Spec) -> Schedule:
    return Schedule(**spec)


PROJECTS = ("proj-a", "proj-b", "proj-c", "mozilla-central", "try", "autoland", "default")
# "proj" and "auto" match projects' beginnings only: keys must match the whole name.
REGEX_KEYS = (
    "proj-.*",
    "proj-[ab]",
    "mozilla-.*",
    ".*-central",
    "(try|autoland)",
    "x+",
    "proj",
    "auto",
)
projects = st.sampled_from((*PROJECTS, "elsewhere"))
by_project_keys = st.sampled_from((*PROJECTS, *REGEX_KEYS))


def when_specs(entries: st.SearchStrategy[Spec]) -> st.SearchStrategy[Any]:
    schedule_lists = st.lists(entries, max_size=3)
    by_project = st.dictionaries(by_project_keys, schedule_lists, min_size=1, max_size=4).map(
        lambda alternatives: {"by-project": alternatives}
    )
    return st.one_of(st.none(), schedule_lists, schedule_lists, by_project)


def build_job(name: str, when: Any, run_on: list[str] | None) -> Job:
    """A model Job straight from a spec (no loader involved)."""
    model_when: tuple[Schedule, ...] | ByProject
    if isinstance(when, dict):
        model_when = ByProject(
            {key: tuple(map(as_schedule, specs)) for key, specs in when["by-project"].items()}
        )
    else:
        model_when = tuple(map(as_schedule, when or []))
    return Job(
        name=name,
        kind=DecisionTask(treeherder_symbol="X", target_tasks_method="y"),
        when=model_when,
        run_on_projects=None if run_on is None else tuple(run_on),
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
kind_specs = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("decision-task"),
            "treeherder-symbol": st.sampled_from(["N", "I", "Cc"]),
            "target-tasks-method": st.sampled_from(["nightly", "integration"]),
        },
        optional={
            "include-push-tasks": st.just(True),
            "optimize-target-tasks": st.booleans(),
            "rebuild-kinds": st.lists(st.sampled_from(["docker-image", "toolchain"]), max_size=3),
            "include-cron-input": st.booleans(),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("trigger-action"), "action-name": st.sampled_from(["rebuild", "x"])},
        optional={
            "include-cron-input": st.booleans(),
            "extra-input": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
        },
    ),
)

job_names = st.one_of(
    st.text(string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=8),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=6),
)


ONE_IN_THREE = st.sampled_from([True, False, False])
run_on_projects = st.lists(projects, max_size=4, unique=True)
DEFAULT_WHEN = when_specs(schedule_specs)


@st.composite
def job_specs(draw: st.DrawFn, when: st.SearchStrategy[Any] = DEFAULT_WHEN) -> Spec:
    """A valid job, without its name."""
    job: Spec = {"job": draw(kind_specs)}
    if draw(ONE_IN_THREE):
        job["run-on-projects"] = draw(run_on_projects)
    when_spec = draw(when)
    if when_spec is not None:
        job["when"] = when_spec
    return job


nameless_jobs = job_specs()


@st.composite
def cron_specs(draw: st.DrawFn, max_jobs: int = 5) -> list[Spec]:
    names = draw(st.lists(job_names, min_size=1, max_size=max_jobs, unique=True))
    return [{"name": name, **draw(nameless_jobs)} for name in names]


FLOW_STYLES = st.sampled_from([None, True, False])
# libyaml's safe dumper when PyYAML has it (much faster), else PyYAML's own.
FAST_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
DUMPERS = st.sampled_from([yaml.SafeDumper, FAST_SAFE_DUMPER])


def dump(data: Any, draw: st.DrawFn | None = None) -> str:
    """YAML for `data` as yaml.safe_dump writes it; `draw` varies the style and the dumper."""
    flow = None if draw is None else draw(FLOW_STYLES)
    unicode = False if draw is None else draw(st.booleans())
    dumper = FAST_SAFE_DUMPER if draw is None else draw(DUMPERS)
    text: str = yaml.dump(
        data,
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=flow,
        allow_unicode=unicode,
        width=10_000,
    )
    return text


def fires_of(plan: Any) -> list[tuple[datetime, str]]:
    for fire in plan.fires:
        assert fire.job.name == fire.job_name
        assert fire.slot.tzinfo is not None
        assert fire.slot.utcoffset() == timedelta(0)
    return [(fire.slot, fire.job_name) for fire in plan.fires]


def problem_jobs(plan: Any, project: str) -> set[str]:
    for problem in plan.problems:
        assert problem.severity is Severity.ERROR
        assert problem.line >= 1
        assert problem.column >= 1
        assert f"`{project}`" in problem.message
    return {problem.job for problem in plan.problems}


def with_float_numbers(value: Any) -> Any:
    """`minute: 15.0` for `minute: 15`: JSON Schema counts 15.0 as an integer, so it is valid."""
    if isinstance(value, dict):
        return {
            key: float(item)
            if key in {"minute", "hour", "day"} and type(item) is int
            else with_float_numbers(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [with_float_numbers(item) for item in value]
    return value


def load_specs(jobs: list[Spec], *, floats: bool = False) -> CronFile:
    """Load generated jobs through the real loader, and check it kept each one as written."""
    cron = load_cron(dump({"jobs": with_float_numbers(jobs) if floats else jobs}))
    assert [job.name for job in cron.jobs] == [job["name"] for job in jobs]
    for job, spec in zip(cron.jobs, jobs, strict=True):
        expected = build_job(spec["name"], spec.get("when"), spec.get("run-on-projects"))
        assert job.when == expected.when
        assert job.run_on_projects == expected.run_on_projects
        schedules = (
            [s for entries in job.when.alternatives.values() for s in entries]
            if isinstance(job.when, ByProject)
            else job.when
        )
        assert all(valid_schedule(schedule) for schedule in schedules), job.when
    # The only errors valid jobs can have: a listed project without a by-project schedule.
    unresolved = set()
    for job in jobs:
        for project in job.get("run-on-projects") or []:
            try:
                ref_resolve(job.get("when"), project)
            except UnresolvedError:
                unresolved.add(job["name"])
    assert {error.job for error in cron.errors} == unresolved, cron.errors
    return cron


PLAN_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# --- 1. matching against the reference -------------------------------------------------------


def test_reference_agrees_with_known_slots() -> None:
    """Pin the reference itself, so a broken reference cannot make the properties vacuous."""
    moment = datetime(2026, 11, 24, 10, 14, 59, 999_999, tzinfo=UTC)
    assert ref_slot(moment) == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    india = timezone(timedelta(hours=5, minutes=30))
    assert ref_slot(datetime(2026, 11, 24, 5, 44, tzinfo=india)) == datetime(
        2026, 11, 24, 0, 0, tzinfo=UTC
    )
    assert ref_slot(datetime(1969, 12, 31, 23, 59)) == datetime(1969, 12, 31, 23, 45, tzinfo=UTC)
    assert ref_weekday(date(2026, 11, 24)) == "Tuesday"
    assert ref_matches({"weekday": "Tuesday", "hour": 10}, ref_slot(moment))
    assert not ref_matches({"weekday": "Tuesday", "minute": 15}, ref_slot(moment))
    by_project = {"by-project": {"proj-.*": [{"hour": 1}], "proj-[ab]": [], "default": []}}
    assert ref_resolve(by_project, "proj-c") == [{"hour": 1}]
    assert ref_resolve(by_project, "other") == []
    with pytest.raises(UnresolvedError):
        ref_resolve(by_project, "proj-a")


@st.composite
def moment_and_spec(draw: st.DrawFn) -> tuple[datetime, Spec]:
    moment = draw(instants)
    return moment, draw(schedule_specs_near(ref_slot(moment)))


@settings(max_examples=300, deadline=None)
@given(moment_and_spec())
def test_schedule_matches_like_reference(case: tuple[datetime, Spec]) -> None:
    moment, spec = case
    slot = ref_slot(moment)
    assert Schedule(**spec).matches(slot) == ref_matches(spec, slot)
    assert Schedule(**spec).matches_day(slot.date()) == ref_matches(
        {k: v for k, v in spec.items() if k in {"day", "weekday"}}, slot
    )


@st.composite
def due_cases(draw: st.DrawFn) -> tuple[datetime, str, Spec]:
    moment = draw(instants)
    project = draw(projects)
    job = {"name": "job", **draw(job_specs(when_specs(schedule_specs_near(ref_slot(moment)))))}
    return moment, project, job


@settings(max_examples=300, deadline=None)
@given(due_cases())
def test_job_is_due_like_reference(case: tuple[datetime, str, Spec]) -> None:
    moment, project, spec = case
    job = build_job(spec["name"], spec.get("when"), spec.get("run-on-projects"))
    if not ref_runs_on(spec, project):
        assert not job.is_due(project, moment)
        return
    try:
        entries = ref_resolve(spec.get("when"), project)
    except UnresolvedError:
        with pytest.raises(ScheduleError):
            job.is_due(project, moment)
        return
    slot = ref_slot(moment)
    assert job.is_due(project, moment) == any(ref_matches(entry, slot) for entry in entries)


# --- 2. planning against brute force ---------------------------------------------------------


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


@st.composite
def spans(draw: st.DrawFn, longest: timedelta = timedelta(days=10)) -> Span:
    start = draw(instants)
    length = draw(
        st.one_of(
            st.timedeltas(timedelta(minutes=-30), timedelta(hours=2)),
            st.timedeltas(timedelta(days=1), longest),
            st.timedeltas(timedelta(days=1), longest),
            st.integers(-2, int(longest / QUARTER)).map(lambda n: n * QUARTER),
        )
    )
    end = EPOCH + ref_offset(start) + length
    if draw(st.booleans()):  # end on (or a microsecond off) a slot boundary
        index = ref_first_index_at_or_after(start) + draw(st.integers(-2, 3 * 96))
        end = ref_slot_at(index) + timedelta(microseconds=draw(st.sampled_from([0, 0, 1, -1])))
    return Span(start, in_zone(end, draw(st.none() | st.sampled_from(ZONES))))


@PLAN_SETTINGS
@given(jobs=cron_specs(), project=projects, span=spans(), floats=st.booleans())
def test_fires_between_is_brute_force(
    jobs: list[Spec], project: str, span: Span, floats: bool
) -> None:
    cron = load_specs(jobs, floats=floats)
    plan = fires_between(cron, project, span.start, span.end)
    expected, problems = ref_plan(
        jobs,
        project,
        ref_first_index_at_or_after(span.start),
        ref_first_index_at_or_after(span.end),
    )
    assert fires_of(plan) == expected
    assert problem_jobs(plan, project) == problems
    event(f"fires: {min(len(expected), 10)}, problems: {bool(problems)}")


@PLAN_SETTINGS
@given(
    jobs=cron_specs(),
    project=projects,
    start=instants,
    count=st.integers(0, 60),
)
def test_next_fires_is_brute_force(
    jobs: list[Spec], project: str, start: datetime, count: int
) -> None:
    cron = load_specs(jobs)
    plan = next_fires(cron, project, start, count)
    first = ref_first_index_at_or_after(start)
    horizon = first + 3 * 96  # three days of slots, brute-forced
    expected, problems = ref_plan(jobs, project, first, horizon)
    got = fires_of(plan)
    assert len(got) <= count
    if len(expected) >= count:
        assert got == expected[:count]
    else:
        # Everything the brute force saw comes first; the rest lies beyond its horizon.
        assert got[: len(expected)] == expected
        assert all(slot >= ref_slot_at(horizon) for slot, _ in got[len(expected) :])
        assert got == sorted(got)
    assert problem_jobs(plan, project) == problems


@PLAN_SETTINGS
@given(jobs=cron_specs(), project=projects, moment=instants, floats=st.booleans())
def test_due_jobs_is_brute_force(
    jobs: list[Spec], project: str, moment: datetime, floats: bool
) -> None:
    cron = load_specs(jobs, floats=floats)
    index = ref_slot_index(moment)
    expected, problems = ref_plan(jobs, project, index, index + 1)
    plan = due_jobs(cron, project, moment)
    assert fires_of(plan) == expected
    assert problem_jobs(plan, project) == problems


RARE_ENTRY_LISTS = st.one_of(
    # The rarest there are: the 29th to 31st on one weekday, up to 609 days apart.
    st.fixed_dictionaries(
        {
            "minute": FIELD_VALUES["minute"],
            "hour": FIELD_VALUES["hour"],
            "day": st.integers(29, 31),
            "weekday": weekdays,
        }
    ).map(lambda entry: [entry]),
    st.lists(
        st.fixed_dictionaries(
            {
                "minute": FIELD_VALUES["minute"],
                "hour": FIELD_VALUES["hour"],
                "day": st.one_of(st.integers(28, 31), FIELD_VALUES["day"]),
            },
            optional={"weekday": weekdays},
        ),
        min_size=1,
        max_size=2,
    ),
)


@st.composite
def rare_jobs(draw: st.DrawFn) -> list[Spec]:
    """Jobs that fire at one time on one day of the month, some only when it is a given weekday."""
    names = draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=3, unique=True))
    jobs = []
    for name in names:
        entries = draw(RARE_ENTRY_LISTS)
        kind = {"type": "decision-task", "treeherder-symbol": "R", "target-tasks-method": "rare"}
        jobs.append({"name": name, "job": kind, "when": entries})
    return jobs


def ref_rare_fires(jobs: list[Spec], start: datetime, count: int) -> list[tuple[datetime, str]]:
    """Day by day from the start's date, for entries that all give an hour and a minute."""
    first = ref_slot_at(ref_first_index_at_or_after(start))
    fires: list[tuple[datetime, str]] = []
    day = first.date()
    last = day + timedelta(days=40 * 366)  # far past any day/weekday combination's gap
    while len(fires) < count and day < last:
        todays = set()
        for job in jobs:
            for entry in job["when"]:
                if entry["day"] == day.day and entry.get("weekday") in {None, ref_weekday(day)}:
                    slot = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                        hours=entry["hour"], minutes=entry["minute"]
                    )
                    if slot >= first:
                        todays.add((slot, job["name"]))
        fires.extend(sorted(todays))
        day += timedelta(days=1)
    return fires[:count]


@PLAN_SETTINGS
@given(jobs=rare_jobs(), start=instants, count=st.integers(1, 8))
def test_next_fires_finds_rare_fires(jobs: list[Spec], start: datetime, count: int) -> None:
    """`day: 31, weekday: Friday` and the like: next_fires must look far enough ahead."""
    cron = load_specs(jobs)
    assert fires_of(next_fires(cron, "any", start, count)) == ref_rare_fires(jobs, start, count)


# --- 3. fuzzing the loader and `check` -------------------------------------------------------

KEYS = (
    "jobs",
    "name",
    "job",
    "type",
    "when",
    "by-project",
    "default",
    "minute",
    "hour",
    "day",
    "weekday",
    "run-on-projects",
    "treeherder-symbol",
    "target-tasks-method",
    "action-name",
    "extra-input",
    "include-push-tasks",
    "include-cron-input",
    "optimize-target-tasks",
    "rebuild-kinds",
    "proj-.*",
    "<<",
)
weird_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(["", " ", "\t", "\n", "\x85", "\u2028", "\ufeff", "\U0001f600", "\x00", "~"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-20, 70),
    st.floats(allow_nan=True, allow_infinity=True),
    weird_text,
    st.sampled_from(
        ["decision-task", "trigger-action", "Monday", "sunday", "proj-.*", "(", "a{2,1}", "[["]
    ),
)
keys = st.one_of(st.sampled_from(KEYS), weird_text, st.integers(-5, 100))
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
schedule_like = st.dictionaries(
    st.sampled_from(["minute", "hour", "day", "weekday"]) | keys,
    st.sampled_from(MINUTE_VALUES)
    | st.integers(-2, 60)
    | st.sampled_from([0.0, 15.0, 45.0, 7.0, 23.0, 31.0, -0.0, 15.5, 1e1])
    | weekdays
    | scalars,
    max_size=4,
)
kind_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["decision-task", "trigger-action"]) | scalars},
    optional={
        "treeherder-symbol": st.text(max_size=3) | scalars,
        "target-tasks-method": st.text(max_size=5) | scalars,
        "action-name": st.text(max_size=5) | scalars,
        "extra-input": st.dictionaries(keys, values, max_size=3) | values,
        "include-push-tasks": st.booleans() | scalars,
        "include-cron-input": st.booleans() | scalars,
        "optimize-target-tasks": st.booleans() | scalars,
        "rebuild-kinds": st.lists(st.text(max_size=4)) | values,
    },
) | st.dictionaries(keys, values, max_size=4)
when_like = st.one_of(
    st.lists(schedule_like, max_size=3),
    st.fixed_dictionaries(
        {
            "by-project": st.dictionaries(
                by_project_keys | weird_text | st.integers(),
                st.lists(schedule_like, max_size=2) | values,
                max_size=3,
            )
        }
    ),
    values,
)


def _containers(value: Any) -> list[Any]:
    """Every dict and list in `value`, itself included."""
    found = [value] if isinstance(value, dict | list) else []
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    )
    for child in children:
        found.extend(_containers(child))
    return found


# Values that are almost right somewhere: integral floats, numbers as strings, bounds +- 1.
NEAR_MISSES = (15.0, 0.0, 45.0, 23.0, 1.0, 31.0, True, False, -15, 60, 24, 32, 0, 1, 2.5)
near_misses = values | st.sampled_from(
    (*NEAR_MISSES, "15", "0", "monday", "Mon", "2026-01-01", "", None)
)
perturbed_keys = st.sampled_from(["minute", "hour", "day", "weekday"]) | keys


@st.composite
def perturbed_jobs(draw: st.DrawFn) -> Spec:
    """A valid job with up to two of its mappings or lists changed: mostly almost valid."""
    job: Spec = {"name": draw(job_names), **draw(nameless_jobs)}
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(_containers(job)))
        operation = draw(st.sampled_from(["delete", "change", "add"]))
        if isinstance(target, dict) and target and operation == "delete":
            del target[draw(st.sampled_from(sorted(target, key=repr)))]
        elif isinstance(target, dict) and target and operation == "change":
            target[draw(st.sampled_from(sorted(target, key=repr)))] = draw(near_misses)
        elif isinstance(target, dict):
            target[draw(perturbed_keys)] = draw(near_misses)
        elif target and operation != "add":
            target[draw(st.integers(0, len(target) - 1))] = draw(near_misses)
        else:
            target.append(draw(near_misses))
    return job


job_like = (
    perturbed_jobs()
    | st.fixed_dictionaries(
        {"name": job_names | scalars, "job": kind_like},
        optional={
            "when": when_like,
            "run-on-projects": st.lists(projects | scalars, max_size=3) | values,
            "extra": values,
        },
    )
    | st.dictionaries(keys, values, max_size=4)
)
documents = st.one_of(
    values,
    st.fixed_dictionaries({"jobs": st.lists(perturbed_jobs(), min_size=1, max_size=3)}),
    st.fixed_dictionaries({"jobs": st.lists(job_like, max_size=4)}),
    st.fixed_dictionaries({"jobs": st.lists(job_like, max_size=2)}, optional={"extra": values}),
)

VALID_CRON = """\
# A valid file covering the language; the mutation tests start from it.
---
jobs:
    - name: nightly
      job:
          type: decision-task
          treeherder-symbol: N
          target-tasks-method: nightly
          include-push-tasks: true
          rebuild-kinds: [docker-image, toolchain]
      run-on-projects: [proj-a, mozilla-central]
      when: &every-hour
          - {hour: 2, minute: 0}
          - {weekday: Sunday, hour: 14, minute: 30}
    - name: "integration"
      job: {type: decision-task, treeherder-symbol: I, target-tasks-method: integration}
      when:
          by-project:
              proj-a: [{hour: 6, minute: 30}, {hour: 18, minute: 30}]
              'release-.*':
                  - weekday: Monday
                    hour: 6
                    minute: 30
              default: []
    - name: rebuild
      job:
          type: trigger-action
          action-name: rebuild-cached-tasks
          include-cron-input: true
          extra-input: {force: true, kinds: [a, b], depth: 3}
      when:
          - {day: 1, hour: 0, minute: 45}
          - {day: 31}
    - name: rebuild-again
      job: {type: trigger-action, action-name: rebuild}
      run-on-projects: []
      when: *every-hour
"""
MUTATION_CHARS = st.sampled_from(list(":-{}[]'\"#&*!|>%@`?,\t\n \\~0159.")) | st.characters()


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    text = VALID_CRON
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["delete", "insert", "replace", "duplicate-line"]))
        if operation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 5)) :]
        elif operation == "insert":
            text = text[:position] + draw(st.text(MUTATION_CHARS, min_size=1)) + text[position:]
        elif operation == "replace":
            text = text[:position] + draw(MUTATION_CHARS) + text[position + 1 :]
        else:
            lines = text.splitlines(keepends=True)
            index = min(position, len(lines) - 1)
            text = "".join([*lines[: index + 1], lines[index], *lines[index + 1 :]])
    return text


@st.composite
def dumped_documents(draw: st.DrawFn) -> str:
    return dump(draw(documents), draw)


any_input: st.SearchStrategy[str | bytes] = st.one_of(
    dumped_documents(),
    mutated_documents(),
    st.text(),
    st.binary(),
    mutated_documents().map(lambda text: text.encode("utf-8", "surrogatepass")),
)


def valid_schedule(schedule: Schedule) -> bool:
    def is_int(value: object) -> bool:
        return type(value) is int

    return (
        (schedule.minute is None or (is_int(schedule.minute) and schedule.minute in MINUTE_VALUES))
        and (schedule.hour is None or (is_int(schedule.hour) and 0 <= schedule.hour <= 23))
        and (schedule.day is None or (is_int(schedule.day) and 1 <= schedule.day <= 31))
        and (schedule.weekday is None or schedule.weekday in ENGLISH_DAYS)
    )


def is_strings(items: Iterable[object]) -> bool:
    return all(isinstance(item, str) for item in items)


def note_outcome(cron: CronFile) -> None:
    """For --hypothesis-show-statistics: how often the inputs get past the parser."""
    event(f"jobs: {min(len(cron.jobs), 2)}, errors: {bool(cron.errors)}")


def assert_well_formed(cron: CronFile) -> None:
    assert isinstance(cron, CronFile)
    for diagnostic in cron.diagnostics:
        assert type(diagnostic.line) is int
        assert type(diagnostic.column) is int
        assert diagnostic.line >= 1, diagnostic
        assert diagnostic.column >= 1, diagnostic
        assert diagnostic.severity in {Severity.ERROR, Severity.WARNING}
        assert isinstance(diagnostic.message, str)
        assert diagnostic.message.strip(), diagnostic
        assert "Traceback" not in diagnostic.message
        assert diagnostic.job is None or isinstance(diagnostic.job, str)
    names = [job.name for job in cron.jobs]
    assert len(names) == len(set(names)), names
    for job in cron.jobs:
        assert isinstance(job.name, str)
        if isinstance(job.kind, DecisionTask):
            assert isinstance(job.kind.treeherder_symbol, str)
            assert isinstance(job.kind.target_tasks_method, str)
            assert job.kind.optimize_target_tasks in {None, True, False}
            assert type(job.kind.include_push_tasks) is bool
            assert is_strings(job.kind.rebuild_kinds)
        else:
            assert isinstance(job.kind, TriggerAction)
            assert isinstance(job.kind.action_name, str)
            assert isinstance(job.kind.extra_input, dict)
            json.dumps(job.kind.extra_input, allow_nan=False)  # only JSON reaches an action
        assert type(job.kind.include_cron_input) is bool
        assert job.run_on_projects is None or is_strings(job.run_on_projects)
        if isinstance(job.when, ByProject):
            assert is_strings(job.when.alternatives)
            for key, schedules in job.when.alternatives.items():
                re.compile(key)
                assert all(valid_schedule(schedule) for schedule in schedules), job
        else:
            assert all(valid_schedule(schedule) for schedule in job.when), job
    # Whatever loaded can be planned without raising.
    start = datetime(2026, 2, 27, 23, 50, tzinfo=UTC)
    for project in ("proj-a", "mozilla-central"):
        fires_between(cron, project, start, start + timedelta(days=2))
        due_jobs(cron, project, start)


FUZZ_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ_SETTINGS
@given(documents, st.data())
def test_load_cron_survives_random_documents(document: Any, data: st.DataObject) -> None:
    cron = load_cron(dump(document, data.draw))
    assert_well_formed(cron)
    note_outcome(cron)
    if isinstance(document, dict) and isinstance(document.get("jobs"), list) and not cron.errors:
        # No error means no job was left out.
        assert len(cron.jobs) == len(document["jobs"])


@FUZZ_SETTINGS
@given(st.one_of(st.text(), st.binary(), st.text(MUTATION_CHARS)))
def test_load_cron_survives_random_text_and_bytes(source: str | bytes) -> None:
    cron = load_cron(source)
    assert_well_formed(cron)
    note_outcome(cron)


@FUZZ_SETTINGS
@given(mutated_documents(), st.booleans())
def test_load_cron_survives_mutations(text: str, as_bytes: bool) -> None:
    cron = load_cron(text.encode("utf-8", "surrogatepass") if as_bytes else text)
    assert_well_formed(cron)
    note_outcome(cron)


def test_valid_document_loads_cleanly() -> None:
    """The mutation seed itself must be valid, or the mutations test little."""
    cron = load_cron(VALID_CRON)
    assert not cron.errors, cron.errors
    assert [job.name for job in cron.jobs] == ["nightly", "integration", "rebuild", "rebuild-again"]
    assert_well_formed(cron)


@pytest.fixture(scope="module")
def check_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("check") / ".cron.yml"


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    source=any_input,
    as_json=st.booleans(),
    project_args=st.lists(projects, max_size=2).map(
        lambda names: [arg for name in names for arg in ("--project", name)]
    ),
)
def test_check_command_never_crashes(
    check_file: Path, source: str | bytes, as_json: bool, project_args: list[str]
) -> None:
    raw = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    check_file.write_bytes(raw)
    args = ["check", str(check_file), *project_args, *(["--json"] if as_json else [])]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in {0, 1}, result.output
    assert "Traceback" not in result.output
    has_errors = bool(load_cron(raw, known_projects=project_args[1::2] or None).errors)
    assert result.exit_code == (1 if has_errors else 0), result.output
    if as_json:
        report = json.loads(result.stdout)
        assert report["files"][0]["path"] == str(check_file)
        assert bool(report["files"][0]["errors"]) == has_errors


# --- inputs found to crash the loader (see the reasons) --------------------------------------

JOB_HEADER = (
    "jobs:\n"
    "  - name: a\n"
    "    job: {type: decision-task, treeherder-symbol: X, target-tasks-method: y}\n"
)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "0x" + "f" * 3600 + "\n",
            id="huge-hex-integer",
        ),
        pytest.param(
            JOB_HEADER + "    when: {by-project: {'a{99999999999999999999}': []}}\n",
            id="regex-huge-repetition",
        ),
        pytest.param(
            JOB_HEADER
            + "    when:\n      by-project:\n        ? '"
            + "(" * 3000
            + ")" * 3000
            + "'\n"
            "        : []\n",
            id="regex-deep-nesting",
        ),
    ],
)
def test_load_cron_inputs_that_once_crashed(source: str) -> None:
    assert_well_formed(load_cron(source))
