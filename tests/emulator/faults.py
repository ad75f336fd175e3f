"""Injected faults: latency, error rates and scripted outcomes per route, seeded for repeatability.

A rule applies to the routes its pattern matches (`queue.createTask`, `queue.*`, `*`), and to
the calls whose route parameters include its `params` (`{"taskId": ...}`). Outcomes ending in
`-after` let the call take effect and then lose its reply, as a dropped response does. `hold`
keeps a call unanswered, its request received, until `release()` (or `clear()`, or the
emulator stopping); then it goes on as usual, as a stalled service's backlog does.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

OK = "ok"
HOLD = "hold"
ERROR_STATUSES = {"500": 500, "502": 502, "503": 503, "429": 429}
# How often a held call looks whether it was released.
HOLD_POLL_SECONDS = 0.02
OUTCOMES = (
    OK,
    *ERROR_STATUSES,
    "reset",
    "stall",
    HOLD,
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
    params: Mapping[str, str] = field(default_factory=dict)

    def matches(self, route: str, params: Mapping[str, str]) -> bool:
        return fnmatch.fnmatchcase(route, self.pattern) and all(
            params.get(name) == value for name, value in self.params.items()
        )


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
        # Calls held now; `release()` lets every call held before it go on.
        self.holding = 0
        self._releases = 0

    def add(
        self,
        pattern: str = "*",
        *,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        error_rate: float = 0.0,
        errors: Sequence[str] = ("500", "502", "503", "reset"),
        script: Iterable[str] = (),
        params: Mapping[str, str] | None = None,
    ) -> Rule:
        """Add a rule. `script` outcomes are used first, one per call, then `error_rate` applies;
        with `params`, only to calls whose route parameters include them."""
        script = deque(script)
        for outcome in (*errors, *script):
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown fault outcome {outcome!r}; choose from {OUTCOMES}")
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate is a probability between 0 and 1")
        rule = Rule(
            pattern, latency_ms, jitter_ms, error_rate, tuple(errors), script, dict(params or {})
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self, seed: int | None = None) -> None:
        """Forget every rule and what was injected, and release the calls held."""
        with self._lock:
            self._rules.clear()
            self.injected.clear()
            if seed is not None:
                self._random.seed(seed)
        self.release()

    def release(self) -> None:
        """Let every call held so far go on (a later `hold` holds again)."""
        with self._lock:
            self._releases += 1

    async def hold(self) -> None:
        """Wait, in the emulator's loop, until `release()` is called."""
        with self._lock:
            held_since = self._releases
            self.holding += 1
        try:
            while self._releases == held_since:
                await asyncio.sleep(HOLD_POLL_SECONDS)
        finally:
            with self._lock:
                self.holding -= 1

    def decide(self, route: str, params: Mapping[str, str] | None = None) -> Decision:
        with self._lock:
            delay = 0.0
            outcome = OK
            for rule in self._rules:
                if not rule.matches(route, params or {}):
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
