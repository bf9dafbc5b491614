"""What DHCPv4 options mean: Packetbeat's ``dhcpv4.option.*`` mapping plus pybeat's additions.

Owns the option-name table Packetbeat prints in ``parameter_request_list`` (insomniacslk/dhcp's
names), the typed readers, relay agent information (option 82, RFC 3046 and its sub-option RFCs),
the vendor options (43, 124, 125), user class (77) and user-defined options from the config. An
option whose length does not fit its type is left out and described in a note, never raised.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Callable

__all__ = ["OPTION_NAMES", "MESSAGE_TYPES", "option_name", "map_options", "read_typed", "TYPED_READERS"]

# The eight types of the insomniacslk/dhcp version Packetbeat vendors; others print "unknown (n)".
MESSAGE_TYPES = {
    1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak", 7: "release", 8: "inform",
}

OPTION_NAMES = {
    0: "Pad", 1: "Subnet Mask", 2: "Time Offset", 3: "Router", 4: "Time Server", 5: "Name Server",
    6: "Domain Name Server", 7: "Log Server", 8: "Quote Server", 9: "LPR Server", 10: "Impress Server",
    11: "Resource Location Server", 12: "Host Name", 13: "Boot File Size", 14: "Merit Dump File",
    15: "Domain Name", 16: "Swap Server", 17: "Root Path", 18: "Extensions Path",
    19: "IP Forwarding enable/disable", 20: "Non-local Source Routing enable/disable", 21: "Policy Filter",
    22: "Maximum Datagram Reassembly Size", 23: "Default IP Time-to-live", 24: "Path MTU Aging Timeout",
    25: "Path MTU Plateau Table", 26: "Interface MTU", 27: "All Subnets Are Local", 28: "Broadcast Address",
    29: "Perform Mask Discovery", 30: "Mask Supplier", 31: "Perform Router Discovery",
    32: "Router Solicitation Address", 33: "Static Routing Table", 34: "Trailer Encapsulation",
    35: "ARP Cache Timeout", 36: "Ethernet Encapsulation", 37: "Default TCP TTL", 38: "TCP Keepalive Interval",
    39: "TCP Keepalive Garbage", 40: "Network Information Service Domain", 41: "Network Information Servers",
    42: "NTP Servers", 43: "Vendor Specific Information", 44: "NetBIOS over TCP/IP Name Server",
    45: "NetBIOS over TCP/IP Datagram Distribution Server", 46: "NetBIOS over TCP/IP Node Type",
    47: "NetBIOS over TCP/IP Scope", 48: "X Window System Font Server", 49: "X Window System Display Manager",
    50: "Requested IP Address", 51: "IP Addresses Lease Time", 52: "Option Overload", 53: "DHCP Message Type",
    54: "Server Identifier", 55: "Parameter Request List", 56: "Message", 57: "Maximum DHCP Message Size",
    58: "Renew Time Value", 59: "Rebinding Time Value", 60: "Class Identifier", 61: "Client identifier",
    62: "NetWare/IP Domain Name", 63: "NetWare/IP Information", 64: "Network Information Service+ Domain",
    65: "Network Information Service+ Servers", 66: "TFTP Server Name", 67: "Bootfile Name",
    68: "Mobile IP Home Agent", 69: "SMTP Server", 70: "POP Server", 71: "NNTP Server", 72: "Default WWW Server",
    73: "Default Finger Server", 74: "Default IRC Server", 75: "StreetTalk Server",
    76: "StreetTalk Directory Assistance Server", 77: "User Class Information", 78: "SLP DIrectory Agent",
    79: "SLP Service Scope", 80: "Rapid Commit", 81: "FQDN", 82: "Relay Agent Information",
    83: "Internet Storage Name Service", 85: "NDS Servers", 86: "NDS Tree Name", 87: "NDS Context",
    88: "BCMCS Controller Domain Name List", 89: "BCMCS Controller IPv4 Address List", 90: "Authentication",
    91: "Client Last Transaction Time", 92: "Associated IP", 93: "Client System Architecture Type",
    94: "Client Network Interface Identifier", 95: "LDAP", 97: "Client Machine Identifier",
    98: "OpenGroup's User Authentication", 99: "GEOCONF_CIVIC", 100: "IEEE 1003.1 TZ String",
    101: "Reference to the TZ Database", 112: "NetInfo Parent Server Address", 113: "NetInfo Parent Server Tag",
    114: "URL", 116: "Auto-Configure", 117: "Name Service Search", 118: "Subnet Selection",
    119: "DNS Domain Search List", 120: "SIP Servers", 121: "Classless Static Route",
    122: "CCC, CableLabs Client Configuration", 123: "GeoConf", 124: "Vendor-Identifying Vendor Class",
    125: "Vendor-Identifying Vendor-Specific", 128: "TFTP Server IP Address", 129: "Call Server IP Address",
    130: "Discrimination String", 131: "RemoteStatistics Server IP Address", 132: "802.1P VLAN ID",
    133: "802.1Q L2 Priority", 134: "Diffserv Code Point", 135: "HTTP Proxy for phone-specific applications",
    136: "PANA Authentication Agent", 137: "LoST Server", 138: "CAPWAP Access Controller Addresses",
    139: "OPTION-IPv4_Address-MoS", 140: "OPTION-IPv4_FQDN-MoS", 141: "SIP UA Configuration Service Domains",
    142: "OPTION-IPv4_Address-ANDSF", 143: "OPTION-IPv6_Address-ANDSF", 144: "Geospatial Location with Uncertainty",
    145: "Forcerenew Nonce Capable", 146: "Information for selecting RDNSS", 150: "TFTP Server Address",
    151: "Status Code", 152: "Base Time", 153: "Start Time of State", 154: "Query Start Time",
    155: "Query End Time", 156: "DHCP Staet", 157: "Data Source", 175: "Etherboot", 176: "IP Telephone",
    177: "Etherboot / PacketCable and CableHome", 208: "PXELinux Magic String", 209: "PXELinux Config File",
    210: "PXELinux Path Prefix", 211: "PXELinux Reboot Time", 212: "OPTION_6RD", 213: "OPTION_V4_ACCESS_DOMAIN",
    220: "Subnet Allocation", 221: "Virtual Subnet Selection", 255: "End",
}

# Relay agent information sub-options (RFC 3046, 3256, 3527, 3993, 4014, 4030, 4243, 5010, 5107, 6925).
_RELAY_SUBOPTIONS = {
    1: "circuit_id", 2: "remote_id", 4: "docsis_device_class", 5: "link_selection", 6: "subscriber_id",
    7: "radius_attributes", 8: "authentication", 9: "vendor_specific", 10: "flags",
    11: "server_identifier_override", 12: "relay_agent_identifier", 151: "virtual_subnet_selection",
    152: "virtual_subnet_selection_control",
}


def option_name(code: int) -> str:
    return OPTION_NAMES.get(code, f"unknown ({code})")


def _text(data: bytes) -> str:
    # Go's string(bytes) then JSON: invalid UTF-8 becomes U+FFFD. Trailing NULs (C strings) dropped.
    return data.rstrip(b"\x00").decode("utf-8", "replace")


def _printable(data: bytes) -> str | None:
    text = data.rstrip(b"\x00")
    if text and all(0x20 <= b < 0x7F for b in text):
        return text.decode("ascii")
    return None


def _ip(data: bytes) -> str | None:
    return socket.inet_ntoa(data) if len(data) == 4 else None


def _ips(data: bytes) -> list[str] | None:
    if not data or len(data) % 4:
        return None
    return [socket.inet_ntoa(data[i : i + 4]) for i in range(0, len(data), 4)]


def _u8(data: bytes) -> int | None:
    return data[0] if len(data) == 1 else None


def _u16(data: bytes) -> int | None:
    return struct.unpack("!H", data)[0] if len(data) == 2 else None


def _u32(data: bytes) -> int | None:
    return struct.unpack("!I", data)[0] if len(data) == 4 else None


def _i32(data: bytes) -> int | None:
    return struct.unpack("!i", data)[0] if len(data) == 4 else None


def _bool(data: bytes) -> bool | None:
    return bool(data[0]) if len(data) == 1 else None


#: readers for user-defined options (``custom_options[*].type``)
TYPED_READERS: dict[str, Callable[[bytes], Any]] = {
    "ip": _ip, "ips": _ips, "string": _text, "hex": lambda d: d.hex(), "uint8": _u8, "uint16": _u16,
    "uint32": _u32, "int32": _i32, "bool": _bool,
}


def read_typed(kind: str, data: bytes) -> Any:
    return TYPED_READERS[kind](data)


def _vendor_list(data: bytes, with_data_len: bool = True) -> list[dict[str, Any]] | None:
    """RFC 3925 lists: enterprise number (4), length (1), data. None when the lengths do not add up."""
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        if pos + 5 > len(data):
            return None
        ent, length = struct.unpack_from("!IB", data, pos)
        if pos + 5 + length > len(data):
            return None
        out.append({"id": ent, "data": data[pos + 5 : pos + 5 + length].hex()})
        pos += 5 + length
    return out


def _relay_agent_information(data: bytes, notes: list[str]) -> dict[str, Any]:
    """Option 82: named sub-options, plus every sub-option raw in ``sub_options``."""
    info: dict[str, Any] = {}
    raw: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data) or pos + 2 + data[pos + 1] > len(data):
            notes.append("relay agent information (option 82) sub-options run past the end of the option")
            break
        code, length = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
        raw.append({"code": code, "data": value.hex()})
        name = _RELAY_SUBOPTIONS.get(code)
        if name is None:
            continue
        if code in (5, 11):
            ip = _ip(value)
            if ip is None:
                notes.append(f"relay agent sub-option {name} ({code}) has invalid length {length}")
            else:
                info[name] = ip
        elif code == 6:
            info[name] = _text(value)
        elif code in (1, 2, 12):
            info[name] = value.hex()
            text = _printable(value)
            if text is not None:
                info[f"{name}_text"] = text
        elif code == 9:
            vendors = _vendor_list(value)
            if vendors is None:  # keep the field's type stable: the raw bytes stay in sub_options
                notes.append(f"relay agent sub-option {name} ({code}) lengths do not add up")
            else:
                info[name] = vendors
        elif code == 10:
            flags = _u8(value)
            if flags is not None:
                info[name] = {"unicast": bool(flags & 0x80)}
        else:
            info[name] = value.hex()
    info["sub_options"] = raw
    return info


def _user_class(data: bytes) -> list[str]:
    """RFC 3004: length-prefixed class names; a non-conforming value is one opaque name."""
    out: list[str] = []
    pos = 0
    while pos < len(data):
        length = data[pos]
        if length == 0 or pos + 1 + length > len(data):
            return [_text(data)]
        out.append(_text(data[pos + 1 : pos + 1 + length]))
        pos += 1 + length
    return out


def map_options(
    options: dict[int, bytes],
    order: list[int],
    notes: list[str],
    custom: dict[int, tuple[str, str]] | None = None,
    unmapped: bool = False,
) -> dict[str, Any]:
    """``dhcpv4.option`` for one message (Packetbeat's keys first, then pybeat's additions)."""
    opts: dict[str, Any] = {}
    get = options.get

    def bad(code: int) -> None:
        notes.append(f"option {option_name(code)} ({code}) has invalid length {len(options[code])}")

    def put(key: str, code: int, reader: Callable[[bytes], Any]) -> None:
        data = get(code)
        if data is None:
            return
        value = reader(data)
        if value is None:
            bad(code)
        else:
            opts[key] = value

    data = get(53)
    if data is not None:
        if len(data) == 1:
            opts["message_type"] = MESSAGE_TYPES.get(data[0], f"unknown ({data[0]})")
        else:
            bad(53)
    data = get(55)
    if data is not None:
        opts["parameter_request_list"] = [option_name(c) for c in data]
    put("requested_ip_address", 50, _ip)
    put("server_identifier", 54, _ip)
    put("broadcast_address", 28, _ip)
    put("max_dhcp_message_size", 57, _u16)
    data = get(60)
    if data:
        opts["class_identifier"] = _text(data)
    data = get(15)
    if data:
        opts["domain_name"] = _text(data)
    put("dns_servers", 6, _ips)
    data = get(124)
    if data is not None:
        vendors = _vendor_list(data)
        if vendors is None:
            bad(124)
        else:
            opts["vendor_identifying_options"] = vendors
    put("subnet_mask", 1, _ip)
    put("utc_time_offset_sec", 2, _i32)
    put("router", 3, _ips)
    put("time_servers", 4, _ips)
    put("ntp_servers", 42, _ips)
    data = get(12)
    if data:
        opts["hostname"] = _text(data)
    for key, code in (("ip_address_lease_time_sec", 51), ("renewal_time_sec", 58), ("rebinding_time_sec", 59)):
        data = get(code)
        if data is not None:
            value = _u32(data)
            if value is None:
                bad(code)
            elif value:  # Packetbeat leaves a zero duration out
                opts[key] = value
    data = get(56)
    if data:
        opts["message"] = _text(data)
    data = get(67)
    if data:
        opts["boot_file_name"] = _text(data)

    # pybeat additions (options Packetbeat users asked for; none of them changes a Packetbeat key)
    data = get(82)
    if data is not None:
        opts["relay_agent_information"] = _relay_agent_information(data, notes)
    data = get(43)
    if data:
        opts["vendor_specific_information"] = data.hex()
    data = get(125)
    if data is not None:
        vendors = _vendor_list(data)
        if vendors is None:
            bad(125)
        else:
            opts["vendor_identifying_specific"] = vendors
    data = get(77)
    if data:
        opts["user_class"] = _user_class(data)

    if custom:
        for code, (name, kind) in custom.items():
            data = get(code)
            if data is None:
                continue
            value = read_typed(kind, data)
            if value is None:
                bad(code)
            else:
                opts[name] = value
    if unmapped:
        known = _MAPPED | set(custom or ())
        extra = [
            {"code": c, "name": option_name(c), "data": options[c].hex()} for c in order if c not in known
        ]
        if extra:
            opts["unmapped"] = extra
    return opts


_MAPPED = {53, 55, 50, 54, 28, 57, 60, 15, 6, 124, 1, 2, 3, 4, 42, 12, 51, 58, 59, 56, 67, 82, 43, 125, 77}
