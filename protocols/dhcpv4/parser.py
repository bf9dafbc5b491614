"""DHCPv4/BOOTP wire format (RFC 2131, RFC 2132, RFC 3396 option concatenation, option overload).

Owns: the fixed 236-byte header, the magic cookie, and the option area split into
``{code: bytes}``. A message whose header or cookie cannot be read is refused with
:class:`DhcpParseError` (Packetbeat drops those too); a damaged option area is read as far as it
goes and described in ``notes``. Never looks at what an option means (that is ``options.py``).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

__all__ = ["DhcpParseError", "DhcpMessage", "parse", "HEADER_LEN", "MAGIC_COOKIE"]

HEADER_LEN = 236
MAGIC_COOKIE = b"\x63\x82\x53\x63"
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
OPT_PAD = 0
OPT_END = 255
OPT_OVERLOAD = 52


class DhcpParseError(ValueError):
    """The datagram is not a DHCP message (too short, or no magic cookie)."""


@dataclass(slots=True)
class DhcpMessage:
    op: int
    htype: int
    hlen: int
    hops: int
    xid: int
    secs: int
    flags: int
    ciaddr: str
    yiaddr: str
    siaddr: str
    giaddr: str
    chaddr: bytes  # the first min(hlen, 16) bytes
    sname: bytes  # up to the first NUL; empty when the field carries options
    file: bytes
    #: option code -> data, repeated options concatenated (RFC 3396)
    options: dict[int, bytes] = field(default_factory=dict)
    #: option codes in the order they first appeared
    order: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _cstring(raw: bytes) -> bytes:
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


def parse(payload: bytes) -> DhcpMessage:
    """Decode one DHCP message; raises :class:`DhcpParseError` only for a missing header/cookie."""
    if len(payload) < HEADER_LEN + 4:
        raise DhcpParseError(f"{len(payload)} bytes is shorter than a DHCP header with its magic cookie")
    if payload[HEADER_LEN : HEADER_LEN + 4] != MAGIC_COOKIE:
        raise DhcpParseError("no DHCP magic cookie")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file_) = _HEADER.unpack_from(payload)
    msg = DhcpMessage(
        op, htype, hlen, hops, xid, secs, flags,
        socket.inet_ntoa(ci), socket.inet_ntoa(yi), socket.inet_ntoa(si), socket.inet_ntoa(gi),
        chaddr[: min(hlen, 16)], _cstring(sname), _cstring(file_),
    )
    if hlen > 16:
        msg.notes.append(f"hardware address length {hlen} is longer than the 16-byte chaddr field")
    ended = _read_options(payload[HEADER_LEN + 4 :], msg, "options")
    if not ended:
        msg.notes.append("options are not terminated by an END option")
    overload = msg.options.get(OPT_OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            msg.notes.append(f"invalid option overload value {overload.hex()}")
        else:
            # RFC 2131 4.1: the 'file' field is read before 'sname'.
            if overload[0] & 1:
                _read_options(file_, msg, "file field")
                msg.file = b""
            if overload[0] & 2:
                _read_options(sname, msg, "sname field")
                msg.sname = b""
    return msg


def _read_options(area: bytes, msg: DhcpMessage, where: str) -> bool:
    """Add the options of one area to ``msg``; True when an END option closed it."""
    pos, n = 0, len(area)
    options, order = msg.options, msg.order
    while pos < n:
        code = area[pos]
        if code == OPT_PAD:
            pos += 1
            continue
        if code == OPT_END:
            rest = area[pos + 1 :]
            if rest.strip(b"\x00\xff"):
                msg.notes.append(f"{len(rest)} bytes after the END option in the {where} are not padding")
            return True
        if pos + 2 > n:
            msg.notes.append(f"option {code} in the {where} has no length byte")
            return False
        length = area[pos + 1]
        if pos + 2 + length > n:
            msg.notes.append(
                f"option {code} in the {where} claims {length} bytes but only {n - pos - 2} remain"
            )
            return False
        data = area[pos + 2 : pos + 2 + length]
        if code in options:
            options[code] += data
        else:
            options[code] = data
            order.append(code)
        pos += 2 + length
    return False
