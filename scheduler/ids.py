"""Identities of fires: the deterministic task id of a scheduled fire, and manual fires' ids.

Pure, so rendering and planning can use them without importing the Taskcluster client.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

import slugid

from scheduler.cron.timing import format_slot, slot_of

# Part of every derived id: changing it would give every future fire a new task id.
TASK_ID_NAMESPACE = "tc-scheduler/cron-fire/v1"


def decision_task_id(root_url: str, project: str, job: str, slot: datetime) -> str:
    """The task id of the scheduled fire of `job` on `project` at `slot`.

    A pure function of its arguments, so replicas, retries and restarts all address the same
    task and the queue refuses a second one. The id is a v4-shaped UUID (version and variant
    bits set, first bit clear like `slugid.nice()`) encoded as a 22-character slug.
    """
    key = json.dumps(
        [TASK_ID_NAMESPACE, root_url.rstrip("/"), project, job, format_slot(slot_of(slot))],
        separators=(",", ":"),
    )
    raw = bytearray(hashlib.sha256(key.encode("utf-8")).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    raw[0] &= 0x7F  # a "nice" slug never starts with "-", which command lines mistake for a flag
    slug: str = slugid.encode(uuid.UUID(bytes=bytes(raw)))
    return slug


def manual_task_id() -> str:
    """A fresh task id: a manual fire is never the same task as another fire."""
    task_id: str = slugid.nice()
    return task_id
