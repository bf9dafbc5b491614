"""tshark's conversation statistics (``tshark -q -z conv,udp`` / ``conv,tcp``) parsed into
``{(proto, (ip_a, port_a), (ip_b, port_b)): (frames a->b, bytes a->b, frames b->a, bytes b->a)}``,
with the byte counts tshark rounds (kB, MB) made exact from ``-T fields`` over the same frames."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

#: Each frame is counted as gopacket (Packetbeat) decodes it: no IP reassembly (the first
#: fragment is in the UDP conversation, the others are not) and no tunnels' inner headers.
OPTIONS = ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
_ROW = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+([\d.]+)\s+(\w+)\s+(\d+)\s+([\d.]+)\s+(\w+)\s+(\d+)")
_UNIT = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def conversations(tshark: str, pcap: Path, proto: str) -> dict[tuple, tuple[int, float, int, float]]:
    out = subprocess.run([tshark, "-n", "-r", str(pcap), *OPTIONS, "-q", "-z", f"conv,{proto},not icmp and not icmpv6"],
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
    out = subprocess.run([tshark, "-n", "-r", str(pcap), *OPTIONS, "-Y", f"{proto} and not icmp and not icmpv6",
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
