"""Structured JSON logs (structlog) for every process, with secrets and personal data redacted."""

from __future__ import annotations

import logging
import os
import sys

import structlog

_configured = False


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    global _configured
    if _configured:
        return
    level_name = (level or os.environ.get("LOG_LEVEL", "INFO")).upper()
    as_json = json if json is not None else os.environ.get("LOG_FORMAT", "json") == "json"
    from data_protection.redaction import redact_processor

    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_processor,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level_name, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=getattr(logging, level_name, logging.INFO), stream=sys.stderr)
    from data_protection.redaction import install_logging_filter

    install_logging_filter()  # the SDK's and uvicorn's stdlib records are redacted too
    _configured = True


def get_logger(name: str | None = None):
    return structlog.get_logger(name)
