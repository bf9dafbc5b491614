"""dns_poisoning: forged responses racing a genuine one.

Two signals, per client (the receiver of the responses: a resolver or a stub):

- **race**: responses whose id matches no query that client sent from that port in the last
  ``query_memory`` (the DNS protocol reports them as responses on their own), at least
  ``min_forged_responses`` of them for one question within ``window``: an attacker guessing
  the transaction id (Kaminsky). A genuine answer that comes late (after the query timed out) or twice (a retried
  query) matches a remembered query and is not counted.
- **conflicting answers**: a second response to the same query (client, port, id) whose answer
  records differ from the first one's: one of them is forged, and if the forgery came first,
  the client took it.

One alert per (client, registered domain of the question) per window and signal. The alert
names the client, the question, the claimed server and the forged answer (``dns.answers``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from pybeat.api import Event

from .alerts import alert
from .caps import evict_oldest
from . import fast
from .config import PoisoningConfig
from .view import TxnView

__all__ = ["PoisoningDetector"]

class _Burst:
    __slots__ = ("start", "ids", "ports", "names", "answers", "servers", "count", "alerted_at")

    def __init__(self, ts: int):
        self.start = ts
        self.count = 0
        self.ids: list[int] = []
        self.ports: set[int] = set()
        self.names: Counter[str] = Counter()
        self.answers: Counter[tuple[tuple[str, str], ...]] = Counter()
        self.servers: Counter[str] = Counter()
        self.alerted_at: int | None = None


class PoisoningDetector:
    def __init__(self, config: PoisoningConfig, emit: Callable[[Event], None]):
        self.config = config
        self.emit = emit
        self.window_ns = int(config.window * 1e9)
        self.memory_ns = int(config.query_memory * 1e9)
        self.allow = frozenset(config.allowlist)
        self.max_tracked = config.max_tracked
        #: (client ip, client port, id) -> the last transaction seen with that query
        self.queries: dict[tuple[str, int, int], TxnView] = {}
        self.bursts: dict[tuple[str, str], _Burst] = {}
        self.conflicts: dict[tuple[str, str], int] = {}
        self._swept = 0
        self.counters = {"alerts": 0, "evicted": 0, "late_or_repeated_answers": 0, "unmatched_responses": 0}
        if fast.CORE is not None:  # the compiled twin of observe (the queries; _response stays here)
            self.observe = fast.CORE.Poisoning(self)  # type: ignore[method-assign]

    def observe(self, v: TxnView) -> None:
        client_ip, client_port, _, mid, has_query = v[1:6]  # (faster than its attributes: per event)
        key = (client_ip, client_port, mid)
        if has_query:
            queries = self.queries
            if len(queries) >= self.max_tracked and key not in queries:
                self.counters["evicted"] += evict_oldest(queries, self.max_tracked)
            # The view itself: its time, and its answers if it was answered. A query seen again
            # (a retry: same client, port and id) keeps its place in the table, which is in
            # order of first use: expire() stops at the first entry still fresh, so an entry
            # behind a retried one may outlive query_memory until the retry is stale too (the
            # cap bounds the table either way); moving it to the end cost a second lookup per
            # query.
            queries[key] = v
            return
        self._response(v, key)

    def _response(self, v: TxnView, key: tuple[str, int, int]) -> None:
        """A response on its own (the compiled twin's observe calls this too)."""
        if v.id < 0 or v.client_ip in self.allow:
            return
        m = v.msg
        seen = self.queries.get(key)
        if seen is not None and v.ts - seen.ts <= self.memory_ns:
            first = seen.msg.answers if seen.has_response else None
            if first and m.answers and set(first) != set(m.answers):
                self._conflict(v, first)
            else:
                self.counters["late_or_repeated_answers"] += 1
            return
        self.counters["unmatched_responses"] += 1
        bkey = (v.client_ip, m.registered_domain)
        b = self.bursts.get(bkey)
        if b is None or v.ts - b.start >= self.window_ns:
            if b is None and len(self.bursts) >= self.config.max_tracked:
                self.counters["evicted"] += evict_oldest(self.bursts, self.config.max_tracked)
            b = self.bursts[bkey] = _Burst(v.ts)
        b.count += 1
        if len(b.ids) < 32:
            b.ids.append(v.id)
        if len(b.ports) < 32:
            b.ports.add(v.client_port)
        if len(b.names) < 64 or m.name in b.names:
            b.names[m.name] += 1
        if len(b.answers) < 16:
            b.answers[m.answers] += 1
        if len(b.servers) < 16:
            b.servers[v.server_ip] += 1
        # a race answers one question many times (responses left over from before the
        # capture started, or a client's many lookups, spread over many questions)
        if b.alerted_at is None and b.names.get(m.name, 0) >= self.config.min_forged_responses:
            b.alerted_at = v.ts
            self._race(bkey, b, v)

    def _race(self, bkey: tuple[str, str], b: _Burst, v: TxnView) -> None:
        self.counters["alerts"] += 1
        name = v.msg.name
        forged = b.answers.most_common(1)[0][0]
        server = b.servers.most_common(1)[0][0]
        shown = ", ".join(f"{t} {d}" for t, d in forged) or "no answer records"
        window_s = (v.ts - b.start) / 1e9
        evidence: dict[str, Any] = {
            "signal": "race", "forged_responses": b.count, "distinct_ids": len(set(b.ids)), "ids": list(b.ids),
            "ports": sorted(b.ports), "window_s": round(window_s, 3), "questions": len(b.names),
        }
        msg = (f"DNS poisoning race: {b.count} responses with unknown ids reached {v.client_ip} in {window_s:.2f} s "
               f"for {name}, claiming {shown} from {server}")
        self.emit(alert("dns_poisoning", v.ts, msg, key=("race", *bkey, b.start), evidence=evidence,
                        client_ip=v.client_ip, name=name, registered_domain=bkey[1] or None, start_ns=b.start,
                        extra=self._extra(server, forged, v)))

    def _conflict(self, v: TxnView, first: tuple[tuple[str, str], ...]) -> None:
        m = v.msg
        ckey = (v.client_ip, m.registered_domain)
        last = self.conflicts.get(ckey)
        if last is not None and v.ts - last < self.window_ns:
            return
        if len(self.conflicts) >= self.config.max_tracked:
            self.counters["evicted"] += evict_oldest(self.conflicts, self.config.max_tracked)
        self.conflicts[ckey] = v.ts
        self.counters["alerts"] += 1
        a = ", ".join(f"{t} {d}" for t, d in first)
        b = ", ".join(f"{t} {d}" for t, d in m.answers)
        evidence: dict[str, Any] = {"signal": "conflicting_answers", "ids": [v.id], "ports": [v.client_port],
                                    "answers_first": len(first), "answers_second": len(m.answers)}
        msg = (f"DNS poisoning: {v.client_ip} got two different answers to query {v.id} for {m.name}: "
               f"first {a}, then {b} from {v.server_ip}")
        self.emit(alert("dns_poisoning", v.ts, msg, key=("conflict", *ckey, v.ts), evidence=evidence,
                        client_ip=v.client_ip, name=m.name, registered_domain=m.registered_domain or None,
                        extra=self._extra(v.server_ip, first, v, second=m.answers)))

    @staticmethod
    def _extra(server: str, forged: tuple[tuple[str, str], ...], v: TxnView,
               second: tuple[tuple[str, str], ...] | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "client": {"port": v.client_port},
            "server": {"ip": server},
            "dns": {"id": v.id, "answers": [{"type": t, "data": d} for t, d in forged]},
        }
        if second is not None:
            extra["dns_detection"] = {"second_answers": [{"type": t, "data": d} for t, d in second]}
        return extra

    def expire(self, now_ns: int) -> None:
        if now_ns - self._swept < self.window_ns // 2:
            return
        self._swept = now_ns
        horizon = now_ns - self.memory_ns
        queries = self.queries
        # the table is in order of first use (see observe): the stale entries are at the front
        stale = []
        for k, seen in queries.items():
            if seen.ts >= horizon:
                break
            stale.append(k)
        for k in stale:
            del queries[k]
        old = now_ns - self.window_ns
        for bk in [bk for bk, b in self.bursts.items() if b.start < old]:
            del self.bursts[bk]
        for ck in [ck for ck, t in self.conflicts.items() if t < old]:
            del self.conflicts[ck]
