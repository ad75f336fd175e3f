"""A `tc-scheduler run` process under test, whose JSON log lines are collected as they come."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

from tests.support.corpus import REPOSITORY_ROOT
from tests.support.waiting import HANG_GUARD


class Service:
    """A `tc-scheduler run` process whose JSON log lines are collected as they come."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command, cwd=REPOSITORY_ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[dict[str, object]] = []
        self.raw: list[str] = []  # every line as written, JSON or not
        self.evaluated = threading.Event()
        self.ticked = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.raw.append(line)
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            # Not the JSON log (a traceback, say): kept for the asserts.
            self.lines.append(parsed if isinstance(parsed, dict) else {"event": None, "raw": line})
            event = self.lines[-1].get("event")
            if event == "tick":
                self.ticked.set()
            if event == "slot evaluated":
                self.evaluated.set()

    def stop(self) -> int:
        """SIGTERM, then the exit status (the process is killed if it does not stop)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=HANG_GUARD)
        finally:
            self.process.kill()
            self._reader.join(timeout=HANG_GUARD)
