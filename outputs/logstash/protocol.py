"""Lumberjack protocol v2 as Beats speaks it: frames out, ACKs in. Sans-IO.

Owns the byte layout (all integers big-endian uint32; see go-lumber's ``client/v2/client.go``
and ``server/v2/reader.go``, which is what Beats and Logstash run, not go-lumber's PROTOCOL.md):

    window      '2' 'W' count
    JSON event  '2' 'J' seq len <len bytes of JSON>        seq = 1..count within the window
    compressed  '2' 'C' len <zlib stream of complete J frames>
    ACK         '2' 'A' seq                                 server -> client

Never opens a socket or reads the clock. :class:`AckReader` takes bytes in whatever pieces
the socket delivers; :class:`WindowAcks` tracks one window's ACKs (partial ACKs, keep-alive
seq 0, out-of-range sequence numbers). :class:`FrameDecoder` is the receiving side, used by
tests and by anyone who wants to check what a client sends.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

__all__ = [
    "ACK_SIZE",
    "AckReader",
    "FrameDecoder",
    "LumberjackError",
    "ProtocolError",
    "WindowAcks",
    "encode_ack",
    "encode_compressed",
    "encode_json",
    "encode_window",
    "encode_batch",
]

VERSION = 0x32  # '2'
WINDOW = 0x57  # 'W'
JSON = 0x4A  # 'J'
COMPRESSED = 0x43  # 'C'
ACK = 0x41  # 'A'
ACK_SIZE = 6

#: a compressed frame larger than this is refused by :class:`FrameDecoder` (a bad length must
#: not make a test reader allocate gigabytes); Beats' windows are far smaller.
MAX_FRAME = 64 << 20

_U32 = struct.Struct(">I")
_HDR = struct.Struct(">BBI")
_JHDR = struct.Struct(">BBII")


class LumberjackError(Exception):
    """Base of this layer's errors."""


class ProtocolError(LumberjackError):
    """The peer sent bytes that are not Lumberjack v2 (or an impossible ACK)."""


# -- encoding ---------------------------------------------------------------------------


def encode_window(count: int) -> bytes:
    return _HDR.pack(VERSION, WINDOW, count)


def encode_json(seq: int, payload: bytes) -> bytes:
    return _JHDR.pack(VERSION, JSON, seq, len(payload)) + payload


def encode_ack(seq: int) -> bytes:
    return _HDR.pack(VERSION, ACK, seq)


def encode_compressed(frames: bytes, level: int) -> bytes:
    body = zlib.compress(frames, level)
    return _HDR.pack(VERSION, COMPRESSED, len(body)) + body


def encode_batch(payloads: Sequence[bytes], compression_level: int = 0) -> bytes:
    """One window: W, then the J frames (seq 1..n), zlib-wrapped in one C frame if level > 0.
    An empty batch is the window frame alone (count 0)."""
    if not payloads:
        return encode_window(0)
    parts = [_JHDR.pack(VERSION, JSON, seq, len(p)) + p for seq, p in enumerate(payloads, 1)]
    frames = b"".join(parts)
    if compression_level > 0:
        return encode_window(len(payloads)) + encode_compressed(frames, compression_level)
    return encode_window(len(payloads)) + frames


# -- ACKs ---------------------------------------------------------------------------------


class AckReader:
    """Cuts a byte stream into ACK sequence numbers; partial ACK frames wait for more bytes."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[int]:
        """Add received bytes; return the sequence numbers of every complete ACK frame."""
        buf = self._buf
        buf += data
        out: list[int] = []
        off = 0
        while len(buf) - off >= ACK_SIZE:
            version, code, seq = _HDR.unpack_from(buf, off)
            if version != VERSION or code != ACK:
                got = bytes(buf[off : off + 2])
                raise ProtocolError(f"expected an ACK frame ('2' 'A'), got {got!r}")
            out.append(seq)
            off += ACK_SIZE
        del buf[:off]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete ACK frame held back."""
        return len(self._buf)


class WindowAcks:
    """The ACK state of one window of ``count`` events.

    ACKs are cumulative: seq N means events 1..N are stored. Seq 0 is go-lumber's keep-alive
    ("still working on it"), an ACK lower than one already seen changes nothing, and an ACK
    above ``count`` is a protocol error (go-lumber's client refuses it too).
    """

    __slots__ = ("count", "acked", "keepalives")

    def __init__(self, count: int):
        self.count = count
        self.acked = 0
        self.keepalives = 0

    def on_ack(self, seq: int) -> int:
        """Apply one ACK; return how many events it newly acknowledged."""
        if seq > self.count:
            raise ProtocolError(f"ACK for sequence {seq} but the window has only {self.count} events")
        if seq == 0:
            self.keepalives += 1
            return 0
        if seq <= self.acked:
            return 0
        new = seq - self.acked
        self.acked = seq
        return new

    @property
    def done(self) -> bool:
        return self.acked >= self.count


# -- receiving side (tests, tooling) ----------------------------------------------------------


class FrameDecoder:
    """Parses what a Lumberjack v2 client sends into windows of JSON payloads.

    ``feed`` returns the windows completed by the new bytes, each as ``list[bytes]``. A sequence
    number out of order, an unknown frame type or a broken zlib stream raise
    :class:`ProtocolError`; after that the decoder is unusable (the connection must close).
    """

    def __init__(self, max_frame: int = MAX_FRAME):
        self._buf = bytearray()
        self._want = 0  # events of the current window still expected
        self._events: list[bytes] = []
        self._max = max_frame

    def feed(self, data: bytes) -> list[list[bytes]]:
        self._buf += data
        windows: list[list[bytes]] = []
        try:
            while self._step(windows):
                pass
        except (struct.error, zlib.error, IndexError) as exc:
            raise ProtocolError(f"malformed frame: {exc}") from exc
        return windows

    def _step(self, windows: list[list[bytes]]) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        if buf[0] != VERSION:
            raise ProtocolError(f"unsupported protocol version byte {buf[0]:#04x}")
        code = buf[1]
        if code == WINDOW:
            if len(buf) < 6:
                return False
            if self._want:
                raise ProtocolError("window frame inside an unfinished window")
            (count,) = _U32.unpack_from(buf, 2)
            del buf[:6]
            if count == 0:
                windows.append([])
            self._want, self._events = count, []
            return True
        if not self._want:
            raise ProtocolError(f"frame {chr(code)!r} outside a window")
        if code == JSON:
            if len(buf) < 10:
                return False
            seq, size = struct.unpack_from(">II", buf, 2)
            if size > self._max:
                raise ProtocolError(f"JSON frame of {size} bytes exceeds the {self._max} byte limit")
            if len(buf) < 10 + size:
                return False
            self._event(seq, bytes(buf[10 : 10 + size]), windows)
            del buf[: 10 + size]
            return True
        if code == COMPRESSED:
            if len(buf) < 6:
                return False
            (size,) = _U32.unpack_from(buf, 2)
            if size > self._max:
                raise ProtocolError(f"compressed frame of {size} bytes exceeds the {self._max} byte limit")
            if len(buf) < 6 + size:
                return False
            d = zlib.decompressobj()
            inner = d.decompress(bytes(buf[6 : 6 + size]), self._max)
            if d.unconsumed_tail:
                raise ProtocolError(f"compressed frame inflates beyond {self._max} bytes")
            if not d.eof:
                raise ProtocolError("compressed frame is not a complete zlib stream")
            del buf[: 6 + size]
            off = 0
            while off < len(inner):
                if inner[off] != VERSION or inner[off + 1] != JSON:
                    raise ProtocolError("compressed frame holds something other than J frames")
                seq, n = struct.unpack_from(">II", inner, off + 2)
                if off + 10 + n > len(inner):
                    raise ProtocolError("compressed frame ends inside a J frame")
                self._event(seq, inner[off + 10 : off + 10 + n], windows)
                off += 10 + n
            return True
        raise ProtocolError(f"unknown frame type {code:#04x}")

    def _event(self, seq: int, payload: bytes, windows: list[list[bytes]]) -> None:
        if not self._want:
            raise ProtocolError("more events than the window announced")
        expected = len(self._events) + 1
        if seq != expected:
            raise ProtocolError(f"sequence {seq} where {expected} was expected")
        self._events.append(payload)
        self._want -= 1
        if not self._want:
            windows.append(self._events)
            self._events = []
