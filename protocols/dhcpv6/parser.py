"""DHCPv6 wire format (RFC 8415, RFC 3646 DNS options) turned into ``dhcpv6.*`` fields.

Owns: client/server and relay message headers, the option TLVs with their nesting (IA_NA, IA_TA,
IA_PD and their addresses/prefixes; relay messages inside relay messages, at most
``MAX_RELAY_DEPTH`` deep), DUIDs, and notes for damaged options. Pure functions; a message too
short for its header raises :class:`Dhcpv6ParseError`, anything later becomes a note.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

__all__ = ["Dhcpv6ParseError", "MESSAGE_TYPES", "SERVER_TYPES", "parse", "MAX_RELAY_DEPTH", "duid_fields"]

MAX_RELAY_DEPTH = 8  # RFC 8415 HOP_COUNT_LIMIT is 8

MESSAGE_TYPES = {
    1: "solicit", 2: "advertise", 3: "request", 4: "confirm", 5: "renew", 6: "rebind", 7: "reply",
    8: "release", 9: "decline", 10: "reconfigure", 11: "information-request", 12: "relay-forw",
    13: "relay-repl", 14: "leasequery", 15: "leasequery-reply", 16: "leasequery-done",
    17: "leasequery-data", 18: "reconfigure-request", 19: "reconfigure-reply", 20: "dhcpv4-query",
    21: "dhcpv4-response", 22: "activeleasequery", 23: "starttls",
}
#: message types a server (or relay towards the client) sends
SERVER_TYPES = frozenset({2, 7, 10, 13, 15, 16, 17, 19, 21})

OPTION_NAMES = {
    1: "client_id", 2: "server_id", 3: "ia_na", 4: "ia_ta", 5: "iaaddr", 6: "oro", 7: "preference",
    8: "elapsed_time", 9: "relay_msg", 11: "auth", 12: "unicast", 13: "status_code", 14: "rapid_commit",
    15: "user_class", 16: "vendor_class", 17: "vendor_opts", 18: "interface_id", 19: "reconf_msg",
    20: "reconf_accept", 21: "sip_server_d", 22: "sip_server_a", 23: "dns_servers", 24: "domain_list",
    25: "ia_pd", 26: "iaprefix", 27: "nis_servers", 29: "nis_domain_name", 31: "sntp_servers",
    32: "information_refresh_time", 37: "remote_id", 38: "subscriber_id", 39: "client_fqdn",
    56: "ntp_server", 64: "aftr_name", 82: "sol_max_rt", 83: "inf_max_rt",
}
STATUS_CODES = {
    0: "Success", 1: "UnspecFail", 2: "NoAddrsAvail", 3: "NoBinding", 4: "NotOnLink", 5: "UseMulticast",
    6: "NoPrefixAvail",
}
DUID_TYPES = {1: "LLT", 2: "EN", 3: "LL", 4: "UUID"}

_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from


class Dhcpv6ParseError(ValueError):
    """Too short for a DHCPv6 header."""


def _ip6(data: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, data)


def _options(data: bytes, notes: list[str], where: str) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos, n = 0, len(data)
    while pos < n:
        if pos + 4 > n:
            notes.append(f"{n - pos} trailing bytes in the {where} are too short for an option header")
            break
        code, length = struct.unpack_from("!HH", data, pos)
        if pos + 4 + length > n:
            notes.append(f"option {code} in the {where} claims {length} bytes but only {n - pos - 4} remain")
            break
        out.append((code, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return out


def duid_fields(duid: bytes) -> dict[str, Any]:
    """A DUID (RFC 8415 11): always its hex, plus what its type defines."""
    out: dict[str, Any] = {"duid": duid.hex()}
    if len(duid) < 2:
        return out
    kind = _U16(duid, 0)[0]
    out["type"] = DUID_TYPES.get(kind, f"unknown ({kind})")
    if kind == 1 and len(duid) >= 8:
        out["hardware_type"] = _U16(duid, 2)[0]
        out["time"] = _U32(duid, 4)[0]
        out["link_layer_address"] = ":".join(f"{b:02x}" for b in duid[8:])
    elif kind == 3 and len(duid) >= 4:
        out["hardware_type"] = _U16(duid, 2)[0]
        out["link_layer_address"] = ":".join(f"{b:02x}" for b in duid[4:])
    elif kind == 2 and len(duid) >= 6:
        out["enterprise_number"] = _U32(duid, 2)[0]
        out["identifier"] = duid[6:].hex()
    elif kind == 4 and len(duid) == 18:
        h = duid[2:].hex()
        out["uuid"] = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return out


def _status(data: bytes, notes: list[str]) -> dict[str, Any] | None:
    if len(data) < 2:
        notes.append("status code option shorter than 2 bytes")
        return None
    code = _U16(data, 0)[0]
    out: dict[str, Any] = {"code": code, "name": STATUS_CODES.get(code, f"unknown ({code})")}
    if len(data) > 2:
        out["message"] = data[2:].decode("utf-8", "replace")
    return out


def _dns_names(data: bytes) -> list[str] | None:
    """RFC 1035 names without compression, as RFC 8415 10 requires."""
    names: list[str] = []
    labels: list[str] = []
    pos = 0
    while pos < len(data):
        length = data[pos]
        if length == 0:
            names.append(".".join(labels))
            labels = []
            pos += 1
            continue
        if length > 63 or pos + 1 + length > len(data):
            return None
        labels.append(data[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    if labels:  # a partial name (allowed in FQDN options)
        names.append(".".join(labels))
    return names


def _ia(code: int, data: bytes, notes: list[str], related: list[str]) -> dict[str, Any] | None:
    fixed = 4 if code == 4 else 12
    name = OPTION_NAMES[code]
    if len(data) < fixed:
        notes.append(f"{name} option shorter than {fixed} bytes")
        return None
    ia: dict[str, Any] = {"iaid": _U32(data, 0)[0]}
    if code != 4:
        ia["t1"] = _U32(data, 4)[0]
        ia["t2"] = _U32(data, 8)[0]
    for sub, value in _options(data[fixed:], notes, f"{name} option"):
        if sub == 5 and code in (3, 4):
            if len(value) < 24:
                notes.append("iaaddr option shorter than 24 bytes")
                continue
            addr = {
                "ip": _ip6(value[:16]),
                "preferred_lifetime": _U32(value, 16)[0],
                "valid_lifetime": _U32(value, 20)[0],
            }
            for inner, ivalue in _options(value[24:], notes, "iaaddr option"):
                if inner == 13:
                    status = _status(ivalue, notes)
                    if status is not None:
                        addr["status"] = status
            ia.setdefault("addresses", []).append(addr)
            related.append(addr["ip"])
        elif sub == 26 and code == 25:
            if len(value) < 25:
                notes.append("iaprefix option shorter than 25 bytes")
                continue
            plen = value[8]
            ia.setdefault("prefixes", []).append({
                "prefix": f"{_ip6(value[9:25])}/{plen}",
                "preferred_lifetime": _U32(value, 0)[0],
                "valid_lifetime": _U32(value, 4)[0],
            })
        elif sub == 13:
            status = _status(value, notes)
            if status is not None:
                ia["status"] = status
    return ia


def _message_fields(msg_type: int, options: list[tuple[int, bytes]], notes: list[str],
                    related: list[str], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    opt: dict[str, Any] = {}
    for code, value in options:
        if code == 1:
            out["client_id"] = duid_fields(value)
        elif code == 2:
            out["server_id"] = duid_fields(value)
        elif code in (3, 4, 25):
            ia = _ia(code, value, notes, related)
            if ia is not None:
                out.setdefault(OPTION_NAMES[code], []).append(ia)
        elif code == 6:
            if len(value) % 2:
                notes.append("oro option has an odd length")
            opt["requested_options"] = [
                OPTION_NAMES.get(c, f"unknown ({c})") for c in struct.unpack(f"!{len(value) // 2}H", value[: len(value) // 2 * 2])
            ]
        elif code == 7 and len(value) == 1:
            opt["preference"] = value[0]
        elif code == 8 and len(value) == 2:
            opt["elapsed_time_ms"] = _U16(value, 0)[0] * 10
        elif code == 12 and len(value) == 16:
            opt["server_unicast"] = _ip6(value)
        elif code == 13:
            status = _status(value, notes)
            if status is not None:
                opt["status"] = status
        elif code == 14:
            opt["rapid_commit"] = True
        elif code == 15:
            classes = _length_prefixed(value)
            if classes is None:
                notes.append("user class option lengths do not add up")
            else:
                opt["user_class"] = [c.decode("utf-8", "replace") for c in classes]
        elif code == 16 and len(value) >= 4:
            classes = _length_prefixed(value[4:])
            opt["vendor_class"] = {
                "enterprise_number": _U32(value, 0)[0],
                "data": [c.decode("utf-8", "replace") for c in classes] if classes is not None else [value[4:].hex()],
            }
        elif code in (23, 31):
            if len(value) % 16:
                notes.append(f"{OPTION_NAMES[code]} option length {len(value)} is not a multiple of 16")
            else:
                opt[OPTION_NAMES[code]] = [_ip6(value[i : i + 16]) for i in range(0, len(value), 16)]
        elif code == 24:
            names = _dns_names(value)
            if names is None:
                notes.append("domain list option is not a list of DNS names")
            else:
                opt["domain_search"] = names
        elif code == 32 and len(value) == 4:
            opt["information_refresh_time_sec"] = _U32(value, 0)[0]
        elif code == 39 and len(value) >= 1:
            names = _dns_names(value[1:])
            opt["client_fqdn"] = {"flags": value[0], "name": names[0] if names else ""}
        elif code == 9 and msg_type in (12, 13):
            pass  # handled by the caller (relay nesting)
        elif code == 18 and msg_type in (12, 13):
            out["interface_id"] = value.hex()
        else:
            opt.setdefault("other", []).append({
                "code": code, "name": OPTION_NAMES.get(code, f"unknown ({code})"), "data": value.hex(),
            })
    if opt:
        out["option"] = opt
    return out


def _length_prefixed(data: bytes) -> list[bytes] | None:
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            return None
        length = _U16(data, pos)[0]
        if pos + 2 + length > len(data):
            return None
        out.append(data[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return out


def parse(payload: bytes, depth: int = 0) -> tuple[dict[str, Any], list[str], list[str]]:
    """``(dhcpv6 fields, notes, related IPs)`` of one message; relays are unwrapped into ``relayed``."""
    notes: list[str] = []
    related: list[str] = []
    if len(payload) < 4:
        raise Dhcpv6ParseError(f"{len(payload)} bytes is shorter than a DHCPv6 header")
    msg_type = payload[0]
    fields: dict[str, Any] = {"message_type": MESSAGE_TYPES.get(msg_type, f"unknown ({msg_type})")}
    if msg_type in (12, 13):
        if len(payload) < 34:
            raise Dhcpv6ParseError("relay message shorter than its 34-byte header")
        fields["relay"] = {
            "hop_count": payload[1],
            "link_address": _ip6(payload[2:18]),
            "peer_address": _ip6(payload[18:34]),
        }
        options = _options(payload[34:], notes, "relay message")
        fields.update(_message_fields(msg_type, options, notes, related, depth))
        if "interface_id" in fields:
            fields["relay"]["interface_id"] = fields.pop("interface_id")
        inner = next((v for c, v in options if c == 9), None)
        if inner is None:
            notes.append("relay message without a relay message option")
        elif depth + 1 >= MAX_RELAY_DEPTH:
            notes.append(f"relay messages nested deeper than {MAX_RELAY_DEPTH}")
        else:
            try:
                inner_fields, inner_notes, inner_related = parse(inner, depth + 1)
            except Dhcpv6ParseError as exc:
                notes.append(f"relayed message: {exc}")
            else:
                fields["relayed"] = inner_fields
                notes += inner_notes
                related += inner_related
        return fields, notes, related
    fields["transaction_id"] = f"0x{int.from_bytes(payload[1:4], 'big'):06x}"
    fields.update(_message_fields(msg_type, _options(payload[4:], notes, "message"), notes, related, depth))
    return fields, notes, related
