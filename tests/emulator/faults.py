"""Injected faults: latency, error rates and scripted outcomes per route, seeded for repeatability.

A rule applies to the routes its pattern matches (`queue.createTask`, `queue.*`, `*`). Outcomes
ending in `-after` let the call take effect and then lose its reply, as a dropped response does.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

OK = "ok"
ERROR_STATUSES = {"500": 500, "502": 502, "503": 503, "429": 429}
OUTCOMES = (
    OK,
    *ERROR_STATUSES,
    "reset",
    "stall",
    *(f"{s}-after" for s in ERROR_STATUSES),
    "reset-after",
)


@dataclass
class Rule:
    pattern: str
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    errors: Sequence[str] = ("500", "502", "503", "reset")
    script: deque[str] = field(default_factory=deque)

    def matches(self, route: str) -> bool:
        return fnmatch.fnmatchcase(route, self.pattern)


@dataclass(frozen=True)
class Decision:
    delay_seconds: float
    outcome: str

    @property
    def status(self) -> int | None:
        return ERROR_STATUSES.get(self.outcome.removesuffix("-after"))

    @property
    def after(self) -> bool:
        return self.outcome.endswith("-after")


class Faults:
    """The fault rules of one emulator; the first matching rule with something to say wins."""

    def __init__(self, seed: int = 0, stall_seconds: float = 30.0) -> None:
        self._rules: list[Rule] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.stall_seconds = stall_seconds
        self.injected: list[tuple[str, str]] = []

    def add(
        self,
        pattern: str = "*",
        *,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        error_rate: float = 0.0,
        errors: Sequence[str] = ("500", "502", "503", "reset"),
        script: Iterable[str] = (),
    ) -> Rule:
        """Add a rule. `script` outcomes are used first, one per call, then `error_rate` applies."""
        script = deque(script)
        for outcome in (*errors, *script):
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown fault outcome {outcome!r}; choose from {OUTCOMES}")
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate is a probability between 0 and 1")
        rule = Rule(pattern, latency_ms, jitter_ms, error_rate, tuple(errors), script)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self, seed: int | None = None) -> None:
        with self._lock:
            self._rules.clear()
            self.injected.clear()
            if seed is not None:
                self._random.seed(seed)

    def decide(self, route: str) -> Decision:
        with self._lock:
            delay = 0.0
            outcome = OK
            for rule in self._rules:
                if not rule.matches(route):
                    continue
                delay = max(
                    delay, (rule.latency_ms + self._random.uniform(0, rule.jitter_ms)) / 1000
                )
                if outcome != OK:
                    continue
                if rule.script:
                    outcome = rule.script.popleft()
                elif rule.error_rate and self._random.random() < rule.error_rate:
                    outcome = self._random.choice(rule.errors)
            if outcome != OK:
                self.injected.append((route, outcome))
            return Decision(delay, outcome)
