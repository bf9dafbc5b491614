"""Packets as bytes, for tests: Ethernet frames carrying IPv4/IPv6 with UDP, TCP or ICMP, and
classic pcap files of them.

Everything here is the wire format with valid lengths and checksums (Wireshark shows the
frames as clean), so a test that feeds them to the agent's decoder exercises the same code as a
capture. Addresses are ``(ip, port)`` pairs; IPv6 is chosen by a ``:`` in the address.
Timestamps are nanoseconds since the epoch (:data:`SECOND`, :func:`at`).
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Iterable

__all__ = [
    "BASE_NS", "LINKTYPE_ETHERNET", "LINKTYPE_RAW", "SECOND", "Address", "Capture", "TcpFlow", "at", "ethernet",
    "icmp_frame", "icmp_message", "ip_packet", "tcp_frame", "tcp_segment", "udp_datagram", "udp_frame",
    "write_pcap",
]

#: one second in the nanoseconds every timestamp is counted in
SECOND = 1_000_000_000
#: where the harnesses' clocks start when a test gives no time: 2024-01-01T00:00:00Z
BASE_NS = 1_704_067_200 * SECOND

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

#: TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

#: an endpoint: ``("10.0.0.1", 53)`` or ``("2001:db8::1", 53)``
Address = tuple[str, int]

_MAC_A = bytes.fromhex("020000000001")
_MAC_B = bytes.fromhex("020000000002")


def at(seconds: float) -> int:
    """``BASE_NS`` plus ``seconds``: a readable timestamp for a test (``at(1.5)``)."""
    return BASE_NS + round(seconds * SECOND)


def _is_v6(ip: str) -> bool:
    return ":" in ip


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if len(s) == 16:
        return s + d + struct.pack("!I3xB", length, proto)
    return s + d + struct.pack("!xBH", proto, length)


def ip_packet(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64, ident: int = 0) -> bytes:
    """An IPv4 (header checksum set, don't-fragment) or IPv6 packet around ``payload``."""
    if _is_v6(src):
        head = struct.pack("!IHBB", 6 << 28, len(payload), proto, ttl)
        return head + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + payload
    total = 20 + len(payload)
    if total > 0xFFFF:
        raise ValueError(f"an IPv4 packet holds at most 65,515 bytes of payload, not {len(payload)}")
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, ttl, proto, 0,
                       ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return head[:10] + struct.pack("!H", _checksum(head)) + head[12:] + payload


def ethernet(packet: bytes, vlan: int | None = None) -> bytes:
    """An Ethernet II frame around an IP packet (the version picks the EtherType); ``vlan`` adds
    an 802.1Q tag."""
    etype = 0x86DD if packet and packet[0] >> 4 == 6 else 0x0800
    tag = struct.pack("!HH", 0x8100, vlan & 0x0FFF) if vlan is not None else b""
    return _MAC_B + _MAC_A + tag + struct.pack("!H", etype) + packet


def udp_datagram(src: Address, dst: Address, payload: bytes) -> bytes:
    """A UDP header and ``payload`` with the checksum over the pseudo header."""
    length = 8 + len(payload)
    head = struct.pack("!HHHH", src[1], dst[1], length, 0)
    csum = _checksum(_pseudo_header(src[0], dst[0], 17, length) + head + payload) or 0xFFFF
    return head[:6] + struct.pack("!H", csum) + payload


def tcp_segment(src: Address, dst: Address, seq: int, ack: int, flags: int, payload: bytes = b"",
                window: int = 65535) -> bytes:
    """A TCP header (no options) and ``payload`` with the checksum over the pseudo header."""
    head = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                       window, 0, 0)
    csum = _checksum(_pseudo_header(src[0], dst[0], 6, len(head) + len(payload)) + head + payload)
    return head[:16] + struct.pack("!H", csum) + head[18:] + payload


def icmp_message(icmp_type: int, code: int, body: bytes = b"", src: str = "", dst: str = "") -> bytes:
    """An ICMP message (ICMPv6 when ``src`` is an IPv6 address: its checksum covers the pseudo
    header). ``body`` is what follows the 4-byte type/code/checksum header (for an echo: id,
    sequence, data)."""
    head = struct.pack("!BBH", icmp_type, code, 0)
    covered = head + body
    if src and _is_v6(src):
        covered = _pseudo_header(src, dst, 58, len(head) + len(body)) + covered
    return head[:2] + struct.pack("!H", _checksum(covered)) + body


def udp_frame(src: Address, dst: Address, payload: bytes, vlan: int | None = None) -> bytes:
    """Ethernet + IP + UDP carrying ``payload``."""
    return ethernet(ip_packet(src[0], dst[0], 17, udp_datagram(src, dst, payload)), vlan)


def tcp_frame(src: Address, dst: Address, seq: int, ack: int, flags: int, payload: bytes = b"",
              vlan: int | None = None) -> bytes:
    """Ethernet + IP + TCP carrying ``payload``."""
    return ethernet(ip_packet(src[0], dst[0], 6, tcp_segment(src, dst, seq, ack, flags, payload)), vlan)


def icmp_frame(src: str, dst: str, icmp_type: int, code: int, body: bytes = b"", vlan: int | None = None) -> bytes:
    """Ethernet + IP + ICMP (or ICMPv6 for IPv6 addresses)."""
    proto = 58 if _is_v6(src) else 1
    return ethernet(ip_packet(src, dst, proto, icmp_message(icmp_type, code, body, src, dst)), vlan)


def write_pcap(path: str | Path, packets: Iterable[tuple[int, bytes]], link: int = LINKTYPE_ETHERNET) -> Path:
    """A classic pcap file (nanosecond stamps) of ``(ts_ns, frame)`` pairs; returns its path."""
    out = Path(path)
    with open(out, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, link))
        for ts, frame in packets:
            sec, nsec = divmod(ts, SECOND)
            fh.write(struct.pack("<IIII", sec, nsec, len(frame), len(frame)))
            fh.write(frame)
    return out


class TcpFlow:
    """The frames of one TCP connection, sequence numbers kept: the handshake, data cut into
    segments of at most ``mss`` bytes, a skipped range (bytes never captured), FIN, RST."""

    def __init__(self, client: Address, server: Address, mss: int = 1460):
        self.client = client
        self.server = server
        self.mss = mss
        self._seq = {True: 1_000_000, False: 7_000_000}  # next sequence number per sender (from_client)

    def handshake(self) -> list[bytes]:
        c, s = self._seq[True], self._seq[False]
        self._seq[True] += 1
        self._seq[False] += 1
        return [tcp_frame(self.client, self.server, c, 0, SYN),
                tcp_frame(self.server, self.client, s, c + 1, SYN | ACK),
                tcp_frame(self.client, self.server, c + 1, s + 1, ACK)]

    def data(self, from_client: bool, data: bytes, flags: int = PSH | ACK) -> list[bytes]:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        out = []
        for i in range(0, max(len(data), 1), self.mss):
            chunk = data[i:i + self.mss]
            out.append(tcp_frame(src, dst, self._seq[from_client], self._seq[not from_client], flags, chunk))
            self._seq[from_client] += len(chunk)
        return out

    def skip(self, nbytes: int, from_client: bool = True) -> None:
        self._seq[from_client] += nbytes

    def fin(self, from_client: bool) -> list[bytes]:
        return self.data(from_client, b"", FIN | ACK)

    def rst(self, from_client: bool) -> list[bytes]:
        return self.data(from_client, b"", RST | ACK)


class Capture:
    """Build a capture file from payloads, for tests that run the real ``pybeat`` command on
    it (:func:`pybeat.testing.run_cli`)::

        cap = Capture()
        cap.udp(query, src=("10.0.0.1", 5000), dst=("10.0.0.2", 53), ts=at(0))
        conn = cap.tcp(("10.0.0.1", 5001), ("10.0.0.2", 53), ts=at(1))
        conn.send(b"...")
        cap.write(tmp_path / "test.pcap")

    Without a ``ts``, each packet comes 1 microsecond after the one before.
    """

    def __init__(self) -> None:
        self.packets: list[tuple[int, bytes]] = []
        self._now = 0

    def _ts(self, ts: int | None) -> int:
        if ts is None:
            ts = self._now + 1_000 if self._now else BASE_NS
        self._now = max(self._now, ts)
        return ts

    def frame(self, frame: bytes, ts: int | None = None) -> None:
        self.packets.append((self._ts(ts), frame))

    def udp(self, payload: bytes, src: Address, dst: Address, ts: int | None = None, vlan: int | None = None) -> None:
        self.frame(udp_frame(src, dst, payload, vlan), ts)

    def icmp(self, icmp_type: int, code: int, body: bytes = b"", *, src: str, dst: str, ts: int | None = None) -> None:
        self.frame(icmp_frame(src, dst, icmp_type, code, body), ts)

    def tcp(self, client: Address, server: Address, ts: int | None = None, handshake: bool = True) -> "CaptureTcp":
        return CaptureTcp(self, TcpFlow(client, server), ts, handshake)

    def write(self, path: str | Path) -> Path:
        return write_pcap(path, self.packets)


class CaptureTcp:
    """A TCP connection in a :class:`Capture`."""

    def __init__(self, capture: Capture, flow: TcpFlow, ts: int | None, handshake: bool):
        self.capture = capture
        self.flow = flow
        if handshake:
            ts = capture._ts(ts)
            for frame in flow.handshake():
                capture.frame(frame, ts)

    def _add(self, frames: list[bytes], ts: int | None) -> None:
        ts = self.capture._ts(ts)
        for frame in frames:
            self.capture.frame(frame, ts)

    def send(self, data: bytes, ts: int | None = None) -> None:
        self._add(self.flow.data(True, data), ts)

    def reply(self, data: bytes, ts: int | None = None) -> None:
        self._add(self.flow.data(False, data), ts)

    def close(self, ts: int | None = None) -> None:
        self._add(self.flow.fin(True) + self.flow.fin(False), ts)
