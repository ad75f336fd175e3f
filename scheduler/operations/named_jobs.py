"""The jobs an operator's act may name: those of the project's `.cron.yml` at its branch head,
broken entries included; an unknown name is refused, naming the jobs there are.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Protocol

from scheduler.cron import CronFile
from scheduler.git.source import Snapshot
from scheduler.outcomes import UnknownJobError


class CronReading(Protocol):
    """What reads a project's branch head and its `.cron.yml` there (the engine)."""

    async def head(self, project_name: str) -> tuple[Snapshot, CronFile]: ...


def job_names(cron: CronFile) -> list[str]:
    """Every job `cron` names, in its order: the valid ones, then those whose entry is broken
    (they can be paused, and firing one says what is wrong with it)."""
    names = [job.name for job in cron.jobs]
    broken = (d.job for d in cron.errors if d.job is not None and d.job not in names)
    return names + list(dict.fromkeys(broken))


def require_job(
    project: str, job: str, snapshot: Snapshot, cron: CronFile, *, also: Iterable[str] = ()
) -> None:
    """Raise UnknownJobError unless `cron` (the project's `.cron.yml` at `snapshot`) names
    `job`, or `also` does (the jobs a pause holds, which may have left the file since)."""
    known = job_names(cron)
    others = [name for name in also if name not in known]
    if job in known or job in others:
        return
    where = f"{project}'s .cron.yml at {snapshot.revision[:12]}"
    if not known and not others:
        raise UnknownJobError(f"{where} has no job {job!r}: it has no jobs at all")
    listed = f"its jobs: {', '.join(known) or 'none'}"
    if others:
        listed += f"; paused, no longer in it: {', '.join(others)}"
    close = difflib.get_close_matches(job, known + others, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownJobError(f"{where} has no job {job!r}{hint}; {listed}")
