"""The corpus's .cron.yml files as scheduler loads them, once per run (tests/support/corpus.py
only finds the corpus: the emulator uses it and shares no code with scheduler)."""

from __future__ import annotations

import functools
from pathlib import Path

from scheduler.cron import CronFile, load_cron


@functools.cache
def corpus_cron(path: Path) -> CronFile:
    """The corpus .cron.yml at `path`, loaded once per run for the tests of what it says (tests
    of loading itself call `load_cron`)."""
    return load_cron(path.read_bytes(), path.name)
