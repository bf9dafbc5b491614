"""Correlation of the messages of one DHCP exchange, shared by the DHCPv4 and DHCPv6 analyzers.

An exchange is the run of messages with the same transaction id and client identity (DHCPv4:
chaddr; DHCPv6: client DUID when present) that are no more than ``timeout`` apart in packet
time: DISCOVER, OFFER, REQUEST, ACK (or the INIT-REBOOT REQUEST and its NAK; or an INFORM and
its ACK). Every message still becomes its own event; the tracker only returns the
``exchange`` object added to it. Owns the exchange table and its cap; never emits events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Hashable

from pybeat.api import Analyzer, format_ts

__all__ = ["ExchangeTracker", "MAX_TYPES_LISTED"]

#: ``exchange.messages`` lists at most this many message types (a chatty client cannot grow it)
MAX_TYPES_LISTED = 16


@dataclass(slots=True)
class _Exchange:
    id: str
    start_ns: int
    last_ns: int
    count: int = 0
    from_client: int = 0
    from_server: int = 0
    awaiting_reply: bool = False
    types: list[str] = field(default_factory=list)


class ExchangeTracker:
    def __init__(self, timeout_ns: int, max_exchanges: int):
        self.timeout_ns = timeout_ns
        self.max_exchanges = max_exchanges
        # ordered by last activity: a touched exchange moves to the end
        self.table: dict[Hashable, _Exchange] = {}
        self.started = 0
        self.unanswered = 0  # exchanges that ended with a client message unanswered
        self.unsolicited = 0  # exchanges whose first message came from a server
        self.evicted = 0

    def observe(
        self, key: Hashable, ts_ns: int, from_server: bool, message_type: str, expects_reply: bool = False
    ) -> dict[str, Any]:
        """Record one message; returns the ``exchange`` fields for its event.

        ``expects_reply``: a client message a server must answer (DISCOVER, REQUEST, INFORM; not
        RELEASE/DECLINE). An exchange that ends while such a message is unanswered counts in
        ``unmatched_requests``.
        """
        ex = self.table.pop(key, None)
        if ex is not None and ts_ns - ex.last_ns > self.timeout_ns:
            self._close(ex)
            ex = None
        if ex is None:
            self.expire(ts_ns)
            if len(self.table) >= self.max_exchanges:
                oldest = next(iter(self.table))
                self.evicted += 1
                self._close(self.table.pop(oldest))
            # From the key alone, not the time: every process of a run split by flow
            # (packetbeat.workers) names the exchange alike even when it sees only part of it.
            digest = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
            ex = _Exchange(digest, ts_ns, ts_ns)
            self.started += 1
            if from_server:
                self.unsolicited += 1
        self.table[key] = ex
        ex.last_ns = max(ex.last_ns, ts_ns)
        ex.count += 1
        if from_server:
            ex.from_server += 1
            ex.awaiting_reply = False
        else:
            ex.from_client += 1
            ex.awaiting_reply = ex.awaiting_reply or expects_reply
        if len(ex.types) < MAX_TYPES_LISTED:
            ex.types.append(message_type)
        return {
            "id": ex.id,
            "sequence": ex.count,
            "messages": list(ex.types),
            "start": format_ts(ex.start_ns),
            "duration": max(0, ts_ns - ex.start_ns),
        }

    def _close(self, ex: _Exchange) -> None:
        if ex.awaiting_reply:
            self.unanswered += 1

    def expire(self, now_ns: int) -> None:
        deadline = now_ns - self.timeout_ns
        while self.table:
            key = next(iter(self.table))
            ex = self.table[key]
            if ex.last_ns >= deadline:
                break
            del self.table[key]
            self._close(ex)

    def flush(self) -> None:
        for ex in self.table.values():
            self._close(ex)
        self.table.clear()

    def stats(self) -> dict[str, int]:
        return {
            "exchanges": self.started,
            "unmatched_requests": self.unanswered,
            "unmatched_responses": self.unsolicited,
            "exchanges_evicted": self.evicted,
            "exchanges_pending": len(self.table),
        }


class ExchangeAnalyzer(Analyzer):
    """What the DHCPv4 and DHCPv6 analyzers share: the optional exchange tracker driven by
    packet time, and their counters reported with the tracker's."""

    exchanges: ExchangeTracker | None
    counters: dict[str, int]

    def __init__(self, timeout_s: float, max_exchanges: int, track_exchanges: bool):
        self.exchanges = ExchangeTracker(int(timeout_s * 1e9), max_exchanges) if track_exchanges else None
        self.counters = {"total_packets": 0, "parse_failures": 0, "malformed_options": 0, "events": 0}

    def expire(self, now_ns: int) -> None:
        if self.exchanges is not None:
            self.exchanges.expire(now_ns)

    def flush(self, now_ns: int) -> None:
        if self.exchanges is not None:
            self.exchanges.flush()

    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        if self.exchanges is not None:
            out.update(self.exchanges.stats())
        return out
