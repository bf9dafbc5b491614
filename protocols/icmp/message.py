"""ICMPv4/ICMPv6 message classification, names and the packet quoted inside error messages.

Owns: Packetbeat's tables (which types are responses, errors, request/response pairs), the
``Type(Code)`` strings Packetbeat renders through gopacket, and decoding of the original datagram
an error message quotes (addresses, ports, the quoted echo's id/seq). Never keeps state and never
raises: everything here works on ``bytes`` with explicit length checks.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

__all__ = [
    "HEADER_LEN",
    "is_request",
    "is_error",
    "is_pair",
    "tracking",
    "human_readable",
    "quoted_original",
    "error_extras",
]

#: ICMP header as gopacket splits it: type, code, checksum and 4 type-specific bytes (id/seq for
#: echo). The event's byte counts are what follows it (Packetbeat's ``len(layer.Payload)``).
HEADER_LEN = 8

_RESPONSE = {4: frozenset({0, 14, 16, 18}), 6: frozenset({129})}
_ERROR = {4: frozenset({3, 4, 11, 12}), 6: frozenset({1, 2, 3, 4})}
_PAIR = {4: frozenset({8, 0, 13, 14, 15, 16, 17, 18}), 6: frozenset({128, 129})}

# gopacket's names. Codes without a name print as their number: "EchoRequest(0)".
_V4_TYPES = {
    0: "EchoReply", 3: "DestinationUnreachable", 4: "SourceQuench", 5: "Redirect", 8: "EchoRequest",
    9: "RouterAdvertisement", 10: "RouterSolicitation", 11: "TimeExceeded", 12: "ParameterProblem",
    13: "TimestampRequest", 14: "TimestampReply", 15: "InfoRequest", 16: "InfoReply",
    17: "AddressMaskRequest", 18: "AddressMaskReply",
}
_V4_CODES = {
    3: {
        0: "Net", 1: "Host", 2: "Protocol", 3: "Port", 4: "FragmentationNeeded", 5: "SourceRoutingFailed",
        6: "NetUnknown", 7: "HostUnknown", 8: "SourceIsolated", 9: "NetAdminProhibited",
        10: "HostAdminProhibited", 11: "NetTOS", 12: "HostTOS", 13: "CommAdminProhibited",
        14: "HostPrecedence", 15: "PrecedenceCutoff",
    },
    5: {0: "Net", 1: "Host", 2: "TOS+Net", 3: "TOS+Host"},
    11: {0: "TTLExceeded", 1: "FragmentReassemblyTimeExceeded"},
    12: {0: "PointerIndicatesError", 1: "MissingOption", 2: "BadLength"},
}
_V6_TYPES = {
    1: "DestinationUnreachable", 2: "PacketTooBig", 3: "TimeExceeded", 4: "ParameterProblem",
    128: "EchoRequest", 129: "EchoReply", 130: "MLDv1MulticastListenerQuery",
    131: "MLDv1MulticastListenerReport", 132: "MLDv1MulticastListenerDone", 133: "RouterSolicitation",
    134: "RouterAdvertisement", 135: "NeighborSolicitation", 136: "NeighborAdvertisement",
    137: "Redirect", 143: "MLDv2MulticastListenerReport",
}
_V6_CODES = {
    1: {
        0: "NoRouteToDst", 1: "AdminProhibited", 2: "BeyondScopeOfSrc", 3: "AddressUnreachable",
        4: "PortUnreachable", 5: "SrcAddressFailedPolicy", 6: "RejectRouteToDst",
    },
    3: {0: "HopLimitExceeded", 1: "FragmentReassemblyTimeExceeded"},
    4: {0: "ErroneousHeaderField", 1: "UnrecognizedNextHeader", 2: "UnrecognizedIPv6Option"},
}

_TRANSPORT_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}
# IPv6 extension headers a quoted datagram may carry before its transport header.
_IPV6_EXT = frozenset({0, 43, 60, 51, 135, 139, 140})
_U16 = struct.Struct("!H").unpack_from


def is_request(version: int, icmp_type: int) -> bool:
    """Everything that is not a response type counts as a request (errors included)."""
    return icmp_type not in _RESPONSE[version]


def is_error(version: int, icmp_type: int) -> bool:
    return icmp_type in _ERROR[version]


def is_pair(version: int, icmp_type: int) -> bool:
    """Types that need a counterpart and carry an id and a sequence number."""
    return icmp_type in _PAIR[version]


def tracking(version: int, message: bytes) -> tuple[int, int]:
    """(id, seq) of a pair-type message, (0, 0) for every other type."""
    if message[0] in _PAIR[version] and len(message) >= 8:
        return _U16(message, 4)[0], _U16(message, 6)[0]
    return 0, 0


def human_readable(version: int, icmp_type: int, code: int) -> str:
    """``EchoRequest(0)``, ``DestinationUnreachable(Port)``, ``200(3)`` for unknown types."""
    types, codes = (_V4_TYPES, _V4_CODES) if version == 4 else (_V6_TYPES, _V6_CODES)
    name = types.get(icmp_type)
    if name is None:
        return f"{icmp_type}({code})"
    code_name = codes.get(icmp_type, {}).get(code)
    return f"{name}({code_name if code_name is not None else code})"


def quoted_original(version: int, body: bytes) -> dict[str, Any] | None:
    """The datagram an ICMP error quotes (``body`` starts at its IP header), as event fields.

    Returns source/destination addresses and, where the quote is long enough, ports (TCP/UDP/
    SCTP) or the quoted ICMP type/code/id/seq; ``None`` when not even the IP header is there.
    """
    try:
        if version == 4:
            if len(body) < 20 or body[0] >> 4 != 4:
                return None
            ihl = (body[0] & 0x0F) * 4
            proto = body[9]
            src = socket.inet_ntop(socket.AF_INET, body[12:16])
            dst = socket.inet_ntop(socket.AF_INET, body[16:20])
            frag_offset = _U16(body, 6)[0] & 0x1FFF
            pos = ihl if ihl >= 20 else 20
            if frag_offset:
                pos = -1  # a later fragment: no transport header in it
        else:
            if len(body) < 40 or body[0] >> 4 != 6:
                return None
            proto = body[6]
            src = socket.inet_ntop(socket.AF_INET6, body[8:24])
            dst = socket.inet_ntop(socket.AF_INET6, body[24:40])
            pos = 40
            hops = 0
            while proto in _IPV6_EXT or proto == 44:
                if pos + 8 > len(body) or hops >= 8:
                    pos = -1
                    break
                hops += 1
                nxt = body[pos]
                if proto == 44:
                    if _U16(body, pos + 2)[0] & 0xFFF8:
                        pos = -1  # not the first fragment
                        proto = nxt
                        break
                    pos += 8
                elif proto == 51:
                    pos += (body[pos + 1] + 2) * 4
                else:
                    pos += (body[pos + 1] + 1) * 8
                proto = nxt
    except (OSError, ValueError, IndexError, struct.error):
        return None
    original: dict[str, Any] = {
        "ip_version": version,
        "transport": _TRANSPORT_NAMES.get(proto, str(proto)),
        "source": {"ip": src},
        "destination": {"ip": dst},
    }
    if pos >= 0 and proto in (6, 17, 132) and len(body) >= pos + 4:
        original["source"]["port"] = _U16(body, pos)[0]
        original["destination"]["port"] = _U16(body, pos + 2)[0]
    elif pos >= 0 and proto in (1, 58) and len(body) >= pos + 2:
        inner_version = 4 if proto == 1 else 6
        qtype, qcode = body[pos], body[pos + 1]
        quoted: dict[str, Any] = {"type": qtype, "code": qcode}
        if len(body) >= pos + 8 and qtype in _PAIR[inner_version]:
            quoted["id"] = _U16(body, pos + 4)[0]
            quoted["seq"] = _U16(body, pos + 6)[0]
        original["icmp"] = quoted
    return original


def error_extras(version: int, message: bytes) -> dict[str, Any]:
    """Type-specific fields users need from an error: next-hop MTU, redirect gateway."""
    extras: dict[str, Any] = {}
    icmp_type, code = message[0], message[1]
    if len(message) < 8:
        return extras
    if version == 4:
        if icmp_type == 3 and code == 4:
            mtu = _U16(message, 6)[0]
            if mtu:
                extras["mtu"] = mtu
        elif icmp_type == 5:
            extras["gateway"] = socket.inet_ntop(socket.AF_INET, message[4:8])
    elif icmp_type == 2:
        extras["mtu"] = struct.unpack_from("!I", message, 4)[0]
    elif icmp_type == 137 and len(message) >= 40:  # RFC 4861 redirect: better first hop, destination
        extras["gateway"] = socket.inet_ntop(socket.AF_INET6, message[8:24])
        extras["redirected_destination"] = socket.inet_ntop(socket.AF_INET6, message[24:40])
    return extras
