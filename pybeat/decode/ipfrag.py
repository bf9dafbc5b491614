"""IPv4 and IPv6 fragment reassembly.

Caps (documented, enforced): at most ``max_datagrams`` datagrams in reassembly at once (the
oldest is evicted and counted), at most 65,535 bytes per datagram, at most 64 fragments per
datagram, and ``timeout_ns`` of packet time before an incomplete datagram is discarded.
Overlapping fragments keep the first bytes received (the "first" policy: a new fragment is trimmed
to the bytes no earlier one supplied, so the pieces held never overlap and never add up to more
than 65,535 bytes), the first last fragment (MF=0) fixes the length, and a fragment that would
grow a datagram past 65,535 bytes is rejected.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

MAX_DATAGRAM = 65535
MAX_FRAGMENTS = 64


class _Pending:
    __slots__ = ("pieces", "total", "first_ns", "count")

    def __init__(self, first_ns: int):
        self.pieces: dict[int, bytes] = {}
        self.total = -1  # known once the last fragment (MF=0) arrives
        self.first_ns = first_ns
        self.count = 0


class FragmentReassembler:
    def __init__(self, max_datagrams: int = 1024, timeout_ns: int = 30_000_000_000):
        self.max_datagrams = max_datagrams
        self.timeout_ns = timeout_ns
        self._pending: OrderedDict[tuple[Any, ...], _Pending] = OrderedDict()
        self.reassembled = 0
        self.evicted = 0
        self.expired = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: tuple[Any, ...], offset: int, more: bool, data: bytes, ts_ns: int) -> bytes | None:
        """Add one fragment; return the whole payload when the datagram is complete."""
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_datagrams:
                self._pending.popitem(last=False)
                self.evicted += 1
            entry = self._pending[key] = _Pending(ts_ns)
        if offset + len(data) > MAX_DATAGRAM or entry.count >= MAX_FRAGMENTS:
            del self._pending[key]
            self.rejected += 1
            return None
        entry.count += 1
        # Keep only the bytes no earlier fragment supplied ("first" policy): held pieces never
        # overlap, so a datagram never holds more than MAX_DATAGRAM bytes.
        pieces = entry.pieces
        start = offset
        stop = offset + len(data)
        pos = start
        for off in sorted(pieces):
            held_end = off + len(pieces[off])
            if held_end <= pos:
                continue
            if off >= stop:
                break
            if off > pos:
                pieces[pos] = data[pos - start : off - start]
            pos = held_end
            if pos >= stop:
                break
        if pos < stop:
            pieces[pos] = data[pos - start :]
        if not more and entry.total < 0:
            entry.total = stop
        if entry.total < 0:
            return None
        # Complete when the pieces cover [0, total) without a hole.
        pos = 0
        for off in sorted(pieces):
            if off > pos:
                return None
            pos = off + len(pieces[off])
        if pos < entry.total:
            return None
        out = bytearray(entry.total)
        for off, piece in pieces.items():
            if off < entry.total:
                out[off : off + len(piece)] = piece[: entry.total - off]
        del self._pending[key]
        self.reassembled += 1
        return bytes(out)

    def expire(self, now_ns: int) -> None:
        limit = now_ns - self.timeout_ns
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if entry.first_ns > limit:
                break
            del self._pending[key]
            self.expired += 1
