"""DHCPv4 events: one per message, Packetbeat's ``dhcpv4.*`` fields, plus exchange correlation.

Owns the event shape (client/server from the BOOTP op code, ``related.ip`` with ciaddr/yiaddr/
giaddr, notes for damaged options) and the counters. Parsing is ``parser.py``, option meaning
``options.py``, correlation ``exchange.py``. A datagram that is not DHCP is counted, never raised.
"""

from __future__ import annotations

import zlib
from typing import Any

from pybeat.api import Envelope, Event, Packet, ProtocolContext, add_notes

from pybeat.protocols.dhcpv4.exchange import ExchangeAnalyzer
from pybeat.protocols.dhcpv4.options import map_options
from pybeat.protocols.dhcpv4.parser import DhcpParseError, parse

__all__ = ["Dhcpv4Analyzer", "HARDWARE_TYPES"]

# insomniacslk/dhcp iana.HwTypeType names; anything else prints as "Invalid".
HARDWARE_TYPES = {
    1: "Ethernet", 2: "Experimental Ethernet", 3: "Amateur Radio AX.25", 4: "Proteon ProNET Token Ring",
    5: "Chaos", 6: "IEEE 802", 7: "ARCNET", 8: "Hyperchannel", 9: "Lanstar", 10: "Autonet Short Address",
    11: "LocalTalk", 12: "LocalNet", 13: "Ultra link", 14: "SMDS", 15: "Frame Relay", 16: "ATM", 17: "HDLC",
    18: "Fibre Channel", 19: "ATM 2", 20: "Serial Line", 21: "ATM 3", 22: "MIL-STD-188-220", 23: "Metricom",
    24: "IEEE 1394.1995", 25: "MAPOS", 26: "Twinaxial", 27: "EUI-64", 28: "HIPARP",
    29: "IP and ARP over ISO 7816-3", 30: "ARPSec", 31: "IPsec tunnel", 32: "Infiniband",
    33: "CAI, TIA-102 Project 125 Common Air Interface", 34: "Wiegand Interface", 35: "Pure IP",
}
_OP_CODES = {1: "bootrequest", 2: "bootreply"}
# client messages a server answers (RFC 2131 4.3); plain BOOTP requests are answered too
_EXPECTS_REPLY = frozenset({"discover", "request", "inform", "bootp"})


class Dhcpv4Analyzer(ExchangeAnalyzer):
    def __init__(
        self,
        ctx: ProtocolContext,
        timeout_s: float,
        max_exchanges: int,
        track_exchanges: bool = True,
        custom: dict[int, tuple[str, str]] | None = None,
        unmapped: bool = False,
    ):
        self.emit = ctx.emit
        self.envelope: Envelope = ctx.envelope
        super().__init__(timeout_s, max_exchanges, track_exchanges)
        self.custom = custom or {}
        self.unmapped = unmapped

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        self.counters["total_packets"] += 1
        try:
            msg = parse(payload)
        except DhcpParseError:
            self.counters["parse_failures"] += 1
            return
        notes = msg.notes
        opts = map_options(msg.options, msg.order, notes, self.custom, self.unmapped)
        if notes:
            self.counters["malformed_options"] += 1

        dhcp: dict[str, Any] = {
            "op_code": _OP_CODES.get(msg.op, f"unknown ({msg.op})"),
            "hardware_type": HARDWARE_TYPES.get(msg.htype, "Invalid"),
            "hops": msg.hops,
            "transaction_id": f"0x{msg.xid:08x}",
            "seconds": msg.secs,
            "flags": "broadcast" if msg.flags & 0x8000 else "unicast",
        }
        if msg.chaddr:
            dhcp["client_mac"] = ":".join(f"{b:02x}" for b in msg.chaddr)
        related: list[str] = []
        for name, ip in (("client_ip", msg.ciaddr), ("assigned_ip", msg.yiaddr), ("relay_ip", msg.giaddr)):
            if ip != "0.0.0.0":
                dhcp[name] = ip
                related.append(ip)
        if msg.sname:
            dhcp["server_name"] = msg.sname.decode("utf-8", "replace")
        if msg.file:
            dhcp["boot_file_name"] = msg.file.decode("utf-8", "replace")
        if opts:
            dhcp["option"] = opts
        is_reply = msg.op == 2
        if self.exchanges is not None:
            key = (msg.xid, msg.chaddr)
            mtype = opts.get("message_type", "bootp")
            dhcp["exchange"] = self.exchanges.observe(
                key, pkt.ts_ns, is_reply, mtype, expects_reply=mtype in _EXPECTS_REPLY
            )

        fields = self.envelope.build(
            "dhcpv4", "udp", pkt.src_ip, pkt.src_port, pkt.dst_ip, pkt.dst_port,
            pkt.ts_ns, None, src_bytes=len(payload), related_extra=related,
        )
        if is_reply:  # the server sent it: client is the destination
            fields["client"] = dict(fields["destination"])
            fields["server"] = dict(fields["source"])
        fields["type"] = "dhcpv4"
        fields["status"] = "OK"
        fields["dhcpv4"] = dhcp
        add_notes(fields, notes)
        self.counters["events"] += 1
        self.emit(Event(pkt.ts_ns, fields))

    shard_by_key_only = True  # an exchange changes addresses (0.0.0.0 -> unicast): split by its key alone

    def shard_key(self, payload: bytes) -> int:
        """Transaction id and chaddr: what ties the messages of one exchange together."""
        if len(payload) < 44:
            return 0
        return zlib.crc32(payload[4:8] + payload[28:44])
