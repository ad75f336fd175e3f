"""When a fire that failed for a passing reason is tried again, and when it is given up.

Pure: the engine asks, and the ledger keeps the time of the next attempt as the fire's lease.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# The first retry comes this soon after a failed attempt; each later one waits twice as long,
# up to LONGEST_WAIT: a Taskcluster that is back is used within a minute, one that is down is
# not hammered.
FIRST_WAIT = timedelta(seconds=30)
LONGEST_WAIT = timedelta(minutes=5)
# A retry due at the max-lateness is still made if the round that makes it comes this late.
ROUND_GRACE = timedelta(minutes=1)


def retry_wait(attempt: int) -> timedelta:
    """How long after failed attempt number `attempt` (1 for the first) the next one starts."""
    wait = FIRST_WAIT
    for _ in range(attempt - 1):
        if wait >= LONGEST_WAIT:
            break
        wait *= 2
    return min(wait, LONGEST_WAIT)


def next_attempt_at(
    due: datetime, attempt: int, now: datetime, max_lateness: timedelta
) -> datetime | None:
    """When to try a fire due at `due` again after failed attempt `attempt` at `now`, or None:
    its max-lateness has passed, so it is given up. The last attempt comes at the limit at latest.

    `due` is the fire's slot, or when an operator's act asked for it (a backfill of a past
    slot): either way a fire gets the same retries from when it was meant to be made."""
    limit = due + max_lateness
    if now >= limit:
        return None
    return min(now + retry_wait(attempt), limit)


def overdue(due: datetime, now: datetime, max_lateness: timedelta, *, retrying: bool) -> bool:
    """Whether an unfinished fire due at `due` (as `next_attempt_at` has it) is past being
    fired at `now`: past max-lateness, or, for a retry (whose time `next_attempt_at` kept
    within it), past that and a round."""
    return now - due > max_lateness + (ROUND_GRACE if retrying else timedelta(0))
