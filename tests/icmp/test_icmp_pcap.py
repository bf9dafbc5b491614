"""The shared ICMP and DHCP captures: pairing and counts agree with tshark's decode."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pybeat.envelope import community_id
from tests.conftest import PCAPS, need, need_tool
from tests.icmp.support import (
    csv_rows, expected_from_events, expected_from_rows, run_pcap, tshark_quotes, tshark_rows,
)


def _pcap(name):
    path = PCAPS / name
    need(path.is_file(), f"shared capture {path}")
    return path


def test_icmp_pcap_matches_truth_csv():
    """icmp.pcap: echo/timestamp pairs, unanswered requests and other messages as in the truth CSV."""
    path = _pcap("icmp.pcap")
    analyzer, events = run_pcap(path)
    want = expected_from_rows(csv_rows(PCAPS / "truth" / "icmp.icmp.csv"))
    assert expected_from_events(events) == want
    # the numbers MANIFEST.md states
    assert sum(want["pairs"].values()) == 6 + 1 + 4
    assert sum(want["unanswered"].values()) == 6 + 6
    assert len(events) == 52
    stats = analyzer.stats()
    assert stats["unmatched_requests"] == 12 and stats["unmatched_responses"] == 0


@pytest.mark.parametrize("name", ["icmp.pcap", "dhcp.pcap"])
def test_pcap_matches_tshark(name):
    """Running tshark on the capture gives the same pairs, unanswered requests and other messages."""
    tshark = need_tool("tshark")
    path = _pcap(name)
    _, events = run_pcap(path)
    assert expected_from_events(events) == expected_from_rows(tshark_rows(tshark, path))


def test_icmp_errors_carry_the_quoted_flow():
    """Every unreachable/time-exceeded/too-big error names the addresses and ports tshark finds
    in the datagram it quotes."""
    tshark = need_tool("tshark")
    path = _pcap("icmp.pcap")
    _, events = run_pcap(path)
    quotes = tshark_quotes(tshark, path)
    errors = [e for e in events if "original" in e.fields["icmp"]]
    assert len(errors) == len(quotes) == 15
    by_ns = {int(Decimal(ts) * 1_000_000_000): q for ts, q in quotes.items()}
    for e in errors:
        orig = e.fields["icmp"]["original"]
        want = by_ns[e.timestamp_ns]
        got = (orig["source"]["ip"], orig["destination"]["ip"],
               orig["source"].get("port"), orig["destination"].get("port"))
        assert got == want
        if "port" in orig["source"]:  # the failed flow's own Community ID, from either direction
            flow = (orig["source"]["ip"], orig["destination"]["ip"], 17, orig["source"]["port"],
                    orig["destination"]["port"])
            assert orig["community_id"] == community_id(*flow)
            assert orig["community_id"] == community_id(flow[1], flow[0], 17, flow[4], flow[3])
        assert orig["community_id"].startswith("1:")
        assert orig["destination"]["ip"] in e.fields["related"]["ip"]


def test_icmp_pcap_event_fields():
    """Fields of a paired echo and of an error, as Packetbeat shapes them."""
    _, events = run_pcap(_pcap("icmp.pcap"))
    first = events[0].fields
    echo = next(e.fields for e in events if e.fields["icmp"].get("response", {}).get("type") == 0)
    assert echo["network"]["transport"] == "icmp"
    assert echo["event"]["type"] == ["connection"] and echo["event"]["dataset"] == "icmp"
    assert echo["type"] == "icmp" and echo["path"] == echo["destination"]["ip"] == "10.99.5.2"
    assert echo["source"]["bytes"] == 56 and echo["destination"]["bytes"] == 56  # ping's 56 data bytes
    assert "port" not in echo["source"] and "protocol" not in echo["network"]
    assert echo["event"]["duration"] == 108000  # frames 5/6: .678609 -> .678717
    assert first["icmp"]["request"]["message"] == "RouterAdvertisement(0)" and first["status"] == "OK"
    frag = next(e.fields for e in events if e.fields["icmp"].get("request", {}).get("code") == 4
                and e.fields["icmp"]["version"] == 4)
    assert frag["icmp"]["mtu"] == 1280 and frag["status"] == "Error"
    too_big = next(e.fields for e in events if e.fields["icmp"].get("request", {}).get("type") == 2
                   and e.fields["icmp"]["version"] == 6)
    assert too_big["icmp"]["mtu"] == 1280
    assert too_big["icmp"]["original"]["icmp"] == {"type": 128, "code": 0, "id": 0x392B, "seq": 1}
