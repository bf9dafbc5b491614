"""Record data rendering: the ``data`` value and type-specific keys of one resource record.

Packetbeat's rendering (``rrToMapStr`` in packetbeat/protos/dns/dns.go, on top of miekg/dns) is
reproduced exactly for the types it handles (A, AAAA, CNAME, NS, PTR, MX, SOA, SRV, TXT, DNSKEY,
DS, RRSIG, NSEC, NSEC3, NSEC3PARAM, OPT). For CAA, NAPTR, SSHFP, TLSA, SVCB, HTTPS, DNAME and
HINFO, which Packetbeat only shows as escaped raw bytes, ``data`` is the zone-file presentation
form (as dig prints it) plus typed keys. Anything else keeps its raw data as Packetbeat renders it.

Never reads past ``end``; bad data raises :class:`DnsFormError`, which the caller turns into a note.
"""

from __future__ import annotations

import base64
import socket
import struct
import time
from typing import Any, Callable, Optional

from pybeat.protocols.dns.errors import DnsFormError
from pybeat.protocols.dns.names import read_name
from pybeat.protocols.dns.tables import SVC_KEYS, algorithm_name, hash_name, rcode_name, type_name

__all__ = ["TXT_SAFE", "render_rdata", "render_opt", "escape_raw", "escape_txt"]

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_MX = struct.Struct("!H").unpack_from
_SOA = struct.Struct("!5I").unpack_from
_SRV = struct.Struct("!3H").unpack_from
_RRSIG = struct.Struct("!HBBIIIH").unpack_from
_DNSKEY = struct.Struct("!HBB").unpack_from
_DS = struct.Struct("!HBB").unpack_from
_NSEC3 = struct.Struct("!BBHB").unpack_from
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
_NameCache = Optional[dict[int, tuple[str, int]]]


def _name(buf: bytes, off: int, end: int, nc: _NameCache = None) -> tuple[str, int]:
    name, after = read_name(buf, off, nc)
    if after > end:
        raise DnsFormError("name runs past the record data")
    return name, after


def _check(off: int, end: int) -> None:
    if off != end:
        raise DnsFormError("record data length does not match its content")


# -- text escaping ---------------------------------------------------------------------------


def _txt_char(b: int) -> str:
    if b == 0x22 or b == 0x5C:
        return "\\" + chr(b)
    if b < 0x20 or b > 0x7E:
        return f"\\{b:03d}"
    return chr(b)


_TXT_TABLE = [_txt_char(b) for b in range(256)]
_RAW_TABLE = list(_TXT_TABLE)
_RAW_TABLE[9], _RAW_TABLE[10], _RAW_TABLE[13] = "\\t", "\\n", "\\r"
_TXT_SAFE = bytes(b for b in range(0x20, 0x7F) if b not in (0x22, 0x5C))
#: the bytes of a character-string printed as they are (the compiled parser is built on this table)
TXT_SAFE = _TXT_SAFE


def escape_txt(raw: bytes) -> str:
    """A character-string as miekg/dns renders it: ``"`` and ``\\`` escaped, others ``\\DDD``."""
    if not raw.translate(None, _TXT_SAFE):
        return raw.decode("ascii")
    return "".join([_TXT_TABLE[b] for b in raw])


def escape_raw(raw: bytes) -> str:
    """Unknown record data as Packetbeat renders it (``hexStringToString``)."""
    if not raw.translate(None, _TXT_SAFE):
        return raw.decode("ascii")
    return "".join([_RAW_TABLE[b] for b in raw])


def _strings(buf: bytes, off: int, end: int) -> list[bytes]:
    out = []
    while off < end:
        ln = buf[off]
        nxt = off + 1 + ln
        if nxt > end:
            raise DnsFormError("character-string runs past the record data")
        out.append(buf[off + 1 : nxt])
        off = nxt
    return out


def _type_bits(buf: bytes, off: int, end: int) -> str:
    names = []
    while off < end:
        if off + 2 > end:
            raise DnsFormError("type bitmap cut off")
        window, blen = buf[off], buf[off + 1]
        off += 2
        if blen == 0 or blen > 32 or off + blen > end:
            raise DnsFormError("bad type bitmap")
        for i in range(blen):
            byte = buf[off + i]
            if byte:
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        names.append(type_name(window * 256 + i * 8 + bit))
        off += blen
    return " ".join(names)


def _time(t: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def _salt(raw: bytes) -> str:
    return raw.hex().upper() if raw else "-"


# -- per-type renderers: set rec["data"] (+ keys); return "" (or the IP for A/AAAA) ----------


def _a(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str | None:
    if end == off:
        return None
    if end - off != 4:
        raise DnsFormError("A record data is not 4 octets")
    ip = rec["data"] = socket.inet_ntoa(buf[off:end])
    return ip


def _aaaa(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str | None:
    if end == off:
        return None
    if end - off != 16:
        raise DnsFormError("AAAA record data is not 16 octets")
    raw = buf[off:end]
    # Go's net.IP.String prints an IPv4-mapped address in dotted form.
    ip = socket.inet_ntoa(raw[12:]) if raw[:12] == _V4_MAPPED else socket.inet_ntop(socket.AF_INET6, raw)
    rec["data"] = ip
    return ip


def _target(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    name, after = _name(buf, off, end, nc)
    _check(after, end)
    rec["data"] = name
    return ""


def _mx(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 2 > end:
        raise DnsFormError("MX record cut off")
    rec["preference"] = _MX(buf, off)[0]
    name, after = _name(buf, off + 2, end, nc)
    _check(after, end)
    rec["data"] = name
    return ""


def _soa(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    mname, off = _name(buf, off, end, nc)
    rname, off = _name(buf, off, end, nc)
    if off + 20 != end:
        raise DnsFormError("SOA record data length does not match")
    serial, refresh, retry, expire, minimum = _SOA(buf, off)
    rec["rname"] = rname
    rec["serial"] = serial
    rec["refresh"] = refresh
    rec["retry"] = retry
    rec["expire"] = expire
    rec["minimum"] = minimum
    rec["data"] = mname
    return ""


def _srv(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 6 > end:
        raise DnsFormError("SRV record cut off")
    rec["priority"], rec["weight"], rec["port"] = _SRV(buf, off)
    name, after = _name(buf, off + 6, end, nc)
    _check(after, end)
    rec["data"] = name
    return ""


def _txt(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    rec["data"] = " ".join([escape_txt(s) for s in _strings(buf, off, end)])
    return ""


def _dnskey(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 4 > end:
        raise DnsFormError("DNSKEY record cut off")
    flags, proto, alg = _DNSKEY(buf, off)
    rec["flags"] = str(flags)
    rec["protocol"] = str(proto)
    rec["algorithm"] = algorithm_name(alg)
    rec["data"] = base64.b64encode(buf[off + 4 : end]).decode()
    return ""


def _ds(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 4 > end:
        raise DnsFormError("DS record cut off")
    tag, alg, dtype = _DS(buf, off)
    rec["key_tag"] = str(tag)
    rec["algorithm"] = algorithm_name(alg)
    rec["digest_type"] = hash_name(dtype)
    rec["data"] = buf[off + 4 : end].hex().upper()
    return ""


def _rrsig(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 18 > end:
        raise DnsFormError("RRSIG record cut off")
    covered, alg, labels, orig_ttl, expiration, inception, tag = _RRSIG(buf, off)
    signer, after = _name(buf, off + 18, end, nc)
    rec["type_covered"] = type_name(covered)
    rec["algorithm"] = algorithm_name(alg)
    rec["labels"] = str(labels)
    rec["original_ttl"] = str(orig_ttl)
    rec["expiration"] = _time(expiration)
    rec["inception"] = _time(inception)
    rec["key_tag"] = str(tag)
    rec["signer_name"] = signer
    rec["data"] = base64.b64encode(buf[after:end]).decode()
    return ""


def _nsec(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    nxt, after = _name(buf, off, end, nc)
    rec["type_bits"] = _type_bits(buf, after, end)
    rec["data"] = nxt if nxt == "." else nxt + "."  # Packetbeat does not trim this one
    return ""


def _nsec3_head(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> tuple[int, bytes]:
    if off + 5 > end:
        raise DnsFormError("NSEC3 record cut off")
    hash_alg, flags, iterations, salt_len = _NSEC3(buf, off)
    off += 5
    if off + salt_len > end:
        raise DnsFormError("NSEC3 salt runs past the record data")
    rec["hash"] = hash_name(hash_alg)
    rec["flags"] = str(flags)
    rec["iterations"] = str(iterations)
    return off + salt_len, buf[off : off + salt_len]


def _nsec3(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    off, salt = _nsec3_head(buf, off, end, rec, nc)
    if off >= end:
        raise DnsFormError("NSEC3 hash cut off")
    hlen = buf[off]
    if off + 1 + hlen > end:
        raise DnsFormError("NSEC3 hash runs past the record data")
    nxt = base64.b32hexencode(buf[off + 1 : off + 1 + hlen]).decode().rstrip("=")
    rec["salt"] = _salt(salt)
    rec["type_bits"] = _type_bits(buf, off + 1 + hlen, end)
    rec["data"] = nxt
    return ""


def _nsec3param(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    off, salt = _nsec3_head(buf, off, end, rec, nc)
    _check(off, end)
    rec["data"] = _salt(salt)
    return ""


# -- types Packetbeat leaves raw: presentation form plus typed keys ----------------------------


def _quoted(raw: bytes) -> str:
    return '"' + escape_txt(raw) + '"'


def _caa(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 2 > end or off + 2 + buf[off + 1] > end:
        raise DnsFormError("CAA record cut off")
    flags, tlen = buf[off], buf[off + 1]
    tag = buf[off + 2 : off + 2 + tlen].decode("ascii", "replace")
    value = buf[off + 2 + tlen : end]
    rec["flags"] = flags
    rec["tag"] = tag
    rec["value"] = escape_txt(value)
    rec["data"] = f"{flags} {tag} {_quoted(value)}"
    return ""


def _naptr(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 4 > end:
        raise DnsFormError("NAPTR record cut off")
    order, pref = struct.unpack_from("!HH", buf, off)
    off += 4
    strs = []
    for _ in range(3):
        if off >= end or off + 1 + buf[off] > end:
            raise DnsFormError("NAPTR string runs past the record data")
        strs.append(buf[off + 1 : off + 1 + buf[off]])
        off += 1 + buf[off]
    repl, after = _name(buf, off, end, nc)
    _check(after, end)
    rec["order"] = order
    rec["preference"] = pref
    rec["flags"], rec["services"], rec["regexp"] = (escape_txt(s) for s in strs)
    rec["replacement"] = repl
    rec["data"] = f"{order} {pref} " + " ".join(_quoted(s) for s in strs) + f" {repl if repl == '.' else repl + '.'}"
    return ""


def _sshfp(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 2 > end:
        raise DnsFormError("SSHFP record cut off")
    alg, fptype = buf[off], buf[off + 1]
    fp = buf[off + 2 : end].hex().upper()
    rec["algorithm"] = alg
    rec["fingerprint_type"] = fptype
    rec["fingerprint"] = fp
    rec["data"] = f"{alg} {fptype} {fp}"
    return ""


def _tlsa(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 3 > end:
        raise DnsFormError("TLSA record cut off")
    usage, selector, mtype = buf[off], buf[off + 1], buf[off + 2]
    cert = buf[off + 3 : end].hex().upper()
    rec["usage"] = usage
    rec["selector"] = selector
    rec["matching_type"] = mtype
    rec["certificate"] = cert
    rec["data"] = f"{usage} {selector} {mtype} {cert}"
    return ""


def _svc_value(key: int, val: bytes) -> str:
    if key == 1:  # alpn
        return ",".join(escape_txt(s).replace(",", "\\,") for s in _strings(val, 0, len(val)))
    if key == 0:
        return ",".join(SVC_KEYS.get(k, f"key{k}") for k in struct.unpack(f"!{len(val) // 2}H", val[: len(val) // 2 * 2]))
    if key == 3 and len(val) == 2:
        return str(_U16(val, 0)[0])
    if key == 4 and len(val) % 4 == 0:
        return ",".join(socket.inet_ntoa(val[i : i + 4]) for i in range(0, len(val), 4))
    if key == 6 and len(val) % 16 == 0:
        return ",".join(socket.inet_ntop(socket.AF_INET6, val[i : i + 16]) for i in range(0, len(val), 16))
    if key == 5:
        return base64.b64encode(val).decode()
    return '"' + escape_txt(val) + '"'


def _svcb(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    if off + 2 > end:
        raise DnsFormError("SVCB record cut off")
    priority = _U16(buf, off)[0]
    target, off = _name(buf, off + 2, end, nc)
    params = []
    while off < end:
        if off + 4 > end:
            raise DnsFormError("SVCB parameter cut off")
        key, vlen = struct.unpack_from("!HH", buf, off)
        off += 4
        if off + vlen > end:
            raise DnsFormError("SVCB parameter runs past the record data")
        name = SVC_KEYS.get(key, f"key{key}")
        val = buf[off : off + vlen]
        params.append(name if key == 2 or (not val and key not in (1, 0)) else f"{name}={_svc_value(key, val)}")
        off += vlen
    tgt = target if target == "." else target + "."
    rec["priority"] = priority
    rec["target"] = target
    if params:
        rec["params"] = " ".join(params)
    rec["data"] = " ".join([str(priority), tgt, *params])
    return ""


def _hinfo(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    strs = _strings(buf, off, end)
    if len(strs) != 2:
        raise DnsFormError("HINFO record does not hold two strings")
    rec["cpu"] = escape_txt(strs[0])
    rec["os"] = escape_txt(strs[1])
    rec["data"] = f"{_quoted(strs[0])} {_quoted(strs[1])}"
    return ""


def _raw(buf: bytes, off: int, end: int, rec: dict[str, Any], nc: _NameCache) -> str:
    rec["data"] = escape_raw(buf[off:end])
    return ""


_RENDERERS: dict[int, Callable[[bytes, int, int, dict[str, Any], _NameCache], str | None]] = {
    1: _a, 28: _aaaa, 5: _target, 2: _target, 12: _target, 39: _target, 15: _mx, 6: _soa,
    33: _srv, 16: _txt, 48: _dnskey, 43: _ds, 46: _rrsig, 47: _nsec, 50: _nsec3, 51: _nsec3param,
    257: _caa, 35: _naptr, 44: _sshfp, 52: _tlsa, 64: _svcb, 65: _svcb, 13: _hinfo,
}


def render_rdata(buf: bytes, off: int, end: int, rtype: int, rec: dict[str, Any], nc: _NameCache = None) -> str | None:
    """Fill ``rec`` from the record data ``buf[off:end]``; the address for A/AAAA, ``""`` for
    other types, ``None`` for an A/AAAA record without data (Packetbeat does not render it)."""
    return _RENDERERS.get(rtype, _raw)(buf, off, end, rec, nc)


# -- EDNS0 (OPT pseudo-record) ----------------------------------------------------------------


def _subnet(val: bytes) -> str:
    if len(val) < 4:
        raise DnsFormError("client subnet option cut off")
    family, source, scope = struct.unpack_from("!HBB", val, 0)
    addr = val[4:]
    if family == 1:
        if len(addr) > 4:
            raise DnsFormError("client subnet address too long")
        text = socket.inet_ntoa(addr.ljust(4, b"\x00"))
    elif family == 2:
        if len(addr) > 16:
            raise DnsFormError("client subnet address too long")
        text = "[" + socket.inet_ntop(socket.AF_INET6, addr.ljust(16, b"\x00")) + "]"
    else:
        text = "<nil>"
    return f"{text}/{source}/{scope}"


def _alg_list(val: bytes, namer: Callable[[int], str]) -> str:
    return " ".join(namer(b) for b in val)


def render_opt(buf: bytes, off: int, end: int, rclass: int, ttl: int) -> dict[str, Any]:
    """``dns.opt``: Packetbeat's keys, plus ``padding`` (octets), ``tcp_keepalive`` and ``ede``."""
    opt: dict[str, Any] = {
        "do": bool(ttl & 0x8000),
        "version": str((ttl >> 16) & 0xFF),
        "udp_size": rclass,
        "ext_rcode": rcode_name((ttl >> 24) << 4),
    }
    while off < end:
        if off + 4 > end:
            raise DnsFormError("EDNS option cut off")
        code, olen = struct.unpack_from("!HH", buf, off)
        off += 4
        if off + olen > end:
            raise DnsFormError("EDNS option runs past the record data")
        val = buf[off : off + olen]
        off += olen
        if code == 10:
            opt["cookie"] = val.hex()
        elif code == 3:
            opt["nsid"] = val.hex()
        elif code == 8:
            opt["subnet"] = _subnet(val)
        elif code == 9:  # EXPIRE: Packetbeat writes it to "local"
            opt["local"] = str(_U32(val, 0)[0]) if len(val) == 4 else ""
        elif code == 12:
            opt["padding"] = olen
        elif code == 11:
            opt["tcp_keepalive"] = str(_U16(val, 0)[0]) if len(val) == 2 else ""
        elif code == 15:
            info = _U16(val, 0)[0] if len(val) >= 2 else 0
            text = escape_txt(val[2:])
            opt["ede"] = f"{info}: {text}" if text else str(info)
        elif code == 5:
            opt["dau"] = _alg_list(val, algorithm_name)
        elif code == 6:
            opt["dhu"] = _alg_list(val, hash_name)
        elif code == 7:
            opt["n3u"] = _alg_list(val, hash_name)
        elif code == 1 and len(val) == 18:
            opt["llq"] = "%d %d %d %d %d" % struct.unpack("!HHHQI", val)
        elif code == 2 and len(val) in (4, 8):
            opt["ul"] = " ".join(str(x) for x in struct.unpack(f"!{len(val) // 4}I", val))
        else:
            opt["local"] = f"{code}:0x{val.hex()}"
    return opt
