"""Logging setup: structlog key/value events, JSON when not on a terminal.

``-e`` logs to stderr (human-readable on a TTY, JSON otherwise); without it logs go to
``<path.logs>/pybeat-<date>.ndjson`` as Beats log to files. ``-d`` selectors turn on debug.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


def setup_logging(
    level: str = "info",
    to_stderr: bool = False,
    logs_dir: str | None = None,
    name: str = "pybeat",
    selectors: list[str] | None = None,
    json_format: bool | None = None,
) -> Any:
    stream: TextIO
    if to_stderr or logs_dir is None:
        stream = sys.stderr
    else:
        os.makedirs(logs_dir, mode=0o700, exist_ok=True)
        path = os.path.join(logs_dir, f"{name}-{time.strftime('%Y%m%d')}.ndjson")
        stream = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives for the process)
        os.chmod(path, 0o600)
    if selectors:
        level = "debug"
    use_json = json_format if json_format is not None else not stream.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger("pybeat")
