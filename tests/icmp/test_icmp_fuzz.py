"""Random and mutated bytes at the ICMP analyzer never raise and never hang."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from pybeat.capture.pcapfile import PcapFileSource
from tests.conftest import PCAPS
from tests.icmp.support import make, pkt

S = 1_000_000_000
_SEEDS: list[tuple[bool, bytes]] = []


def _real_messages() -> list[tuple[bool, bytes]]:
    """ICMP messages from the shared capture, as (is_v6, message bytes), to mutate."""
    if _SEEDS or not (PCAPS / "icmp.pcap").is_file():
        return _SEEDS
    from pybeat.decode import Decoder

    class Grab:
        def on_icmp(self, p, message):
            _SEEDS.append((p.transport == "ipv6-icmp", bytes(message)))

        def expire(self, now):
            pass

        def flush(self, now):
            pass

    dec = Decoder(icmp=Grab())  # type: ignore[arg-type]
    for ts, link, frame in PcapFileSource(str(PCAPS / "icmp.pcap")):
        dec.decode(ts, link, frame)
    return _SEEDS


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.binary(max_size=120)), max_size=20))
def test_random_messages(messages):
    """Any sequence of random messages in either direction only produces well-formed events."""
    analyzer, events = make(max_pending_requests=4, transaction_timeout=1.0)
    for i, (v6, reverse, data) in enumerate(messages):
        a, b = ("::1", "::2") if v6 else ("10.0.0.1", "10.0.0.2")
        src, dst = (b, a) if reverse else (a, b)
        analyzer.on_icmp(pkt(src, dst, S + i * S // 3, v6), data)
        analyzer.expire(S + i * S // 3)
    analyzer.flush(100 * S)
    assert not analyzer.pending
    for e in events:
        assert e.fields["status"] in ("OK", "Error")
        assert e.fields["icmp"]["version"] in (4, 6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_messages(data):
    """Real messages with bytes flipped, cut or appended never make the analyzer raise."""
    seeds = _real_messages() or [(False, bytes.fromhex("0303000000000000450000"))]
    v6, message = data.draw(st.sampled_from(seeds))
    buf = bytearray(message)
    for _ in range(data.draw(st.integers(0, 8))):
        if buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    tail = data.draw(st.binary(max_size=16))
    analyzer, events = make()
    analyzer.on_icmp(pkt("fd00::1" if v6 else "10.0.0.1", "fd00::2" if v6 else "10.0.0.2", S, v6), bytes(buf[:cut]) + tail)
    analyzer.flush(2 * S)
