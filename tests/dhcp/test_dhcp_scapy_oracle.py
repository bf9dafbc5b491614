"""scapy as an independent decoder: every DHCPv4/DHCPv6 message of the shared capture decodes to
the same header fields and key options in pybeat's events as in scapy's dissection."""

from __future__ import annotations

import pytest

pytest.importorskip("scapy")
from scapy.layers.dhcp import BOOTP, DHCP  # noqa: E402
import scapy.layers.dhcp6 as dhcp6  # noqa: E402
from scapy.layers.dhcp6 import DHCP6OptDNSServers, DHCP6OptIAAddress  # noqa: E402
from scapy.layers.inet import UDP  # noqa: E402
from scapy.utils import rdpcap  # noqa: E402

from tests.conftest import PCAPS, need  # noqa: E402
from tests.dhcp.support import run_pcap  # noqa: E402

_SCAPY_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform"}


def _pcap():
    path = PCAPS / "dhcp.pcap"
    need(path.is_file(), f"shared capture {path}")
    return path


def test_dhcpv4_matches_scapy():
    """xid, chaddr, ciaddr/yiaddr/giaddr, message type, hostname, server id and lease time."""
    _, e4, _, _ = run_pcap(_pcap())
    frames = [p for p in rdpcap(str(_pcap())) if BOOTP in p and UDP in p and p[UDP].dport in (67, 68)
              and p[UDP].sport in (67, 68)]
    assert len(frames) == len(e4) == 23
    for pkt, event in zip(frames, e4):
        b, d = pkt[BOOTP], event.fields["dhcpv4"]
        assert d["transaction_id"] == f"0x{b.xid:08x}"
        assert d["client_mac"] == ":".join(f"{x:02x}" for x in bytes(b.chaddr)[: b.hlen])
        for ours, theirs in (("client_ip", b.ciaddr), ("assigned_ip", b.yiaddr), ("relay_ip", b.giaddr)):
            assert d.get(ours, "0.0.0.0") == theirs
        opts = {o[0]: o[1:] for o in pkt[DHCP].options if isinstance(o, tuple)}
        assert d["option"]["message_type"] == _SCAPY_TYPES[opts["message-type"][0]]
        if "hostname" in opts:
            assert d["option"]["hostname"] == opts["hostname"][0].decode()
        if "server_id" in opts:
            assert d["option"]["server_identifier"] == opts["server_id"][0]
        if "lease_time" in opts:
            assert d["option"]["ip_address_lease_time_sec"] == opts["lease_time"][0]
        if "vendor_class_id" in opts:
            assert d["option"]["class_identifier"] == opts["vendor_class_id"][0].decode()


def _walk(pkt):
    """Every layer of a scapy packet, including those inside packet-list fields (IA options)."""
    from scapy.packet import Packet

    while isinstance(pkt, Packet):
        yield pkt
        for f in pkt.fields_desc:
            value = pkt.getfieldval(f.name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, Packet):
                    yield from _walk(item)
        pkt = pkt.payload if pkt.payload else None


def test_dhcpv6_matches_scapy():
    """Message type, transaction id, leased addresses and DNS servers."""
    _, _, _, e6 = run_pcap(_pcap())
    frames = [p for p in rdpcap(str(_pcap())) if UDP in p and p[UDP].dport in (546, 547)
              and p[UDP].sport in (546, 547)]
    assert len(frames) == len(e6) == 8
    for pkt, event in zip(frames, e6):
        payload = bytes(pkt[UDP].payload)
        msg = getattr(dhcp6, dhcp6.dhcp6_cls_by_type[payload[0]])(payload)
        d = event.fields["dhcpv6"]
        assert d["transaction_id"] == f"0x{msg.trid:06x}"
        assert d["message_type"].replace("-", "") in type(msg).__name__.lower().replace("_", "").replace(
            "inforequest", "informationrequest")
        scapy_addrs = [o.addr for o in _walk(msg) if isinstance(o, DHCP6OptIAAddress)]
        ours = [a["ip"] for ia in d.get("ia_na", []) for a in ia.get("addresses", [])]
        assert ours == scapy_addrs
        dns = [o for o in _walk(msg) if isinstance(o, DHCP6OptDNSServers)]
        if dns:
            assert d["option"]["dns_servers"] == dns[0].dnsservers
