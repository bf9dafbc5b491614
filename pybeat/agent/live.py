"""Opening the live capture source of a run (``packetbeat.interfaces``): the BPF filter
Packetbeat would generate for the enabled protocols, ``--dump``, one or several interfaces."""

from __future__ import annotations

from typing import Any, Iterator

from pybeat.agent.build import StartupError, interfaces
from pybeat.config.settings import Settings


def open_live_source(settings: Settings, dump_prefix: str | None) -> tuple[Any, Iterator[Any]]:
    """The open source and its packet iterator (``None`` items let timers run while idle)."""
    ifaces = interfaces(settings)
    if any(i.file for i in ifaces):
        raise StartupError("packetbeat.interfaces.file: a capture file is read from a single interface entry")
    try:
        from pybeat.capture.bpf import build_filter
        from pybeat.capture.dump import dump_file_name
        from pybeat.capture.live import open_live, open_live_many
    except ImportError as exc:
        raise StartupError(f"live capture is not available in this build: {exc}") from None
    iface = ifaces[0]
    bpf = iface.bpf_filter
    if bpf is None:
        protos = [
            (p.name, set(p.plugin.transports), list(getattr(p.config, "ports", []) or []))
            for p in settings.protocols if "icmp" not in p.plugin.transports
        ]
        has_icmp = any("icmp" in p.plugin.transports for p in settings.protocols)
        flows = settings.agent.packetbeat.flows
        bpf = "" if flows is not None and flows.enabled else build_filter(protos, has_icmp, iface.with_vlans)
    # --dump PREFIX writes PREFIX-<yyyyMMddHHmmss>.pcap, as Packetbeat names it.
    dump = dump_file_name(dump_prefix) if dump_prefix else None
    # ignore_outgoing is applied to events (network.direction egress, as Packetbeat's publisher
    # does), not to packets: dropping a DNS server's outgoing packets would lose its answers.
    live: Any
    if len(ifaces) == 1:
        live = open_live(iface, bpf or None, dump_path=dump)
    else:
        live = open_live_many(ifaces, bpf or None, dump_path=dump)
    return live, live.packets()
