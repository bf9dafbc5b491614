"""DHCPv6 events: one per message under ``dhcpv6.*`` (Packetbeat has no DHCPv6), correlated.

Owns the event shape: client/server from the message type (server-to-client types make the
destination the client), ``related.ip`` with the leased addresses, notes for damaged options, and
the exchange correlation (transaction id + client DUID) shared with DHCPv4.
"""

from __future__ import annotations

import struct
from typing import Any

from pybeat.api import Envelope, Event, Packet, ProtocolContext, add_notes

from pybeat.protocols.dhcpv4.exchange import ExchangeAnalyzer
from pybeat.protocols.dhcpv6.parser import SERVER_TYPES, Dhcpv6ParseError, parse

__all__ = ["Dhcpv6Analyzer"]

# client messages a server answers with ADVERTISE/REPLY (RFC 8415 18)
_EXPECTS_REPLY = frozenset({
    "solicit", "request", "confirm", "renew", "rebind", "release", "decline", "information-request",
})


class Dhcpv6Analyzer(ExchangeAnalyzer):
    def __init__(self, ctx: ProtocolContext, timeout_s: float, max_exchanges: int, track_exchanges: bool = True):
        self.emit = ctx.emit
        self.envelope: Envelope = ctx.envelope
        super().__init__(timeout_s, max_exchanges, track_exchanges)

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        self.counters["total_packets"] += 1
        try:
            dhcp, notes, related = parse(payload)
        except Dhcpv6ParseError:
            self.counters["parse_failures"] += 1
            return
        if notes:
            self.counters["malformed_options"] += 1
        from_server = payload[0] in SERVER_TYPES
        if self.exchanges is not None:
            inner: dict[str, Any] = dhcp
            while "relayed" in inner:
                inner = inner["relayed"]
            if "transaction_id" in inner:
                client = inner.get("client_id", {}).get("duid", "")
                mtype = inner["message_type"]
                dhcp["exchange"] = self.exchanges.observe(
                    (inner["transaction_id"], client), pkt.ts_ns, from_server, mtype,
                    expects_reply=mtype in _EXPECTS_REPLY,
                )
        fields = self.envelope.build(
            "dhcpv6", "udp", pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port,
            pkt.ts_ns, None, src_bytes=len(payload), related_extra=related,
        )
        if from_server:
            fields["client"] = dict(fields["destination"])
            fields["server"] = dict(fields["source"])
        fields["type"] = "dhcpv6"
        fields["status"] = "OK"
        fields["dhcpv6"] = dhcp
        add_notes(fields, notes)
        self.counters["events"] += 1
        self.emit(Event(pkt.ts_ns, fields))

    shard_by_key_only = True  # an exchange changes addresses (0.0.0.0 -> unicast): split by its key alone

    def shard_key(self, payload: bytes) -> int:
        """The transaction id (of the relayed message for relays): what ties an exchange together."""
        depth = 0
        while len(payload) >= 34 and payload[0] in (12, 13) and depth < 8:
            depth += 1
            pos = 34
            inner = b""
            while pos + 4 <= len(payload):
                code, length = struct.unpack_from("!HH", payload, pos)
                if code == 9:
                    inner = payload[pos + 4 : pos + 4 + length]
                    break
                pos += 4 + length
            payload = inner
        return int.from_bytes(payload[1:4], "big") if len(payload) >= 4 else 0
