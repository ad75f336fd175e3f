"""Structured logs: JSON lines when not on a terminal, readable lines on one, secrets scrubbed.

Every line about a fire carries project, job, slot and task id (the engine binds them). An
exception logged with its traceback also goes to the exception reporter, when one is set
(`notify/sentry.py` sets one when Sentry is configured).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog

from scheduler.common.redaction import scrub, scrub_data

# Told of each exception logged with its traceback, with the log line's bound values.
ExceptionReporter = Callable[[BaseException, MutableMapping[str, Any]], None]

# What the renderers print as is; anything else they print through repr(), which is scrubbed
# here instead so that a secret inside an object's repr does not slip past.
_PLAIN = (str, int, float, bool, type(None), dict, list, tuple)


def scrub_event(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A structlog processor: every string of the event (message, bound values, traceback)
    with secrets masked. It runs after `format_exc_info`, so the traceback is text by then."""
    return {
        key: scrub_data(value) if isinstance(value, _PLAIN) else scrub(repr(value))
        for key, value in event_dict.items()
    }


class ScrubFilter(logging.Filter):
    """Masks secrets in a standard-library record (message, arguments, traceback) in place.

    On a handler it covers every record the handler sees, whichever logger it came from (a
    filter on a logger would only see that logger's own records, not its children's).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # Arguments that do not fit the format: the handler reports that when it emits;
            # keep whatever it shows free of secrets.
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the scrubbed traceback is what prints.
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()
_reporter: list[ExceptionReporter] = []


def report_exceptions_to(reporter: ExceptionReporter | None) -> None:
    """Send each exception logged with its traceback to `reporter` from now on (None: stop)."""
    _reporter[:] = [] if reporter is None else [reporter]


def report_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Hand an exception logged with its traceback to the reporter, if one is set: the
    service's unexpected errors all pass here."""
    exc_info = event_dict.get("exc_info")
    if not exc_info or not _reporter:
        return event_dict
    if exc_info is True:
        error = sys.exc_info()[1]
    elif isinstance(exc_info, tuple):
        error = exc_info[1]
    else:
        error = exc_info
    if isinstance(error, BaseException):
        for reporter in _reporter:
            reporter(error, event_dict)
    return event_dict


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
            report_exception,
            structlog.processors.format_exc_info,
            scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # The client libraries log through the standard library; keep their retries visible.
    logging.basicConfig(level=logging.WARNING, stream=stream, format="%(name)s: %(message)s")
    # basicConfig leaves a root that already has handlers alone; scrub on those handlers too.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
