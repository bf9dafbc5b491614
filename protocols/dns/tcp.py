"""DNS over TCP framing (RFC 1035 §4.2.2): a 2-byte length before each message.

Owns one direction of a stream, sans-IO as h11's ``Connection``: bytes in with
:meth:`TcpFramer.feed`, then :meth:`TcpFramer.next_event` until it says :data:`NEED_DATA`; each
event is a whole message (:class:`Framed`, with the time of the segment that started it) or a
framing error (:class:`FramingError`, Packetbeat's note). Messages split over segments, several
per segment, gaps (the rest of a cut message is skipped so that framing resumes at the next
one) and a stream that ends inside a message. Never parses a message.
"""

from __future__ import annotations

from typing import NamedTuple

from pybeat.protocols.dns import errors as notes

__all__ = ["NEED_DATA", "Framed", "FramingError", "TcpFramer"]


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: next_event's answer when the buffered bytes hold no whole message
NEED_DATA = _NeedData()


class Framed(NamedTuple):
    """One message: its bytes without the prefix, its length with it, its first segment's time."""

    raw: bytes
    length: int
    ts: int


class FramingError(NamedTuple):
    """The stream cannot be framed past this point (what was buffered is dropped)."""

    note: str


class TcpFramer:
    """One direction of a DNS-over-TCP stream (see the module docstring)."""

    __slots__ = ("buf", "pos", "start_ts", "last_ts", "skip")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0  # start of the first message not yet returned
        self.start_ts = 0  # time of the segment that started the buffered message
        self.last_ts = 0  # time of the last segment fed
        self.skip = 0  # bytes of a message cut by a gap still to skip, to resync

    def feed(self, data: bytes, ts_ns: int) -> None:
        skip = self.skip
        if skip:
            if len(data) <= skip:
                self.skip = skip - len(data)
                return
            data = data[skip:]
            self.skip = 0
        if self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
            self.start_ts = ts_ns
        self.buf += data
        self.last_ts = ts_ns

    def next_event(self) -> Framed | FramingError | _NeedData:
        buf, pos = self.buf, self.pos
        n = len(buf)
        if n - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if length == 0:
                self._drop()  # the stream cannot be framed any more
                return FramingError(notes.ZERO_LENGTH)
            if n - pos >= length + 2:
                self.pos = pos + length + 2
                start, self.start_ts = self.start_ts, self.last_ts
                return Framed(bytes(buf[pos + 2 : pos + 2 + length]), length + 2, start)
        if pos:
            del buf[:pos]
            self.pos = 0
        return NEED_DATA

    def gap(self, nbytes: int) -> FramingError | None:
        """``nbytes`` were never captured: a message they cut is dropped (and its rest skipped
        when the gap ends inside it). Between messages nothing is lost: framing carries on, as
        Packetbeat does (the next bytes are read as a length prefix)."""
        buf, pos = self.buf, self.pos
        if len(buf) == pos:
            return None
        if len(buf) - pos >= 2:
            missing = ((buf[pos] << 8) | buf[pos + 1]) + 2 - (len(buf) - pos)
            if nbytes <= missing:
                self.skip = missing - nbytes  # resynchronise at the next message
        self._drop()
        return FramingError(notes.INCOMPLETE)

    def close(self) -> FramingError | None:
        """The direction ended: a message still buffered is incomplete."""
        if len(self.buf) == self.pos:
            return None
        self._drop()
        return FramingError(notes.INCOMPLETE)

    def _drop(self) -> None:
        self.buf.clear()
        self.pos = 0
