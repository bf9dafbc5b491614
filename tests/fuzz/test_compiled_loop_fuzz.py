"""Hostile captures through the compiled replay loop and DNS lane (pybeat/decode/_replay.pyx and protocols/dns/_fast.pyx).

Real Ethernet/IPv4/UDP DNS frames with bytes changed (headers, lengths, the DNS message), cut
short or grown, written as a classic pcap, some with broken record lengths: the compiled loop
never crashes and gives exactly what the Python loop gives (events, decoder and analyzer
counters), in one process and in each share of a split run.
"""

from __future__ import annotations

import struct

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode import Decoder
from tests.conftest import PCAPS
from tests.dns.dnstest import make
from tests.unit.test_replay_loop import loop_impl


def _frames() -> list[bytes]:
    out: list[bytes] = []
    for name in ("dns_udp_mixed.pcap", "packetbeat_vectors_udp.pcap"):
        path = PCAPS / name
        if path.exists():
            source = PcapFileSource(str(path))
            out += [f for _, link, f in source if link == 1][:150]
            source.close()
    return out or [bytes(60)]


FRAMES = _frames()


def _pcap(records: list[tuple[bytes, int | None]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, (frame, caplen) in enumerate(records):
        out.append(struct.pack("<IIII", 1_700_000_000 + i // 5, (i * 7919) % 1_000_000,
                               len(frame) if caplen is None else caplen, len(frame)))
        out.append(frame)
    return b"".join(out)


def _run(kind: str, path: str, shard: tuple[int, int] | None):
    an, events = make(ports=[53], send_request=True, send_response=True)
    an.render.shareable = True
    dec = Decoder({53: an}, {53: an}, shard=shard)
    source = PcapFileSource(path)
    try:
        finished = loop_impl(kind)(source, dec, lambda: False)
    finally:
        source.close()
    dec.flush()
    docs = [e.raw if e.raw is not None else orjson.dumps(e.fields) for e in events]
    stats = an.stats()
    assert stats["internal_errors"] == 0
    return finished, docs, dec.stats(), stats, source.packets, source.truncated_records


@st.composite
def _capture(draw):
    records = []
    for _ in range(draw(st.integers(1, 12))):
        frame = bytearray(draw(st.sampled_from(FRAMES)))
        for _ in range(draw(st.integers(0, 4))):
            action = draw(st.sampled_from(["flip", "flip_head", "cut", "grow"]))
            if action == "flip" and frame:
                frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
            elif action == "flip_head" and len(frame) > 14:
                # the IPv4 and UDP headers: version, lengths, flags, protocol, ports
                frame[draw(st.sampled_from([12, 13, 14, 16, 17, 20, 21, 23, 34, 35, 36, 37, 38, 39]))
                      % len(frame)] = draw(st.integers(0, 255))
            elif action == "cut":
                del frame[draw(st.integers(0, len(frame))):]
            else:
                frame += draw(st.binary(max_size=16))
        records.append((bytes(frame), None))
    if draw(st.booleans()):  # a last record whose length runs past the end of the file
        records.append((b"\x00" * 10, 4000))
    return _pcap(records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_capture(), st.sampled_from([None, (0, 2), (1, 2)]))
def test_hostile_captures_same_on_both_loops(tmp_path, data, shard):
    path = tmp_path / "hostile.pcap"
    path.write_bytes(data)
    assert _run("compiled", str(path), shard) == _run("python", str(path), shard)


def _udp_frame(payload: bytes, sport: int, dport: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, bytes(4), bytes(4))
    return bytes(12) + b"\x08\x00" + ip + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


@pytest.mark.parametrize("stamps", [(0, 0xFFFFFFFF), (0xFFFFFFFF, 0)], ids=["136-years-forward", "backward"])
def test_replay_passes_whose_times_leave_64_bits(tmp_path, stamps):
    """-l passes of a capture whose stamps span ~136 years (or run backwards) shift time past
    what 64 bits hold: the compiled loop hands the remaining passes to the Python loop, whose
    integers are unbounded, so the results stay the Python loop's (found in review)."""
    query = bytes.fromhex("1234010000010000000000000378797a0000010001")
    answer = bytes.fromhex("1234818000010001000000000378797a0000010001c00c000100010000012c00040a000001")
    records = [(stamps[0], _udp_frame(query, 40000, 53)), (stamps[0], _udp_frame(answer, 53, 40000)),
               (stamps[1], _udp_frame(query, 40001, 53))]
    path = tmp_path / "span.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"".join(
        struct.pack("<IIII", sec, 0, len(f), len(f)) + f for sec, f in records))

    def run(kind: str):
        an, events = make(ports=[53])
        an.render.shareable = True
        dec = Decoder({53: an})
        source = PcapFileSource(str(path))
        source.loops = 5
        try:
            assert loop_impl(kind)(source, dec, lambda: False) is True
        finally:
            source.close()
        dec.flush()
        return ([(e.timestamp_ns, e.raw or orjson.dumps(e.fields)) for e in events], dec.stats(), an.stats(),
                dec.now_ns, source.packets)

    assert run("compiled") == run("python")
