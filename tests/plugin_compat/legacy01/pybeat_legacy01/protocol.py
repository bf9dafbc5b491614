"""``legacy_kv``: a line protocol over UDP and TCP. A client sends ``GET <key>``, the server
answers ``VAL <key> <value>`` or ``ERR <key> <reason>``; one event per request.

Written for pybeat.api 0.1: the envelope from ``ctx.envelope.build``, events through
``ctx.emit``, and, when ``raw_events`` is set and the agent lets events share
(``ctx.events_may_share``), pre-encoded events (``Event(ts, None, raw=..., digest=...)``) closed
with ``ctx.raw_close`` and published with ``ctx.emit_closed`` as 0.1 documented.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from pybeat.api import (
    Analyzer, BeatInfo, CommonProtocolConfig, EmitFn, Event, Packet, ProtocolContext, ProtocolPlugin, TcpConnection,
)


class KvConfig(CommonProtocolConfig):
    type: str = "legacy_kv"
    ports: list[int] = [7070]
    #: publish pre-encoded events when the agent allows it (0.1's Event.raw)
    raw_events: bool = False


class _Request:
    def __init__(self, ts: int, client: tuple[str, int], server: tuple[str, int], transport: str, key: str,
                 nbytes: int, vlans: tuple[int, ...]):
        self.ts, self.client, self.server, self.transport = ts, client, server, transport
        self.key, self.nbytes, self.vlans = key, nbytes, vlans


class KvAnalyzer(Analyzer):
    def __init__(self, config: KvConfig, ctx: ProtocolContext):
        self.ctx = ctx
        self.emit: EmitFn = ctx.emit
        self.beat: BeatInfo = ctx.beat
        self.timeout_ns = int(config.transaction_timeout * 1e9)
        self.raw = config.raw_events and ctx.events_may_share
        self.raw_close = ctx.raw_close if self.raw else None
        self.emit_closed = ctx.emit_closed if self.raw_close else None
        self.pending: dict[tuple[Any, ...], _Request] = {}
        self.counts = {"requests": 0, "replies": 0, "unanswered": 0, "garbage": 0}
        if ctx.logger is not None:
            ctx.logger.info("legacy_kv analyzer ready", protocol=ctx.protocol_name, raw=self.raw)

    # -- messages ---------------------------------------------------------------------------
    def _line(self, ts: int, src: tuple[str, int], dst: tuple[str, int], transport: str, line: bytes,
              vlans: tuple[int, ...]) -> None:
        parts = line.decode("utf-8", "replace").split(" ", 2)
        if parts[0] == "GET" and len(parts) == 2:
            self.counts["requests"] += 1
            req = _Request(ts, src, dst, transport, parts[1], len(line), vlans)
            self.pending[(src, dst, parts[1])] = req
        elif parts[0] in ("VAL", "ERR") and len(parts) == 3:
            req = self.pending.pop((dst, src, parts[1]), None)
            if req is None:
                self.counts["garbage"] += 1
                return
            self.counts["replies"] += 1
            self._publish(req, ts, len(line), parts[0] == "VAL", parts[2])
        else:
            self.counts["garbage"] += 1

    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        assert pkt.transport == "udp" and pkt.ip_version in (4, 6)
        self._line(pkt.ts_ns, (pkt.src_ip, pkt.src_port), (pkt.dst_ip, pkt.dst_port), "udp",
                   payload.rstrip(b"\n"), pkt.vlans)

    def on_tcp_data(self, conn: TcpConnection, from_client: bool, data: bytes, ts_ns: int) -> None:
        if conn.state is None:
            conn.state = {True: b"", False: b""}
        buf = conn.state[from_client] + data
        *lines, conn.state[from_client] = buf.split(b"\n")
        client, server = (conn.client_ip, conn.client_port), (conn.server_ip, conn.server_port)
        for line in lines:
            src, dst = (client, server) if from_client else (server, client)
            self._line(ts_ns, src, dst, "tcp", line, conn.vlans)

    def on_tcp_close(self, conn: TcpConnection, from_client: bool, ts_ns: int) -> None:
        conn.state = None

    # -- time -------------------------------------------------------------------------------
    def expire(self, now_ns: int) -> None:
        for key, req in list(self.pending.items()):
            if now_ns - req.ts >= self.timeout_ns:
                del self.pending[key]
                self.counts["unanswered"] += 1
                self._publish(req, None, 0, False, None)

    def flush(self, now_ns: int) -> None:
        self.expire(now_ns + self.timeout_ns)

    def stats(self) -> dict[str, int]:
        return dict(self.counts, pending=len(self.pending))

    def shard_key(self, payload: bytes) -> int:
        parts = payload.split(b" ", 2)
        return zlib.crc32(parts[1].strip()) if len(parts) >= 2 else 0

    # -- events -----------------------------------------------------------------------------
    def _publish(self, req: _Request, end: int | None, reply_bytes: int, ok: bool, value: str | None) -> None:
        fields = self.ctx.envelope.build(
            "legacy_kv", req.transport, req.client[0], req.client[1], req.server[0], req.server[1], req.ts, end,
            src_bytes=req.nbytes, dst_bytes=reply_bytes, event_type=["connection", "protocol"],
            dataset="legacy_kv",
        )
        status = "OK" if ok else "Error"
        fields["type"] = "legacy_kv"
        fields["status"] = status
        kv: dict[str, Any] = {"key": req.key}
        notes: list[str] = []
        if end is None:
            notes.append("no reply")
        elif ok:
            kv["value"] = value
        else:
            kv["error"] = value
        fields["legacy_kv"] = kv
        if req.vlans:
            fields["network"]["vlan"] = {"id": req.vlans[0]}
        if notes:
            fields["error"] = {"message": notes[0]}
        if self.raw:
            doc = json.dumps(fields, separators=(",", ":")).encode()
            digest = ("legacy_kv", status, None, notes or None)
            if self.raw_close is not None and self.emit_closed is not None:
                self.emit_closed(Event(req.ts, None, raw=doc[:-1] + self.raw_close, digest=digest))
            else:
                self.emit(Event(req.ts, None, raw=doc, digest=digest))
            return
        self.emit(Event(req.ts, fields))


class KvPlugin:
    name = "legacy_kv"
    transports = frozenset({"udp", "tcp"})
    config_model = KvConfig

    def create(self, config: Any, ctx: ProtocolContext) -> Analyzer:
        return KvAnalyzer(config, ctx)


plugin: ProtocolPlugin = KvPlugin()
