"""dns_rate_anomaly: a client querying far above its own baseline.

Per client, queries are counted in buckets of ``window`` packet time; the baseline is a moving
average of the client's past buckets (empty ones included). Once a client has
``min_history`` buckets behind it, a bucket with at least ``min_queries`` queries and
``factor`` times its baseline fires, once per bucket, as soon as it crosses. New clients are
never judged (they have no baseline), so a short capture never alerts.
"""

from __future__ import annotations

from typing import Any, Callable

from pybeat.api import Event

from .alerts import alert
from .caps import evict_oldest
from . import fast
from .config import RateAnomalyConfig
from .view import TxnView

__all__ = ["RateDetector"]

_ALPHA = 0.2  # weight of the newest bucket in the baseline


class _Client:
    __slots__ = ("start", "count", "baseline", "history", "alerted")

    def __init__(self, ts: int):
        self.start = ts
        self.count = 0
        self.baseline = 0.0
        self.history = 0
        self.alerted = False


class RateDetector:
    def __init__(self, config: RateAnomalyConfig, emit: Callable[[Event], None]):
        self.config = config
        self.emit = emit
        self.window_ns = int(config.window * 1e9)
        self.allow = frozenset(config.allowlist)
        self.clients: dict[str, _Client] = {}
        self._swept = 0
        self.counters = {"alerts": 0, "evicted": 0, "expired": 0}
        if fast.CORE is not None:  # the compiled twin of observe (the same steps, typed state)
            self.observe = fast.CORE.Rate(self, _ALPHA)  # type: ignore[method-assign]

    def observe(self, v: TxnView) -> None:
        ts, ip, _, _, _, has_query, _, _ = v  # (faster than its attributes: this runs per event)
        if not has_query:
            return
        c = self.clients.get(ip)
        if c is None:
            if ip in self.allow:
                return
            if len(self.clients) >= self.config.max_tracked:
                self.counters["evicted"] += evict_oldest(self.clients, self.config.max_tracked)
            c = self.clients[ip] = _Client(ts)
        elif ts - c.start >= self.window_ns:
            self._roll(c, ts)
        c.count += 1
        cfg = self.config
        if (not c.alerted and c.history >= cfg.min_history and c.count >= cfg.min_queries
                and c.count >= cfg.factor * max(c.baseline, 1.0)):
            c.alerted = True
            self._fire(ip, c, ts, v)

    def _fire(self, ip: str, c: Any, ts: int, v: TxnView) -> None:
        """The alert of a bucket that crossed (the compiled twin's observe calls this too)."""
        self.counters["alerts"] += 1
        elapsed = (ts - c.start) / 1e9
        evidence: dict[str, Any] = {
            "queries": c.count, "baseline": round(c.baseline, 1), "factor": round(c.count / max(c.baseline, 1.0), 1),
            "window_s": round(self.window_ns / 1e9, 3), "elapsed_s": round(elapsed, 3), "history_buckets": c.history,
        }
        msg = (f"DNS rate anomaly: {ip} sent {c.count} queries in {elapsed:.1f} s, "
               f"{evidence['factor']}x its baseline of {c.baseline:.1f} per {self.window_ns / 1e9:.0f} s")
        self.emit(alert("dns_rate_anomaly", ts, msg, key=(ip, c.start), evidence=evidence, client_ip=ip,
                        name=v.msg.name or None, registered_domain=v.msg.registered_domain or None,
                        start_ns=c.start))

    def _roll(self, c: _Client, ts: int) -> None:
        """Close the current bucket and the empty ones since (at most 100 of them)."""
        buckets = (ts - c.start) // self.window_ns
        for i in range(min(buckets, 100)):
            count = c.count if i == 0 else 0
            c.baseline = float(count) if c.history == 0 else (1 - _ALPHA) * c.baseline + _ALPHA * count
            c.history += 1
        if buckets > 100:
            c.baseline = 0.0
        c.start += buckets * self.window_ns
        c.count = 0
        c.alerted = False

    def expire(self, now_ns: int) -> None:
        """Forget clients silent for 100 buckets (their baseline has decayed to nothing)."""
        if now_ns - self._swept < self.window_ns:
            return
        self._swept = now_ns
        horizon = now_ns - 100 * self.window_ns
        stale = [ip for ip, c in self.clients.items() if c.start < horizon]
        for ip in stale:
            del self.clients[ip]
        self.counters["expired"] += len(stale)
