"""Domain names on the wire: labels, compression pointers and presentation form.

Caps: a name is at most 255 octets on the wire and a label at most 63; a compression pointer
must point strictly before the segment it is read in, so a chain of pointers always moves
backwards and ends (no loops, no forward references). Labels are bytes: anything outside
printable ASCII, and the characters special in zone files, are escaped as miekg/dns does
(``\\.``, ``\\DDD``), so 8-bit names (DNS tunnels) survive intact.
"""

from __future__ import annotations

from pybeat.protocols.dns.errors import DnsFormError

__all__ = ["MAX_NAME", "MAX_LABEL", "SAFE_BYTES", "read_name"]

MAX_NAME = 255
MAX_LABEL = 63

# Bytes a label can hold without escaping in presentation format (miekg sprintName):
# printable ASCII except . space ' @ ; ( ) " \
_SPECIAL = frozenset(b". '@;()\"\\")
_SAFE_BYTES = bytes(b for b in range(0x21, 0x7F) if b not in _SPECIAL) + b"."
#: the bytes of a name printed as they are (the compiled parser is built on this table)
SAFE_BYTES = _SAFE_BYTES


def _escape_label(label: bytes) -> str:
    out = []
    for b in label:
        if b in _SPECIAL:
            out.append("\\" + chr(b))
        elif b < 0x20 or b > 0x7E:
            out.append(f"\\{b:03d}")
        else:
            out.append(chr(b))
    return "".join(out)


def _render(labels: list[bytes]) -> str:
    raw = b".".join(labels)
    if not raw.translate(None, _SAFE_BYTES) and raw.count(b".") == len(labels) - 1:
        return raw.decode("ascii")
    return ".".join([_escape_label(lab) for lab in labels])


def read_name(buf: bytes, off: int, cache: dict[int, tuple[str, int]] | None = None) -> tuple[str, int]:
    """The name at ``off`` in presentation form without the trailing dot (root is ``"."``),
    and the offset just after it (after the first pointer, if it was compressed).

    ``cache`` (one per message) maps offsets of names already read to (name, wire length), so
    the usual pointer back to the question name is resolved without walking labels again.
    """
    n = len(buf)
    start = off
    labels: list[bytes] = []
    end = -1
    wire_len = 1  # the root label
    limit = off  # a pointer must point before the segment it is read in
    while True:
        if off >= n:
            raise DnsFormError("name runs past the end of the message")
        length = buf[off]
        if length == 0:
            off += 1
            break
        if length <= MAX_LABEL:
            nxt = off + 1 + length
            if nxt > n:
                raise DnsFormError("label runs past the end of the message")
            wire_len += length + 1
            if wire_len > MAX_NAME:
                raise DnsFormError("name longer than 255 octets")
            labels.append(buf[off + 1 : nxt])
            off = nxt
        elif length >= 0xC0:
            if off + 1 >= n:
                raise DnsFormError("compression pointer cut off")
            target = ((length & 0x3F) << 8) | buf[off + 1]
            if target >= limit:
                raise DnsFormError("compression pointer loops or points forward")
            if end < 0:
                end = off + 2
            if cache is not None:
                hit = cache.get(target)
                if hit is not None:
                    suffix, suffix_len = hit
                    wire_len += suffix_len - 1
                    if wire_len > MAX_NAME:
                        raise DnsFormError("name longer than 255 octets")
                    if labels:
                        suffix = _render(labels) if suffix == "." else _render(labels) + "." + suffix
                        cache[start] = (suffix, wire_len)
                    return suffix, end
            limit = off = target
        else:
            raise DnsFormError("unknown label type")
    if end < 0:
        end = off
    name = _render(labels) if labels else "."
    if cache is not None:
        cache[start] = (name, wire_len)
    return name, end


