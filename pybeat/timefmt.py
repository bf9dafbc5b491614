"""Timestamps as Beats serialise them: UTC, millisecond precision, ``Z`` suffix.

``format_ts(ns)`` is on the per-event path, so the date part is cached per second.
"""

from __future__ import annotations

import time

# (second, "YYYY-MM-DDTHH:MM:SS") and (millisecond, full text): each a single tuple, so a
# thread (the output workers format too) never sees one half updated without the other.
_sec_cache: tuple[int, str] = (-1, "")
_ms_cache: tuple[int, str] = (-1, "")


def format_ts(ts_ns: int) -> str:
    """``2026-11-27T05:51:57.123Z`` for a time in nanoseconds since the epoch."""
    global _sec_cache, _ms_cache
    ms = ts_ns // 1_000_000
    last = _ms_cache
    if last[0] == ms:  # an event's start, end and @timestamp usually share the millisecond
        return last[1]
    sec, rem = divmod(ms, 1000)
    cached = _sec_cache
    if cached[0] != sec:
        cached = _sec_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    text = f"{cached[1]}.{rem:03d}Z"
    _ms_cache = (ms, text)
    return text


def parse_ts(text: str) -> int:
    """Inverse of :func:`format_ts` (for tests and tools), to the millisecond."""
    import calendar

    base, _, frac = text.rstrip("Z").partition(".")
    sec = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return sec * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
