"""The BPF filter Packetbeat generates from the enabled protocols.

Owns: the filter text only (compiling it is libpcap's job, see ``libpcap.compile_filter``).
Mirrors Packetbeat's ``ProtocolsStruct.BpfFilter``: protocols in their registration order
(Packetbeat's ids follow its alphabetical plugin list, so: sorted by name), one expression per
port (``tcp port N``, ``udp port N`` or ``port N`` when the protocol speaks both), then ``icmp``
and ``icmp6`` when ICMP is enabled, joined with `` or ``; ``with_vlans`` repeats the filter
under ``vlan``. Packetbeat generates no filter at all when flows are enabled; that choice belongs
to the caller, which simply does not call this.
"""

from __future__ import annotations

from collections.abc import Iterable


def build_filter(
    protocols: Iterable[tuple[str, set[str], list[int]]], icmp: bool, with_vlans: bool
) -> str:
    """Return the generated filter, or ``""`` (capture everything) when there is nothing to match.

    ``protocols`` holds ``(name, transports, ports)`` per enabled protocol, transports being a
    subset of ``{"tcp", "udp"}``.
    """
    expressions: list[str] = []
    for _name, transports, ports in sorted(protocols, key=lambda p: p[0]):
        has_tcp = "tcp" in transports
        has_udp = "udp" in transports
        if has_tcp and not has_udp:
            template = "tcp port {}"
        elif has_udp and not has_tcp:
            template = "udp port {}"
        else:
            template = "port {}"
        expressions.extend(template.format(int(port)) for port in ports)
    if icmp:
        expressions.extend(("icmp", "icmp6"))
    flt = " or ".join(expressions)
    if flt and with_vlans:
        # Without this, a tagged frame never matches: BPF offsets assume an untagged header.
        flt = f"{flt} or (vlan and ({flt}))"
    return flt
