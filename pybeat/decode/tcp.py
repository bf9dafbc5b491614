"""TCP stream reassembly per connection.

Owns: which side is the client, sequence tracking per direction, retransmission and overlap
trimming, out-of-order buffering, gaps, FIN/RST, idle expiry. Delivers in-order bytes to the
protocol analyzer that owns the connection's port.

Caps (documented, enforced):
* ``max_connections`` tracked at once (default 65,536); the least recently active one is closed
  and counted in ``evicted`` when a new one would exceed it.
* ``max_ooo_segments`` (64) and ``max_ooo_bytes`` (1 MiB) held out of order per direction; past
  either, the missing bytes are declared a gap and delivery resumes at the held data.
* ``idle_timeout_ns`` (120 s of packet time) without a segment closes a connection.

A FIN closes its direction only once the stream has reached the FIN's sequence number: a FIN that
overtakes delayed data waits for it; if the hole never fills, idle expiry (or the end of input)
reports the missing bytes with ``on_tcp_gap`` and then closes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from pybeat.api import Analyzer, TcpConnection

FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10

_MOD = 1 << 32
_HALF = 1 << 31


class _Direction:
    __slots__ = ("next_seq", "ooo", "ooo_bytes", "closed", "fin_seq")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.ooo: dict[int, bytes] = {}
        self.ooo_bytes = 0
        self.closed = False
        self.fin_seq: int | None = None


class _Conn:
    __slots__ = ("conn", "analyzer", "client_key", "dirs", "last_ns")

    def __init__(self, conn: TcpConnection, analyzer: Analyzer, client_key: tuple[Any, ...], ts_ns: int):
        self.conn = conn
        self.analyzer = analyzer
        self.client_key = client_key  # (client ip, client port)
        self.dirs = (_Direction(), _Direction())  # index: from_client (0 = server->client)
        self.last_ns = ts_ns


class TcpReassembler:
    def __init__(
        self,
        max_connections: int = 65536,
        max_ooo_segments: int = 64,
        max_ooo_bytes: int = 1 << 20,
        idle_timeout_ns: int = 120_000_000_000,
    ):
        self.max_connections = max_connections
        self.max_ooo_segments = max_ooo_segments
        self.max_ooo_bytes = max_ooo_bytes
        self.idle_timeout_ns = idle_timeout_ns
        self._conns: OrderedDict[tuple[Any, ...], _Conn] = OrderedDict()
        self.connections = 0
        self.evicted = 0
        self.expired = 0
        self.retransmitted = 0
        self.gaps = 0
        self.gap_bytes = 0

    def __len__(self) -> int:
        return len(self._conns)

    def segment(
        self,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        seq: int,
        flags: int,
        payload: bytes,
        ts_ns: int,
        analyzer: Analyzer,
        dst_is_server: bool,
        ip_version: int,
        vlans: tuple[int, ...] = (),
    ) -> None:
        key = (src_ip, src_port, dst_ip, dst_port) if (src_ip, src_port) <= (dst_ip, dst_port) else (
            dst_ip, dst_port, src_ip, src_port)
        state = self._conns.get(key)
        if state is None:
            if not payload and not flags & SYN:
                return  # a bare ACK/FIN/RST of a connection we never saw: nothing to deliver
            if flags & SYN:
                sender_is_client = not flags & ACK
            else:
                sender_is_client = dst_is_server
            if sender_is_client:
                conn = TcpConnection(src_ip, src_port, dst_ip, dst_port, ip_version, vlans)
            else:
                conn = TcpConnection(dst_ip, dst_port, src_ip, src_port, ip_version, vlans)
            if len(self._conns) >= self.max_connections:
                _, old = self._conns.popitem(last=False)
                self.evicted += 1
                self._close_all(old, ts_ns)
            state = self._conns[key] = _Conn(conn, analyzer, (conn.client_ip, conn.client_port), ts_ns)
            self.connections += 1
        else:
            self._conns.move_to_end(key)
        state.last_ns = ts_ns
        from_client = (src_ip, src_port) == state.client_key
        d = state.dirs[from_client]
        if d.closed:
            return
        if flags & SYN:
            d.next_seq = (seq + 1) % _MOD
            seq = d.next_seq
        elif d.next_seq is None:
            d.next_seq = seq
        if payload:
            self._data(state, from_client, d, seq, payload, ts_ns)
        if flags & RST:
            self._finish(state, from_client, ts_ns)
            self._finish(state, not from_client, ts_ns)
        elif flags & FIN:
            # Close once the stream reaches the FIN: a FIN that overtook delayed data waits for
            # it (expiry or flush declares what never came a gap, then closes).
            d.fin_seq = (seq + len(payload)) % _MOD
            if self._reached_fin(d):
                self._finish(state, from_client, ts_ns)
        if state.dirs[0].closed and state.dirs[1].closed:
            self._conns.pop(key, None)

    def _data(self, state: _Conn, from_client: bool, d: _Direction, seq: int, payload: bytes, ts_ns: int) -> None:
        assert d.next_seq is not None
        diff = ((seq - d.next_seq + _HALF) % _MOD) - _HALF
        if diff < 0:
            if diff + len(payload) <= 0:
                self.retransmitted += 1
                return
            payload = payload[-diff:]
            diff = 0
        if diff > 0:
            if seq not in d.ooo or len(d.ooo[seq]) < len(payload):
                d.ooo_bytes += len(payload) - len(d.ooo.get(seq, b""))
                d.ooo[seq] = payload
            if len(d.ooo) > self.max_ooo_segments or d.ooo_bytes > self.max_ooo_bytes:
                self._skip_gap(state, from_client, d, ts_ns)
            return
        d.next_seq = (d.next_seq + len(payload)) % _MOD
        state.analyzer.on_tcp_data(state.conn, from_client, payload, ts_ns)
        if d.ooo or d.fin_seq is not None:
            self._drain(state, from_client, d, ts_ns)

    def _drain(self, state: _Conn, from_client: bool, d: _Direction, ts_ns: int) -> None:
        """Deliver held segments that now continue the stream."""
        progressed = True
        while d.ooo and progressed:
            progressed = False
            for seq in list(d.ooo):
                assert d.next_seq is not None
                diff = ((seq - d.next_seq + _HALF) % _MOD) - _HALF
                if diff > 0:
                    continue
                data = d.ooo.pop(seq)
                d.ooo_bytes -= len(data)
                progressed = True
                if diff + len(data) <= 0:
                    continue
                data = data[-diff:] if diff < 0 else data
                d.next_seq = (d.next_seq + len(data)) % _MOD
                state.analyzer.on_tcp_data(state.conn, from_client, data, ts_ns)
        if d.fin_seq is not None and self._reached_fin(d):
            self._finish(state, from_client, ts_ns)

    @staticmethod
    def _reached_fin(d: _Direction) -> bool:
        """Whether every byte before the FIN has been delivered (or declared a gap)."""
        assert d.next_seq is not None and d.fin_seq is not None
        return ((d.fin_seq - d.next_seq + _HALF) % _MOD) - _HALF <= 0

    def _skip_gap(self, state: _Conn, from_client: bool, d: _Direction, ts_ns: int) -> None:
        """Declare the bytes before the nearest held segment lost and resume there."""
        assert d.next_seq is not None
        base = d.next_seq
        nearest = min(d.ooo, key=lambda s: (s - base) % _MOD)
        missing = (nearest - base) % _MOD
        self.gaps += 1
        self.gap_bytes += missing
        state.analyzer.on_tcp_gap(state.conn, from_client, missing, ts_ns)
        d.next_seq = nearest
        self._drain(state, from_client, d, ts_ns)

    def _finish(self, state: _Conn, from_client: bool, ts_ns: int) -> None:
        d = state.dirs[from_client]
        if d.closed:
            return
        while d.ooo:
            self._skip_gap(state, from_client, d, ts_ns)
            if d.closed:
                return
        if d.fin_seq is not None and d.next_seq is not None and not self._reached_fin(d):
            # The FIN came, the bytes before it never did: report them lost before closing.
            missing = (d.fin_seq - d.next_seq) % _MOD
            self.gaps += 1
            self.gap_bytes += missing
            d.next_seq = d.fin_seq
            state.analyzer.on_tcp_gap(state.conn, from_client, missing, ts_ns)
        d.closed = True
        state.analyzer.on_tcp_close(state.conn, from_client, ts_ns)

    def _close_all(self, state: _Conn, ts_ns: int) -> None:
        self._finish(state, True, ts_ns)
        self._finish(state, False, ts_ns)

    def expire(self, now_ns: int) -> None:
        limit = now_ns - self.idle_timeout_ns
        while self._conns:
            key, state = next(iter(self._conns.items()))
            if state.last_ns > limit:
                break
            del self._conns[key]
            self.expired += 1
            self._close_all(state, now_ns)

    def flush(self, now_ns: int) -> None:
        """End of input: close every connection (delivering held data after a gap)."""
        while self._conns:
            _, state = self._conns.popitem(last=False)
            self._close_all(state, now_ns)
