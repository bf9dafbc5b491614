"""The compiled extensions (pybeat/decode/_replay.pyx, protocols/dns/_fast.pyx) against the
Python code they mirror.

- ``DnsFastParser`` (the usual messages parsed and rendered in one walk) gives, for every DNS
  message of every shared capture and for generated and mutated ones, either None (the Python
  parser then decodes the message) or a Message equal to ``parse_message``'s, field by field
  and key order included, whose memoised JSON parts are byte for byte what event.py renders.
- The compiled replay loop splits a run across worker processes exactly as the Python one
  (``Decoder._mine``), and gives the same events and counters in each share.
- Its split hash and common-frame test are the decoder's (``split_hash``, ``common_udp4``).

The whole-agent comparisons (documents in order and every metric, on every capture, compiled
loop against the Python loop and against the generator loop) are in
tests/unit/test_replay_loop.py and tests/dns/test_dns_udp4_inline.py.
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybeat.api import Analyzer, Packet
from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode import Decoder
from pybeat.protocols.dns.event import dns_fields, dns_json, head_json, message_json, resolved_json
from pybeat.protocols.dns.wire import parse_message
from tests.conftest import PCAPS, need
from tests.dns.dnstest import make
from tests.unit.test_replay_loop import loop_impl

from pybeat.protocols.dns.wire import Message  # noqa: E402

# every slot of a Message but the record sections and the memo (compared on their own)
SLOTS = tuple(s for s in Message.__slots__ if s not in ("answers", "authorities", "additionals", "parts"))
CONFIGS = [(True, True), (False, False), (True, False)]



def _speedups():
    """The compiled modules' test entry points (format_template, split_hash_of, common_udp4_of)."""
    import types

    try:
        import pybeat.decode._replay as loop
        import pybeat.protocols.dns._fast as fast
    except ImportError:
        loop = fast = None
    need(fast is not None, "the compiled extensions pybeat.decode._replay, pybeat.protocols.dns._fast (pip install -e .)")
    return types.SimpleNamespace(format_template=fast.format_template, split_hash_of=loop.split_hash_of,
                                 common_udp4_of=loop.common_udp4_of)


def _parser(authorities: bool, additionals: bool):
    _speedups()
    an, _ = make(include_authorities=authorities, include_additionals=additionals)
    parser = an.fast_parser()
    assert parser is not None
    return an, parser


def _records(section):
    return [None if r is None else [(k, type(v), v) for k, v in r.items()] for r in section]


def check_same(data: bytes, an, parser) -> bool:
    """The compiled parse of ``data`` equals the Python one (or is None); True if it parsed."""
    fast = parser.parse(data)
    if fast is None:
        return False
    slow = parse_message(data)
    assert slow is not None
    for slot in SLOTS:
        assert getattr(fast, slot) == getattr(slow, slot), slot
        assert type(getattr(fast, slot)) is type(getattr(slow, slot)), slot
    for section in ("answers", "authorities", "additionals"):
        assert type(getattr(fast, section)) is tuple
        assert _records(getattr(fast, section)) == _records(getattr(slow, section)), section
    parts = fast.parts
    assert (parts.fields, parts.text, parts.copy_plan, parts.head) == (None, None, None, None)
    auth, add = an.render.include_authorities, an.render.include_additionals
    # a query's dns.* is rendered when it is needed (by event.py, from the Message)
    assert parts.dns_json == (dns_json(slow, an.domains, auth, add) if fast.qr else None)
    assert dns_json(fast, an.domains, auth, add) == dns_json(slow, an.domains, auth, add)
    assert parts.text_json == message_json(slow)
    assert parts.head_json == head_json(slow)
    assert parts.resolved_json == resolved_json(slow)
    # and the dict path renders the compiled Message as it renders the Python one
    assert dns_fields(fast, 7, an.domains, auth, add) == dns_fields(slow, 7, an.domains, auth, add)
    return True


class _Collect(Analyzer):
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        self.payloads.append(payload)


def _messages(name: str) -> list[bytes]:
    pcap = PCAPS / name
    need(pcap.exists(), f"capture {pcap} missing")
    c = _Collect()
    dec = Decoder({53: c, 5353: c, 5355: c})
    source = PcapFileSource(str(pcap))
    try:
        for ts, link, frame in source:
            dec.decode(ts, link, frame)
    finally:
        source.close()
    return c.payloads


ALL_DNS = [
    "dns_udp_mixed.pcap", "dns_dnssec.pcap", "mdns.pcap", "dns_linux_sll.pcap", "dns_linux_sll2.pcap",
    "dns_vlan.pcap", "dns_ip_fragments.pcap", "packetbeat_vectors_udp.pcap", "dns_tunnel_iodine.pcap",
    "dns_bulk_100k.pcap",
]


def test_split_hash_is_the_decoders():
    """The compiled loop's split hash is decoder.split_hash (zlib's CRC-32 on both sides)."""
    from pybeat.decode.decoder import split_hash

    sp = _speedups()
    rnd = random.Random(7)
    for _ in range(2000):
        src, dst = rnd.randbytes(4), rnd.randbytes(4)
        sport, dport, key = rnd.randrange(65536), rnd.randrange(65536), rnd.choice([0, rnd.randrange(2**32)])
        assert sp.split_hash_of(src, sport, dst, dport, key) == split_hash(src, sport, dst, dport, key)


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=0, max_size=80), st.integers(0, 79), st.integers(0, 255))
def test_common_frame_test_is_the_decoders(frame, pos, value):
    """The compiled loop's common Ethernet/IPv4/UDP frame test is decoder.common_udp4."""
    from pybeat.decode.decoder import common_udp4

    sp = _speedups()
    base = bytearray(bytes(12) + b"\x08\x00\x45\x00\x00\x30" + bytes(5) + b"\x11" + bytes(26))
    base += frame
    if pos < len(base):
        base[pos] = value
    data = bytes(base)
    assert sp.common_udp4_of(data) == common_udp4(data, len(data))
    assert sp.common_udp4_of(frame) == common_udp4(frame, len(frame))


@pytest.mark.parametrize("config", CONFIGS, ids=["all", "no-sections", "authorities"])
@pytest.mark.parametrize("name", ALL_DNS)
def test_parser_equals_the_python_parser_on_every_capture(name, config):
    an, parser = _parser(*config)
    messages = list(dict.fromkeys(_messages(name)))  # each distinct message once
    parsed = sum(check_same(m, an, parser) for m in messages)
    if name == "dns_bulk_100k.pcap":
        # the usual messages take the compiled path (else the speed-up silently goes away)
        assert parsed >= 0.99 * len(messages), (parsed, len(messages))


# -- generated messages: dnspython builds them, with names, text and types that the compiled
# subset must either render exactly or leave to the Python parser --------------------------

dns = pytest.importorskip("dns")
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rdataclass  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rdtypes.ANY.CNAME  # noqa: E402
import dns.rdtypes.ANY.MX  # noqa: E402
import dns.rdtypes.ANY.NS  # noqa: E402
import dns.rdtypes.ANY.PTR  # noqa: E402
import dns.rdtypes.ANY.SOA  # noqa: E402
import dns.rdtypes.ANY.TXT  # noqa: E402
import dns.rdtypes.IN.A  # noqa: E402
import dns.rdtypes.IN.AAAA  # noqa: E402
import dns.rdtypes.IN.SRV  # noqa: E402
import dns.rrset  # noqa: E402

# mostly plain label bytes, some that need escaping, punycode prefixes, upper case
_LABEL_BYTES = st.tuples(
    st.integers(0, 40),
    st.sampled_from(b"abcdefghijklmnopqrstuvwxyz0123456789-_ABCXYZ"),
    st.sampled_from(b". '@;()\"\\\x00\x7f\xff\xe9"),
).map(lambda t: t[2] if t[0] == 0 else t[1])  # one byte in 41 needs escaping
_LABEL = st.one_of(
    st.lists(_LABEL_BYTES, min_size=1, max_size=12).map(bytes),
    st.sampled_from([b"xn--bcher-kva", b"XN--ab", b"n--x", b"www", b"example", b"com", b"co", b"uk", b"test"]),
)
_NAME = st.lists(_LABEL, min_size=0, max_size=5).map(lambda labels: dns.name.Name([*labels, b""]))
_TXT = st.lists(st.binary(max_size=8) | st.sampled_from([b"v=spf1 -all", b'a"b', b"c\\d", b""]), min_size=1, max_size=3)
_IN = dns.rdataclass.IN


@st.composite
def _rdata(draw):
    kind = draw(st.sampled_from(["A", "AAAA", "AAAA4", "CNAME", "NS", "PTR", "MX", "SOA", "TXT", "SRV", "CH"]))
    if kind == "A":
        return dns.rdatatype.A, dns.rdtypes.IN.A.A(_IN, dns.rdatatype.A, str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))))
    if kind in ("AAAA", "AAAA4"):
        value = draw(st.integers(0, 2**128 - 1))
        if kind == "AAAA4":
            value = (0xFFFF << 32) | (value & 0xFFFFFFFF) if draw(st.booleans()) else value & 0xFFFF
        return dns.rdatatype.AAAA, dns.rdtypes.IN.AAAA.AAAA(_IN, dns.rdatatype.AAAA, str(ipaddress.IPv6Address(value)))
    if kind in ("CNAME", "NS", "PTR"):
        rdtype = dns.rdatatype.from_text(kind)
        cls = {"CNAME": dns.rdtypes.ANY.CNAME.CNAME, "NS": dns.rdtypes.ANY.NS.NS, "PTR": dns.rdtypes.ANY.PTR.PTR}[kind]
        return rdtype, cls(_IN, rdtype, draw(_NAME))
    if kind == "MX":
        return dns.rdatatype.MX, dns.rdtypes.ANY.MX.MX(_IN, dns.rdatatype.MX, draw(st.integers(0, 65535)), draw(_NAME))
    if kind == "SOA":
        nums = [draw(st.integers(0, 2**32 - 1)) for _ in range(5)]
        return dns.rdatatype.SOA, dns.rdtypes.ANY.SOA.SOA(_IN, dns.rdatatype.SOA, draw(_NAME), draw(_NAME), *nums)
    if kind == "TXT":
        return dns.rdatatype.TXT, dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, draw(_TXT))
    if kind == "SRV":
        p, w, port = (draw(st.integers(0, 65535)) for _ in range(3))
        return dns.rdatatype.SRV, dns.rdtypes.IN.SRV.SRV(_IN, dns.rdatatype.SRV, p, w, port, draw(_NAME))
    # a type outside the subset
    return dns.rdatatype.HINFO, dns.rdata.from_text(_IN, dns.rdatatype.HINFO, '"cpu" "os"')


@st.composite
def _edns_options(draw) -> list:
    import dns.edns

    options = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["cookie", "ecs", "nsid", "padding", "ede", "expire", "other"]))
        if kind == "cookie":
            options.append(dns.edns.GenericOption(10, draw(st.binary(min_size=8, max_size=24))))
        elif kind == "ecs":
            options.append(dns.edns.ECSOption(draw(st.sampled_from(["192.0.2.0", "2001:db8::"])),
                                              draw(st.integers(0, 24))))
        elif kind == "nsid":
            options.append(dns.edns.GenericOption(3, draw(st.binary(max_size=6))))
        elif kind == "padding":
            options.append(dns.edns.GenericOption(12, bytes(draw(st.integers(0, 12)))))
        elif kind == "ede":
            options.append(dns.edns.EDEOption(draw(st.integers(0, 30)),
                                              draw(st.sampled_from([None, "blocked", 'say "hi"', "a\\b"]))))
        elif kind == "expire":
            options.append(dns.edns.GenericOption(9, draw(st.binary(max_size=5))))
        else:
            options.append(dns.edns.GenericOption(draw(st.integers(16, 65000)), draw(st.binary(max_size=4))))
    return options


@st.composite
def _message(draw) -> bytes:
    qname = draw(_NAME)
    qtype = draw(st.sampled_from([1, 28, 5, 2, 12, 15, 6, 16, 33, 255, 65, 64000]))
    edns = draw(st.booleans())
    if edns:
        query = dns.message.make_query(qname, qtype, use_edns=0, want_dnssec=draw(st.booleans()),
                                       payload=draw(st.sampled_from([512, 1232, 4096])),
                                       options=draw(_edns_options()))
    else:
        query = dns.message.make_query(qname, qtype, use_edns=False)
    query.id = draw(st.integers(0, 65535))
    if not draw(st.booleans()):
        return query.to_wire()
    msg = dns.message.make_response(query)
    if edns and draw(st.booleans()):  # the answer's own EDNS: flags, size, options
        msg.use_edns(0, dns.flags.DO if draw(st.booleans()) else 0, draw(st.sampled_from([512, 1232])),
                     options=draw(_edns_options()))
    msg.flags |= draw(st.sampled_from([0, dns.flags.AA, dns.flags.RA | dns.flags.AD, dns.flags.TC | dns.flags.CD]))
    msg.set_rcode(draw(st.sampled_from([0, 2, 3, 5])))
    for section in (msg.answer, msg.authority, msg.additional):
        for _ in range(draw(st.integers(0, 3))):
            rdtype, rd = draw(_rdata())
            owner = draw(st.one_of(st.just(qname), _NAME))
            rrset = dns.rrset.RRset(owner, _IN, rdtype)
            rrset.add(rd, draw(st.integers(0, 2**31 - 1)))
            section.append(rrset)
    return msg.to_wire(max_size=65535)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_parser_equals_the_python_parser_on_generated_messages(data):
    an, parser = _parser(*data.draw(st.sampled_from(CONFIGS)))
    try:
        wire = data.draw(_message())
    except dns.exception.DNSException:  # a generated name too long for the wire: not a message
        return
    check_same(wire, an, parser)


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_parser_equals_the_python_parser_on_damaged_messages(data):
    """Real messages with bytes changed, cut short or extended: None or the Python result."""
    an, parser = _parser(True, True)
    base = data.draw(st.sampled_from(_sample_messages()))
    wire = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "grow"]))
        if action == "flip" and wire:
            wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del wire[data.draw(st.integers(0, len(wire))):]
        else:
            wire += data.draw(st.binary(max_size=8))
    check_same(bytes(wire), an, parser)


_SAMPLE: list[bytes] = []


def _sample_messages() -> list[bytes]:
    if not _SAMPLE:
        for name in ("dns_udp_mixed.pcap", "packetbeat_vectors_udp.pcap"):
            _SAMPLE.extend(dict.fromkeys(_messages(name)))
        bulk = list(dict.fromkeys(_messages("dns_bulk_100k.pcap")))
        _SAMPLE.extend(random.Random(3).sample(bulk, 300))
    return _SAMPLE


# -- the split across worker processes ---------------------------------------------------------


def _share(kind: str, index: int, pcap: Path, split_by: str = "flow"):
    an, events = make()
    an.render.shareable = True  # pre-encoded events, as in a run without processors
    dec = Decoder({53: an}, {53: an}, shard=(index, 2), split_by=split_by)
    source = PcapFileSource(str(pcap))
    try:
        assert loop_impl(kind)(source, dec, lambda: False) is True
    finally:
        source.close()
    dec.flush()
    docs = [(e.timestamp_ns, e.raw, e.digest) if e.raw is not None else (e.timestamp_ns, orjson.dumps(e.fields))
            for e in events]
    return docs, dec.stats(), an.stats()


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("name", ["dns_bulk_100k.pcap", "dns_udp_mixed.pcap"])
def test_split_across_workers_is_the_pythons(name, index):
    _speedups()
    pcap = PCAPS / name
    need(pcap.exists(), f"capture {pcap} missing")
    compiled = _share("compiled", index, pcap)
    python = _share("python", index, pcap)
    assert compiled[1]["skipped_other_shard"] > 0
    assert compiled == python


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("name", ["dns_bulk_100k.pcap", "dns_udp_mixed.pcap", "many clients"])
def test_address_pair_split_is_the_pythons(name, index, tmp_path):
    """The same with ``split_by="address_pair"`` (the two addresses alone decide)."""
    _speedups()
    if name == "many clients":
        from scapy.utils import wrpcap
        from scapy.layers.l2 import Ether
        from tests.dns.test_dns_transactions import _many_clients

        pcap = tmp_path / "many.pcap"
        packets = []
        for ts, _link, frame in _many_clients():
            pkt = Ether(frame)
            pkt.time = ts / 1e9
            packets.append(pkt)
        wrpcap(str(pcap), packets)
    else:
        pcap = PCAPS / name
    need(pcap.exists(), f"capture {pcap} missing")
    compiled = _share("compiled", index, pcap, "address_pair")
    python = _share("python", index, pcap, "address_pair")
    assert compiled == python


# -- the lane's %-template filler ----------------------------------------------------------------

_PIECE = st.binary(max_size=6).map(lambda b: b.replace(b"%", b"%%"))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_PIECE, st.sampled_from(["d", "b", "%", "s"]),
                          st.one_of(st.integers(-5, 2**40), st.binary(max_size=5), st.booleans())), max_size=8),
       _PIECE)
def test_template_filler_is_percent_formatting(specs, tail):
    sp = _speedups()
    tmpl = b"".join(piece + (b"%" + kind.encode() if kind != "%" else b"%%") for piece, kind, _ in specs) + tail
    args = tuple(arg for _, kind, arg in specs if kind != "%")
    try:
        expected = tmpl % args
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            sp.format_template(tmpl, args)
        return
    assert sp.format_template(tmpl, args) == expected


def test_template_filler_with_numbers_beyond_64_bits():
    sp = _speedups()
    for value in (2**63 - 1, 2**63, 2**70, -(2**63), -1):
        assert sp.format_template(b"x%dy%b", (value, b"z")) == b"x%dy%b" % (value, b"z")


def test_template_filler_on_the_dns_templates():
    """The real templates (every send_request/send_response shape) with real-looking values."""
    sp = _speedups()
    for req in (True, False):
        for resp in (True, False):
            an, _ = make(send_request=req, send_response=resp)
            for answered in (True, False):
                head = an.render.envelope.raw_head("dns", "udp", "10.0.0.1", 53000, "10.0.0.2", 53, answered=answered)
                tmpl = head + (an.render.answer_tail if answered else an.render.query_tail)[0]
                n = tmpl.replace(b"%%", b"").count(b"%")
                kinds = [tmpl.replace(b"%%", b"")[i + 1:i + 2] for i in range(len(tmpl.replace(b"%%", b"")))
                         if tmpl.replace(b"%%", b"")[i:i + 1] == b"%"]
                assert len(kinds) == n
                args = tuple(12345 if k == b"d" else b'"x",1' for k in kinds)
                assert sp.format_template(tmpl, args) == tmpl % args


def test_lane_objects_are_the_pythons():
    """The lane creates transactions and events with their classes' __new__ and sets every
    slot itself: the same values as the classes' own __init__ would give."""
    _speedups()
    from pybeat.api import Event
    from pybeat.protocols.dns.pairing import Txn as _Txn

    pcap = PCAPS / "dns_udp_mixed.pcap"
    need(pcap.exists(), f"capture {pcap} missing")
    an, events = make()
    an.render.shareable = True
    dec = Decoder({53: an}, {53: an})
    source = PcapFileSource(str(pcap))
    seen: list[_Txn] = []
    original = an.table.pending.__class__.__setitem__

    class Spy(type(an.table.pending)):
        def __setitem__(self, key, txn):
            seen.append(txn)
            original(self, key, txn)

    an.table.pending = Spy()
    lane = an.udp4_lane()  # built on the spied table
    assert lane is not None
    an.udp4_lane = lambda: lane
    try:
        assert loop_impl("compiled")(source, dec, lambda: False) is True
    finally:
        source.close()
    assert seen and events
    for txn in seen:
        ref = _Txn(txn.ts, txn.src_ip, txn.src_port, txn.dst_ip, txn.dst_port, txn.transport)
        for slot in _Txn.__slots__:
            if slot in ("request", "req_id", "responses", "resp_id", "resp_ts", "notes"):
                getattr(txn, slot)  # set (later steps change these)
            else:
                assert getattr(txn, slot) == getattr(ref, slot), slot
    for e in events:
        if e.raw is not None:
            ref = Event(e.timestamp_ns, None, raw=e.raw, digest=e.digest)
            for slot in Event.__slots__:
                assert getattr(e, slot) == getattr(ref, slot), slot
