"""Plan every corpus job on every one of its projects over a whole year, and print the speed.

Usage: python benchmarks/plan_year.py [--corpus DIR] [--year YEAR]

"Slots evaluated" counts (project, job, slot) triples: every 15-minute slot of the year for
every job on every project it is planned for. Day-by-day enumeration (what `plan` uses) is
compared, in the same run, with slot-by-slot matching (what the scheduler does at each tick)
over the year's first four weeks.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from scheduler.cron import ByProject, CronFile, due_jobs, fires_between, load_cron, slots_between

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def projects_of(cron: CronFile, fallback: str) -> list[str]:
    """The projects a file names (run-on-projects, exact by-project keys), plus one it does not."""
    names = {fallback}
    for job in cron.jobs:
        names.update(job.run_on_projects or ())
        if isinstance(job.when, ByProject):
            names.update(key for key in job.when.alternatives if key.replace("-", "").isalnum())
    names.discard("default")
    return sorted(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("TC_SCHEDULER_CORPUS", DEFAULT_CORPUS))
    )
    parser.add_argument("--year", type=int, default=2027)
    args = parser.parse_args()

    start = datetime(args.year, 1, 1, tzinfo=UTC)
    end = datetime(args.year + 1, 1, 1, tzinfo=UTC)
    slots = list(slots_between(start, end))

    files = sorted((args.corpus / "cron").glob("*.cron.yml"))
    load_started = time.process_time()
    crons = [load_cron(path.read_bytes(), path.name) for path in files]
    load_seconds = time.process_time() - load_started
    work = [(cron, project) for cron in crons for project in projects_of(cron, cron.path)]
    pairs = sum(1 for cron, project in work for job in cron.jobs if job.runs_on(project))
    evaluated = pairs * len(slots)

    started = time.process_time()
    fires = sum(len(fires_between(cron, project, start, end).fires) for cron, project in work)
    plan_seconds = time.process_time() - started

    # Slot-by-slot matching is slow enough that four weeks of it give a steady rate.
    sample = slots[: 28 * 96]
    sample_end = sample[-1] + (sample[1] - sample[0])
    expected = sum(
        len(fires_between(cron, project, start, sample_end).fires) for cron, project in work
    )
    started = time.process_time()
    per_slot_fires = sum(
        len(due_jobs(cron, project, slot).fires) for cron, project in work for slot in sample
    )
    per_slot = time.process_time() - started
    assert per_slot_fires == expected, "the two ways of planning disagree"
    per_slot_evaluated = pairs * len(sample)

    jobs = sum(len(cron.jobs) for cron in crons)
    print(f"corpus: {len(files)} files, {jobs} jobs, loaded in {load_seconds:.3f} s CPU")
    print(f"planned: {len(work)} (file, project) pairs, {pairs} (project, job) pairs, {args.year}")
    print(f"slots evaluated: {evaluated:,} ({len(slots):,} slots x {pairs} jobs); fires: {fires:,}")
    plan_rate = evaluated / plan_seconds
    per_slot_rate = per_slot_evaluated / per_slot
    print(f"plan, day by day, a year:    {plan_seconds:.3f} s CPU, {plan_rate:,.0f} slots/s")
    print(f"tick, slot by slot, 4 weeks: {per_slot:.3f} s CPU, {per_slot_rate:,.0f} slots/s")
    print(f"day-by-day planning is {plan_rate / per_slot_rate:.0f}x faster than per-slot matching")


if __name__ == "__main__":
    main()
