"""dns_tunnel: per client and registered domain, over a window of packet time, what a tunnel
cannot avoid doing all at once:

- many distinct subdomains (every chunk of data is a new name),
- data going up: the characters of those names, long on average and encoded-looking (hex,
  base32, base64 or raw bytes in the longest label),
- and either data coming down in record data (TXT, NULL, CNAME, MX, KEY, ...: not A/AAAA), in
  bulk or in (nearly) every answer, or,
  for an upload-only channel, names of many different lengths (chunks of a stream; hash
  lookups, the honest users of encoded names, have one or two lengths and get A records or
  NXDOMAIN back).

Each dimension alone is common in honest traffic (blocklist lookups have many distinct names,
hash lookups have encoded names, DKIM answers carry long TXT data); all of them at once is a
tunnel. Known heavy users are allowlisted as well (``DEFAULT_TUNNEL_ALLOWLIST``).

One alert per (client, registered domain) per window: while the tunnel lasts, each new window
in which it still meets every threshold refreshes it (same ``event.id``).
"""

from __future__ import annotations

from typing import Any, Callable

from pybeat.api import Event

from .alerts import alert
from .caps import evict_oldest
from . import fast
from .config import TunnelConfig
from .features import MIN_ENCODED_LABEL, entropy, name_features, raw_length
from .view import TxnView

__all__ = ["TunnelDetector", "Allowlist"]

#: record types whose data is not a payload channel (addresses, and nothing at all)
_PLAIN_TYPES = frozenset({"A", "AAAA"})


class Allowlist:
    """Domain suffixes: a name matches an entry equal to it or to one of its parents.

    Judged per registered domain first (cached): listed (the domain or a parent is an entry),
    partly listed (an entry lies below it, e.g. hash.cymru.com: the name decides) or not."""

    _NO, _ALL, _SOME = 0, 1, 2

    def __init__(self, entries: list[str]):
        self.entries = frozenset(e.strip().strip(".").lower() for e in entries if e.strip().strip("."))
        self._status: dict[str, int] = {}

    def _judge(self, rd: str) -> int:
        parts = rd.split(".")
        if any(".".join(parts[i:]) in self.entries for i in range(len(parts))):
            return self._ALL
        tail = "." + rd
        return self._SOME if any(e.endswith(tail) for e in self.entries) else self._NO

    def partial_below(self, registered_domain: str) -> bool:
        """Whether an entry lies below this (not listed) registered domain."""
        self.matches(registered_domain, registered_domain)
        return self._status.get(registered_domain) == self._SOME

    def matches(self, registered_domain: str, name: str) -> bool:
        status = self._status.get(registered_domain)
        if status is None:
            if len(self._status) >= 65_536:
                self._status.clear()
            status = self._status[registered_domain] = self._judge(registered_domain)
        if status != self._SOME:
            return status == self._ALL
        parts = name.lower().rstrip(".").split(".")
        return any(".".join(parts[i:]) in self.entries for i in range(len(parts)))


def _names_summary(names: set[str]) -> tuple[list[str], float, int]:
    """What an alert tells of a window's names, computed when it fires rather than per name:
    the labels every name ends with (the tunnel's own zone: t1 in xxxx.t1.tunnel.test), the
    sum of their entropies (characters without the dots) and the longest label."""
    zone: list[str] | None = None
    total = 0.0
    longest = 0
    for sub in names:
        labels = sub.split(".")
        total += entropy(sub.replace(".", ""))
        longest = max(longest, max(map(raw_length, labels)))
        parents = labels[1:]
        if zone is None:
            zone = parents
            continue
        k = 0
        while k < len(zone) and k < len(parents) and zone[-1 - k] == parents[-1 - k]:
            k += 1
        if k < len(zone):
            zone = zone[len(zone) - k:]
    return zone or [], total, longest


class _Window:
    __slots__ = ("start", "queries", "names", "distinct", "bytes_up", "bytes_down", "encoded", "lengths",
                 "types", "alerted", "refreshes", "first_seen", "last", "data_answers", "encoded_answers",
                 "packed", "partial")

    def __init__(self, ts: int):
        self.start = ts
        self.first_seen = ts
        self.partial = False  # an allowlist entry lies below this domain: names are checked
        self.alerted = False
        self.refreshes = 0
        self.reset(ts)

    def reset(self, ts: int) -> None:
        self.start = ts
        self.queries = 0
        self.names: set[str] = set()
        self.distinct = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.data_answers = 0
        self.encoded_answers = 0
        self.packed = 0
        self.encoded = 0
        self.lengths: set[int] = set()
        self.types: dict[str, int] = {}
        self.alerted = False
        self.last = ts


class TunnelDetector:
    def __init__(self, config: TunnelConfig, emit: Callable[[Event], None]):
        self.config = config
        self.emit = emit
        self.window_ns = int(config.window * 1e9)
        self.allow = Allowlist(list(config.allowlist) + list(config.extra_allowlist))
        self.state: dict[tuple[str, str], _Window] = {}
        self._swept = 0
        self.counters = {"alerts": 0, "evicted": 0, "expired": 0, "allowlisted": 0, "names_over_cap": 0}
        if fast.CORE is not None:  # the compiled twin of observe (the same steps, typed state)
            self.observe = fast.CORE.Tunnel(self)  # type: ignore[method-assign]

    def observe(self, v: TxnView) -> None:
        ts, client_ip, _, _, _, _, _, m = v  # (unpacking reads a view faster: this runs per event)
        name, qtype, rd, raw, _, _, _, sub, bytes_down, encoded_down = m
        if not sub or not rd or rd == ".":
            return
        key = (client_ip, rd)
        st = self.state.get(key)
        if st is None:
            if self.allow.matches(rd, name):
                self.counters["allowlisted"] += 1
                return
            if len(self.state) >= self.config.max_tracked:
                self.counters["evicted"] += evict_oldest(self.state, self.config.max_tracked)
            st = self.state[key] = _Window(ts)
            st.partial = self.allow.partial_below(rd)
        elif ts - st.start >= self.window_ns:
            st.reset(ts)
        if st.partial and self.allow.matches(rd, name):
            return  # an allowlisted name below a domain that is otherwise tracked
        st.queries += 1
        st.last = ts
        if bytes_down:
            st.bytes_down += bytes_down
            st.data_answers += 1
            if encoded_down:
                st.encoded_answers += 1
        names = st.names
        if sub in names:
            return
        if len(names) < self.config.max_names_per_domain:
            names.add(sub)
        else:
            self.counters["names_over_cap"] += 1
        st.distinct += 1
        st.types[qtype] = st.types.get(qtype, 0) + 1
        # the protocol shows a byte outside printable ASCII as \ddd: it counts as the one byte it is
        length = len(raw) - 3 * raw.count("\\") if "\\" in raw else len(raw)
        st.bytes_up += length
        st.lengths.add(length)
        # A name shorter than the shortest label judged cannot look encoded, and most names are
        # that short: their shape (entropy, character sets) is never computed. The alert's
        # entropy, longest label and zone come from the names when it fires (_names_summary).
        if len(raw) >= MIN_ENCODED_LABEL:
            f = name_features(raw)
            if f.shape:
                st.encoded += 1
                if f.longest_label >= self.config.packed_label_length:
                    st.packed += 1
        cfg = self.config
        # (the encoded share is checked first here: on most traffic it is zero)
        if (not st.alerted and st.distinct >= cfg.min_distinct_subdomains
                and st.encoded >= cfg.min_encoded_ratio * st.distinct):
            self._judge(key, st, v)

    def _judge(self, key: tuple[str, str], st: _Window, v: TxnView) -> None:
        c = self.config
        d = st.distinct
        mean = st.bytes_up / d
        ratio = st.encoded / d
        if mean < c.min_mean_length or ratio < c.min_encoded_ratio or st.bytes_up < c.min_bytes_up:
            return
        # how the data moves: down in encoded record data, up in names packed to the label
        # limit, or up in a stream of chunks of many lengths (answers or not)
        down = st.bytes_down >= c.min_bytes_down and st.encoded_answers >= c.min_encoded_answer_ratio * st.data_answers
        packed = st.packed >= c.min_encoded_ratio * d
        stream = len(st.lengths) >= c.min_distinct_lengths
        if not (down or packed or stream):
            return
        st.alerted = True
        st.refreshes += 1
        self.counters["alerts"] += 1
        rd = key[1]
        zone_labels, entropy_sum, longest = _names_summary(st.names)
        zone = ".".join([*zone_labels, rd])
        window_s = (v.ts - st.start) / 1e9
        odd = {t: n for t, n in st.types.items() if t not in _PLAIN_TYPES}
        evidence: dict[str, Any] = {
            "queries": st.queries, "distinct_subdomains": d, "bytes_up": st.bytes_up, "bytes_down": st.bytes_down,
            "mean_subdomain_length": round(mean, 1), "longest_label": longest,
            "mean_entropy": round(entropy_sum / max(len(st.names), 1), 2), "encoded_ratio": round(ratio, 2),
            "distinct_lengths": len(st.lengths), "data_answers": st.data_answers,
            "encoded_answers": st.encoded_answers, "packed_names": st.packed, "window_s": round(window_s, 3), "refresh": st.refreshes,
            "record_types": dict(sorted(odd.items())), "zone": zone,
            "seconds_since_first_seen": round((v.ts - st.first_seen) / 1e9, 3),
        }
        msg = (f"DNS tunnel suspected: {key[0]} sent {d} distinct encoded-looking names under {zone} "
               f"({st.bytes_up} bytes up, {st.bytes_down} bytes of record data down) in {window_s:.1f} s")
        self.emit(alert("dns_tunnel", v.ts, msg, key=key, evidence=evidence, client_ip=key[0], name=v.msg.name,
                        registered_domain=rd, start_ns=st.start))

    def expire(self, now_ns: int) -> None:
        """Forget pairs idle for a whole window (swept every half window of packet time)."""
        if now_ns - self._swept < self.window_ns // 2:
            return
        self._swept = now_ns
        horizon = now_ns - self.window_ns
        stale = [k for k, st in self.state.items() if st.last < horizon]
        for k in stale:
            del self.state[k]
        self.counters["expired"] += len(stale)
