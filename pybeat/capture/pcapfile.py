"""Read classic pcap and pcapng capture files.

Owns: the file formats (pcap with micro- or nanosecond stamps in either byte order; pcapng
section, interface, enhanced/simple/obsolete packet blocks with per-interface time resolution).
Yields ``(ts_ns, link_type, frame)`` tuples. Never decodes a frame.

A truncated last record is reported (``truncated_records``) rather than raised: a capture cut
off by a full disk still replays up to its last whole packet. So is a pcapng block too short for
its own fixed fields (it is skipped). A file rejected when opened is closed before the error.

``-`` (standard input), a FIFO or any other file that is not a regular file is read as a stream:
record by record (pcap) or block by block (pcapng) as the data comes, once (no ``loops``).
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Iterator
from typing import BinaryIO, Callable

from pybeat.logs import get_logger

_log = get_logger("capture")

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D


class CaptureFileError(Exception):
    """The file is not a capture we can read (bad magic, bad header)."""


class PcapFileSource:
    """A capture file as a packet iterator.

    ``loops`` replays the file that many times (0 = forever); each new pass is shifted in time
    by the file's span so packet time keeps moving forward and transactions expire as they would
    live (Packetbeat replays the same stamps; shifting keeps pairing and timeouts meaningful).
    """

    def __init__(self, path: str, loops: int = 1):
        self.path = path
        self.loops = loops
        self.packets = 0
        self.bytes = 0
        self.truncated_records = 0
        self.link_types: set[int] = set()
        self._fh: BinaryIO | None = None
        self._map: mmap.mmap | bytes | None = None
        self._stream = False  # a pipe, FIFO or device: read as the data comes (_read_stream)
        self._open()

    def _open(self) -> None:
        try:
            fh = os.fdopen(os.dup(0), "rb") if self.path == "-" else open(self.path, "rb")
        except OSError as exc:
            raise CaptureFileError(f"cannot open capture file {self.path!r}: {exc.strerror}") from exc
        self._fh = fh
        try:
            self._check()
        except BaseException:
            self.close()  # neither the handle nor the map outlives a rejected file
            raise

    def _check(self) -> None:
        fh = self._fh
        assert fh is not None
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            if self.loops != 1:
                raise CaptureFileError(f"{self.path!r} is a stream (a pipe or FIFO): it can be read once, not looped")
            self._stream = True
            head = self._head = fh.read(4)
            if not head:
                raise CaptureFileError(f"capture stream {self.path!r} is empty")
        elif st.st_size == 0:
            raise CaptureFileError(f"capture file {self.path!r} is empty")
        else:
            try:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # not mappable (a special file): read it whole
                self._map = fh.read()
            head = self._map[:4]
        if len(head) < 4:
            raise CaptureFileError(f"{self.path!r} is too short to be a capture file")
        magic_le = struct.unpack("<I", head)[0]
        magic_be = struct.unpack(">I", head)[0]
        if magic_le == PCAPNG_SHB:
            self._format = "pcapng"
        elif PCAP_MAGIC_US in (magic_le, magic_be) or PCAP_MAGIC_NS in (magic_le, magic_be):
            self._format = "pcap"
        else:
            raise CaptureFileError(
                f"{self.path!r} is not a pcap or pcapng file (magic {bytes(head).hex()})"
            )
        _log.debug("capture file opened", path=self.path, format=self._format, size=st.st_size,
                   stream=self._stream, loops=self.loops)

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._map = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "PcapFileSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def classic_layout(self) -> tuple[mmap.mmap | bytes, Callable[..., tuple[int, ...]], int, int] | None:
        """For a loop that frames records itself (pybeat.decode._replay): the classic pcap's
        buffer, the record-header unpacker, the stamp's nanoseconds per unit and the link
        type; None for pcapng or a file too short for its header."""
        buf = self._map
        if buf is None or self._format != "pcap" or len(buf) < 24:
            return None
        magic = struct.unpack_from("<I", buf, 0)[0]
        endian = "<" if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        if endian == ">":
            magic = struct.unpack_from(">I", buf, 0)[0]
        scale = 1 if magic == PCAP_MAGIC_NS else 1000
        link = struct.unpack_from(endian + "I", buf, 20)[0] & 0x0FFFFFFF
        return buf, struct.Struct(endian + "IIII").unpack_from, scale, link

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        if self._stream:
            return self._read_stream()
        return self.passes()

    def passes(self, passes: int = 0, shift: int = 0) -> Iterator[tuple[int, int, bytes]]:
        """The records of the passes after the first ``passes`` (already made elsewhere, shifted
        by ``shift`` in all: the compiled replay loop hands over here when its 64-bit times
        would overflow)."""
        while self.loops == 0 or passes < self.loops:
            span: list[int] = []  # (first, last) stamp of this pass, filled by the reader
            if self._format == "pcap":
                yield from self._read_pcap(shift, span)
            else:
                yield from self._shifted(self._read_pcapng(), shift, span)
            passes += 1
            if not span:
                return
            shift += span[1] - span[0] + 1000

    @staticmethod
    def _shifted(
        reader: Iterator[tuple[int, int, bytes]], shift: int, span: list[int]
    ) -> Iterator[tuple[int, int, bytes]]:
        first = last = None
        for ts, link, frame in reader:
            if first is None:
                first = ts
            last = ts
            yield ts + shift, link, frame
        if first is not None and last is not None:
            span[:] = [first, last]

    # -- classic pcap -----------------------------------------------------------------
    def _read_pcap(self, shift: int = 0, span: list[int] | None = None) -> Iterator[tuple[int, int, bytes]]:
        """Records of a classic pcap, stamps moved by ``shift`` ns; ``span`` gets the first and
        last stamp as read (one generator per packet, not two: this is the replay's inner loop).
        The compiled replay loop (``pybeat.decode._replay``) frames records the same way, fused
        with decoding: keep the two the same (tests/unit/test_replay_loop.py)."""
        layout = self.classic_layout()
        if layout is None:
            raise CaptureFileError(f"{self.path!r}: pcap header is cut short")
        buf, unpack, scale, link = layout
        self.link_types.add(link)
        pos = 24
        end = len(buf)
        packets = 0
        nbytes = 0
        first = last = None
        try:
            while pos + 16 <= end:
                sec, frac, caplen, _origlen = unpack(buf, pos)
                pos += 16
                if pos + caplen > end:
                    self.truncated_records += 1
                    break
                frame = buf[pos : pos + caplen]
                pos += caplen
                packets += 1
                nbytes += caplen
                last = sec * 1_000_000_000 + frac * scale
                if first is None:
                    first = last
                yield last + shift, link, frame
            else:
                if pos != end:
                    self.truncated_records += 1
        finally:  # also when the reader stops in the middle (the generator is closed)
            self.packets += packets
            self.bytes += nbytes
        if span is not None and first is not None and last is not None:
            span[:] = [first, last]

    # -- streams ----------------------------------------------------------------------
    def _read_stream(self) -> Iterator[tuple[int, int, bytes]]:
        """Records (pcap) or blocks (pcapng) read one at a time from a pipe or FIFO."""
        fh = self._fh
        assert fh is not None
        read = fh.read
        if self._format == "pcapng":
            state: list = ["<", []]  # the section's byte order and interfaces, across blocks
            head = self._head
            while True:
                head += read(12 - len(head))
                if len(head) < 12:
                    if head:
                        self.truncated_records += 1
                    return
                endian = state[0]
                if struct.unpack_from("<I", head, 0)[0] == PCAPNG_SHB:
                    endian = "<" if struct.unpack_from("<I", head, 8)[0] == PCAPNG_BOM else ">"
                blen = struct.unpack_from(endian + "I", head, 4)[0]
                block = head + read(max(0, blen - 12))
                head = b""
                yield from self._read_pcapng(block, state)
                if len(block) < blen or blen < 12:
                    return  # cut short (counted by _read_pcapng) or not pcapng any more
        header = self._head + read(20)
        if len(header) < 24:
            raise CaptureFileError(f"{self.path!r}: pcap header is cut short")
        self._map = header  # classic_layout() reads the header's fields
        layout = self.classic_layout()
        self._map = None
        assert layout is not None
        _, unpack, scale, link = layout
        self.link_types.add(link)
        while True:
            rec = read(16)
            if len(rec) < 16:
                if rec:
                    self.truncated_records += 1
                return
            sec, frac, caplen, _origlen = unpack(rec, 0)
            frame = read(caplen)
            if len(frame) < caplen:
                self.truncated_records += 1
                return
            self.packets += 1
            self.bytes += caplen
            yield sec * 1_000_000_000 + frac * scale, link, frame

    # -- pcapng -----------------------------------------------------------------------
    def _read_pcapng(self, buf: bytes | mmap.mmap | None = None, state: list | None = None) -> Iterator[tuple[int, int, bytes]]:
        """Packets of the pcapng in ``buf`` (the whole file), or of one block of a stream with
        the section's ``state`` (byte order, interfaces) kept by the caller."""
        if buf is None:
            buf = self._map
        assert buf is not None
        end = len(buf)
        pos = 0
        endian = "<"
        interfaces: list[tuple[int, int, int]] = []  # (link type, units per second, offset seconds)
        if state is not None:
            endian, interfaces = state
        while pos + 12 <= end:
            btype = struct.unpack_from(endian + "I", buf, pos)[0]
            if btype == PCAPNG_SHB:
                bom = struct.unpack_from("<I", buf, pos + 8)[0]
                endian = "<" if bom == PCAPNG_BOM else ">"
                if struct.unpack_from(endian + "I", buf, pos + 8)[0] != PCAPNG_BOM:
                    raise CaptureFileError(f"{self.path!r}: bad pcapng byte-order magic")
                interfaces.clear()
                if state is not None:
                    state[0] = endian
            blen = struct.unpack_from(endian + "I", buf, pos + 4)[0]
            if blen < 12 or blen % 4 or pos + blen > end:
                self.truncated_records += 1
                break
            body = pos + 8
            body_end = pos + blen - 4
            if btype == 1:  # interface description
                link = struct.unpack_from(endian + "H", buf, body)[0]
                tsres, tsoff = _idb_options(buf, body + 8, body_end, endian)
                interfaces.append((link, tsres, tsoff))
                self.link_types.add(link)
            elif blen < 32 and btype in (6, 2):
                # A packet block shorter than its own fixed fields: skip it (the framing holds).
                self.truncated_records += 1
            elif btype in (6, 2):  # enhanced packet block / obsolete packet block
                if btype == 6:
                    iface, ts_hi, ts_lo, caplen = struct.unpack_from(endian + "IIII", buf, body)
                    data = body + 20
                else:
                    iface, _drops, ts_hi, ts_lo, caplen = struct.unpack_from(endian + "HHIII", buf, body)
                    data = body + 20
                if iface >= len(interfaces) or data + caplen > body_end:
                    self.truncated_records += 1
                else:
                    link, units, offset = interfaces[iface]
                    raw = (ts_hi << 32) | ts_lo
                    ts_ns = raw * 1_000_000_000 // units if units != 1_000_000_000 else raw
                    self.packets += 1
                    self.bytes += caplen
                    yield ts_ns + offset * 1_000_000_000, link, buf[data : data + caplen]
            elif btype == 3:  # simple packet block: no timestamp, first interface
                if interfaces:
                    origlen = struct.unpack_from(endian + "I", buf, body)[0]
                    caplen = min(origlen, body_end - body - 4)
                    self.packets += 1
                    self.bytes += caplen
                    yield 0, interfaces[0][0], buf[body + 4 : body + 4 + caplen]
            pos += blen


def _idb_options(buf: bytes | mmap.mmap, pos: int, end: int, endian: str) -> tuple[int, int]:
    """Return (time units per second, offset seconds) from an interface block's options."""
    units = 1_000_000
    offset = 0
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        pos += 4
        if code == 0:
            break
        if code == 9 and length >= 1:  # if_tsresol
            value = buf[pos]
            units = 2 ** (value & 0x7F) if value & 0x80 else 10 ** value
        elif code == 14 and length == 8:  # if_tsoffset
            offset = struct.unpack_from(endian + "q", buf, pos)[0]
        pos += (length + 3) & ~3
    return units, offset
