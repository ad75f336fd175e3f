"""What every benchmark reports with: the CPU of each process (from /proc and getrusage) and
min / median / max of the runs. No import of the service, so any benchmark may use it.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import resource
import statistics
from collections.abc import Sequence
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds of process `pid` and of its children it has waited for (user and system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the name: state is field 3, so utime..cstime (fields 14-17) are at 11..14 here.
    return sum(int(value) for value in fields[11:15]) / _TICKS


def own_cpu() -> float:
    """CPU seconds of this process and of its children that ended (git processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def live_children(exclude: Sequence[int]) -> dict[int, float]:
    """The CPU seconds of each live child of this process not in `exclude` (render workers)."""
    me, found = os.getpid(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        if int(stat.rpartition(")")[2].split()[1]) == me:
            found[int(entry.name)] = process_cpu(int(entry.name))
    return found


def spread(values: Sequence[float], form: str = "7.2f", unit: str = "") -> str:
    """min / median / max of `values`, each formatted by `form` and followed by `unit`."""
    return " / ".join(
        f"{value:{form}}{unit}" for value in (min(values), statistics.median(values), max(values))
    )


def print_profile(profile: cProfile.Profile, what: str) -> None:
    """cProfile's top 15 of `profile`, by cumulative and by own time, after a line saying `what`
    it measured. It follows the event loop's thread only: the ledger's threads show as `poll`."""
    print(f"  cProfile of {what} (the event loop's thread: the CPU of the ledger's threads shows")
    print("  as time in `poll`; the profiler's overhead is in the figures above)")
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(15)
    stats.sort_stats("tottime").print_stats(15)
