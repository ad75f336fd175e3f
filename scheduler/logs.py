"""Structured logs: JSON lines when not on a terminal, readable lines on one.

Every line about a fire carries project, job, slot and task id (the engine binds them).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    stream = stream or sys.stderr
    as_json = not stream.isatty() if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # The client libraries log through the standard library; keep their retries visible.
    logging.basicConfig(level=logging.WARNING, stream=stream, format="%(name)s: %(message)s")
