"""Network flows as Packetbeat counts them (``packetbeat.flows``): every frame is counted in
the flow its layers name, and flows are reported as ``type: flow`` events.

Owns the flow table (the one owner of flow state), the per-frame key (Packetbeat's layered
flow id: Ethernet addresses, VLAN tags, IP addresses, then UDP/TCP ports; ICMP adds no
layer, its last type and code per direction are kept apart), the reports and the cap. Never decodes a protocol and never reads the clock:
``observe_frame`` is called by the decoder for every frame (``Decoder.observer``, before a
split across worker processes, so a split replay counts each frame once in worker 0), and
``expire``/``flush`` run on packet time (the decoder's timers).

Direction: as Packetbeat's ``FlowID``, each layer's two addresses are written in a canonical
order, decided by the first layer whose two addresses differ; the flow's ``source`` is the
sender of its first frame, and ``source.packets/bytes`` count the frames in that direction.
Bytes are the captured frame lengths (Packetbeat counts the wire length; they differ only
for captures cut by a snap length).

Reports: every ``period`` (aligned to multiples of it on packet time) every flow is reported
(``flow.final: false``); a flow without a frame for ``timeout`` is reported once more with
``flow.final: true`` and forgotten; at the end of the input every flow gets its final report.
With ``enable_delta_flow_reports`` the counters start again from zero after each report.
The table holds at most ``max_flows`` flows: beyond, the least recently active eighth is
reported as final and dropped (counted as ``flows.evicted``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Callable

from pybeat.api import Event, community_id, format_ts

__all__ = ["Flow", "FlowTable", "FlowKey", "flow_key"]

# FlowID flags (Packetbeat's FlowIDFlag bits)
ETH, OUTER_VLAN, VLAN, OUTER_IP4, IP4, OUTER_IP6, IP6, ICMP4, ICMP6, UDP, TCP = (1 << i for i in range(11))
UNSET = 0xFF
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)


class FlowKey:
    """Packetbeat's ``FlowID`` of one frame, built layer by layer: the canonical bytes, the
    offsets of each layer in them, and the frame's direction (0 forward, 1 reversed,
    -1 not decided)."""

    __slots__ = ("buf", "flags", "off", "cnt_eth", "cnt_vlan", "cnt_ip", "dir", "icmp")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.flags = 0
        # eth, outer vlan, vlan, outer ip4, ip4, outer ip6, ip6, icmp4, icmp6, udp, tcp, conn id
        self.off = [UNSET] * 12
        self.cnt_eth = self.cnt_vlan = self.cnt_ip = 0
        self.dir = -1
        self.icmp: tuple[int, int, int] | None = None  # (version, type, code) of this frame

    def _sorted(self, a: bytes, b: bytes | None, hint: int) -> tuple[bytes, bytes | None]:
        if b is None:
            if self.dir < 0:
                self.dir = hint
            return a, b
        if self.dir == 0:
            return a, b
        if self.dir == 1:
            return b, a
        if a < b:
            self.dir = 0
        elif a > b:
            self.dir = 1
            return b, a
        else:
            self.dir = hint
        return a, b

    def _add(self, slot: int, flag: int, a: bytes, b: bytes | None, hint: int = -1) -> None:
        a, b = self._sorted(a, b, hint)
        data = a + (b or b"")
        if self.off[slot] == UNSET:
            self.off[slot] = len(self.buf)
            self.buf += data
            self.flags |= flag
        else:
            o = self.off[slot]
            self.buf[o:o + len(data)] = data

    def _add_layered(self, slot: int, outer_slot: int, flag: int, outer_flag: int, a: bytes, b: bytes | None) -> None:
        a, b = self._sorted(a, b, -1)
        data = a + (b or b"")
        both = self.flags & (flag | outer_flag)
        if both == flag | outer_flag:  # a third level: the newest two are kept, as Packetbeat
            self.off[outer_slot], self.off[slot] = self.off[slot], self.off[outer_slot]
            o = self.off[slot]
            self.buf[o:o + len(data)] = data
        elif both == flag:
            self.off[outer_slot] = self.off[slot]
            self.off[slot] = len(self.buf)
            self.buf += data
            self.flags |= outer_flag
        else:
            self.off[slot] = len(self.buf)
            self.buf += data
            self.flags |= flag

    def add_eth(self, src: bytes, dst: bytes) -> None:
        self._add(0, ETH, src, dst)
        self.cnt_eth += 1

    def add_vlan(self, vid: int) -> None:
        self._add_layered(2, 1, VLAN, OUTER_VLAN, struct.pack("<H", vid), None)
        self.cnt_vlan += 1

    def add_ip(self, version: int, src: bytes, dst: bytes) -> None:
        if version == 4:
            self._add_layered(4, 3, IP4, OUTER_IP4, src, dst)
        else:
            self._add_layered(6, 5, IP6, OUTER_IP6, src, dst)
        self.cnt_ip += 1

    def add_ports(self, tcp: bool, sport: int, dport: int) -> None:
        self._add(10 if tcp else 9, TCP if tcp else UDP, struct.pack("<H", sport), struct.pack("<H", dport))

    def meta(self) -> bytes:
        return bytes((self.flags & 0xFF, self.flags >> 8, *self.off, self.cnt_eth, self.cnt_vlan, self.cnt_ip))


def _ip_layer(key: FlowKey, frame: bytes, off: int, version: int, depth: int = 0) -> None:
    """The IP layer and what is under it (UDP/TCP ports; ICMP type and code, outside the key),
    as Packetbeat 7.x's decoder (gopacket) decodes one frame: no reassembly, and a fragment
    (IPv4: more fragments or an offset; IPv6: a Fragment header), even the first one, is
    decoded no further than its IP layer; IPv6 passes one Hop-by-Hop header and stops at any
    other extension header."""
    if version == 4:
        if len(frame) < off + 20 or frame[off] >> 4 != 4:
            return
        ihl = (frame[off] & 0x0F) * 4
        if ihl < 20:
            return
        key.add_ip(4, frame[off + 12:off + 16], frame[off + 16:off + 20])
        proto = frame[off + 9]
        if (frame[off + 6] & 0x3F) or frame[off + 7]:  # more fragments, or an offset
            return
        pos = off + ihl
    elif version == 6:
        if len(frame) < off + 40:
            return
        key.add_ip(6, frame[off + 8:off + 24], frame[off + 24:off + 40])
        proto = frame[off + 6]
        pos = off + 40
        if proto == 0:  # Hop-by-Hop (gopacket's IPv6 layer reads it)
            if pos + 8 > len(frame):
                return
            proto, pos = frame[pos], pos + (frame[pos + 1] + 1) * 8
    else:
        return
    if proto in (6, 17):
        if len(frame) >= pos + 4:
            sport, dport = struct.unpack_from("!HH", frame, pos)
            key.add_ports(proto == 6, sport, dport)
    elif proto == 1 or proto == 58:
        # Packetbeat adds no ICMP layer to the flow id (ICMP shares the flow of its IP
        # addresses); it keeps each direction's last type and code for the report.
        if len(frame) >= pos + 2:
            key.icmp = (4 if proto == 1 else 6, frame[pos], frame[pos + 1])
    elif proto in (4, 41) and depth == 0:  # IP in IP: the inner addresses become the flow's
        _ip_layer(key, frame, pos, 4 if proto == 4 else 6, 1)


def flow_key(link: int, frame: bytes, ethernet: bool = True) -> FlowKey | None:
    """The flow of one frame (None when no layer Packetbeat tracks is there); without
    ``ethernet`` (``allow_mismatched_eth``) the Ethernet addresses are not part of it."""
    key = FlowKey()
    try:
        if link == 1:  # Ethernet
            if len(frame) < 14:
                return None
            if ethernet:
                key.add_eth(frame[6:12], frame[0:6])
            etype, off = (frame[12] << 8) | frame[13], 14
        elif link == 113:  # Linux cooked
            if len(frame) < 16:
                return None
            etype, off = (frame[14] << 8) | frame[15], 16
        elif link == 276:  # Linux cooked v2
            if len(frame) < 20:
                return None
            etype, off = (frame[0] << 8) | frame[1], 20
        elif link in (12, 14, 101, 228, 229):  # raw IP
            if not frame:
                return None
            _ip_layer(key, frame, 0, frame[0] >> 4)
            return key if key.flags else None
        elif link in (0, 108):  # BSD/OpenBSD loopback
            if len(frame) < 4:
                return None
            family = struct.unpack_from(">I" if link == 108 else "=I", frame, 0)[0]
            if family > 0xFFFF:
                family = struct.unpack_from("<I" if struct.pack("=I", 1)[0] == 0 else ">I", frame, 0)[0]
            _ip_layer(key, frame, 4, 4 if family == 2 else 6 if family in (10, 24, 28, 30) else 0)
            return key if key.flags else None
        else:
            return None
        while etype in _VLAN_TPIDS and len(frame) >= off + 4:
            key.add_vlan(((frame[off] << 8) | frame[off + 1]) & 0x0FFF)
            etype, off = (frame[off + 2] << 8) | frame[off + 3], off + 4
        if etype == 0x0800:
            _ip_layer(key, frame, off, 4)
        elif etype == 0x86DD:
            _ip_layer(key, frame, off, 6)
    except (IndexError, struct.error):
        pass
    return key if key.flags else None


def _prefix(proto: int) -> bytes:
    """The meta bytes of an Ethernet/IPv4/UDP or TCP flow id (the inline path's key prefix)."""
    frame = bytes(12) + b"\x08\x00\x45" + bytes(8) + bytes((proto,)) + bytes(14)
    key = flow_key(1, frame)
    assert key is not None
    return key.meta()


class Flow:
    """One flow: its key, when it started and was last seen, and the counters of both
    directions (0: the direction of its first frame)."""

    __slots__ = ("key", "meta", "dir", "start", "last", "packets", "bytes", "icmp", "reported_end")

    def __init__(self, key: bytes, meta: FlowKey, direction: int, ts: int):
        self.key = key
        self.meta = meta
        self.dir = direction
        self.start = ts
        self.last = ts
        self.packets = [0, 0]
        self.bytes = [0, 0]
        #: each direction's last ICMP (version, type, code), as Packetbeat's icmpV4/V6TypeCode
        self.icmp: list[tuple[int, int, int] | None] = [None, None]
        self.reported_end = ts


_PREFIX_UDP4 = _prefix(17)
_PREFIX_TCP4 = _prefix(6)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ip(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw))


class FlowTable:
    """The flow table, fed frame by frame; ``emit`` gets the report events."""

    def __init__(self, emit: Callable[[Event], None], timeout_s: float = 30.0, period_s: float = 10.0,
                 delta: bool = False, max_flows: int = 262_144, ethernet: bool = True):
        self.emit = emit
        #: False (``allow_mismatched_eth``): the Ethernet addresses are not part of a flow, so a
        #: reply routed back through another MAC pair stays in its flow
        self.ethernet = ethernet
        self.timeout_ns = int(timeout_s * 1e9)
        self.period_ns = int(period_s * 1e9) if period_s > 0 else 0
        self.delta = delta
        self.max_flows = max_flows
        self.flows: dict[bytes, Flow] = {}
        self.next_report = 0
        self.next_timeout = 0
        self.tick_ns = 1_000_000_000
        self.now = 0
        # counters (metrics)
        self.frames = self.untracked = self.created = self.reported = self.evicted = self.timed_out = 0
        #: the compiled per-frame hook (``observer()``), which counts its frames itself
        self.fast: Any = None

    def observer(self) -> Any:
        """What the decoder calls for every frame (``Decoder.observer``): the compiled hook
        (``_fast.pyx``) when it was built, unless ``PYBEAT_PURE_PYTHON=1``; else this table
        (``observe_frame``). Both count the same flows (tests/flows/test_flow_table.py)."""
        import os

        if not self.ethernet:  # the inline paths key on the MACs
            return self
        if self.fast is None and os.environ.get("PYBEAT_PURE_PYTHON", "") in ("", "0"):
            try:
                from pybeat.flows._fast import FlowObserver
            except ImportError:  # a build without a C compiler
                return self
            self.fast = FlowObserver(self, _PREFIX_UDP4, _PREFIX_TCP4)
        return self.fast if self.fast is not None else self

    def stats(self) -> dict[str, int]:
        """The counters, registered under ``flows`` (``flows.evicted``, ...)."""
        frames = self.frames + (self.fast.frames if self.fast is not None else 0)
        return {"active": len(self.flows), "created": self.created, "frames": frames,
                "untracked_frames": self.untracked, "reports": self.reported,
                "timed_out": self.timed_out, "evicted": self.evicted}

    # -- per frame ----------------------------------------------------------------------------------
    def observe_frame(self, ts: int, link: int, frame: bytes) -> None:
        """Count one frame (called by the decoder for every frame it reads)."""
        self.frames += 1
        # The common frame (Ethernet, IPv4 without options, not a fragment, UDP or TCP) of a
        # known flow inline: the same key as flow_key() builds (a test checks it on every frame
        # of every capture); anything else, and a new flow, takes the general path.
        if link == 1 and self.ethernet and len(frame) >= 38 and frame[12] == 8 and frame[13] == 0 \
                and frame[14] == 0x45 \
                and not (frame[20] & 0x3F or frame[21]):
            proto = frame[23]
            if proto == 17 or proto == 6:
                smac, dmac, sip, dip = frame[6:12], frame[0:6], frame[26:30], frame[30:34]
                sport, dport = frame[35:33:-1], frame[37:35:-1]  # little-endian, as Packetbeat writes them
                if smac != dmac:
                    fwd = smac < dmac
                elif sip != dip:
                    fwd = sip < dip
                else:
                    fwd = sport <= dport
                raw = (_PREFIX_UDP4 if proto == 17 else _PREFIX_TCP4) + (
                    smac + dmac + sip + dip + sport + dport if fwd else dmac + smac + dip + sip + dport + sport)
                flow = self.flows.get(raw)
                if flow is not None:
                    side = flow.dir ^ (not fwd)
                    flow.packets[side] += 1
                    flow.bytes[side] += len(frame)
                    if ts > flow.last:
                        flow.last = ts
                        if ts > self.now:
                            self.now = ts
                    return
        self.observe_general(ts, link, frame)

    def observe_general(self, ts: int, link: int, frame: bytes) -> None:
        """``observe_frame`` without the inline path (the reference it is tested against)."""
        key = flow_key(link, frame, self.ethernet)
        if key is None:
            self.untracked += 1
            return
        self.count(ts, key.meta() + bytes(key.buf), key, len(frame))

    def count(self, ts: int, raw: bytes, key: FlowKey, length: int) -> None:
        flow = self.flows.get(raw)
        d = key.dir if key.dir >= 0 else 0
        if flow is None:
            if len(self.flows) >= self.max_flows:
                self._evict()
            flow = self.flows[raw] = Flow(raw, key, d, ts)
            self.created += 1
            if not self.next_timeout:
                self._start_clock(ts)
        side = 0 if d == flow.dir else 1
        flow.packets[side] += 1
        flow.bytes[side] += length
        if key.icmp is not None:
            flow.icmp[side] = key.icmp
        if ts > flow.last:
            flow.last = ts
        if ts > self.now:
            self.now = ts

    def _start_clock(self, ts: int) -> None:
        """Ticks as Packetbeat's flow worker has them: every gcd(timeout, period) (at least 1 s),
        aligned to multiples of it; a tick checks the timeouts, and every period-th one reports."""
        import math

        tick = math.gcd(self.timeout_ns, self.period_ns) if self.period_ns else self.timeout_ns
        self.tick_ns = max(tick, 1_000_000_000)
        self.next_timeout = (ts // self.tick_ns + 1) * self.tick_ns
        self.next_report = (ts // self.period_ns + 1) * self.period_ns if self.period_ns else -1

    # -- packet-time timers -------------------------------------------------------------------------
    def expire(self, now_ns: int) -> None:
        """At each tick passed: flows idle longer than ``timeout`` get their final report and are
        forgotten; at each period every other flow is reported."""
        while self.flows and self.next_timeout and now_ns >= self.next_timeout:
            tick = self.next_timeout
            self.next_timeout += self.tick_ns
            report = self.period_ns and tick >= self.next_report > 0
            if report:
                self.next_report += self.period_ns
            for raw, flow in list(self.flows.items()):
                if tick - flow.last > self.timeout_ns:
                    del self.flows[raw]
                    self.timed_out += 1
                    self._report(flow, tick, final=True)
                elif report:
                    self._report(flow, tick, final=False)
        if not self.flows:
            self.next_timeout = 0  # the clock starts again with the next flow

    def flush(self, now_ns: int = 0) -> None:
        """The end of the input: every flow's final report."""
        flows = list(self.flows.values())
        self.flows.clear()  # the same dict: the compiled hook holds it
        for flow in flows:
            self._report(flow, max(self.now, flow.last), final=True)

    def _evict(self) -> None:
        victims = sorted(self.flows.values(), key=lambda f: f.last)[: max(1, self.max_flows // 8)]
        for flow in victims:
            del self.flows[flow.key]
            self.evicted += 1
            self._report(flow, self.now, final=True)

    # -- events -------------------------------------------------------------------------------------
    def _report(self, flow: Flow, ts: int, final: bool) -> None:
        if not final and not any(flow.packets):
            return  # nothing since the last delta report
        self.reported += 1
        self.emit(Event(ts, self.event_fields(flow, final)))
        if self.delta:
            flow.packets = [0, 0]
            flow.bytes = [0, 0]

    def event_fields(self, flow: Flow, final: bool) -> dict[str, Any]:
        k = flow.meta
        buf = bytes(k.buf)
        rev = flow.dir == 1

        def pair(slot: int, size: int) -> tuple[bytes, bytes] | None:
            o = k.off[slot]
            if o == UNSET:
                return None
            a, b = buf[o:o + size], buf[o + size:o + 2 * size]
            return (b, a) if rev else (a, b)

        source: dict[str, Any] = {}
        dest: dict[str, Any] = {}
        network: dict[str, Any] = {}
        flow_doc: dict[str, Any] = {
            "id": base64.b64encode(k.meta() + buf).decode("ascii").rstrip("="),
            "final": final,
        }
        eth = pair(0, 6)
        if eth:
            source["mac"], dest["mac"] = _mac(eth[0]), _mac(eth[1])
        vlans = [struct.unpack("<H", buf[o:o + 2])[0] for o in (k.off[1], k.off[2]) if o != UNSET]
        if vlans:
            flow_doc["vlan"] = vlans[0] if len(vlans) == 1 else vlans
        ips: list[tuple[str, str]] = []
        for slot, size, kind in ((3, 4, "ipv4"), (4, 4, "ipv4"), (5, 16, "ipv6"), (6, 16, "ipv6")):
            p = pair(slot, size)
            if p:
                ips.append((_ip(p[0]), _ip(p[1])))
                network.setdefault("type", kind)
        if ips:
            source["ip"] = ips[0][0] if len(ips) == 1 else [a for a, _ in ips]
            dest["ip"] = ips[0][1] if len(ips) == 1 else [b for _, b in ips]
        proto = 0
        ports = (0, 0)
        for slot, name, number in ((9, "udp", 17), (10, "tcp", 6)):
            p = pair(slot, 2)
            if p:
                ports = (struct.unpack("<H", p[0])[0], struct.unpack("<H", p[1])[0])
                source["port"], dest["port"] = ports
                network["transport"] = name
                proto = number
        icmp = flow.icmp[0]
        if icmp is not None and proto == 0 and (icmp[1] or icmp[2]):
            # Packetbeat: the source direction's last ICMP type and code, when not 0/0 (an
            # echo reply leaves the flow without a transport and a community id)
            version, icmp_type, code = icmp
            network["transport"] = "icmp" if version == 4 else "ipv6-icmp"
            proto = 1 if version == 4 else 58
            ports = (icmp_type, code)
        source["bytes"], source["packets"] = flow.bytes[0], flow.packets[0]
        if flow.packets[1]:
            dest["bytes"], dest["packets"] = flow.bytes[1], flow.packets[1]
        if proto and ips:
            network["community_id"] = community_id(ips[0][0], ips[0][1], proto, ports[0], ports[1])
        network["bytes"] = flow.bytes[0] + flow.bytes[1]
        network["packets"] = flow.packets[0] + flow.packets[1]
        return {
            "event": {
                "start": format_ts(flow.start), "end": format_ts(flow.last), "duration": flow.last - flow.start,
                "dataset": "flow", "kind": "event", "category": ["network"], "action": "network_flow",
                "type": ["connection", "end"] if final else ["connection"],
            },
            "flow": flow_doc,
            "type": "flow",
            "network": network,
            "source": source,
            "destination": dest,
        }
