"""Packetbeat's own DNS unit-test vectors (packetbeat_dns_vectors.json) as byte-level tests.

Each UDP/TCP vector is fed to the analyzer on the harness's tuples (request 192.168.0.1:53 ->
10.0.0.1:34898, response reversed) and the event is compared with what Packetbeat's tests
assert; TCP vectors are also fed byte by byte and split, as Packetbeat's tests do.
"""

from __future__ import annotations

import pytest

from tests.conftest import VECTORS, need
from tests.dns.dnstest import SECOND, check_expected, load_json, make, tcp_conn, udp
from pybeat.protocols.dns import errors as notes
from pybeat.protocols.dns.domain import DomainParts
from pybeat.protocols.dns.event import dns_fields
from pybeat.protocols.dns.wire import parse_message

FWD = ("192.168.0.1", 53, "10.0.0.1", 34898)
REV = ("10.0.0.1", 34898, "192.168.0.1", 53)
ALL_ON = dict(include_authorities=True, include_additionals=True, send_request=True, send_response=True)


def _vectors() -> dict[str, dict]:
    path = VECTORS / "packetbeat_dns_vectors.json"
    if not path.exists():
        return {}
    return {v["name"]: v for v in load_json(path)}


VEC = _vectors()
UDP_PAIRS = [n for n, v in VEC.items() if v["transport"] == "udp" and "request_hex" in v and "response_hex" in v]
TCP_PAIRS = [n for n, v in VEC.items() if v["transport"] == "tcp" and "response_hex" in v]


@pytest.fixture(autouse=True)
def _have_vectors() -> None:
    need(VEC, f"Packetbeat DNS vectors at {VECTORS}")


def _udp_pair(name: str, **cfg):
    v = VEC[name]
    an, events = make(**(ALL_ON | cfg))
    udp(an, 1 * SECOND, *FWD, bytes.fromhex(v["request_hex"]))
    assert events == []
    udp(an, 1 * SECOND + 5_000_000, *REV, bytes.fromhex(v["response_hex"]))
    return an, events


@pytest.mark.parametrize("name", UDP_PAIRS)
def test_udp_vector_pair(name: str) -> None:
    """A UDP query and its response make one event with every field Packetbeat asserts."""
    an, events = _udp_pair(name)
    assert len(events) == 1 and an.stats()["pending"] == 0
    checked, failures = check_expected(events[0], VEC[name]["expected"])
    assert checked > 3 and failures == []


@pytest.mark.parametrize("name", [n for n in UDP_PAIRS if "derived_not_asserted" in VEC[n]])
def test_udp_vector_derived_fields(name: str) -> None:
    """Fields the vectors derive from Packetbeat's code (strings, lists, community id) match too."""
    _an, events = _udp_pair(name)
    ev = events[0]
    derived = VEC[name]["derived_not_asserted"]
    mapping = {
        "dns.resolved_ip": ev.get("dns.resolved_ip"),
        "dns.header_flags": ev.get("dns.header_flags"),
        "related.ip": ev.get("related.ip"),
        "network.bytes": ev.get("network.bytes"),
        "request (send_request) string": ev.get("request"),
        "response (send_response) string": ev.get("response"),
        "network.community_id": ev.get("network.community_id"),
        "dns.answers.ttl (string)": [a["ttl"] for a in ev.get("dns.answers") or []],
        "dns.opt.version": ev.get("dns.opt.version"),
        "dns.opt.do": ev.get("dns.opt.do"),
        "dns.opt.udp_size": ev.get("dns.opt.udp_size"),
        "dns.opt.ext_rcode": ev.get("dns.opt.ext_rcode"),
        "dns.additionals_count": ev.get("dns.additionals_count"),
        "dns.question.subdomain": ev.get("dns.question.subdomain"),
        "dns.question.top_level_domain": ev.get("dns.question.top_level_domain"),
    }
    compared = 0
    for key, want in derived.items():
        if key not in mapping:
            continue
        compared += 1
        got = mapping[key]
        if isinstance(want, str) and " (" in want and not isinstance(got, str):
            want = want.split(" (")[0]  # a value followed by prose
            got = str(got)
        assert got == want, key
    assert compared


def test_udp_request_only_stays_pending_then_expires() -> None:
    """A query alone is pending; after transaction_timeout of packet time it is published."""
    v = VEC["elasticA"]
    an, events = make()
    udp(an, 1 * SECOND, *FWD, bytes.fromhex(v["request_hex"]))
    an.expire(10 * SECOND)
    assert events == [] and an.stats()["pending"] == 1
    an.expire(11 * SECOND)
    assert len(events) == 1
    ev = events[0]
    assert ev.get("status") == "Error" and ev.get("error.message") == notes.NO_RESPONSE
    assert ev.get("destination.bytes") is None and ev.get("event.duration") is None
    assert ev.get("source.bytes") == 28 and ev.get("dns.type") == "query"
    assert an.stats()["unmatched_requests"] == 1


def test_udp_response_only() -> None:
    """A response without its query is an orphan: status Error, Packetbeat's note, counted."""
    v = VEC["elasticA"]
    an, events = make()
    udp(an, 1 * SECOND, *REV, bytes.fromhex(v["response_hex"]))
    assert len(events) == 1
    ev = events[0]
    assert ev.get("status") == "Error" and ev.get("error.message") == notes.ORPHANED_RESPONSE
    assert ev.get("source.bytes") is None and ev.get("destination.bytes") == 60
    assert ev.get("event.duration") is None and ev.get("network.transport") == "udp"
    assert ev.get("source.ip") == "192.168.0.1"  # the query's side, as in Packetbeat
    _checked, failures = check_expected(
        ev, {k: w for k, w in v["expected"].items() if k.startswith("dns.") or k in ("query", "resource", "method")}
    )
    assert failures == []
    assert an.stats()["unmatched_responses"] == 1


def test_udp_duplicate_requests() -> None:
    """A second query with the same ID on the same tuple closes the first with Packetbeat's note."""
    v = VEC["elasticA"]
    an, events = make()
    udp(an, 1 * SECOND, *FWD, bytes.fromhex(v["request_hex"]))
    udp(an, 2 * SECOND, *FWD, bytes.fromhex(v["request_hex"]))
    assert len(events) == 1 and an.stats()["pending"] == 1
    ev = events[0]
    assert ev.get("error.message") == notes.DUPLICATE_QUERY and ev.get("status") == "Error"
    assert ev.get("source.bytes") == 28 and ev.get("destination.bytes") is None


def test_udp_empty_packet() -> None:
    """An empty datagram produces nothing."""
    an, events = make()
    udp(an, 1, *FWD, b"")
    an.flush(2)
    assert events == [] and an.stats()["pending"] == 0


def test_udp_malformed_packet_is_reported() -> None:
    """Unlike Packetbeat (which drops it), a malformed query with a readable header is reported
    with Packetbeat's note, and counted."""
    an, events = make()
    udp(an, 1, *FWD, bytes.fromhex(VEC["udp_malformed_packet"]["request_hex"]))
    an.flush(2)
    assert len(events) == 1
    msgs = events[0].get("error.message")
    assert notes.NON_DNS in msgs and notes.NO_RESPONSE in msgs
    assert an.stats()["malformed"] == 1


def test_expire_transaction_fields() -> None:
    """An expired query has no destination bytes, no duration, status Error and the note."""
    an, events = make()
    udp(an, 1 * SECOND, *FWD, bytes.fromhex(VEC["elasticA"]["request_hex"]))
    an.flush(3 * SECOND)
    check, failures = check_expected(events[0], VEC["expireTransaction"]["expected"])
    assert check == 4 and failures == []


def _tcp_feed(an, conn, from_client: bool, data: bytes, ts: int, split: str) -> None:
    if split == "whole":
        an.on_tcp_data(conn, from_client, data, ts)
    elif split == "bytes":
        for i in range(len(data)):
            an.on_tcp_data(conn, from_client, data[i : i + 1], ts)
    else:  # Packetbeat's splitResponse: [:1], [1:10], [10:]
        for part in (data[:1], data[1:10], data[10:]):
            if part:
                an.on_tcp_data(conn, from_client, part, ts)


@pytest.mark.parametrize("split", ["whole", "bytes", "three"])
@pytest.mark.parametrize("name", TCP_PAIRS)
def test_tcp_vector_pair(name: str, split: str) -> None:
    """A TCP query and response (length-prefixed), whole or in pieces, make the expected event."""
    v = VEC[name]
    an, events = make(**ALL_ON)
    conn = tcp_conn()
    _tcp_feed(an, conn, True, bytes.fromhex(v["request_hex"]), 1 * SECOND, split)
    _tcp_feed(an, conn, False, bytes.fromhex(v["response_hex"]), 2 * SECOND, split)
    an.flush(3 * SECOND)
    assert len(events) == 1
    _checked, failures = check_expected(events[0], v["expected"])
    assert failures == []


def test_tcp_two_messages_in_one_segment_with_trailing_junk() -> None:
    """Two messages in one segment are both decoded; a junk tail waits for more data and
    is dropped at FIN (noted on the pending query, as Packetbeat does)."""
    v = VEC["elasticATcp"]
    req = bytes.fromhex(v["request_hex"])
    an, events = make()
    conn = tcp_conn()
    second = bytearray(req)
    second[3] ^= 0xFF  # another ID
    an.on_tcp_data(conn, True, req + bytes(second), 1)
    assert an.stats()["pending"] == 2
    an.on_tcp_data(conn, False, bytes.fromhex(v["response_hex"]) + b"\x00\x10junk", 2)
    assert len(events) == 1 and events[0].get("status") == "OK"
    an.on_tcp_close(conn, False, 3)
    assert len(events) == 2
    assert events[1].get("error.message") == notes.response(notes.INCOMPLETE)


def test_tcp_response_only() -> None:
    """A TCP response without a query is an orphan with destination.bytes incl. the prefix."""
    an, events = make()
    an.on_tcp_data(tcp_conn(), False, bytes.fromhex(VEC["elasticATcp"]["response_hex"]), 1)
    assert events[0].get("error.message") == notes.ORPHANED_RESPONSE
    assert events[0].get("destination.bytes") == 201 and events[0].get("source.bytes") is None


def test_tcp_duplicate_request_split_over_segments() -> None:
    """The same query twice, the second split after 4 bytes, closes the first as a duplicate."""
    req = bytes.fromhex(VEC["elasticATcp"]["request_hex"])
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, req + req[:4], 1)
    an.on_tcp_data(conn, True, req[4:], 2)
    assert len(events) == 1 and events[0].get("error.message") == notes.DUPLICATE_QUERY
    assert events[0].get("source.bytes") == 30 and an.stats()["pending"] == 1


@pytest.mark.parametrize(
    "payload,note",
    [("00020102", notes.NON_DNS), ("00000102", notes.ZERO_LENGTH)],
)
def test_tcp_bad_response_publishes_the_query(payload: str, note: str) -> None:
    """A bad message on the response side publishes the connection's query with 'Response: ...'."""
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, bytes.fromhex(VEC["elasticATcp"]["request_hex"]), 1)
    an.on_tcp_data(conn, False, bytes.fromhex(payload), 2)
    assert len(events) == 1
    ev = events[0]
    assert ev.get("error.message") == notes.response(note) and ev.get("status") == "Error"
    assert ev.get("source.bytes") == 30 and ev.get("destination.bytes") is None


@pytest.mark.parametrize("name", ["tcp_nonDNS_request_decode", "tcp_zero_length_request"])
def test_tcp_bad_request_publishes_nothing(name: str) -> None:
    """Bad data on the request side is only counted."""
    an, events = make()
    an.on_tcp_data(tcp_conn(), True, bytes.fromhex(VEC[name]["request_hex"]), 1)
    an.flush(2)
    assert events == [] and an.stats()["tcp_errors"] == 1


def test_tcp_empty_and_malformed_requests() -> None:
    """Empty and garbage request streams publish nothing and leave nothing pending."""
    for hexdata in VEC["tcp_empty_and_malformed"]["request_hex_variants"]:
        an, events = make()
        an.on_tcp_data(tcp_conn(), True, bytes.fromhex(hexdata), 1)
        an.flush(2)
        assert events == [] and an.stats()["pending"] == 0


def test_tcp_fin_with_partial_response() -> None:
    """FIN on the response side with a partial message: the query is published as incomplete."""
    v = VEC["zoneAxfrTCP"]
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, bytes.fromhex(v["request_hex"]), 1)
    an.on_tcp_data(conn, False, bytes.fromhex(v["response_hex"])[:10], 2)
    an.on_tcp_close(conn, False, 3)
    assert len(events) == 1
    assert events[0].get("error.message") == notes.response(notes.INCOMPLETE)
    assert events[0].get("dns.answers") is None


def test_tcp_gap_in_response() -> None:
    """A gap inside a response publishes the query with 'Response: ... incomplete' right away."""
    v = VEC["sophosTxtTCP"]
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, bytes.fromhex(v["request_hex"]), 1)
    an.on_tcp_data(conn, False, bytes.fromhex(v["response_hex"])[:10], 2)
    an.on_tcp_gap(conn, False, 10, 3)
    assert len(events) == 1 and events[0].get("error.message") == notes.response(notes.INCOMPLETE)


def test_tcp_gap_in_request_and_between_messages() -> None:
    """A gap in a request drops it silently; a gap between messages changes nothing."""
    v = VEC["sophosTxtTCP"]
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, bytes.fromhex(v["request_hex"])[:10], 1)
    an.on_tcp_gap(conn, True, 10, 2)
    an.on_tcp_close(conn, True, 3)
    assert events == [] and an.stats()["pending"] == 0
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, bytes.fromhex(v["request_hex"]), 1)
    an.on_tcp_gap(conn, True, 10, 2)
    an.on_tcp_close(conn, False, 3)
    assert events == [] and an.stats()["pending"] == 1


def test_tcp_gap_resynchronises_on_next_message() -> None:
    """After a gap inside a message whose length is known, the next message is still decoded
    (an improvement: Packetbeat drops the rest of the stream)."""
    v = VEC["elasticATcp"]
    req, resp = bytes.fromhex(v["request_hex"]), bytes.fromhex(v["response_hex"])
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, req, 1)
    an.on_tcp_data(conn, False, resp[:50], 2)
    an.on_tcp_gap(conn, False, 40, 3)
    an.on_tcp_data(conn, False, resp[90:], 4)  # rest of the lost message
    an.on_tcp_data(conn, True, req[:3] + b"\x01" + req[4:], 5)  # a new query, other ID
    an.on_tcp_data(conn, False, resp[:3] + b"\x01" + resp[4:], 6)
    assert [e.get("status") for e in events] == ["Error", "OK"]


@pytest.mark.parametrize(
    "name,qtype,extra",
    [
        ("names_unhandledRR", "NXT", {}),
        ("names_unknownRR", "65280", {}),
        ("names_opt", "A", {"opt": {"version": "0", "do": True}}),
    ],
)
def test_single_message_vectors(name: str, qtype: str, extra: dict) -> None:
    """Decoding single messages: unhandled and unknown types, and the OPT record."""
    v = VEC[name]
    msg = parse_message(bytes.fromhex(v["message_hex"]))
    assert msg is not None and msg.error is None
    d = dns_fields(msg, msg.id, DomainParts(), True, True)
    assert d["question"]["type"] == qtype and d["question"]["name"] == v["expected"]["dns.question.name"]
    for key, want in extra.get("opt", {}).items():
        assert d["opt"][key] == want


def test_additionals_skip_opt() -> None:
    """OPT never appears in dns.additionals and is not counted; an MX beside it is."""
    import dns.message
    import dns.rrset

    m = dns.message.make_response(dns.message.make_query("miek.nl.", "MX", use_edns=0))
    m.additional.append(dns.rrset.from_text("miek.nl.", 3600, "IN", "MX", "10 mx.miek.nl."))
    msg = parse_message(m.to_wire())
    assert msg is not None
    d = dns_fields(msg, msg.id, DomainParts(), True, True)
    assert d["additionals_count"] == 1
    assert d["additionals"] == [
        {"name": "miek.nl", "type": "MX", "class": "IN", "ttl": "3600", "preference": 10, "data": "mx.miek.nl"}
    ]
