"""A capture made here with scapy: relayed DHCPv4 with option 82 and vendor options, option
overload, damaged options, site-defined options, and relayed DHCPv6 with prefix delegation;
checked field by field and against tshark."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

pytest.importorskip("scapy")
from scapy.layers.dhcp import BOOTP  # noqa: E402
from scapy.layers.dhcp6 import (  # noqa: E402
    DHCP6_Advertise, DHCP6_RelayForward, DHCP6_Reply, DHCP6_Solicit, DHCP6OptClientId, DHCP6OptDNSDomains,
    DHCP6OptDNSServers, DHCP6OptElapsedTime, DHCP6OptIA_PD, DHCP6OptIAPrefix, DHCP6OptIfaceId, DHCP6OptRelayMsg,
    DHCP6OptServerId, DHCP6OptStatusCode, DUID_LL, DUID_EN,
)
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.utils import wrpcap  # noqa: E402

from tests.conftest import need_tool  # noqa: E402
from tests.dhcp.support import messages_from_events, messages_from_rows, run_pcap, tshark_rows  # noqa: E402

COOKIE = b"\x63\x82\x53\x63"
MAC = "02:00:00:00:ab:cd"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def opt(code: int, data: bytes) -> bytes:
    return bytes([code, len(data)]) + data


def bootp(op: int, xid: int, options: bytes, **kw) -> BOOTP:
    return BOOTP(op=op, xid=xid, chaddr=bytes.fromhex(MAC.replace(":", "")), options=COOKIE + options, **kw)


RELAY_82 = opt(82, opt(1, b"eth0/1/2:100") + opt(2, bytes.fromhex("0011223344")) + opt(5, bytes([10, 20, 0, 0]))
               + opt(6, b"sub-42") + opt(200, b"\x01"))
VIVC = struct.pack("!IB", 3561, 6) + b"dslfrm"
VIVS = struct.pack("!IB", 4491, 3) + b"\x01\x01\x02"


def _frames():
    t = [1700000000]

    def at(pkt):
        t[0] += 1
        pkt.time = Decimal(f"{t[0]}.250000")
        return pkt

    relay, server, client = "10.7.0.1", "10.9.0.1", "10.7.0.50"
    v4 = lambda src, sp, dst, dp, payload: at(ETH / IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / payload)  # noqa: E731
    frames = [
        # DISCOVER relayed by 10.7.0.1 with option 82, vendor class, V-I vendor options, user class
        v4(relay, 67, server, 67, bootp(1, 0x1001, opt(53, b"\x01") + RELAY_82 + opt(60, b"MSFT 5.0")
                                        + opt(124, VIVC) + opt(125, VIVS) + opt(77, b"\x04lab1\x03ops")
                                        + opt(43, b"\x01\x02\xaa\xbb") + opt(250, b"\x0a\x00\x00\x07") + b"\xff",
                                        giaddr=relay, hops=1, flags=0x8000)),
        v4(server, 67, relay, 67, bootp(2, 0x1001, opt(53, b"\x02") + opt(54, bytes([10, 9, 0, 1]))
                                        + opt(51, struct.pack("!I", 86400)) + opt(2, struct.pack("!i", -3600))
                                        + opt(4, bytes([10, 9, 0, 2, 10, 9, 0, 3])) + RELAY_82 + b"\xff",
                                        giaddr=relay, yiaddr=client)),
        # option overload: the file and sname fields carry options
        v4("0.0.0.0", 68, "255.255.255.255", 67,
           bootp(1, 0x2002, opt(53, b"\x03") + opt(52, b"\x03") + b"\xff",
                 file=opt(12, b"overloaded-host") + b"\xff", sname=opt(50, bytes([10, 7, 0, 51])) + b"\xff")),
        # damaged: a lease time of 3 bytes, then an option running past the end (no END)
        v4("0.0.0.0", 68, "255.255.255.255", 67,
           bootp(1, 0x3003, opt(53, b"\x01") + opt(51, b"\x00\x00\x01") + b"\x0c\x20abc")),
        # not DHCP at all on port 67: refused, counted
        v4("10.7.0.99", 68, server, 67, b"\x01\x02not-dhcp"),
    ]
    duid_c = DUID_LL(lladdr=MAC)
    duid_s = DUID_EN(enterprisenum=32473, id=b"\x01\x02\x03\x04")
    solicit = DHCP6_Solicit(trid=0xABCDEF) / DHCP6OptClientId(duid=duid_c) / DHCP6OptElapsedTime(elapsedtime=150) \
        / DHCP6OptIA_PD(iaid=7)
    advertise = DHCP6_Advertise(trid=0xABCDEF) / DHCP6OptClientId(duid=duid_c) / DHCP6OptServerId(duid=duid_s) \
        / DHCP6OptIA_PD(iaid=7, T1=1800, T2=2880, iapdopt=[DHCP6OptIAPrefix(prefix="2001:db8:100::", plen=56,
                                                                             preflft=3600, validlft=7200)]) \
        / DHCP6OptDNSServers(dnsservers=["2001:db8::53", "2001:db8::54"]) / DHCP6OptDNSDomains(dnsdomains=["corp.test."])
    refused = DHCP6_Reply(trid=0x000042) / DHCP6OptClientId(duid=duid_c) / DHCP6OptServerId(duid=duid_s) \
        / DHCP6OptStatusCode(statuscode=2, statusmsg="no addresses")
    v6 = lambda src, sp, dst, dp, payload: at(ETH / IPv6(src=src, dst=dst) / UDP(sport=sp, dport=dp) / payload)  # noqa: E731
    frames += [
        v6("fe80::50", 546, "ff02::1:2", 547, solicit),
        v6("2001:db8:7::1", 547, "2001:db8:9::1", 547,
           DHCP6_RelayForward(hopcount=0, linkaddr="2001:db8:7::1", peeraddr="fe80::50")
           / DHCP6OptIfaceId(ifaceid=b"ge-0/0/1") / DHCP6OptRelayMsg(message=solicit)),
        v6("fe80::1", 547, "fe80::50", 546, advertise),
        v6("fe80::1", 547, "fe80::50", 546, refused),
    ]
    return frames


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    path = tmp_path_factory.mktemp("dhcp") / "crafted_dhcp.pcap"
    wrpcap(str(path), _frames())
    return path


CUSTOM = {250: {"name": "site_printer_ip", "type": "ip"}}


def test_relayed_dhcpv4_with_option_82(crafted):
    """giaddr/hops, option 82 sub-options, vendor class and V-I vendor options, user class."""
    a4, e4, _, _ = run_pcap(crafted, v4_config={"custom_options": CUSTOM})
    d = e4[0].fields["dhcpv4"]
    assert d["relay_ip"] == "10.7.0.1" and d["hops"] == 1 and d["flags"] == "broadcast"
    assert d["client_mac"] == MAC
    o = d["option"]
    rai = o["relay_agent_information"]
    assert rai["circuit_id_text"] == "eth0/1/2:100" and rai["circuit_id"] == b"eth0/1/2:100".hex()
    assert rai["remote_id"] == "0011223344" and "remote_id_text" not in rai
    assert rai["link_selection"] == "10.20.0.0" and rai["subscriber_id"] == "sub-42"
    assert {"code": 200, "data": "01"} in rai["sub_options"]
    assert o["class_identifier"] == "MSFT 5.0"
    assert o["vendor_identifying_options"] == [{"id": 3561, "data": b"dslfrm".hex()}]
    assert o["vendor_identifying_specific"] == [{"id": 4491, "data": "010102"}]
    assert o["vendor_specific_information"] == "0102aabb"
    assert o["user_class"] == ["lab1", "ops"]
    assert o["site_printer_ip"] == "10.0.0.7"
    assert "10.7.0.1" in e4[0].fields["related"]["ip"]
    offer = e4[1].fields
    assert offer["dhcpv4"]["option"]["utc_time_offset_sec"] == -3600
    assert offer["dhcpv4"]["option"]["time_servers"] == ["10.9.0.2", "10.9.0.3"]
    assert offer["dhcpv4"]["exchange"]["id"] == d["exchange"]["id"]
    assert offer["client"]["ip"] == "10.7.0.1"  # the reply goes to the relay


def test_overload_and_damaged_options(crafted):
    """Options in file/sname are read; damaged options become notes, the message an event."""
    a4, e4, _, _ = run_pcap(crafted)
    over = e4[2].fields["dhcpv4"]
    assert over["option"]["hostname"] == "overloaded-host"
    assert over["option"]["requested_ip_address"] == "10.7.0.51"
    assert "boot_file_name" not in over and "server_name" not in over
    bad = e4[3].fields
    notes = bad["error"]["message"]
    assert isinstance(notes, list) and len(notes) == 3
    assert any("option 12" in n and "claims 32 bytes" in n for n in notes)
    assert any("not terminated" in n for n in notes)
    assert any("IP Addresses Lease Time (51) has invalid length 3" in n for n in notes)
    assert bad["dhcpv4"]["option"]["message_type"] == "discover" and bad["status"] == "OK"
    stats = a4.stats()
    assert stats["parse_failures"] == 1 and stats["malformed_options"] == 1 and len(e4) == 4


def test_unmapped_options_on_request(crafted):
    """include_unmapped_options lists every option without a mapping."""
    _, e4, _, _ = run_pcap(crafted, v4_config={"include_unmapped_options": True})
    unmapped = e4[0].fields["dhcpv4"]["option"]["unmapped"]
    assert unmapped == [{"code": 250, "name": "unknown (250)", "data": "0a000007"}]


def test_dhcpv6_relay_and_prefix_delegation(crafted):
    """Relay-forw unwrapped, IA_PD prefixes, DNS options, DUID-EN and status codes."""
    _, _, a6, e6 = run_pcap(crafted)
    solicit, relayed, advertise, refused = (e.fields["dhcpv6"] for e in e6)
    assert solicit["option"]["elapsed_time_ms"] == 1500 and solicit["ia_pd"] == [{"iaid": 7, "t1": 0, "t2": 0}]
    assert relayed["message_type"] == "relay-forw"
    assert relayed["relay"] == {"hop_count": 0, "link_address": "2001:db8:7::1", "peer_address": "fe80::50",
                                "interface_id": b"ge-0/0/1".hex()}
    assert relayed["relayed"]["message_type"] == "solicit" and relayed["relayed"]["transaction_id"] == "0xabcdef"
    assert advertise["ia_pd"][0]["prefixes"] == [
        {"prefix": "2001:db8:100::/56", "preferred_lifetime": 3600, "valid_lifetime": 7200}
    ]
    assert advertise["server_id"]["type"] == "EN" and advertise["server_id"]["enterprise_number"] == 32473
    assert advertise["option"]["dns_servers"] == ["2001:db8::53", "2001:db8::54"]
    assert advertise["option"]["domain_search"] == ["corp.test"]
    # the client's SOLICIT and the relay's copy of it belong to one exchange with the ADVERTISE
    assert advertise["exchange"]["messages"] == ["solicit", "solicit", "advertise"]
    assert relayed["exchange"]["id"] == solicit["exchange"]["id"] == advertise["exchange"]["id"]
    assert refused["option"]["status"] == {"code": 2, "name": "NoAddrsAvail", "message": "no addresses"}
    assert e6[2].fields["client"]["ip"] == "fe80::50"
    assert a6.stats()["unmatched_responses"] == 1  # the REPLY to a transaction never seen


def test_crafted_capture_matches_tshark(crafted):
    """tshark's decode of the capture made here lists the same messages."""
    tshark = need_tool("tshark")
    _, e4, _, e6 = run_pcap(crafted)
    assert messages_from_events(e4, e6) == messages_from_rows(tshark_rows(tshark, crafted))
