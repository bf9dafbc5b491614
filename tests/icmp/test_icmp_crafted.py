"""A capture made here with scapy: what the shared ones lack (VLAN pings shaped like Packetbeat's
system tests, address-mask/information pairs, duplicates, orphans, redirects, TCP and
IPv6-fragment quotes), checked field by field and against tshark."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytest.importorskip("scapy")
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6ND_Redirect, IPerror6, IPv6,
    IPv6ExtHdrFragment, UDPerror as UDPerror6,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import wrpcap  # noqa: E402

from pybeat.timefmt import format_ts  # noqa: E402
from tests.conftest import need_tool  # noqa: E402
from tests.icmp.support import expected_from_events, expected_from_rows, run_pcap, tshark_rows  # noqa: E402

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _at(pkt, when: str):
    pkt.time = Decimal(when)
    return pkt


def _system_test_frames():
    """Packetbeat's test_0050_icmp.py pings, rebuilt: 4-byte payloads, same times and durations."""
    v4 = lambda typ, src, dst: IP(src=src, dst=dst) / ICMP(type=typ, id=0x1234, seq=1) / Raw(b"abcd")  # noqa: E731
    frames = [
        _at(ETH / v4(8, "10.0.0.1", "10.0.0.2"), "1445291269.900657"),
        _at(ETH / v4(0, "10.0.0.2", "10.0.0.1"), "1445291269.912809"),
        _at(ETH / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=0x1234, seq=2) / Raw(b"abcd"),
            "1445291269.924909"),
        _at(ETH / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0, id=0x1234, seq=2) / Raw(b"abcd"),
            "1445291269.936844"),
        # over a VLAN, and over QinQ
        _at(ETH / Dot1Q(vlan=100) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=7, seq=1) / Raw(b"abcd"),
            "1445291270.849085"),
        _at(ETH / Dot1Q(vlan=100) / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0, id=7, seq=1) / Raw(b"abcd"),
            "1445291270.861277"),
        _at(ETH / IPv6(src="::1", dst="::2") / ICMPv6EchoRequest(id=9, seq=1, data=b"abcd"), "1445291271.872952"),
        _at(ETH / IPv6(src="::2", dst="::1") / ICMPv6EchoReply(id=9, seq=1, data=b"abcd"), "1445291271.889391"),
        _at(ETH / Dot1AD(vlan=300) / Dot1Q(vlan=200) / IPv6(src="::1", dst="::2")
            / ICMPv6EchoRequest(id=10, seq=1, data=b"abcd"), "1445291272.901349"),
        _at(ETH / Dot1AD(vlan=300) / Dot1Q(vlan=200) / IPv6(src="::2", dst="::1")
            / ICMPv6EchoReply(id=10, seq=1, data=b"abcd"), "1445291272.913682"),
    ]
    return frames


def _other_frames():
    t = 1445291300
    f = []

    def add(pkt):
        nonlocal t
        t += 1
        f.append(_at(ETH / pkt, f"{t}.000100"))

    a, b, r = "10.1.0.1", "10.1.0.2", "10.1.0.254"
    add(IP(src=a, dst=b) / ICMP(type=17, id=1, seq=1) / Raw(b"\x00" * 4))  # address mask request
    add(IP(src=b, dst=a) / ICMP(type=18, id=1, seq=1) / Raw(b"\xff\xff\xff\x00"))
    add(IP(src=a, dst=b) / ICMP(type=15, id=2, seq=1))  # information request, never answered
    add(IP(src=a, dst=b) / ICMP(type=8, id=3, seq=1) / Raw(b"x" * 8))  # duplicate request ...
    add(IP(src=a, dst=b) / ICMP(type=8, id=3, seq=1) / Raw(b"x" * 8))  # ... then answered
    add(IP(src=b, dst=a) / ICMP(type=0, id=3, seq=1) / Raw(b"x" * 8))
    add(IP(src=b, dst=a) / ICMP(type=0, id=99, seq=5) / Raw(b"x" * 8))  # orphan reply
    add(IP(src=r, dst=a) / ICMP(type=5, code=1, gw="10.1.0.253")
        / IPerror(src=a, dst="192.0.2.9") / UDPerror(sport=5000, dport=53))
    add(IP(src=b, dst=a) / ICMP(type=12, code=0, ptr=20)
        / IPerror(src=a, dst=b) / TCPerror(sport=40000, dport=443, flags="S"))
    add(IP(src=r, dst=a) / ICMP(type=11, code=1) / IPerror(src=a, dst=b, frag=0))  # quote without ports
    add(IPv6(src="fd00::fe", dst="fd00::1") / ICMPv6DestUnreach(code=4)
        / IPerror6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=77)
        / UDPerror6(sport=5353, dport=5353))
    add(IPv6(src="fe80::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="fe80::2"))
    add(IPv6(src="fe80::1", dst="fd00::1") / ICMPv6ND_Redirect(tgt="fe80::99", dst="2001:db8::5"))
    add(IP(src=a, dst=b) / ICMP(type=200, code=3) / Raw(b"\x00" * 4))  # unknown type
    return f


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    path = tmp_path_factory.mktemp("icmp") / "crafted_icmp.pcap"
    wrpcap(str(path), _system_test_frames() + _other_frames())
    return path


def test_system_test_pings(crafted):
    """The pings of Packetbeat's ICMP system tests give its asserted fields, VLAN or not."""
    _, events = run_pcap(crafted)
    pings = [e for e in events if e.fields["icmp"].get("request", {}).get("code") == 0
             and e.fields["source"]["ip"] in ("10.0.0.1", "::1")]
    assert [format_ts(e.timestamp_ns) for e in pings] == [
        "2015-10-19T21:47:49.900Z", "2015-10-19T21:47:49.924Z", "2015-10-19T21:47:50.849Z",
        "2015-10-19T21:47:51.872Z", "2015-10-19T21:47:52.901Z",
    ]
    assert [e.fields["event"]["duration"] for e in pings] == [12152000, 11935000, 12192000, 16439000, 12333000]
    for e in pings:
        f = e.fields
        v6 = f["icmp"]["version"] == 6
        assert f["type"] == "icmp" and f["event"]["dataset"] == "icmp" and f["status"] == "OK"
        assert f["source"]["bytes"] == 4 and f["destination"]["bytes"] == 4
        assert "port" not in f["server"] and "transport" not in f
        assert f["network"]["transport"] == ("ipv6-icmp" if v6 else "icmp")
        assert f["client"]["ip"] == ("::1" if v6 else "10.0.0.1")
        assert f["server"]["ip"] == f["path"] == ("::2" if v6 else "10.0.0.2")
        assert f["icmp"]["request"] == {"message": "EchoRequest(0)", "type": 128 if v6 else 8, "code": 0}
        assert f["icmp"]["response"] == {"message": "EchoReply(0)", "type": 129 if v6 else 0, "code": 0}


def test_other_messages(crafted):
    """Mask/info pairs, duplicates, orphans, redirect gateway and TCP/fragment quotes."""
    analyzer, events = run_pcap(crafted)
    by_req = {}
    for e in events:
        req = e.fields["icmp"].get("request")
        by_req.setdefault(req["message"] if req else None, []).append(e.fields)
    mask = by_req["AddressMaskRequest(0)"][0]
    assert mask["icmp"]["response"]["message"] == "AddressMaskReply(0)" and mask["status"] == "OK"
    info = by_req["InfoRequest(0)"][0]
    assert info["status"] == "Error" and "response" not in info["icmp"]
    dup, answered = by_req["EchoRequest(0)"][-2:]
    assert "Another request" in dup["error"]["message"] and answered["status"] == "OK"
    orphan = by_req[None][0]
    assert orphan["source"]["ip"] == "10.1.0.1" and orphan["icmp"]["response"]["type"] == 0
    redirect = by_req["Redirect(Host)"][0]
    assert redirect["icmp"]["gateway"] == "10.1.0.253" and redirect["status"] == "OK"
    assert redirect["icmp"]["original"]["destination"] == {"ip": "192.0.2.9", "port": 53}
    problem = by_req["ParameterProblem(PointerIndicatesError)"][0]
    assert problem["icmp"]["original"]["transport"] == "tcp"
    assert problem["icmp"]["original"]["destination"]["port"] == 443
    reassembly = by_req["TimeExceeded(FragmentReassemblyTimeExceeded)"][0]
    assert "port" not in reassembly["icmp"]["original"]["destination"]
    unreach6 = by_req["DestinationUnreachable(PortUnreachable)"][0]
    assert unreach6["icmp"]["original"]["source"] == {"ip": "fd00::1", "port": 5353}
    assert by_req["200(3)"][0]["status"] == "OK"
    redirect6 = by_req["Redirect(0)"][0]["icmp"]
    assert redirect6["gateway"] == "fe80::99" and redirect6["redirected_destination"] == "2001:db8::5"
    assert by_req["NeighborSolicitation(0)"][0]["network"]["transport"] == "ipv6-icmp"
    stats = analyzer.stats()
    assert stats["duplicate_requests"] == 1 and stats["unmatched_responses"] == 1


def test_crafted_capture_matches_tshark(crafted):
    """tshark's decode of the capture made here gives the same pairs and counts."""
    tshark = need_tool("tshark")
    _, events = run_pcap(crafted)
    assert expected_from_events(events) == expected_from_rows(tshark_rows(tshark, crafted))
