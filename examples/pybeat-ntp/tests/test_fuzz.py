"""Random and mutated datagrams never make the analyzer raise (the harness fails the test if
it does), the pending table stays within its cap, and every request ends in exactly one
event."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ntpbytes import ntp_ts, request, response

from pybeat.testing import ProtocolHarness, at
from pybeat_ntp import plugin

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 123)
VALID = [request(ntp_ts(at(0))), response(ntp_ts(at(0)), ntp_ts(at(0.001)), ntp_ts(at(0.002))),
         bytes.fromhex("160200010000000000000000"), bytes.fromhex("1700032a") + bytes(44)]


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    return bytes(buf[: max(0, len(buf) - cut)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=120), st.booleans(), st.integers(0, 3000)), max_size=30))
def test_random_bytes_never_raise(datagrams: list[tuple[bytes, bool, int]]) -> None:
    h = ProtocolHarness(plugin, {"max_pending_requests": 4})
    ts = at(0)
    for payload, to_server, gap_ms in datagrams:
        ts += gap_ms * 1_000_000
        src, dst = (CLIENT, SERVER) if to_server else (SERVER, CLIENT)
        h.udp(payload, src=src, dst=dst, ts=ts)
        assert h.stats()["pending_requests"] <= 4
    h.flush()
    stats = h.stats()
    assert stats["pending_requests"] == 0
    assert len(h.events) == stats["transactions"] + stats["malformed"] + stats["other_modes"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 50))
def test_mutated_messages_never_raise(base: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    h = ProtocolHarness(plugin)
    h.udp(mutate(base, edits, cut) or b"\0", src=CLIENT, dst=SERVER)
    h.udp(mutate(base, edits, cut) or b"\0", src=SERVER, dst=CLIENT)
    h.flush()
    for event in h.events:
        assert event.fields["type"] == "ntp" and event.fields["status"] in ("OK", "Error")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_every_request_ends_in_one_event(transmits: list[int]) -> None:
    """Whatever the transmit timestamps (equal ones included), each request is published once:
    answered, closed by a duplicate, or unanswered at the end."""
    h = ProtocolHarness(plugin)
    for i, xmt in enumerate(transmits):
        h.udp(request(xmt), src=CLIENT, dst=SERVER, ts=at(i / 1000))
        if i % 2:
            h.udp(response(xmt, xmt, xmt), src=SERVER, dst=CLIENT, ts=at(i / 1000 + 0.0001))
    h.flush()
    assert len(h.events) == len(transmits) + h.stats()["unmatched_responses"]
