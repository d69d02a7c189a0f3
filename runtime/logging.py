"""Structured JSON logs (structlog) for every process, with secrets and personal data redacted.

structlog's own events and stdlib records (the Temporal SDK's, uvicorn's) go through the same
processors, so every line is one JSON object and every line is redacted. The level and the format
are values: a process passes those of the settings it loaded (`LOG_LEVEL`, `LOG_FORMAT`).
"""

from __future__ import annotations

import logging
import sys

import structlog

from contracts.quoting import quoted

_configured = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now, not what it was at configuration time."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler assigns it; the property decides
        pass


def _stderr_logger_factory(*args):
    return structlog.PrintLogger(sys.stderr)


# How much of a value that had to be escaped a console line shows: input can be of any size.
CONSOLE_VALUE_LIMIT = 2000


class _AlreadyQuoted:
    """Text the console renderer must show as it is: it quotes a string holding a quote or a
    line break again (repr), and shows a value that is not a string by its repr."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __str__(self) -> str:
        return self._text

    __repr__ = __str__


def escape_for_console(logger, method_name: str, event_dict: dict) -> dict:
    """Every text value of a console log line that does not print as one line (input that
    reached a log: a line break would forge another line, an escape drive the terminal) shown
    `quoted`, escaped and bounded; other values stay as they are. The traceback and stack keep
    their own lines: the process wrote them, not the input."""
    return {
        key: _AlreadyQuoted(quoted(value, limit=CONSOLE_VALUE_LIMIT))
        if isinstance(value, str) and key not in ("exception", "stack") and not value.isprintable()
        else value
        for key, value in event_dict.items()
    }


# Libraries that log every request at INFO: above DEBUG, only their warnings and errors.
CHATTY_BELOW_DEBUG = ("httpx",)


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Every log line at `level` or above, as one JSON object (`json=False`: a console line)."""
    global _configured
    if _configured:
        return
    from data_protection.redaction import install_logging_filter, redact_processor

    numeric_level = getattr(logging, level.upper(), logging.INFO)
    as_json = json
    renderer = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    # JSON escapes control characters itself; a console line shows them escaped here.
    escaping = [] if as_json else [escape_for_console]
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, redact_processor, structlog.processors.format_exc_info, *escaping, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_processor, *escaping, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric_level)
    # A line per HTTP request (Iron's, the backend's) is for debugging: the metrics count them.
    for chatty in CHATTY_BELOW_DEBUG:
        logging.getLogger(chatty).setLevel(numeric_level if numeric_level <= logging.DEBUG else logging.WARNING)
    install_logging_filter()  # redacts the raw record too, before any other handler sees it
    _configured = True


def get_logger(name: str | None = None):
    return structlog.get_logger(name)


def reset_logging() -> None:
    """Undo `configure_logging` (tests)."""
    global _configured
    structlog.reset_defaults()
    logging.getLogger().handlers = []
    _configured = False
