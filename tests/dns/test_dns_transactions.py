"""Pairing rules beyond Packetbeat's vectors: zone transfers in several TCP messages, timeouts
driven by packet time, the pending cap, mDNS queries/announcements and legacy unicast replies,
IDN names, and the request/response strings."""

from __future__ import annotations

import struct

import dns.message
import dns.rrset
import orjson

import pytest

from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode import Decoder
from tests.conftest import PCAPS, need
from tests.dns.dnstest import SECOND, make, tcp_conn, udp
from pybeat.protocols.dns import errors as notes


def _framed(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def _axfr(n_records: int, per_message: int) -> tuple[dns.message.Message, list[dns.message.Message]]:
    q = dns.message.make_query("big.test.", "AXFR")
    soa = dns.rrset.from_text("big.test.", 3600, "IN", "SOA", "ns.big.test. host.big.test. 7 60 60 60 60")
    recs = [soa] + [dns.rrset.from_text(f"h{i}.big.test.", 60, "IN", "A", f"192.0.2.{i % 250}") for i in range(n_records)] + [soa]
    msgs = []
    for i in range(0, len(recs), per_message):
        r = dns.message.make_response(q)
        r.answer = recs[i : i + per_message]
        msgs.append(r)
    return q, msgs


def test_axfr_in_several_messages_is_one_transaction() -> None:
    """An AXFR answered in 4 TCP messages is one event with every record and summed bytes,
    published when the closing SOA arrives (Packetbeat would report 3 orphans)."""
    q, msgs = _axfr(30, 8)
    assert len(msgs) == 4
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, _framed(q), 1 * SECOND)
    stream = b"".join(_framed(m) for m in msgs)
    an.on_tcp_data(conn, False, stream[:100], 2 * SECOND)
    an.on_tcp_data(conn, False, stream[100:], 3 * SECOND)
    assert len(events) == 1
    ev = events[0]
    assert ev.get("dns.answers_count") == 32 and ev.get("status") == "OK"
    assert ev.get("destination.bytes") == len(stream) and ev.get("error.message") is None
    assert an.stats()["unmatched_responses"] == 0


def test_axfr_cut_by_fin_is_published_with_what_arrived() -> None:
    """A transfer whose closing SOA never comes is published at FIN with the records so far."""
    q, msgs = _axfr(30, 8)
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, _framed(q), 1)
    an.on_tcp_data(conn, False, _framed(msgs[0]) + _framed(msgs[1]), 2)
    assert events == []
    an.on_tcp_close(conn, False, 3)
    assert len(events) == 1 and events[0].get("dns.answers_count") == 16


def test_incremental_ixfr_split_after_the_new_soa_marker() -> None:
    """An incremental IXFR split right after the new-serial SOA that opens the last diff's
    additions is not taken as complete; the final SOA completes it."""
    q = dns.message.make_query("big.test.", "IXFR")
    new = dns.rrset.from_text("big.test.", 3600, "IN", "SOA", "ns.big.test. host.big.test. 9 60 60 60 60")
    old = dns.rrset.from_text("big.test.", 3600, "IN", "SOA", "ns.big.test. host.big.test. 8 60 60 60 60")
    gone = dns.rrset.from_text("a.big.test.", 60, "IN", "A", "192.0.2.1")
    added = dns.rrset.from_text("b.big.test.", 60, "IN", "A", "192.0.2.2")
    part1, part2 = dns.message.make_response(q), dns.message.make_response(q)
    part1.answer = [new, old, gone, new]
    part2.answer = [added, new]
    an, events = make()
    conn = tcp_conn()
    an.on_tcp_data(conn, True, _framed(q), 1)
    an.on_tcp_data(conn, False, _framed(part1), 2)
    assert events == []
    an.on_tcp_data(conn, False, _framed(part2), 3)
    assert len(events) == 1 and events[0].get("dns.answers_count") == 6


def test_timeout_is_packet_time_and_expired_queries_do_not_pair() -> None:
    """A response arriving after transaction_timeout does not pair with the (expired) query:
    the query is published as unanswered and the response as an orphan."""
    an, events = make(transaction_timeout=2.0)
    q = dns.message.make_query("late.example.test.", "A")
    q.id = 77
    r = dns.message.make_response(q)
    udp(an, 0, "10.0.0.1", 5000, "10.0.0.53", 53, q.to_wire())
    udp(an, 2 * SECOND + 1, "10.0.0.53", 53, "10.0.0.1", 5000, r.to_wire())
    assert [e.get("error.message") for e in events] == [notes.NO_RESPONSE, notes.ORPHANED_RESPONSE]
    assert an.stats()["unmatched_requests"] == 1 and an.stats()["unmatched_responses"] == 1


def test_pending_cap_evicts_oldest_with_a_note() -> None:
    """With the cap reached, the oldest query is published (noted, counted) to make room."""
    an, events = make(max_pending_transactions=3)
    for i in range(5):
        q = dns.message.make_query(f"q{i}.example.test.", "A")
        udp(an, i, "10.0.0.1", 6000 + i, "10.0.0.53", 53, q.to_wire())
    assert len(an.table) == 3 and an.stats()["evicted"] == 2
    assert [e.get("dns.question.name") for e in events] == ["q0.example.test", "q1.example.test"]
    assert events[0].get("error.message") == [notes.EVICTED, notes.NO_RESPONSE]


def _mdns_query(name: str, qu: bool = False) -> bytes:
    q = dns.message.make_query(name, "PTR")
    q.id = 0
    q.flags = 0
    wire = bytearray(q.to_wire())
    if qu:
        wire[-2] |= 0x80  # QU bit: top bit of the question class
    return bytes(wire)


def _mdns_answer(name: str, target: str, flush: bool = True) -> bytes:
    r = dns.message.Message(id=0)
    r.flags = 0x8400
    r.answer.append(dns.rrset.from_text(name, 120, "IN", "PTR", target))
    wire = bytearray(r.to_wire())
    if flush:
        cls_at = 12 + len(dns.name.from_text(name).to_wire()) + 2
        wire[cls_at] |= 0x80
    return bytes(wire)


def test_mdns_query_and_announcement_are_separate_ok_events() -> None:
    """A multicast query and a multicast answer are each one event, status OK, no notes."""
    an, events = make(ports=[5353])
    udp(an, 1, "10.99.2.2", 5353, "224.0.0.251", 5353, _mdns_query("_http._tcp.local.", qu=True))
    udp(an, 2, "10.99.2.1", 5353, "224.0.0.251", 5353, _mdns_answer("_http._tcp.local.", "web._http._tcp.local."))
    an.flush(3)
    assert [e.get("dns.type") for e in events] == ["query", "answer"]
    assert all(e.get("status") == "OK" and e.get("error.message") is None for e in events)
    assert events[0].get("dns.question.unicast_response") is True
    assert events[0].get("dns.question.class") == "IN"
    ans = events[1].get("dns.answers")[0]
    assert ans["cache_flush"] is True and ans["class"] == "IN"
    assert events[1].get("source.ip") == "10.99.2.1" and events[1].get("network.direction") == "ingress"
    assert an.stats()["unmatched_requests"] == 0 and an.stats()["unmatched_responses"] == 0


def test_mdns_legacy_unicast_query_pairs_with_reply_from_responder() -> None:
    """A one-shot query from an ephemeral port to the group pairs with the unicast reply that
    comes from the responder's own address."""
    an, events = make(ports=[5353])
    q = dns.message.make_query("alpha.local.", "A")
    q.id = 4242
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("alpha.local.", 10, "IN", "A", "10.99.2.1"))
    udp(an, 1, "10.99.2.2", 40000, "224.0.0.251", 5353, q.to_wire())
    udp(an, 2, "10.99.2.1", 5353, "10.99.2.2", 40000, r.to_wire())
    assert len(events) == 1
    ev = events[0]
    assert ev.get("status") == "OK" and ev.get("dns.resolved_ip") == ["10.99.2.1"]
    assert ev.get("source.port") == 40000 and ev.get("event.duration") == 1


def test_mdns_off_pairs_like_packetbeat() -> None:
    """With mdns: false, port 5353 behaves like Packetbeat: answers to the group are orphans."""
    an, events = make(ports=[5353], mdns=False)
    udp(an, 1, "10.99.2.1", 5353, "224.0.0.251", 5353, _mdns_answer("_http._tcp.local.", "x._http._tcp.local.", False))
    assert events[0].get("error.message") == notes.ORPHANED_RESPONSE


def test_idn_and_strings_and_json() -> None:
    """Punycode names get dns.question.name_unicode; request/response strings follow
    Packetbeat's format; every event serialises to JSON."""
    an, events = make(send_request=True, send_response=True)
    q = dns.message.make_query("xn--pple-9na.com.", "MX")
    q.id = 9
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("xn--pple-9na.com.", 300, "IN", "MX", "10 mx.xn--pple-9na.com."))
    udp(an, 1, "10.0.0.1", 5001, "10.0.0.53", 53, q.to_wire())
    udp(an, 2, "10.0.0.53", 53, "10.0.0.1", 5001, r.to_wire())
    ev = events[0]
    assert ev.get("dns.question.name") == "xn--pple-9na.com"
    assert ev.get("dns.question.name_unicode") == "âpple.com"
    assert ev.get("request") == "ID 9; QR query; OPCODE QUERY; FLAGS rd; RCODE NOERROR; QUESTION class IN, type MX, xn--pple-9na.com"
    assert ev.get("response").endswith("; ANSWER mx.xn--pple-9na.com")
    orjson.dumps(ev.fields)


def test_events_are_independent_copies() -> None:
    """Two events built from the same cached message do not share mutable parts."""
    an, events = make()
    q = dns.message.make_query("same.example.test.", "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("same.example.test.", 60, "IN", "A", "192.0.2.1"))
    for port in (7001, 7002):
        udp(an, port, "10.0.0.1", port, "10.0.0.53", 53, q.to_wire())
        udp(an, port + 1, "10.0.0.53", 53, "10.0.0.1", port, r.to_wire())
    assert an.stats()["message_cache_hits"] == 2
    events[0].fields["dns"]["answers"][0]["data"] = "changed"
    events[0].fields["dns"]["question"]["name"] = "changed"
    assert events[1].get("dns.answers")[0]["data"] == "192.0.2.1"
    assert events[1].get("dns.question.name") == "same.example.test"


@pytest.mark.parametrize("capture", ["dns_udp_mixed.pcap", "dns_tcp.pcap", "dns_tunnel_iodine.pcap"])
def test_split_across_processes_by_flow_and_id(capture: str) -> None:
    """With the decoder split in 3 shards (packetbeat.workers), shard_key (the DNS ID) keeps
    every query with its response: the shards together publish what one process does."""
    pcap = PCAPS / capture
    need(pcap.exists(), f"capture {pcap}")
    frames = list(PcapFileSource(str(pcap)))

    def run(shard: tuple[int, int] | None) -> list[tuple]:
        an, events = make()
        dec = Decoder(udp_ports={53: an}, tcp_ports={53: an}, shard=shard)
        for ts, link, frame in frames:
            dec.decode(ts, link, frame)
        dec.flush()
        return [(e.get("client.port"), e.get("dns.id"), e.get("status"), str(e.get("error.message"))) for e in events]

    whole = sorted(run(None))
    split = sorted(x for i in range(3) for x in run((i, 3)))
    assert split == whole


def test_malformed_udp_response_is_paired_and_noted() -> None:
    """A response cut off mid-record still pairs with its query (by ID) and carries
    'Response: Message's data could not be decoded as DNS'; what was read is kept."""
    an, events = make()
    q = dns.message.make_query("cut.example.test.", "A")
    q.id = 5
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("cut.example.test.", 60, "IN", "A", "192.0.2.7"))
    r.answer.append(dns.rrset.from_text("cut.example.test.", 60, "IN", "TXT", '"hello"'))
    wire = r.to_wire()
    udp(an, 1, "10.0.0.1", 5002, "10.0.0.53", 53, q.to_wire())
    udp(an, 2, "10.0.0.53", 53, "10.0.0.1", 5002, wire[:-3])
    ev = events[0]
    assert ev.get("error.message") == notes.response(notes.NON_DNS)
    assert ev.get("dns.resolved_ip") == ["192.0.2.7"] and ev.get("dns.answers_count") == 1
    assert ev.get("status") == "OK" and an.stats()["malformed"] == 1


def test_header_only_message_is_valid() -> None:
    """A 12-byte message with all counts zero is valid DNS (no note), unlike in Packetbeat."""
    an, events = make()
    udp(an, 1, "10.0.0.1", 5003, "10.0.0.53", 53, struct.pack("!6H", 0x1111, 0x0100, 0, 0, 0, 0))
    udp(an, 2, "10.0.0.53", 53, "10.0.0.1", 5003, struct.pack("!6H", 0x1111, 0x8101, 0, 0, 0, 0))
    assert len(events) == 1
    assert events[0].get("error.message") is None and events[0].get("dns.response_code") == "FORMERR"
    assert an.stats()["malformed"] == 0


def test_report_malformed_false_drops_like_packetbeat() -> None:
    """With report_malformed: false a malformed UDP message is only counted; over TCP a bad
    response publishes the query with Packetbeat's 'Response: ...' note."""
    an, events = make(report_malformed=False)
    bad = struct.pack("!6H", 0x2222, 0x0100, 1, 0, 0, 0) + b"\x05abc"
    udp(an, 1, "10.0.0.1", 5004, "10.0.0.53", 53, bad)
    an.flush(2)
    assert events == [] and an.stats()["malformed"] == 1
    an, events = make(report_malformed=False)
    conn = tcp_conn()
    q = dns.message.make_query("t.example.test.", "A")
    an.on_tcp_data(conn, True, _framed(q), 1)
    bad_resp = struct.pack("!6H", q.id, 0x8180, 1, 0, 0, 0) + b"\x05abc"
    an.on_tcp_data(conn, False, struct.pack("!H", len(bad_resp)) + bad_resp, 2)
    assert [e.get("error.message") for e in events] == [notes.response(notes.NON_DNS)]


def _many_clients() -> list[tuple[int, int, bytes]]:
    """40 clients, each asking 3 questions from 3 ports, and the answers (Ethernet frames)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frames = []
    ts = SECOND
    for c in range(40):
        for k in range(3):
            q = dns.message.make_query(f"q{k}.client{c}.example.test.", "A")
            q.id = (c * 7 + k) & 0xFFFF
            r = dns.message.make_response(q)
            client, port = f"10.1.{c // 200}.{c % 200 + 1}", 40000 + k
            for src, sport, dst, dport, msg in ((client, port, "10.9.9.9", 53, q), ("10.9.9.9", 53, client, port, r)):
                frames.append((ts, 1, bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / msg.to_wire())))
                ts += 1_000_000
    return frames


@pytest.mark.parametrize("capture", ["dns_udp_mixed.pcap", "dns_tcp.pcap", "dns_vlan.pcap", "many clients"])
def test_split_by_address_pair_keeps_each_client_in_one_process(capture: str) -> None:
    """``split_by="address_pair"`` (for detectors that keep per-client state): the shards
    together publish every transaction exactly once, and all transactions between one client
    and one server are published by one shard."""
    if capture == "many clients":
        frames = _many_clients()
    else:
        pcap = PCAPS / capture
        need(pcap.exists(), f"capture {pcap}")
        frames = list(PcapFileSource(str(pcap)))

    def run(shard: tuple[int, int] | None) -> list[tuple]:
        an, events = make()
        dec = Decoder(udp_ports={53: an}, tcp_ports={53: an}, shard=shard, split_by="address_pair")
        for ts, link, frame in frames:
            dec.decode(ts, link, frame)
        dec.flush()
        return [(e.get("client.ip"), e.get("server.ip"), e.get("client.port"), e.get("dns.id"), e.get("status"),
                 str(e.get("error.message"))) for e in events]

    whole = run(None)
    shares = [run((i, 3)) for i in range(3)]
    assert sorted(x for share in shares for x in share) == sorted(whole)
    owner: dict[frozenset, int] = {}
    for i, share in enumerate(shares):
        for client, server, *_ in share:
            assert owner.setdefault(frozenset((client, server)), i) == i, (client, server)
    if capture == "many clients":
        assert len(whole) == 120 and all(len(share) >= 20 for share in shares)  # the pairs do spread
