"""NTP transactions: a client's request (mode 3) paired with the server's response (mode 4).

Owns the pending-request table, keyed as RFC 5905 pairs a response with its request (the
client's and the server's address and port, and the request's transmit timestamp, which the
server returns as its origin timestamp), its timeout (``transaction_timeout``, on packet time)
and its cap (``max_pending_requests``: the oldest request is published, noted, to make room),
and the shape of the ``ntp`` event. Every other message (symmetric, broadcast, control,
private, a response nobody asked for, a malformed datagram) is an event of its own. Never
raises on packet bytes.

Offset and delay: RFC 5905's formulas on the four timestamps of an exchange, with T1 and T4
taken where the capture saw the request leave and the response arrive (the client's own T4
never travels, and many clients hide their clock in T1), T2 and T3 from the server's response:
the server's clock as seen from where pybeat captures (on the client's host: the client's view).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pybeat.api import Analyzer, Envelope, EmitFn, Event, Packet, ProtocolContext, add_notes, format_ts

from pybeat_ntp.message import CLIENT, SERVER, MalformedMessage, Message, parse, reference_id_text, short_seconds
from pybeat_ntp.message import to_unix_ns

__all__ = [
    "DUPLICATE_REQUEST", "EVICTED_REQUEST", "NOT_SYNCHRONIZED", "NtpAnalyzer", "ORPHANED_REQUEST",
    "ORPHANED_RESPONSE",
]

# The note texts of Packetbeat's request/response protocols where one fits.
ORPHANED_REQUEST = "Request was received without an associated response."
ORPHANED_RESPONSE = "Response was received without an associated request."
DUPLICATE_REQUEST = ("Another request with the same transmit timestamp was received so this request was closed "
                     "without receiving a response.")
EVICTED_REQUEST = "Request was evicted from the full transaction table before a response arrived."
NOT_SYNCHRONIZED = "The server is not synchronized (leap indicator 3 or stratum 16)."
KISS_O_DEATH = "Kiss-o'-Death from the server: {code}"
MALFORMED = "Malformed NTP message: {reason}"

_NS = 1_000_000_000

#: (client ip, client port, server ip, server port, transmit timestamp of the request)
PendingKey = tuple[str, int, str, int, int]


@dataclass(slots=True)
class _Request:
    ts: int
    client: tuple[str, int]
    server: tuple[str, int]
    message: Message


class NtpAnalyzer(Analyzer):
    def __init__(self, ctx: ProtocolContext, timeout_s: float, max_pending: int, report_malformed: bool):
        self.emit: EmitFn = ctx.emit
        self.envelope: Envelope = ctx.envelope
        self.timeout_ns = int(timeout_s * _NS)
        self.max_pending = max_pending
        self.report_malformed = report_malformed
        #: insertion order is capture order: the oldest request is always first
        self.pending: OrderedDict[PendingKey, _Request] = OrderedDict()
        self.counters = {
            "messages": 0, "transactions": 0, "unmatched_requests": 0, "unmatched_responses": 0,
            "duplicate_requests": 0, "evicted_requests": 0, "malformed": 0, "other_modes": 0,
        }

    # -- input -----------------------------------------------------------------------------------
    def on_udp(self, pkt: Packet, payload: bytes) -> None:
        src, dst = (pkt.src_ip, pkt.src_port), (pkt.dst_ip, pkt.dst_port)
        try:
            msg = parse(payload)
        except MalformedMessage as exc:
            self.counters["malformed"] += 1
            if self.report_malformed:
                self._publish_single(pkt.ts_ns, src, dst, None, len(payload), [MALFORMED.format(reason=exc)])
            return
        self.counters["messages"] += 1
        if msg.mode == CLIENT:
            self._request(pkt.ts_ns, src, dst, msg)
        elif msg.mode == SERVER:
            self._response(pkt.ts_ns, src, dst, msg)
        else:
            self.counters["other_modes"] += 1
            self._publish_single(pkt.ts_ns, src, dst, msg, msg.length, [])

    def _request(self, ts: int, client: tuple[str, int], server: tuple[str, int], msg: Message) -> None:
        key = (client[0], client[1], server[0], server[1], msg.transmit_ts)
        previous = self.pending.pop(key, None)
        if previous is not None:
            self.counters["duplicate_requests"] += 1
            self._publish(previous, None, None, [DUPLICATE_REQUEST])
        if len(self.pending) >= self.max_pending:
            _, oldest = self.pending.popitem(last=False)
            self.counters["evicted_requests"] += 1
            self._publish(oldest, None, None, [EVICTED_REQUEST, ORPHANED_REQUEST])
        self.pending[key] = _Request(ts, client, server, msg)

    def _response(self, ts: int, server: tuple[str, int], client: tuple[str, int], msg: Message) -> None:
        request = self.pending.pop((client[0], client[1], server[0], server[1], msg.origin_ts), None)
        if request is None:
            self.counters["unmatched_responses"] += 1
            self._publish(_Request(ts, client, server, msg), msg, ts, [ORPHANED_RESPONSE], orphan=True)
            return
        self._publish(request, msg, ts, [])

    # -- time ------------------------------------------------------------------------------------
    def expire(self, now_ns: int) -> None:
        deadline = now_ns - self.timeout_ns
        pending = self.pending
        while pending:
            request = next(iter(pending.values()))
            if request.ts > deadline:
                break
            pending.popitem(last=False)
            self.counters["unmatched_requests"] += 1
            self._publish(request, None, None, [ORPHANED_REQUEST])

    def flush(self, now_ns: int) -> None:
        while self.pending:
            _, request = self.pending.popitem(last=False)
            self.counters["unmatched_requests"] += 1
            self._publish(request, None, None, [ORPHANED_REQUEST])

    def stats(self) -> dict[str, int]:
        return {**self.counters, "pending_requests": len(self.pending)}

    def shard_key(self, payload: bytes) -> int:
        """A request's transmit timestamp is its response's origin timestamp: both land in the
        same process of a split replay."""
        if len(payload) < 48:
            return 0
        mode = payload[0] & 7
        at = 40 if mode == CLIENT else 24 if mode == SERVER else -1
        if at < 0:
            return 0
        return int.from_bytes(payload[at:at + 4], "big") ^ int.from_bytes(payload[at + 4:at + 8], "big")

    # -- events ----------------------------------------------------------------------------------
    def _publish(self, request: _Request, response: Message | None, end_ns: int | None, notes: list[str],
                 orphan: bool = False) -> None:
        """A client/server exchange (or what was seen of it)."""
        req = None if orphan else request.message
        resp_bytes = response.length if response is not None else 0
        fields = self.envelope.build(
            "ntp", "udp", request.client[0], request.client[1], request.server[0], request.server[1],
            None if orphan else request.ts, end_ns, req.length if req is not None else 0, resp_bytes,
        )
        first = req if req is not None else response
        assert first is not None
        ntp: dict[str, Any] = {"version": first.version, "mode": "client" if req is not None else first.mode_name}
        status = "OK"
        if response is not None:
            status = self._server_fields(ntp, response, end_ns or request.ts, notes)
            if req is not None and end_ns is not None:
                t2 = to_unix_ns(response.receive_ts, end_ns)
                t3 = to_unix_ns(response.transmit_ts, end_ns)
                t1, t4 = request.ts, end_ns
                ntp["offset"] = round(((t2 - t1) + (t3 - t4)) / 2 / _NS, 9)
                ntp["delay"] = round(((t4 - t1) - (t3 - t2)) / _NS, 9)
        elif req is not None:
            ntp["poll"] = req.poll
        if response is None or orphan:  # unanswered, or an answer to nothing seen
            status = "Error"
        fields["type"] = "ntp"
        fields["status"] = status
        fields["ntp"] = ntp
        add_notes(fields, notes)
        self.counters["transactions"] += 1
        self.emit(Event(request.ts, fields))

    def _server_fields(self, ntp: dict[str, Any], msg: Message, near_ns: int, notes: list[str]) -> str:
        """What a server's response says about its clock; the status it gives the exchange."""
        status = "OK"
        ntp.update({
            "leap_indicator": msg.leap, "stratum": msg.stratum, "poll": msg.poll, "precision": msg.precision,
            "root_delay": short_seconds(msg.root_delay), "root_dispersion": short_seconds(msg.root_dispersion),
        })
        ref = reference_id_text(msg.stratum, msg.reference_id)
        if msg.stratum == 0 and ref is not None:
            ntp["kiss_code"] = ref
            notes.append(KISS_O_DEATH.format(code=ref))
            status = "Error"
        elif ref is not None:
            ntp["reference_id"] = ref
        if msg.leap == 3 or msg.stratum >= 16:
            notes.append(NOT_SYNCHRONIZED)
            status = "Error"
        for name, value in (("reference_time", msg.reference_ts), ("origin_time", msg.origin_ts),
                            ("receive_time", msg.receive_ts), ("transmit_time", msg.transmit_ts)):
            if value:
                ntp[name] = _text(to_unix_ns(value, near_ns))
        return status

    def _publish_single(self, ts: int, src: tuple[str, int], dst: tuple[str, int], msg: Message | None,
                        nbytes: int, notes: list[str]) -> None:
        """A message that is not part of a client/server exchange (or not a message at all)."""
        fields = self.envelope.build("ntp", "udp", src[0], src[1], dst[0], dst[1], ts, ts, nbytes, 0)
        ntp: dict[str, Any] = {}
        if msg is not None:
            ntp = {"version": msg.version, "mode": msg.mode_name}
            if msg.opcode is not None:
                ntp["opcode"] = msg.opcode
            else:  # symmetric and broadcast messages describe the sender's clock
                self._server_fields(ntp, msg, ts, notes)
        fields["type"] = "ntp"
        fields["status"] = "Error" if msg is None or notes else "OK"
        if ntp:
            fields["ntp"] = ntp
        add_notes(fields, notes)
        self.emit(Event(ts, fields))


def _text(ns: int) -> str:
    """A time with its nanoseconds (``2026-12-03T07:33:53.164475123Z``): NTP's timestamps are
    finer than the milliseconds of ``@timestamp``."""
    ms_text = format_ts(ns)  # "YYYY-MM-DDTHH:MM:SS.mmmZ", clamped to years 1-9999
    return f"{ms_text[:-5]}.{ns % _NS:09d}Z"
