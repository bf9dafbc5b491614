"""NTP messages (RFC 5905 section 7.3; modes 6 and 7 as ntpq/ntpdc send them): bytes in, a
:class:`Message` out, or :class:`MalformedMessage` saying why not. Pure functions: no state, no
I/O, no clock.

Timestamps stay as the 64-bit wire values (32-bit seconds since 1900, 32-bit fraction) until
:func:`to_unix_ns` places them in an era, near a time the caller knows (packet time), as RFC
5905 section 6 advises: the wire cannot tell 1968-2036 from 2036-2104.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "HEADER_LEN", "MODE_NAMES", "MalformedMessage", "Message", "parse", "reference_id_text", "short_seconds",
    "to_unix_ns",
]

#: the fixed header of modes 1-5 (without extension fields or a MAC)
HEADER_LEN = 48
#: the shortest mode 6 (control) and mode 7 (private) messages
CONTROL_LEN = 12
PRIVATE_LEN = 8

MODE_NAMES = {
    0: "reserved", 1: "symmetric_active", 2: "symmetric_passive", 3: "client", 4: "server", 5: "broadcast",
    6: "control", 7: "private",
}
CLIENT, SERVER = 3, 4

#: seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)
NTP_UNIX_OFFSET = 2_208_988_800
_ERA = 1 << 32
_NS = 1_000_000_000

_HEADER = struct.Struct("!BBbbII4sQQQQ")


class MalformedMessage(ValueError):
    """The datagram is not an NTP message this parser understands (the text says why)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One NTP message. For modes 6 and 7 only ``leap``, ``version``, ``mode`` and ``opcode``
    are read (the rest of those formats is not NTP's header)."""

    leap: int
    version: int
    mode: int
    length: int
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: int = 0  # NTP short format (16.16 seconds)
    root_dispersion: int = 0
    reference_id: bytes = b"\0\0\0\0"
    reference_ts: int = 0  # NTP timestamp format (32.32 seconds since 1900)
    origin_ts: int = 0
    receive_ts: int = 0
    transmit_ts: int = 0
    #: control (mode 6): the opcode; private (mode 7): the request code (42 is ``monlist``)
    opcode: int | None = None

    @property
    def mode_name(self) -> str:
        return MODE_NAMES[self.mode]


def parse(data: bytes) -> Message:
    """The message in ``data`` (a UDP payload); raises :class:`MalformedMessage`."""
    if not data:
        raise MalformedMessage("empty datagram")
    leap, version, mode = data[0] >> 6, (data[0] >> 3) & 7, data[0] & 7
    if not 1 <= version <= 4:
        raise MalformedMessage(f"version {version} (NTP has versions 1 to 4)")
    if mode == 6:
        if len(data) < CONTROL_LEN:
            raise MalformedMessage(f"{len(data)} bytes, a control message has at least {CONTROL_LEN}")
        return Message(leap, version, mode, len(data), opcode=data[1] & 0x1F)
    if mode == 7:
        if len(data) < PRIVATE_LEN:
            raise MalformedMessage(f"{len(data)} bytes, a private message has at least {PRIVATE_LEN}")
        return Message(leap, version, mode, len(data), opcode=data[3])
    if mode == 0:
        raise MalformedMessage("mode 0 (reserved)")
    if len(data) < HEADER_LEN:
        raise MalformedMessage(f"{len(data)} bytes, an NTP header has {HEADER_LEN}")
    (_, stratum, poll, precision, root_delay, root_dispersion, ref_id, ref_ts, origin, receive,
     transmit) = _HEADER.unpack_from(data)
    return Message(leap, version, mode, len(data), stratum, poll, precision, root_delay, root_dispersion, ref_id,
                   ref_ts, origin, receive, transmit)


def to_unix_ns(ntp_ts: int, near_ns: int) -> int:
    """A 64-bit NTP timestamp as nanoseconds since the Unix epoch, in the era (1900-2036 or
    2036-2104) that puts it nearest ``near_ns``."""
    seconds, fraction = ntp_ts >> 32, ntp_ts & 0xFFFFFFFF
    frac_ns = (fraction * _NS) >> 32
    best = 0
    for era in (0, 1):
        candidate = (seconds + era * _ERA - NTP_UNIX_OFFSET) * _NS + frac_ns
        if era == 0 or abs(candidate - near_ns) < abs(best - near_ns):
            best = candidate
    return best


def short_seconds(value: int) -> float:
    """An NTP short format value (root delay, root dispersion) in seconds."""
    return value / 65536


def reference_id_text(stratum: int, ref_id: bytes) -> str | None:
    """The reference ID as RFC 5905 defines it: stratum 0 (a kiss code) and 1 (a clock's
    name): four ASCII characters; stratum 2 and up: the upstream server's IPv4 address (or the
    first four bytes of an MD5 of its IPv6 address, which reads as an address too). None when
    it is zero."""
    if ref_id == b"\0\0\0\0":
        return None
    if stratum <= 1:
        text = ref_id.rstrip(b"\0")
        if all(0x20 < b < 0x7F for b in text):
            return text.decode("ascii")
        return ref_id.hex()
    return ".".join(str(b) for b in ref_id)
