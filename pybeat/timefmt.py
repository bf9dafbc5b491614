"""Timestamps as Beats serialise them: UTC, millisecond precision, ``Z`` suffix.

``format_ts(ns)`` is on the per-event path, so the date part is cached per second.
"""

from __future__ import annotations

import time

_cache_sec = -1
_cache_prefix = ""


def format_ts(ts_ns: int) -> str:
    """``2026-11-27T05:51:57.123Z`` for a time in nanoseconds since the epoch."""
    global _cache_sec, _cache_prefix
    sec, rem = divmod(ts_ns, 1_000_000_000)
    if sec != _cache_sec:
        _cache_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _cache_sec = sec
    return f"{_cache_prefix}.{rem // 1_000_000:03d}Z"


def parse_ts(text: str) -> int:
    """Inverse of :func:`format_ts` (for tests and tools), to the millisecond."""
    import calendar

    base, _, frac = text.rstrip("Z").partition(".")
    sec = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return sec * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
