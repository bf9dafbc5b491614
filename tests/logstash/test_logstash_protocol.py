"""Lumberjack v2 frames as bytes: the layout of go-lumber's client/v2 and server/v2 code."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybeat.outputs.logstash.protocol import (
    AckReader,
    FrameDecoder,
    ProtocolError,
    WindowAcks,
    encode_ack,
    encode_batch,
    encode_compressed,
    encode_json,
    encode_window,
)


def test_window_frame_bytes() -> None:
    """A window is '2' 'W' and a big-endian uint32 event count."""
    assert encode_window(3) == b"2W\x00\x00\x00\x03"
    assert encode_window(0x01020304) == bytes([0x32, 0x57, 1, 2, 3, 4])


def test_json_frame_bytes() -> None:
    """A data frame is '2' 'J', the sequence number, the length, then the JSON bytes."""
    assert encode_json(1, b'{"a":1}') == b"2J\x00\x00\x00\x01\x00\x00\x00\x07" + b'{"a":1}'


def test_ack_frame_bytes() -> None:
    """An ACK is '2' 'A' and the sequence number."""
    assert encode_ack(2048) == b"2A\x00\x00\x08\x00"


def test_uncompressed_batch_is_window_then_numbered_json_frames() -> None:
    """Uncompressed, a batch is W(count) then one J frame per event, numbered from 1."""
    got = encode_batch([b"{}", b'{"x":"y"}'], compression_level=0)
    assert got == (
        b"2W\x00\x00\x00\x02"
        + b"2J\x00\x00\x00\x01\x00\x00\x00\x02{}"
        + b'2J\x00\x00\x00\x02\x00\x00\x00\x09{"x":"y"}'
    )


def test_compressed_batch_is_window_then_one_zlib_frame_of_json_frames() -> None:
    """Compressed, the J frames are one zlib stream inside a single C frame with its length."""
    got = encode_batch([b"{}", b'{"x":"y"}'], compression_level=3)
    assert got[:6] == b"2W\x00\x00\x00\x02"
    assert got[6:8] == b"2C"
    size = int.from_bytes(got[8:12], "big")
    assert len(got) == 12 + size
    assert zlib.decompress(got[12:]) == encode_batch([b"{}", b'{"x":"y"}'])[6:]
    assert encode_compressed(b"abc", 1)[:2] == b"2C"


def test_ack_reader_whole_split_and_byte_by_byte() -> None:
    """ACKs arrive in any pieces: whole, split mid-frame, one byte at a time, several at once."""
    stream = encode_ack(0) + encode_ack(5) + encode_ack(10)
    assert AckReader().feed(stream) == [0, 5, 10]
    r = AckReader()
    assert r.feed(stream[:4]) == []
    assert r.pending == 4
    assert r.feed(stream[4:9]) == [0]
    assert r.feed(stream[9:]) == [5, 10]
    assert r.pending == 0
    r = AckReader()
    got = []
    for i in range(len(stream)):
        got += r.feed(stream[i : i + 1])
    assert got == [0, 5, 10]


def test_ack_reader_refuses_other_frames() -> None:
    """Anything but '2' 'A' from the server is a protocol error (a v1 ACK, a stray window)."""
    with pytest.raises(ProtocolError):
        AckReader().feed(b"1A\x00\x00\x00\x01")
    with pytest.raises(ProtocolError):
        AckReader().feed(encode_ack(1) + b"2W\x00\x00\x00\x01")


def test_window_acks_partial_keepalive_and_out_of_range() -> None:
    """ACKs are cumulative: partial ACKs add up, seq 0 is a keep-alive, seq > count is an error."""
    w = WindowAcks(10)
    assert w.on_ack(0) == 0 and w.keepalives == 1
    assert w.on_ack(4) == 4
    assert w.on_ack(4) == 0  # repeated
    assert w.on_ack(3) == 0  # lower than already seen
    assert not w.done
    assert w.on_ack(10) == 6
    assert w.done
    with pytest.raises(ProtocolError):
        WindowAcks(3).on_ack(4)


def test_decoder_reads_what_the_encoder_writes_in_any_pieces() -> None:
    """The receiving side gets the windows back, fed whole or byte by byte, compressed or not."""
    payloads = [b'{"n":%d}' % i for i in range(7)]
    for level in (0, 1, 9):
        stream = encode_batch(payloads[:3], level) + encode_batch(payloads[3:], level)
        assert FrameDecoder().feed(stream) == [payloads[:3], payloads[3:]]
        d = FrameDecoder()
        got = []
        for i in range(len(stream)):
            got += d.feed(stream[i : i + 1])
        assert got == [payloads[:3], payloads[3:]]


def test_decoder_empty_window() -> None:
    """Window count 0 is an empty batch."""
    assert FrameDecoder().feed(encode_window(0)) == [[]]


@pytest.mark.parametrize(
    "data",
    [
        b"1W\x00\x00\x00\x01",  # protocol v1
        b"2J\x00\x00\x00\x01\x00\x00\x00\x00",  # data outside a window
        b"2W\x00\x00\x00\x02" + encode_json(2, b"{}"),  # sequence out of order
        b"2W\x00\x00\x00\x01" + b"2X",  # unknown frame type
        b"2W\x00\x00\x00\x01" + b"2C\x00\x00\x00\x04abcd",  # not zlib
        b"2W\x00\x00\x00\x01" + b"2J\x00\x00\x00\x01\xff\xff\xff\xff",  # absurd length
    ],
)
def test_decoder_refuses_bad_streams(data: bytes) -> None:
    """Malformed client streams raise ProtocolError, never another exception."""
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20), st.integers(0, 9), st.integers(1, 50))
def test_round_trip_property(payloads: list[bytes], level: int, chunk: int) -> None:
    """Any payloads at any compression level, cut into any chunk size, decode to themselves."""
    stream = encode_batch(payloads, level)
    d = FrameDecoder()
    got = []
    for i in range(0, len(stream), chunk):
        got += d.feed(stream[i : i + chunk])
    assert got == [payloads]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_parsers(data: bytes) -> None:
    """Random bytes give frames or ProtocolError, from both parsers, and never hang."""
    for parser in (FrameDecoder(), AckReader()):
        try:
            parser.feed(data)
        except ProtocolError:
            pass


def test_frames_match_go_lumber_client_byte_for_byte() -> None:
    """Our uncompressed window is byte-identical to what go-lumber's v2 client (Beats' own
    sender) writes for the same event JSON, including multi-byte UTF-8 and a large event."""
    import subprocess

    from tests.conftest import need
    from lumber_receiver import binary

    exe = binary()
    need(exe is not None, "the lumber-receiver test program (tests/tooling/lumber-receiver/setup.sh, needs Go)")
    payloads = [
        b'{"@timestamp":"2026-11-27T06:00:00.000Z","dns":{"question":{"name":"www.example.test"}}}',
        '{"q":"b\u00fccher.example","emoji":"\U0001f600"}'.encode(),
        b'{"big":"' + b"x" * 70000 + b'"}',
        b"{}",
    ]
    go = subprocess.run([str(exe), "-encode"], input=b"\n".join(payloads) + b"\n", capture_output=True,
                        timeout=30, check=True).stdout
    assert encode_batch(payloads, 0) == go
