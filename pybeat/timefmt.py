"""Timestamps as Beats serialise them: UTC, millisecond precision, ``Z`` suffix.

``format_ts(ns)`` is on the per-event path, so the date part is cached per second. It never
raises: a time outside what the documents can carry (before the year 1 or from the year 10000
on: a damaged or crafted capture, an absurd pcapng time offset) is rendered clamped to the nearest end of the range, and
``note_out_of_range(event)`` adds the note that says so, so such a transaction is kept and
explained instead of vanishing into an internal error counter.
"""

from __future__ import annotations

import time
from typing import Any

#: the times format_ts renders as they are: [0001-01-01T00:00:00.000Z, 9999-12-31T23:59:59.999Z]
#: (four-digit years, as RFC 3339 and Elasticsearch's date formats want; times before 1970 are
#: odd in a capture but valid, and kept as they are)
MIN_NS = -62_135_596_800 * 1_000_000_000
MAX_NS = 253_402_300_800 * 1_000_000_000 - 1
OUT_OF_RANGE_NOTE = "capture timestamp out of range (before year 1 or after year 9999); times clamped to the range"

# (second, "YYYY-MM-DDTHH:MM:SS") and (millisecond, full text): each a single tuple, so a
# thread (the output workers format too) never sees one half updated without the other.
# The ``None`` keys match no millisecond (a key of -1 would match the time -1 ms).
_sec_cache: tuple[int | None, str] = (None, "")
_ms_cache: tuple[int | None, str] = (None, "")


def format_ts(ts_ns: int) -> str:
    """``2026-11-27T05:51:57.123Z`` for a time in nanoseconds since the epoch (clamped to
    ``MIN_NS``..``MAX_NS``)."""
    global _sec_cache, _ms_cache
    ms = ts_ns // 1_000_000
    last = _ms_cache
    if last[0] == ms:  # an event's start, end and @timestamp usually share the millisecond
        return last[1]
    if not MIN_NS <= ts_ns <= MAX_NS:
        ts_ns = MIN_NS if ts_ns < MIN_NS else MAX_NS
        ms = ts_ns // 1_000_000  # (not cached: the key would be the clamped time)
        return f"{_second(ms // 1000)}.{ms % 1000:03d}Z"
    sec, rem = divmod(ms, 1000)
    cached = _sec_cache
    if cached[0] != sec:
        cached = _sec_cache = (sec, _second(sec))
    text = f"{cached[1]}.{rem:03d}Z"
    _ms_cache = (ms, text)
    return text


def _second(sec: int) -> str:
    t = time.gmtime(sec)  # (strftime's %Y does not pad years before 1000)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def in_range(ts_ns: int) -> bool:
    """True when ``format_ts`` renders ``ts_ns`` as it is."""
    return MIN_NS <= ts_ns <= MAX_NS


def note_out_of_range(event: Any) -> None:
    """Add ``OUT_OF_RANGE_NOTE`` to ``error.message`` of an event (``pybeat.api.Event``) whose
    time is out of range; nothing otherwise. One comparison for the usual event."""
    if MIN_NS <= event.timestamp_ns <= MAX_NS:
        return
    fields = event.fields
    error = fields.get("error")
    if not isinstance(error, dict):
        error = fields["error"] = {}
    message = error.get("message")
    if message is None:
        error["message"] = OUT_OF_RANGE_NOTE
    elif isinstance(message, list):
        if OUT_OF_RANGE_NOTE not in message:
            message.append(OUT_OF_RANGE_NOTE)
    elif message != OUT_OF_RANGE_NOTE:
        error["message"] = [message, OUT_OF_RANGE_NOTE]


def parse_ts(text: str) -> int:
    """Inverse of :func:`format_ts` (for tests and tools), to the millisecond."""
    import calendar

    base, _, frac = text.rstrip("Z").partition(".")
    sec = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return sec * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
