"""tshark's conversation statistics (``tshark -q -z conv,udp`` / ``conv,tcp``) parsed into
``{(proto, (ip_a, port_a), (ip_b, port_b)): (frames a->b, bytes a->b, frames b->a, bytes b->a)}``,
with the byte counts tshark rounds (kB, MB) made exact from ``-T fields`` over the same frames."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

#: Each frame is counted as gopacket (Packetbeat 7.x) decodes it: no IP reassembly, and a
#: fragment (even the first, which tshark would put in its UDP conversation) or an IPv6 frame
#: with a routing or destination-options header is decoded no further than IP, so it is in no
#: UDP/TCP conversation; ICMP errors quoting a UDP/TCP header are in none either.
OPTIONS = ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
FILTER = ("not icmp and not icmpv6 and not ip.flags.mf == 1 and not ip.frag_offset > 0 and not ipv6.fraghdr"
          " and not ipv6.routing and not ipv6.dstopts")
_ROW = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+([\d.]+)\s+(\w+)\s+(\d+)\s+([\d.]+)\s+(\w+)\s+(\d+)")
_UNIT = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def conversations(tshark: str, pcap: Path, proto: str) -> dict[tuple, tuple[int, float, int, float]]:
    out = subprocess.run([tshark, "-n", "-r", str(pcap), *OPTIONS, "-q", "-z", f"conv,{proto},{FILTER}"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    convs = {}
    for line in out.splitlines():
        m = _ROW.match(line.strip())
        if not m:
            continue
        a = (m.group(1).strip("[]"), int(m.group(2)))
        b = (m.group(3).strip("[]"), int(m.group(4)))
        # "<-" is B -> A, "->" is A -> B
        ba_frames, ba_bytes = int(m.group(5)), float(m.group(6)) * _UNIT[m.group(7)]
        ab_frames, ab_bytes = int(m.group(8)), float(m.group(9)) * _UNIT[m.group(10)]
        convs[(proto, a, b)] = (ab_frames, ab_bytes, ba_frames, ba_bytes)
    return convs


def exact_bytes(tshark: str, pcap: Path, proto: str) -> dict[tuple, int]:
    """Bytes per direction ``(proto, src, dst)`` summed from tshark's per-frame fields."""
    ip = "ip.src", "ip.dst", "ipv6.src", "ipv6.dst"
    out = subprocess.run([tshark, "-n", "-r", str(pcap), *OPTIONS, "-Y", f"{proto} and {FILTER}",
                          "-T", "fields", "-E", "separator=|", "-e", ip[0], "-e", ip[1], "-e", ip[2], "-e", ip[3],
                          "-e", f"{proto}.srcport", "-e", f"{proto}.dstport", "-e", "frame.len"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    sums: dict[tuple, int] = defaultdict(int)
    for line in out.splitlines():
        s4, d4, s6, d6, sp, dp, length = line.split("|")
        src = (s6 or s4).split(",")[-1]
        dst = (d6 or d4).split(",")[-1]
        sums[(proto, (src, int(sp.split(",")[0])), (dst, int(dp.split(",")[0])))] += int(length)
    return sums
