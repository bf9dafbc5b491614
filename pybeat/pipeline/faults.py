"""Faults of plugins, kept inside the plugin that caused them: counted under its name and
logged once per kind (the plugin's name, the exception and where it was raised; the
traceback at debug level), so that a plugin that fails on every event fills a counter, not
the log."""

from __future__ import annotations

import threading
import traceback
from collections import Counter
from typing import Any


class FaultLog:
    """Per-plugin exception counters and the one-line-per-kind log."""

    def __init__(self, logger: Any, cap: int = 1000) -> None:
        self.logger = logger
        self.counts: Counter[str] = Counter()
        self._seen: set[tuple[str, str, str]] = set()
        self._cap = cap
        self._lock = threading.Lock()

    def record(self, kind: str, name: str, exc: BaseException, what: str = "") -> None:
        """``kind`` ("protocol", "processor", "output", "detector"), the plugin's ``name``."""
        key = f"{kind}.{name}"
        where = _origin(exc)
        with self._lock:
            self.counts[key] += 1
            first = (key, type(exc).__name__, where) not in self._seen
            if first and len(self._seen) < self._cap:
                self._seen.add((key, type(exc).__name__, where))
            else:
                first = False
        if first and self.logger is not None:
            self.logger.warning(
                f"{kind} {name} raised {type(exc).__name__}; further ones of this kind are only counted "
                f"(counted as {_metric_name(kind, name)})",
                plugin=name, error=f"{type(exc).__name__}: {exc}"[:500], where=where, during=what or None,
            )
            self.logger.debug(f"{kind} {name} traceback", plugin=name,
                              traceback="".join(traceback.format_exception(exc))[-4000:])

    def metrics(self) -> dict[str, int]:
        """``dns.exceptions``, ``processors.<name>.exceptions``, ``output.<name>.exceptions``,
        ``detection.<name>.exceptions``: each beside the plugin's other counters."""
        out: dict[str, int] = {}
        with self._lock:
            for key, n in self.counts.items():
                kind, _, name = key.partition(".")
                out[_metric_name(kind, name)] = n
        return out

    def count(self, kind: str, name: str) -> int:
        return self.counts.get(f"{kind}.{name}", 0)


def _metric_name(kind: str, name: str) -> str:
    prefix = {"protocol": "", "processor": "processors.", "output": "output.", "detector": "detection."}
    return f"{prefix.get(kind, kind + '.')}{name}.exceptions"


def _origin(exc: BaseException) -> str:
    """``file.py:123 in function`` of the innermost frame (where the plugin raised)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}"
