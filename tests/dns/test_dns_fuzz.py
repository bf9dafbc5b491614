"""Property and fuzz tests: random and mutated bytes never crash or hang the DNS plugin, and
its caps (name length, pointer chains, pending transactions, TCP buffers) hold."""

from __future__ import annotations

import struct

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PCAPS
from tests.dns.dnstest import SECOND, make, tcp_conn, udp
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.protocols.dns.domain import DomainParts
from pybeat.protocols.dns.event import dns_fields, message_string
from pybeat.protocols.dns.names import read_name
from pybeat.protocols.dns.errors import DnsFormError
from pybeat.protocols.dns.wire import parse_message

FUZZ = settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])
DOMAINS = DomainParts()


def _real_messages() -> list[bytes]:
    out: list[bytes] = []
    for name in ("dns_udp_mixed.pcap", "dns_dnssec.pcap", "mdns.pcap"):
        path = PCAPS / name
        if not path.exists():
            continue
        for _ts, _link, frame in PcapFileSource(str(path)):
            # Ethernet + IPv4/IPv6 + UDP, no VLANs in these files; good enough as a corpus.
            if len(frame) < 14:
                continue
            etype = struct.unpack_from("!H", frame, 12)[0]
            off = 14 + (20 if etype == 0x0800 else 40 if etype == 0x86DD else 10_000)
            if len(frame) > off + 8 and frame[off - 20 + 9 if etype == 0x0800 else off - 40 + 6] == 17:
                out.append(frame[off + 8 :])
    return out or [bytes.fromhex("21518180000100020000000007656c617374696302636f0000010001c00c000100010000003900043694821e")]


CORPUS = _real_messages()


def _render_all(payload: bytes, mdns: bool = False) -> None:
    m = parse_message(payload, mdns)
    if m is None:
        assert len(payload) < 12
        return
    assert not (m.error or "").startswith("internal"), m.error
    orjson.dumps(dns_fields(m, m.id, DOMAINS, True, True))
    message_string(m, m.id)


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_never_crash(payload: bytes, mdns: bool) -> None:
    """Random bytes decode to a message with an error, or to nothing, never an exception."""
    _render_all(payload, mdns)


@FUZZ
@given(st.sampled_from(CORPUS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=8))
def test_bit_flipped_real_messages(msg: bytes, flips: list[tuple[int, int]]) -> None:
    """Real messages with random bits flipped never crash the decoder or the event builder."""
    buf = bytearray(msg)
    for pos, bit in flips:
        buf[pos % len(buf)] ^= 1 << bit
    _render_all(bytes(buf))
    _render_all(bytes(buf), True)


@FUZZ
@given(st.sampled_from(CORPUS), st.integers(0, 10_000), st.binary(max_size=40))
def test_truncated_and_extended_real_messages(msg: bytes, cut: int, tail: bytes) -> None:
    """Real messages cut anywhere or followed by junk decode without exceptions."""
    _render_all(msg[: cut % (len(msg) + 1)])
    _render_all(msg + tail)


def _header(qd: int = 1, an: int = 0) -> bytes:
    return struct.pack("!6H", 0x1234, 0x0100, qd, an, 0, 0)


@pytest.mark.parametrize(
    "name_bytes",
    [
        b"\xc0\x0c",  # points at itself
        b"\x01a\xc0\x0c",  # label then a pointer back to the start of the same name
        b"\xc0\x0e\x01a\x00",  # forward pointer
        b"\x01a\xc0\x10\xc0\x0c",  # pointer to a pointer to the start: a loop
    ],
)
def test_pointer_loops_and_forward_pointers_rejected(name_bytes: bytes) -> None:
    """Compression pointers that loop or point forward are errors, not hangs."""
    m = parse_message(_header() + name_bytes + b"\x00\x01\x00\x01")
    assert m is not None and m.error is not None and not m.questions


def test_long_backward_pointer_chain_terminates() -> None:
    """A chain of 3000 pointers, each to the one before it, ends at the root (every hop moves
    backwards, so no chain can loop)."""
    buf = bytearray(b"\x00")  # the root name at offset 0
    prev = 0
    for _ in range(3000):
        here = len(buf)
        buf += struct.pack("!H", 0xC000 | prev)
        prev = here
    assert read_name(bytes(buf), prev) == (".", prev + 2)


def test_name_and_label_limits() -> None:
    """A 64-octet label and a name over 255 octets are errors; 63 and 255 are fine."""
    ok63 = b"\x3f" + b"a" * 63 + b"\x00"
    assert read_name(ok63, 0)[0] == "a" * 63
    with pytest.raises(DnsFormError):
        read_name(b"\x40" + b"a" * 64 + b"\x00", 0)
    long_ok = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"  # 255 octets on the wire
    assert len(long_ok) == 255 and read_name(long_ok, 0)[1] == 255
    with pytest.raises(DnsFormError):
        read_name((b"\x3f" + b"a" * 63) * 4 + b"\x00", 0)


def test_counts_larger_than_data() -> None:
    """Counts that promise more records than the message holds stop decoding quietly."""
    wire = bytes.fromhex("21518180000100090005000907656c617374696302636f0000010001c00c000100010000003900043694821e")
    m = parse_message(wire)
    assert m is not None and m.error is None and len(m.answers) == 1


@FUZZ
@given(st.lists(st.binary(min_size=12, max_size=80), min_size=1, max_size=60))
def test_pending_cap_holds_under_a_query_flood(payloads: list[bytes]) -> None:
    """With max_pending_transactions=5 the table never grows beyond 5; evictions are counted."""
    an, events = make(max_pending_transactions=5)
    sent = 0
    for i, p in enumerate(payloads):
        q = bytearray(p)
        q[2] &= 0x7F  # a query
        udp(an, i * 1000, "10.0.0.1", 1024 + i, "10.0.0.2", 53, bytes(q))
        sent += 1
        assert len(an.table) <= 5
    an.flush(10**12)
    assert an.stats()["pending"] == 0 and an.stats()["internal_errors"] == 0
    assert len(events) == sent  # every query published exactly once: duplicate, evicted or flushed


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["data", "gap", "close"]), st.booleans(), st.binary(max_size=300), st.integers(1, 70_000)),
        max_size=40,
    )
)
def test_tcp_streams_with_lying_length_prefixes(ops: list[tuple[str, bool, bytes, int]]) -> None:
    """Random TCP data, gaps and FINs in any order (length prefixes that lie included) never
    raise, and per-direction buffers stay below one maximum message plus one segment."""
    an, events = make()
    conn = tcp_conn()
    for i, (op, from_client, data, n) in enumerate(ops):
        if op == "data":
            an.on_tcp_data(conn, from_client, data, i)
        elif op == "gap":
            an.on_tcp_gap(conn, from_client, n, i)
        else:
            an.on_tcp_close(conn, from_client, i)
        if conn.state is not None:
            assert all(len(f.buf) <= 65_537 + 300 for f in conn.state.framers)
    an.flush(10**12)
    assert an.stats()["internal_errors"] == 0
    for ev in events:
        orjson.dumps(ev.fields)


@FUZZ
@given(st.sampled_from(CORPUS), st.integers(2, 60))
def test_tcp_real_message_in_random_pieces(msg: bytes, step: int) -> None:
    """A real message split into pieces of any size is decoded exactly once."""
    an, events = make()
    conn = tcp_conn()
    framed = struct.pack("!H", len(msg)) + msg
    for i in range(0, len(framed), step):
        an.on_tcp_data(conn, bool(msg[2] & 0x80) is False, framed[i : i + step], i)
    an.flush(10**12)
    assert len(events) == 1 or parse_message(msg) is None


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=200), st.booleans(), st.sampled_from([53, 5353]), st.integers(0, 3)), max_size=30))
def test_analyzer_with_random_datagrams(datagrams: list[tuple[bytes, bool, int, int]]) -> None:
    """Random datagrams in both directions, on port 53 and 5353, to unicast and multicast
    destinations: the analyzer never hits an internal error and every event is JSON."""
    an, events = make(ports=[53, 5353], include_authorities=True, include_additionals=True,
                      send_request=True, send_response=True)
    peers = ["10.0.0.1", "10.0.0.2", "224.0.0.251", "ff02::fb"]
    for i, (payload, to_server, port, peer) in enumerate(datagrams):
        other = peers[peer]
        if to_server:
            udp(an, i * SECOND // 4, "10.0.0.9", 40000 + (i % 3), other, port, payload)
        else:
            udp(an, i * SECOND // 4, other, port, "10.0.0.9", 40000 + (i % 3), payload)
    an.flush(10**12)
    assert an.stats()["internal_errors"] == 0 and an.stats()["pending"] == 0
    for ev in events:
        orjson.dumps(ev.fields)
