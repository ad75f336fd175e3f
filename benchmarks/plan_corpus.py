"""`tc-scheduler plan` over the whole corpus for a year: one process for every file, against one
process per (file, project) as the command took them before; total CPU and wall time of each.

Usage: python benchmarks/plan_corpus.py [--corpus DIR] [--year YEAR] [--runs N]

Each file is planned on the projects it names (as `plan_year.py` picks them), with `--cron
PATH=NAME,NAME` in the one process. The CPU is the processes' own (user + sys, from
getrusage(RUSAGE_CHILDREN) around each run), start-up and imports included; the JSON output
goes to /dev/null, and the errors the
corpus's one broken file reports are not shown. Issue 19's target: the one process under 1 s of CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from figures import spread
from plan_year import DEFAULT_CORPUS, projects_of

from scheduler.cron import load_cron

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
TARGET_CPU = 1.0
# The one corpus file build-decision rejects exits 1, as `plan` does for any file with errors.
ACCEPTED_EXITS = (0, 1)


def timed(commands: Sequence[Sequence[str]]) -> tuple[float, float]:
    """Run `commands` one after the other: (their CPU seconds, wall seconds)."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for command in commands:
        done = subprocess.run(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
        )
        if done.returncode not in ACCEPTED_EXITS:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def seconds(values: Sequence[float]) -> str:
    return f"{spread(values, '.3f')} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("TC_SCHEDULER_CORPUS", DEFAULT_CORPUS))
    )
    parser.add_argument("--year", type=int, default=2027)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    files = sorted((args.corpus / "cron").glob("*.cron.yml"))
    work = {path: projects_of(load_cron(path.read_bytes(), path.name), path.name) for path in files}
    pairs = sum(len(projects) for projects in work.values())
    plan = [sys.executable, "-m", "scheduler", "plan", "--json"]
    span = ["--from", f"{args.year}-01-01", "--until", f"{args.year + 1}-01-01"]
    one_run = [
        [*plan, *span]
        + [
            part
            for path, projects in work.items()
            for part in ("--cron", f"{path}={','.join(projects)}")
        ]
    ]
    one_per_pair = [
        [*plan, *span, "--cron", str(path), "--project", project]
        for path, projects in work.items()
        for project in projects
    ]

    together: list[tuple[float, float]] = []
    apart: list[tuple[float, float]] = []
    for _ in range(args.runs):
        together.append(timed(one_run))
        apart.append(timed(one_per_pair))

    print(f"corpus: {len(files)} files on {pairs} (file, project) pairs, {args.year}")
    print(f"min / median / max of {args.runs} runs, CPU (user + sys) of the processes and wall:")
    print(f"  one process:          CPU {seconds([c for c, _ in together])}, "
          f"wall {seconds([w for _, w in together])}")  # fmt: skip
    print(f"  {len(one_per_pair)} processes (before): CPU {seconds([c for c, _ in apart])}, "
          f"wall {seconds([w for _, w in apart])}")  # fmt: skip
    cpu_together = statistics.median(c for c, _ in together)
    cpu_apart = statistics.median(c for c, _ in apart)
    print(f"  one process takes {cpu_apart / cpu_together:.1f}x less CPU (medians)")
    verdict = "within" if max(c for c, _ in together) < TARGET_CPU else "OVER"
    print(f"  issue 19's target, under {TARGET_CPU:g} s CPU in one run: {verdict} (max)")


if __name__ == "__main__":
    main()
