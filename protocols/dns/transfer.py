"""Zone transfers over TCP (AXFR, IXFR): an answer in several messages, kept as one transaction.

Owns knowing when a transfer's answer is complete (RFC 5936, RFC 1995) and the transfers still
receiving messages (published when complete, when the connection ends, when their last message
is older than the transaction timeout, and at the end of input). Never frames or parses.
"""

from __future__ import annotations

from typing import Callable

from pybeat.protocols.dns.pairing import Txn

__all__ = ["ZONE_TRANSFERS", "Transfers", "is_transfer", "transfer_complete"]

ZONE_TRANSFERS = (251, 252)  # IXFR, AXFR


def is_transfer(txn: Txn) -> bool:
    """Whether the transaction's query asks for a zone transfer."""
    req = txn.request
    return req is not None and bool(req.questions) and req.questions[0][1] in ZONE_TRANSFERS


def transfer_complete(txn: Txn) -> bool:
    """Whether a zone transfer answer is complete.

    Complete on an error, when the answer does not start with a SOA, for a lone SOA answering
    an IXFR (the client is up to date), or when the last record is a SOA with the first
    record's serial and that SOA has been seen as often as the format needs: twice for a full
    zone (first and last), three times for an incremental IXFR (first, the start of the last
    diff's additions, last), which is recognised by a second record that is also a SOA.
    """
    msgs = txn.responses
    if not msgs:
        return False
    first = msgs[0]
    if first.rcode != 0 or first.error is not None or not first.answers:
        return True
    head = first.answers[0]
    if head is None or head.get("type") != "SOA":
        return True
    records = [r for m in msgs for r in m.answers]
    req = txn.request
    if len(records) == 1:
        return bool(req and req.questions and req.questions[0][1] == 251)
    tail = records[-1]
    serial = head.get("serial")
    if tail is None or tail.get("type") != "SOA" or tail.get("serial") != serial:
        return False
    second = records[1]
    incremental = second is not None and second.get("type") == "SOA" and second.get("serial") != serial
    seen = sum(1 for r in records if r is not None and r.get("type") == "SOA" and r.get("serial") == serial)
    return seen >= (3 if incremental else 2)


class Transfers:
    """Transfers still receiving answer messages, one per connection at most."""

    def __init__(self, publish: Callable[[Txn], None]) -> None:
        self.publish = publish
        self.open: dict[object, Txn] = {}  # by the connection's DNS state (identity)

    def start(self, conn: object, txn: Txn) -> None:
        self.open[conn] = txn

    def get(self, conn: object) -> Txn | None:
        return self.open.get(conn)

    def add(self, conn: object, txn: Txn, msg: object, ts: int) -> None:
        """One more answer message: published when that completes the transfer."""
        assert txn.responses is not None
        txn.responses.append(msg)
        txn.resp_ts = ts
        if transfer_complete(txn):
            self.finish(conn)

    def finish(self, conn: object) -> None:
        txn = self.open.pop(conn, None)
        if txn is not None:
            self.publish(txn)

    def expire(self, limit_ns: int) -> None:
        for conn, txn in list(self.open.items()):
            if txn.resp_ts <= limit_ns:
                self.finish(conn)

    def flush(self) -> None:
        for conn in list(self.open):
            self.finish(conn)
