"""Mnemonics for DNS numbers, as miekg/dns (and therefore Packetbeat) spells them.

Owns only lookup tables and the tiny functions that fall back to the number as a string.
"""

from __future__ import annotations

TYPES: dict[int, str] = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB",
    19: "X25", 20: "ISDN", 21: "RT", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX",
    27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA",
    35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP",
    45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM",
    52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS",
    60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF",
    100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64",
    107: "LP", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
    253: "MAILB", 254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA", 258: "AVC", 32768: "TA",
    32769: "DLV", 65535: "Reserved",
}

CLASSES: dict[int, str] = {1: "IN", 2: "CS", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}

OPCODES: dict[int, str] = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}

RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADSIG",
    17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC",
    23: "BADCOOKIE",
}

ALGORITHMS: dict[int, str] = {
    1: "RSAMD5", 2: "DH", 3: "DSA", 5: "RSASHA1", 6: "DSA-NSEC3-SHA1", 7: "RSASHA1-NSEC3-SHA1",
    8: "RSASHA256", 10: "RSASHA512", 12: "ECC-GOST", 13: "ECDSAP256SHA256", 14: "ECDSAP384SHA384",
    15: "ED25519", 16: "ED448", 252: "INDIRECT", 253: "PRIVATEDNS", 254: "PRIVATEOID",
}

HASHES: dict[int, str] = {1: "SHA1", 2: "SHA256", 3: "GOST94", 4: "SHA384", 5: "SHA512"}

# SVCB/HTTPS SvcParamKeys (RFC 9460) as presentation names.
SVC_KEYS: dict[int, str] = {
    0: "mandatory", 1: "alpn", 2: "no-default-alpn", 3: "port", 4: "ipv4hint", 5: "ech",
    6: "ipv6hint", 7: "dohpath", 8: "ohttp",
}


def type_name(t: int) -> str:
    return TYPES.get(t) or str(t)


def class_name(c: int) -> str:
    return CLASSES.get(c) or str(c)


def opcode_name(o: int) -> str:
    return OPCODES.get(o) or str(o)


def rcode_name(r: int) -> str:
    return RCODES.get(r) or f"Unknown {r}"


def algorithm_name(a: int) -> str:
    return ALGORITHMS.get(a) or str(a)


def hash_name(h: int) -> str:
    return HASHES.get(h) or str(h)
