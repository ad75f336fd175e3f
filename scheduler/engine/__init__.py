"""Orchestration of cron: the `Engine` ticks slots (plan -> claim -> fire -> record), recovers
fires nobody holds, and makes the fires operators ask for; job types by registry.
"""

from scheduler.engine.engine import Engine

__all__ = ["Engine"]
