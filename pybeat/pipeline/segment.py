"""The disk queue's files: segment header, frames, and the scan that finds where a segment ends.

Owns the on-disk format and nothing else (no locking, no queue logic). The layout follows
Beats' disk queue (``<id>.seg`` files of checksummed frames) but is pybeat's own, not
byte-compatible with Beats:

    segment header (20 bytes):  b"PBDQ" | uint32 version (1) | uint64 seq of its first frame
                                | uint32 CRC-32 of the 16 bytes before it
    frame:                      uint32 frame length (payload + 12) | payload
                                | uint32 CRC-32 (IEEE) of the length bytes then the payload
                                | uint32 frame length again
    payload (one event):        int64 timestamp_ns | uint8 kind | uint32 meta length
                                | meta (JSON object, absent when empty) | document (JSON)

All integers little-endian. ``kind`` 0: the document is a pre-encoded event (``Event.raw``);
1: the document is ``Event.fields``. Sequence numbers count events from the queue's creation,
so a segment's header tells which events it holds even when the segment before it is damaged.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from pybeat.api import Event

MAGIC = b"PBDQ"
VERSION = 1
_HEADER = struct.Struct("<4sIQ")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _CRC.size  # 20
_LEN = struct.Struct("<I")
_PAYLOAD_HEAD = struct.Struct("<qBI")
_FRAME_HEAD = struct.Struct("<IqBI")  # frame length, then the payload's head
_TAIL = struct.Struct("<II")  # checksum, frame length again
FRAME_OVERHEAD = 12
#: a frame longer than this is taken as damage (one event is never near it)
MAX_FRAME = 64 << 20

KIND_RAW = 0
KIND_FIELDS = 1


class SegmentError(Exception):
    """A segment's header or a frame is damaged."""


def encode_header(first_seq: int) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, first_seq)
    return head + _CRC.pack(zlib.crc32(head))


def decode_header(data: bytes) -> int:
    """The first sequence number of a segment, or SegmentError."""
    if len(data) < HEADER_SIZE:
        raise SegmentError(f"header truncated ({len(data)} of {HEADER_SIZE} bytes)")
    head = data[: _HEADER.size]
    magic, version, first_seq = _HEADER.unpack(head)
    if magic != MAGIC:
        raise SegmentError("not a pybeat disk queue segment (bad magic)")
    if version != VERSION:
        raise SegmentError(f"unsupported segment version {version}")
    if _CRC.unpack_from(data, _HEADER.size)[0] != zlib.crc32(head):
        raise SegmentError("header checksum mismatch")
    return int(first_seq)


def encode_frame(event: Event, out: bytearray) -> None:
    """Append ``event`` as one frame to ``out`` (TypeError/ValueError if it cannot be encoded)."""
    raw = event.raw
    if raw is not None:
        kind, doc = KIND_RAW, raw
    else:
        kind, doc = KIND_FIELDS, orjson.dumps(event.fields)
    meta = orjson.dumps(event.meta) if event.meta else b""
    n = _PAYLOAD_HEAD.size + len(meta) + len(doc) + FRAME_OVERHEAD
    start = len(out)
    out += _FRAME_HEAD.pack(n, event.timestamp_ns, kind, len(meta))
    if meta:
        out += meta
    out += doc
    out += _TAIL.pack(zlib.crc32(memoryview(out)[start:]), n)


def decode_payload(payload: bytes | memoryview) -> Event:
    ts, kind, meta_len = _PAYLOAD_HEAD.unpack_from(payload, 0)
    start = _PAYLOAD_HEAD.size
    meta: dict[str, Any] = orjson.loads(payload[start : start + meta_len]) if meta_len else {}
    doc = bytes(payload[start + meta_len :])
    if kind == KIND_RAW:
        return Event(ts, None, meta=meta, raw=doc)
    if kind == KIND_FIELDS:
        return Event(ts, orjson.loads(doc), meta=meta)
    raise SegmentError(f"unknown event kind {kind}")


def next_frame(buf: bytes | memoryview, pos: int) -> tuple[int, memoryview] | None:
    """Parse the frame at ``pos``: ``(end, payload)``; None if ``buf`` ends before the frame
    does (read more, or it is a torn tail); SegmentError if the frame is damaged."""
    avail = len(buf) - pos
    if avail < 4:
        return None
    n = _LEN.unpack_from(buf, pos)[0]
    if n < FRAME_OVERHEAD + _PAYLOAD_HEAD.size or n > MAX_FRAME:
        raise SegmentError(f"bad frame length {n} at byte {pos}")
    if avail < n:
        return None
    end = pos + n
    mv = memoryview(buf)
    payload = mv[pos + 4 : end - 8]
    crc = _CRC.unpack_from(buf, end - 8)[0]
    if zlib.crc32(payload, zlib.crc32(mv[pos : pos + 4])) != crc or _LEN.unpack_from(buf, end - 4)[0] != n:
        raise SegmentError(f"frame checksum mismatch at byte {pos}")
    return end, payload


@dataclass
class SegmentScan:
    """What a full read of a segment found."""

    first_seq: int
    frames: int  # valid frames from the start
    valid_end: int  # byte offset after the last valid frame
    size: int  # file size
    damage: str | None  # why reading stopped before the end of the file, if it did


def scan_segment(path: str, chunk: int = 1 << 20) -> SegmentScan:
    """Read a segment from start to end, checking every frame. SegmentError for a bad header."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        first_seq = decode_header(fh.read(HEADER_SIZE))
        frames = 0
        offset = HEADER_SIZE  # file offset of buf[0]
        buf = b""
        pos = 0
        damage = None
        while True:
            try:
                got = next_frame(buf, pos)
            except SegmentError as exc:
                damage = str(exc).replace(f"at byte {pos}", f"at byte {offset + pos}")
                break
            if got is not None:
                pos = got[0]
                frames += 1
                continue
            more = fh.read(max(chunk, _needed(buf, pos)))
            if not more:
                if pos < len(buf):
                    damage = f"torn frame at byte {offset + pos} ({len(buf) - pos} bytes)"
                break
            buf = buf[pos:] + more
            offset += pos
            pos = 0
        return SegmentScan(first_seq, frames, offset + pos, size, damage)


def _needed(buf: bytes, pos: int) -> int:
    if len(buf) - pos >= 4:
        return int(_LEN.unpack_from(buf, pos)[0])
    return 0
