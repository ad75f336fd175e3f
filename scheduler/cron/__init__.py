"""The `.cron.yml` language: schema, model, loading with positions, slot matching and planning.

Pure: nothing in this package does I/O.
"""

from scheduler.common.diagnostics import Diagnostic, Position, Severity
from scheduler.cron.loading import load_cron
from scheduler.cron.model import (
    ByProject,
    CronFile,
    DecisionTask,
    Job,
    JobKind,
    Schedule,
    ScheduleError,
    TriggerAction,
)
from scheduler.cron.plan import Plan, PlannedFire, due_jobs, fires_between, next_fires
from scheduler.cron.timing import format_slot, parse_instant, parse_time, slot_of, slots_between
from scheduler.cron.words import in_words

__all__ = [
    "ByProject",
    "CronFile",
    "DecisionTask",
    "Diagnostic",
    "Job",
    "JobKind",
    "Plan",
    "PlannedFire",
    "Position",
    "Schedule",
    "ScheduleError",
    "Severity",
    "TriggerAction",
    "due_jobs",
    "fires_between",
    "format_slot",
    "in_words",
    "load_cron",
    "next_fires",
    "parse_instant",
    "parse_time",
    "slot_of",
    "slots_between",
]
