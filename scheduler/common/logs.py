"""Structured logs: every line, the service's and the libraries', one JSON object when not on a
terminal (readable lines on one), at the level asked for, secrets scrubbed.

Every line logged while a fire runs carries its project, job and slot (the engine binds them),
the libraries' lines too. An exception logged with its traceback also goes to the exception
reporter, when one is set (`notify/sentry.py` sets one when Sentry is configured).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

from scheduler.common.redaction import scrub, scrub_data

# Told of each exception logged with its traceback, with the log line's bound values.
ExceptionReporter = Callable[[BaseException, MutableMapping[str, Any]], None]

# What the renderers print as is; anything else they print through repr(), which is scrubbed
# here instead so that a secret inside an object's repr does not slip past.
_PLAIN = (str, int, float, bool, type(None), dict, list, tuple)

# The service's loggers: structlog's are named tc_scheduler.*, the standard library's (git's)
# by their modules. They log at the level asked for; the libraries' chatter (a line per
# APScheduler run, Alembic's context) only from warning up.
OWN_LOGGERS = ("tc_scheduler", "scheduler")
_HANDLER = "tc-scheduler"


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
    filter on a logger would only see that logger's own records, not its children's). A
    structlog line is left as it is: its event, still a dict here, is `scrub_event`'s.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            return True
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


def unbound() -> contextvars.Context:
    """The current context without the values bound for log lines: for a task that is started
    by one fire but works for all of them."""
    context = contextvars.copy_context()
    context.run(structlog.contextvars.clear_contextvars)
    return context


def configure(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> bool:
    """Log through one handler on the root logger from now on, at `level` for the service's
    own loggers and from warning up for the libraries' (everything, at debug). Whether the
    lines are JSON.

    structlog's lines and the standard library's records (Taskcluster's retries, git's, uvicorn's,
    APScheduler's, warnings) pass the same processors: time, level, logger name, the values the
    running fire bound, the exception reporter, tracebacks as text, secrets masked. They print as
    one JSON object a line when `stream` (standard error by default) is not a terminal.
    """
    handler: logging.StreamHandler[TextIO] = (
        _StandardError() if stream is None else logging.StreamHandler(stream)
    )
    on_terminal = handler.stream.isatty()
    as_json = not on_terminal if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=on_terminal, exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        report_exception,
        structlog.processors.format_exc_info,
    ]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                scrub_event,
                renderer,
            ],
        )
    )
    handler.addFilter(ScrubFilter())
    handler.set_name(_HANDLER)
    _install(handler)
    threshold = _level_number(level)
    root = logging.getLogger()
    root.setLevel(threshold if threshold <= logging.DEBUG else max(threshold, logging.WARNING))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(threshold)
    logging.captureWarnings(True)
    if as_json:
        # A crash's traceback is one more line of the log, not lines of plain text.
        sys.excepthook = _log_uncaught
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_standard_logger,
        cache_logger_on_first_use=False,
    )
    return as_json


def _install(handler: logging.Handler) -> None:
    """`handler` on the root logger in place of the one an earlier `configure` put there."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)
    # Whoever else listens on the root (a test runner) gets the records scrubbed too.
    for other in root.handlers:
        if not any(isinstance(f, ScrubFilter) for f in other.filters):
            other.addFilter(ScrubFilter())
    root.addHandler(handler)


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def _standard_logger(*args: Any) -> logging.Logger:
    """The standard library's logger of a structlog logger's name; an unnamed one is ours."""
    return logging.getLogger(str(args[0]) if args else OWN_LOGGERS[0])


class _StandardError(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record comes, as `logging.lastResort` does."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _stream: TextIO) -> None:
        pass


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    structlog.get_logger(OWN_LOGGERS[0]).critical(
        "stopped by an unexpected error", exc_info=(kind, error, trace)
    )
