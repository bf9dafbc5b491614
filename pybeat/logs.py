"""Logging setup: structlog key/value events, JSON when not on a terminal.

``-e`` logs to stderr (human-readable on a TTY, JSON otherwise); without it logs go to
``<path.logs>/pybeat-<date>.ndjson`` as Beats log to files.

Debug lines belong to a selector, as in Beats: ``get_logger("afpacket")`` (or any logger's
``bind(logger="file")``) names it, and its debug lines show when ``-d`` / ``logging.selectors``
lists that selector or ``*``; ``logging.level: debug`` without selectors shows them all. Other
levels do not depend on selectors. Debug lines are written at setup and periodic points only,
never per packet. Secrets are masked in every line (pybeat/secrets.py: credential-named
fields, URLs with userinfo, PEM keys, and the values of the config and keystore).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable, TextIO

#: Beats' selector names that select one of pybeat's
_ALIASES = {"publisher": "pipeline", "publish": "pipeline", "publisher_pipeline_output": "pipeline"}
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
    chosen = frozenset(selectors or ()) or frozenset({"*"})
    if chosen & _ALIASES.keys():  # Beats' names for pybeat's selectors
        chosen |= {_ALIASES[s] for s in chosen & _ALIASES.keys()}
    use_json = json_format if json_format is not None else not stream.isatty()
    min_level = _LEVELS.get(level, logging.INFO)

    def configure() -> None:
        import structlog

        from pybeat.secrets import structlog_processor

        renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp"),
                # Exceptions become text first, so that the secret masking sees them too: every
                # field of every line, at every level, goes through pybeat/secrets.py.
                structlog.processors.format_exc_info,
                structlog_processor,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(min_level),
            logger_factory=structlog.PrintLoggerFactory(stream),
            cache_logger_on_first_use=False,
        )

    global _pending, _min_level, _selectors
    with _lock:
        _pending, _min_level, _selectors = configure, min_level, chosen
    if "structlog" in sys.modules:  # someone else already logs through structlog: configure it now
        _configured()
    return _Logger()


# structlog's configuration is global: like structlog's own loggers, every _Logger follows
# the latest setup_logging() call.
_lock = threading.Lock()
_pending: Callable[[], None] | None = None
_min_level = logging.INFO
_selectors: frozenset[str] = frozenset({"*"})


def get_logger(selector: str) -> "_Logger":
    """A logger whose events carry ``logger=<selector>``; its debug lines show only when that
    selector (or ``*``) is selected."""
    return _Logger(selector, {"logger": selector})


def debug_enabled(selector: str | None = None) -> bool:
    """Whether a debug line of ``selector`` would be written (to skip preparing one)."""
    return _min_level <= logging.DEBUG and ("*" in _selectors or selector in _selectors)


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
    and a run at the default level often logs nothing. Calls below the level, and debug calls
    of a selector not selected, return None, as the filtering logger's do; any other attribute
    is the structlog logger's own. ``bind`` keeps that filtering (``logger=`` names the selector).
    """

    def __init__(self, selector: str | None = None, context: dict[str, Any] | None = None):
        self._selector = selector
        self._context = context or {}
        self._real: Any = None

    def bind(self, **kw: Any) -> "_Logger":
        """A logger that adds ``kw`` to every event (without importing structlog yet)."""
        return _Logger(kw.get("logger", self._selector), {**self._context, **kw})

    def __getattr__(self, name: str) -> Any:
        level = _METHOD_LEVELS.get(name)
        if level is not None and level < _min_level:
            return _nop
        if level == logging.DEBUG and not debug_enabled(self._selector):
            return _nop
        if self._real is None:
            self._real = _configured()  # a lazy proxy: it follows later setup_logging() calls
        # bound per call (logging here is never per packet), so a later setup still applies
        return getattr(self._real.bind(**self._context) if self._context else self._real, name)


def _nop(*args: Any, **kw: Any) -> None:
    return None
