# cython: annotation_typing=False
"""DNS transactions waiting for their answer: the one place where a response meets its query.

Owns :class:`Txn` (a query and/or its response(s), with the endpoints of the query) and
:class:`TxnTable`, the pending-query table: bounded (when full the oldest query is evicted),
insertion-ordered (queries arrive in packet-time order, so expiry looks at the front only), with
Packetbeat's rules for a repeated query (the first one is published as a duplicate, or as
unanswered when it had timed out) and for a late answer (a timed-out query is invisible to its
answer, as in Packetbeat). What leaves the table other than by :meth:`TxnTable.take` goes to
the owner's ``release(txn, reason)``, which notes, counts and publishes it.

Plain Python, and compiled as it is when the extension is built (``pairing.pxd`` declares the
types): the analyzer's Python code and the compiled DNS lane (``_fast.pyx``) call the same
methods on the same table. Never parses, renders or publishes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

__all__ = ["Txn", "TxnTable", "TxnKey", "EXPIRED", "DUPLICATE", "EVICTED"]

#: pending-table key: (transport, client ip, client port, server ip, server port, id), or
#: ("mdns", transport, client ip, client port, id) for legacy mDNS queries
TxnKey = tuple[Any, ...]

#: why a query left the table without its answer (the ``reason`` given to ``release``)
EXPIRED = 0  # timed out: found by expire(), a repeated query, a late answer, or the end of input
DUPLICATE = 1  # the same query again (same key) before it timed out
EVICTED = 2  # the table was full: the oldest query made room


class Txn:
    """One transaction: a query and/or its response(s), with the endpoints of the query."""

    __slots__ = (
        "ts", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "request", "responses",
        "resp_ts", "notes", "mdns_only", "req_id", "resp_id",
    )

    def __init__(self, ts: int, src_ip: str, src_port: int, dst_ip: str, dst_port: int, transport: str) -> None:
        self.ts = ts
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.transport = transport
        # Messages may be shared with the message cache (another ID): the IDs live here.
        self.request: Any = None  # Message | None
        self.req_id = 0
        self.responses: list[Any] | None = None  # several only for zone transfers
        self.resp_id = 0
        self.resp_ts = 0
        self.notes: list[str] | None = None  # most transactions have none, so no list then
        self.mdns_only = False

    def note(self, text: str) -> None:
        if self.notes is None:
            self.notes = [text]
        else:
            self.notes.append(text)


class TxnTable:
    """Queries waiting for their answer, by :data:`TxnKey`."""

    __slots__ = ("pending", "timeout_ns", "max_pending", "release")

    def __init__(self, timeout_ns: int, max_pending: int, release: Callable[[Txn, int], None]) -> None:
        # An OrderedDict so that taking the oldest entry stays O(1) however many were removed
        # before it.
        self.pending: OrderedDict[TxnKey, Txn] = OrderedDict()
        self.timeout_ns = timeout_ns
        self.max_pending = max_pending
        self.release = release

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, key: TxnKey, txn: Txn) -> None:
        """A new query: one already waiting under the same key is released first (EXPIRED when
        the new one comes after its timeout, else DUPLICATE), then the oldest when full."""
        pending = self.pending
        old = pending.pop(key, None)
        if old is not None:
            self.release(old, EXPIRED if txn.ts - old.ts >= self.timeout_ns else DUPLICATE)
        if len(pending) >= self.max_pending:
            victim = pending.popitem(last=False)[1]
            self.release(victim, EVICTED)
        pending[key] = txn

    def take(self, key: TxnKey, ts: int, alt_key: Any = None) -> Txn | None:
        """The query a response at ``ts`` answers, removed from the table (``alt_key`` is tried
        when nothing waits under ``key``); None when none waits. A query that timed out is
        released (EXPIRED) and None returned: it is invisible to its answer."""
        pending = self.pending
        txn = pending.pop(key, None)
        if txn is None and alt_key is not None:
            txn = pending.pop(alt_key, None)
        if txn is not None and ts - txn.ts >= self.timeout_ns:
            self.release(txn, EXPIRED)
            return None
        return txn

    def pop(self, key: TxnKey) -> Txn | None:
        """The query under ``key``, removed, whatever its age (a TCP error answers it)."""
        return self.pending.pop(key, None)

    def expire(self, now_ns: int) -> None:
        """Release (EXPIRED) every query that timed out by ``now_ns``, oldest first."""
        pending = self.pending
        limit = now_ns - self.timeout_ns
        while pending:
            key = next(iter(pending))
            txn = pending[key]
            if txn.ts > limit:
                break
            del pending[key]
            self.release(txn, EXPIRED)

    def drain(self) -> None:
        """End of input: release (EXPIRED) every query, oldest first; each is freed once
        released."""
        pending = self.pending
        while pending:
            txn = pending.popitem(last=False)[1]
            self.release(txn, EXPIRED)
