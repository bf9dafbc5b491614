"""Multicast DNS (RFC 6762) on port 5353: what differs from unicast DNS in pairing.

A multicast query is answered to the group, not back to its sender, and an announcement or a
multicast answer answers no query here: each is an event of its own (``mdns_only``: its sender
is the source, and it is not an error). A legacy unicast query (from a port other than 5353)
is answered by a responder's own address: it waits under a key without the server.
"""

from __future__ import annotations

from pybeat.protocols.dns.pairing import Txn, TxnKey
from pybeat.protocols.dns.wire import Message

__all__ = ["MDNS_PORT", "MDNS_GROUPS", "is_multicast_query", "legacy_key", "lone_message"]

MDNS_PORT = 5353
MDNS_GROUPS = ("224.0.0.251", "ff02::fb")


def is_multicast_query(msg: Message, dst_ip: str, sport: int) -> bool:
    return msg.mdns and sport == MDNS_PORT and dst_ip in MDNS_GROUPS


def legacy_key(msg: Message, transport: str, client_ip: str, client_port: int, dst_ip: str, msg_id: int) -> TxnKey | None:
    """The key a legacy unicast mDNS query waits under (sent to the group), or None."""
    if msg.mdns and dst_ip in MDNS_GROUPS:
        return ("mdns", transport, client_ip, client_port, msg_id)
    return None


def lone_message(msg: Message, msg_id: int, ts: int, src_ip: str, sport: int, dst_ip: str, dport: int,
                 transport: str) -> Txn:
    """The transaction of a multicast query or of an unsolicited answer (an announcement)."""
    txn = Txn(ts, src_ip, sport, dst_ip, dport, transport)
    txn.mdns_only = True
    if msg.qr:
        txn.responses = [msg]
        txn.resp_id = msg_id
        txn.resp_ts = ts
    else:
        txn.request = msg
        txn.req_id = msg_id
    return txn
