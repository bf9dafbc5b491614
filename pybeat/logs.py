"""Logging setup: structlog key/value events, JSON when not on a terminal.

``-e`` logs to stderr (human-readable on a TTY, JSON otherwise); without it logs go to
``<path.logs>/pybeat-<date>.ndjson`` as Beats log to files. ``-d`` selectors turn on debug.
Secrets are masked in every line (pybeat/config/secrets.py: credential-named fields, URLs with
userinfo, PEM keys, and the values of the config and keystore).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable, TextIO

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
    min_level = _LEVELS.get(level, logging.INFO)

    def configure() -> None:
        import structlog

        from pybeat.config.secrets import structlog_processor

        renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp"),
                # Exceptions become text first, so that the secret masking sees them too: every
                # field of every line, at every level, goes through config/secrets.py.
                structlog.processors.format_exc_info,
                structlog_processor,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(min_level),
            logger_factory=structlog.PrintLoggerFactory(stream),
            cache_logger_on_first_use=False,
        )

    global _pending, _min_level
    with _lock:
        _pending, _min_level = configure, min_level
    if "structlog" in sys.modules:  # someone else already logs through structlog: configure it now
        _configured()
    return _Logger()


# structlog's configuration is global: like structlog's own loggers, every _Logger follows
# the latest setup_logging() call.
_lock = threading.Lock()
_pending: Callable[[], None] | None = None
_min_level = logging.INFO

#: The level of each logging method of structlog's filtering bound logger.
_METHOD_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
    "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL, "fatal": logging.CRITICAL,
}


def _configured() -> Any:
    """The structlog logger, after applying the pending configuration."""
    global _pending
    with _lock:
        if _pending is not None:
            _pending()
            _pending = None
    import structlog

    return structlog.get_logger("pybeat")


class _Logger:
    """structlog's logger, imported and configured on the first event at or above the level.

    Importing structlog costs ~25 ms (it imports asyncio), a share of every run's start-up,
    and a run at the default level often logs nothing. Calls below the level return None, as
    the filtering logger's do; any other attribute is the structlog logger's own.
    """

    _real: Any = None

    def __getattr__(self, name: str) -> Any:
        level = _METHOD_LEVELS.get(name)
        if level is not None and level < _min_level:
            return _nop
        if self._real is None:
            self._real = _configured()
        return getattr(self._real, name)


def _nop(*args: Any, **kw: Any) -> None:
    return None
