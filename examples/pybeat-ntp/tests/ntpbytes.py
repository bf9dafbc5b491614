"""NTP messages as bytes, for the tests (RFC 5905 section 7.3)."""

from __future__ import annotations

import struct
from typing import Any

NTP_UNIX_OFFSET = 2_208_988_800
SECOND = 1_000_000_000


def ntp_ts(unix_ns: int) -> int:
    """A Unix time in nanoseconds as a 64-bit NTP timestamp (era 0 or 1 alike: modulo 2**32 s)."""
    seconds, ns = divmod(unix_ns, SECOND)
    # the fraction rounded up: read back (rounded down) it gives the same nanosecond
    return (((seconds + NTP_UNIX_OFFSET) % (1 << 32)) << 32) | (((ns << 32) + SECOND - 1) // SECOND)


def message(
    mode: int,
    *,
    version: int = 4,
    leap: int = 0,
    stratum: int = 0,
    poll: int = 6,
    precision: int = -20,
    root_delay: int = 0,
    root_dispersion: int = 0,
    ref_id: bytes = b"\0\0\0\0",
    reference: int = 0,
    origin: int = 0,
    receive: int = 0,
    transmit: int = 0,
) -> bytes:
    return struct.pack("!BBbbII4sQQQQ", (leap << 6) | (version << 3) | mode, stratum, poll, precision, root_delay,
                       root_dispersion, ref_id, reference, origin, receive, transmit)


def request(transmit: int, **kw: Any) -> bytes:
    return message(3, transmit=transmit, **kw)


def response(origin: int, receive: int, transmit: int, *, stratum: int = 2, ref_id: bytes = b"\xc0\x00\x02\x01",
             **kw: Any) -> bytes:
    return message(4, stratum=stratum, ref_id=ref_id, origin=origin, receive=receive, transmit=transmit, **kw)
