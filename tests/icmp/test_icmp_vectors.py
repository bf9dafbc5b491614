"""Packetbeat's ICMP unit-test vectors (packetbeat_icmp_vectors.json) as byte-level tests."""

from __future__ import annotations

import json

import pytest

from pybeat.protocols.icmp import message as m
from pybeat.protocols.icmp.analyzer import DUPLICATE_REQUEST, ORPHANED_REQUEST, ORPHANED_RESPONSE
from tests.conftest import VECTORS, need
from tests.icmp.support import make, pkt

S = 1_000_000_000


@pytest.fixture(scope="module")
def vectors() -> dict:
    path = VECTORS / "packetbeat_icmp_vectors.json"
    need(path.is_file(), f"shared vectors at {path}")
    return {v["name"]: v for v in json.loads(path.read_text())}


def test_classification_tables(vectors):
    """Response, error and pair tables are exactly Packetbeat's."""
    tables = vectors["classification_tables"]["full_tables"]
    for version in (4, 6):
        responses = set(tables[f"icmp{version}_response_types"])
        errors = set(tables[f"icmp{version}_error_types"])
        pairs = set(tables[f"icmp{version}_pair_types"])
        for t in range(256):
            assert m.is_request(version, t) == (t not in responses)
            assert m.is_error(version, t) == (t in errors)
            assert m.is_pair(version, t) == (t in pairs)
    for case in vectors["classification_tables"]["asserted"]:
        v, t = case["version"], case["type"]
        if "isRequest" in case:
            assert m.is_request(v, t) == case["isRequest"]
        if "isError" in case:
            assert m.is_error(v, t) == case["isError"]
        if "requiresCounterpart" in case:
            assert m.is_pair(v, t) == case["requiresCounterpart"]


def test_tracking_data(vectors):
    """id/seq come from bytes 4-7 for pair types only."""
    vec = vectors["extractTrackingData_v4_v6"]
    contents = bytes.fromhex(vec["layer_contents_hex"])
    for case in vec["cases"]:
        icmp_type = int(case["type"].split("(")[1].rstrip(")"))
        message = bytes([icmp_type]) + contents[1:]
        assert m.tracking(case["version"], message) == (case["expected_id"], case["expected_seq"])


def test_human_readable(vectors):
    """Type(Code) strings as gopacket renders them, plus the system tests' echo strings."""
    for case in vectors["humanReadable"]["cases"]:
        assert m.human_readable(case["version"], case["type"], case["code"]) == case["expected_message"]
    assert m.human_readable(4, 8, 0) == "EchoRequest(0)"
    assert m.human_readable(4, 0, 0) == "EchoReply(0)"
    assert m.human_readable(6, 128, 0) == "EchoRequest(0)"
    assert m.human_readable(6, 129, 0) == "EchoReply(0)"
    assert m.human_readable(4, 200, 7) == "200(7)"
    assert m.human_readable(4, 3, 99) == "DestinationUnreachable(99)"


def test_benchmark_echo_pair(vectors):
    """The benchmark's raw echo request and reply pair into one OK transaction."""
    vec = vectors["benchmark_icmpv4_echo_pair"]
    analyzer, events = make()
    analyzer.on_icmp(pkt("10.0.0.1", "10.0.0.2", 1 * S), bytes.fromhex(vec["request_icmp_hex"]))
    analyzer.on_icmp(pkt("10.0.0.2", "10.0.0.1", 2 * S), bytes.fromhex(vec["response_icmp_hex"]))
    assert len(events) == 1
    icmp = events[0].fields["icmp"]
    assert icmp["request"] == {"message": "EchoRequest(0)", "type": 8, "code": 0}
    assert icmp["response"] == {"message": "EchoReply(0)", "type": 0, "code": 0}
    assert events[0].fields["status"] == "OK"
    assert events[0].fields["event"]["duration"] == 1 * S


def test_tuple_reverse_pairs_only_the_reversed_addresses(vectors):
    """A reply pairs with the request whose source/destination it reverses (tuple_test.go)."""
    t = vectors["tuple_hashable_and_reverse"]["tuple"]
    req = bytes([8, 0, 0, 0]) + t["id"].to_bytes(2, "big") + t["seq"].to_bytes(2, "big")
    rep = bytes([0]) + req[1:]
    analyzer, events = make()
    analyzer.on_icmp(pkt(t["srcIP"], t["dstIP"], S), req)
    analyzer.on_icmp(pkt(t["srcIP"], "192.168.0.3", 2 * S), rep)  # not reversed: orphan
    analyzer.on_icmp(pkt(t["dstIP"], t["srcIP"], 3 * S), rep)
    assert [e.fields["status"] for e in events] == ["Error", "OK"]
    assert events[0].fields["error"]["message"] == ORPHANED_RESPONSE
    assert events[1].fields["source"]["ip"] == t["srcIP"]
    assert events[1].fields["path"] == t["dstIP"]


@pytest.mark.parametrize("version", [4, 6])
def test_has_error_cases(vectors, version):
    """status follows transaction.HasError for each case of transaction_test.go."""
    v6 = version == 6
    echo_req, echo_rep = (128, 129) if v6 else (8, 0)
    unreach, redirect = (1, 137) if v6 else (3, 5)
    a, b = ("::1", "::2") if v6 else ("10.0.0.1", "10.0.0.2")

    def msg(t):
        return bytes([t, 0, 0, 0, 0, 1, 0, 1])

    analyzer, events = make()
    analyzer.on_icmp(pkt(b, a, S, v6), msg(echo_rep))  # request missing
    analyzer.on_icmp(pkt(a, b, S, v6), msg(echo_req))
    analyzer.on_icmp(pkt(b, a, 2 * S, v6), msg(echo_rep))  # paired: OK
    analyzer.on_icmp(pkt(a, b, 3 * S, v6), msg(unreach))  # error request
    analyzer.on_icmp(pkt(a, b, 4 * S, v6), msg(redirect))  # non-pair request: OK
    analyzer.on_icmp(pkt(a, b, 5 * S, v6), bytes([echo_req, 0, 0, 0, 0, 9, 0, 9]))  # pair, no response
    analyzer.flush(6 * S)
    assert [e.fields["status"] for e in events] == ["Error", "OK", "Error", "OK", "Error"]
    assert events[-1].fields["error"]["message"] == ORPHANED_REQUEST


def test_duplicate_request_closes_previous():
    """A second request with the same id/seq publishes the first with Packetbeat's note."""
    analyzer, events = make()
    req = bytes([8, 0, 0, 0, 0, 7, 0, 1])
    analyzer.on_icmp(pkt("10.0.0.1", "10.0.0.2", S), req)
    analyzer.on_icmp(pkt("10.0.0.1", "10.0.0.2", 2 * S), req)
    analyzer.on_icmp(pkt("10.0.0.2", "10.0.0.1", 3 * S), bytes([0]) + req[1:])
    assert events[0].fields["error"]["message"] == DUPLICATE_REQUEST
    assert events[0].fields["status"] == "Error"
    assert events[1].fields["event"]["duration"] == S
    assert analyzer.stats()["duplicate_requests"] == 1


def test_timeout_uses_packet_time():
    """A pending request is published as unanswered once packet time passes the timeout."""
    analyzer, events = make(transaction_timeout=2.0)
    analyzer.on_icmp(pkt("10.0.0.1", "10.0.0.2", 10 * S), bytes([13, 0, 0, 0, 0, 1, 0, 0] + [0] * 12))
    analyzer.expire(11 * S)
    assert events == []
    analyzer.expire(12 * S)
    assert len(events) == 1
    assert events[0].fields["icmp"]["request"]["message"] == "TimestampRequest(0)"
    assert events[0].fields["error"]["message"] == ORPHANED_REQUEST
    assert analyzer.stats()["unmatched_requests"] == 1
    # the reply after the timeout is an orphan of its own
    analyzer.on_icmp(pkt("10.0.0.2", "10.0.0.1", 13 * S), bytes([14, 0, 0, 0, 0, 1, 0, 0] + [0] * 12))
    assert events[1].fields["error"]["message"] == ORPHANED_RESPONSE
    assert events[1].fields["source"]["ip"] == "10.0.0.1"  # the requester, as Packetbeat reverses it
    assert "start" not in events[1].fields["event"]


def test_pending_table_is_capped():
    """The oldest pending request is published (noted) when the table is full."""
    analyzer, events = make(max_pending_requests=3)
    for i in range(5):
        analyzer.on_icmp(pkt("10.0.0.1", "10.0.0.2", S + i), bytes([8, 0, 0, 0, 0, 1, 0, i]))
    assert len(analyzer.pending) == 3
    assert analyzer.stats()["evicted_requests"] == 2
    assert len(events) == 2


def test_short_messages_are_counted_not_published():
    """Messages shorter than the 8-byte header never become events (gopacket refuses them)."""
    analyzer, events = make()
    analyzer.on_icmp(pkt("10.0.0.1", "10.0.0.2"), bytes([3, 3, 0, 0]))
    analyzer.on_icmp(pkt("::1", "::2", v6=True), bytes([128, 0, 0, 0, 0, 1]))
    assert events == []
    assert analyzer.stats()["parse_failures"] == 2


def test_config_refuses_ports_and_unknown_keys():
    """icmp has no ports; unknown keys are errors."""
    from pydantic import ValidationError

    from pybeat.protocols.icmp.plugin import plugin

    with pytest.raises(ValidationError, match="not port based"):
        plugin.config_model(type="icmp", ports=[1])
    with pytest.raises(ValidationError):
        plugin.config_model(type="icmp", transaction_timeot=3)
    assert plugin.name == "icmp" and plugin.transports == frozenset({"icmp"})
