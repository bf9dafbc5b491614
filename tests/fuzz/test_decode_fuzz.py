"""Random and mutated bytes at the decoding layer never raise and never hang."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from pybeat.capture.pcapfile import PcapFileSource
from pybeat.decode import Decoder
from tests.conftest import PCAPS
from tests.unit.recorder import Recorder

LINKS = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]


def _decoder():
    rec = Recorder()
    ports = {53: rec, 5353: rec, 67: rec, 68: rec}
    return Decoder(ports, ports, rec)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(LINKS), st.binary(max_size=300))
def test_random_frames(link, data):
    dec = _decoder()
    dec.decode(1, link, data)
    dec.flush()


def _real_frames(limit=200):
    frames = []
    for name in ("dns_tcp.pcap", "dns_ip_fragments.pcap", "dns_vlan.pcap", "dns_linux_sll2.pcap", "icmp.pcap"):
        path = PCAPS / name
        if path.exists():
            frames += [(link, f) for _, link, f in PcapFileSource(str(path))][:limit]
    return frames or [(1, b"\x00" * 60)]


FRAMES = _real_frames()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(FRAMES) - 1), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=8),
       st.integers(0, 2000))
def test_mutated_real_frames(index, flips, cut):
    link, frame = FRAMES[index]
    buf = bytearray(frame)
    for pos, value in flips:
        if buf:
            buf[pos % len(buf)] = value
    dec = _decoder()
    dec.decode(1, link, bytes(buf[: max(cut, 14)]))
    dec.decode(2, link, bytes(buf))
    dec.flush()


def test_a_whole_capture_with_every_byte_flipped_in_turn_does_not_raise():
    frames = FRAMES[:40]
    dec = _decoder()
    t = 0
    for link, frame in frames:
        for pos in range(0, len(frame), 7):
            buf = bytearray(frame)
            buf[pos] ^= 0xFF
            t += 1000
            dec.decode(t, link, bytes(buf))
    dec.flush()
    assert dec.packets > 0
