"""ICMP transactions: echo-style request/response pairing and one event per other message.

Owns the pending-request table, keyed like Packetbeat's (ICMP version, source IP, destination IP,
id, seq), its timeout (``transaction_timeout``, packet time) and its cap, and the shape of the
``icmp`` event. Pairing happens exactly where Packetbeat pairs (echo, timestamp, information and
address-mask requests; ICMPv6 echo); every other message is published on its own, errors with the
addresses and ports of the datagram they quote. Never raises on packet bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pybeat.api import Analyzer, Envelope, Event, Packet, ProtocolContext, add_notes, community_id

from pybeat.protocols.icmp import message as m

__all__ = ["IcmpAnalyzer", "DUPLICATE_REQUEST", "ORPHANED_REQUEST", "ORPHANED_RESPONSE", "EVICTED_REQUEST"]

# Packetbeat's note texts (packetbeat/protos/icmp/icmp.go).
DUPLICATE_REQUEST = (
    "Another request with the same Id and Seq was received so this request was closed without "
    "receiving a response."
)
ORPHANED_REQUEST = "Request was received without an associated response."
ORPHANED_RESPONSE = "Response was received without an associated request."
# pybeat only: the table was full and this, the oldest pending request, made room.
EVICTED_REQUEST = "Request was evicted from the full transaction table before a response arrived."

# Types whose body quotes the offending datagram (RFC 792 / RFC 4443); v4 redirect quotes too.
_QUOTING = {4: frozenset({3, 4, 5, 11, 12}), 6: frozenset({1, 2, 3, 4})}


@dataclass(slots=True)
class _Message:
    ts: int
    type: int
    code: int
    length: int  # bytes after the 8-byte header, as Packetbeat counts them
    extras: dict[str, Any] | None = None


@dataclass(slots=True)
class _Transaction:
    ts: int
    version: int
    src: str
    dst: str
    request: _Message | None = None
    response: _Message | None = None


class IcmpAnalyzer(Analyzer):
    def __init__(self, ctx: ProtocolContext, timeout_s: float, max_pending: int):
        self.emit = ctx.emit
        self.envelope: Envelope = ctx.envelope
        self.timeout_ns = int(timeout_s * 1e9)
        self.max_pending = max_pending
        # insertion order is capture order, so the oldest pending request is always first
        self.pending: dict[tuple[int, str, str, int, int], _Transaction] = {}
        self.counters = {
            "messages": 0,
            "events": 0,
            "unmatched_requests": 0,
            "unmatched_responses": 0,
            "duplicate_requests": 0,
            "evicted_requests": 0,
            "parse_failures": 0,
        }

    # -- input ------------------------------------------------------------------------
    def on_icmp(self, pkt: Packet, message: bytes) -> None:
        version = 6 if pkt.transport == "ipv6-icmp" else 4
        # gopacket needs the 8-byte header; Packetbeat never sees shorter messages.
        if len(message) < m.HEADER_LEN:
            self.counters["parse_failures"] += 1
            return
        self.counters["messages"] += 1
        icmp_type, code = message[0], message[1]
        ident, seq = m.tracking(version, message)
        msg = _Message(pkt.ts_ns, icmp_type, code, len(message) - m.HEADER_LEN)
        if icmp_type in _QUOTING[version]:
            msg.extras = self._error_fields(version, message)
        elif version == 6 and icmp_type == 137:
            msg.extras = m.error_extras(version, message)
        if m.is_request(version, icmp_type):
            self._request(version, pkt.src_ip, pkt.dst_ip, ident, seq, msg)
        else:
            self._response(version, pkt.src_ip, pkt.dst_ip, ident, seq, msg)

    def _error_fields(self, version: int, message: bytes) -> dict[str, Any]:
        fields = m.error_extras(version, message)
        original = m.quoted_original(version, message[m.HEADER_LEN:])
        if original is not None:
            cid = self._original_community_id(original)
            if cid:
                original["community_id"] = cid
            fields["original"] = original
        return fields

    def _original_community_id(self, original: dict[str, Any]) -> str:
        """Community ID of the flow that failed, to join the error with that flow's events."""
        proto = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "sctp": 132}.get(original["transport"])
        if proto is None:
            return ""
        src, dst = original["source"], original["destination"]
        if proto in (1, 58):
            quoted = original.get("icmp")
            if quoted is None:
                return ""
            sport, dport = quoted["type"], quoted["code"]
        else:
            if "port" not in src:
                return ""
            sport, dport = src["port"], dst["port"]
        try:
            return community_id(src["ip"], dst["ip"], proto, sport, dport)
        except (OSError, ValueError):
            return ""

    def _request(self, version: int, src: str, dst: str, ident: int, seq: int, msg: _Message) -> None:
        key = (version, src, dst, ident, seq)
        if m.is_pair(version, msg.type):
            previous = self.pending.pop(key, None)
            if previous is not None:
                self.counters["duplicate_requests"] += 1
                self._publish(previous, [DUPLICATE_REQUEST])
            if len(self.pending) >= self.max_pending:
                oldest_key = next(iter(self.pending))
                self.counters["evicted_requests"] += 1
                self._publish(self.pending.pop(oldest_key), [EVICTED_REQUEST])
            self.pending[key] = _Transaction(msg.ts, version, src, dst, request=msg)
        else:
            self._publish(_Transaction(msg.ts, version, src, dst, request=msg), [])

    def _response(self, version: int, src: str, dst: str, ident: int, seq: int, msg: _Message) -> None:
        trans = self.pending.pop((version, dst, src, ident, seq), None)
        notes: list[str] = []
        if trans is None:
            self.counters["unmatched_responses"] += 1
            trans = _Transaction(msg.ts, version, dst, src)
            notes.append(ORPHANED_RESPONSE)
        trans.response = msg
        self._publish(trans, notes)

    # -- time -------------------------------------------------------------------------
    def expire(self, now_ns: int) -> None:
        deadline = now_ns - self.timeout_ns
        while self.pending:
            key = next(iter(self.pending))
            trans = self.pending[key]
            if trans.ts > deadline:
                break
            del self.pending[key]
            self.counters["unmatched_requests"] += 1
            self._publish(trans, [ORPHANED_REQUEST])

    def flush(self, now_ns: int) -> None:
        while self.pending:
            key = next(iter(self.pending))
            trans = self.pending.pop(key)
            self.counters["unmatched_requests"] += 1
            self._publish(trans, [ORPHANED_REQUEST])

    def stats(self) -> dict[str, int]:
        return {**self.counters, "pending_requests": len(self.pending)}

    # -- output -----------------------------------------------------------------------
    def _publish(self, trans: _Transaction, notes: list[str]) -> None:
        req, resp = trans.request, trans.response
        version = trans.version
        transport = "icmp" if version == 4 else "ipv6-icmp"
        first = req if req is not None else resp
        assert first is not None
        related: list[str] = []
        icmp: dict[str, Any] = {"version": version}
        for part, msg in (("request", req), ("response", resp)):
            if msg is None:
                continue
            icmp[part] = {
                "message": m.human_readable(version, msg.type, msg.code),
                "type": msg.type,
                "code": msg.code,
            }
            if msg.extras:
                # error details describe the one message of the event: icmp.original, icmp.mtu
                icmp.update(msg.extras)
                original = msg.extras.get("original")
                if original is not None:
                    related += [original["source"]["ip"], original["destination"]["ip"]]
        fields = self.envelope.build(
            "",
            transport,
            trans.src,
            0,
            trans.dst,
            0,
            req.ts if req is not None else None,
            resp.ts if resp is not None else None,
            src_bytes=req.length if req is not None else 0,
            dst_bytes=resp.length if resp is not None else 0,
            related_extra=related,
            event_type=["connection"],
            icmp_type_code=(first.type, first.code),
            dataset="icmp",
        )
        has_error = (
            req is None
            or m.is_error(version, req.type)
            or (resp is not None and m.is_error(version, resp.type))
            or (resp is None and m.is_pair(version, req.type))
        )
        fields["type"] = "icmp"
        fields["path"] = trans.dst
        fields["status"] = "Error" if has_error else "OK"
        fields["icmp"] = icmp
        add_notes(fields, notes)
        self.counters["events"] += 1
        self.emit(Event(trans.ts, fields))
