"""Open a live interface from its ``packetbeat.interfaces`` entry.

Owns: choosing the source (``af_packet`` ring or libpcap), the effective BPF filter, promiscuous
mode, ``--dump``, and the ``LiveSource`` the agent reads: ``packets()`` yields
``(ts_ns, link_type, frame)`` or ``None`` when nothing arrived for up to 0.5 s (so the agent can
run its timers); ``close()`` may be called from a signal handler or another thread and the
iterator ends soon after; ``stats()`` returns the kernel's counters.

Dropping, not blocking, on a slow output is the agent's queue policy; this layer only has to
keep reading. What the kernel could not queue shows up in ``stats()["kernel_dropped"]``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from pybeat.capture import libpcap
from pybeat.capture.devices import resolve_device
from pybeat.capture.dump import PcapWriter
from pybeat.capture.errors import CaptureError

if TYPE_CHECKING:
    from pybeat.config.models import InterfaceConfig

__all__ = ["CaptureError", "LiveSource", "open_live"]


class _Source(Protocol):
    link_type: int

    def packets(self) -> Iterator[tuple[int, int, bytes] | None]: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


class LiveSource:
    """One opened interface: ``device``, ``kind`` (``af_packet``/``pcap``), ``link_type``."""

    def __init__(self, source: _Source, device: str, kind: str, bpf_filter: str, dump: PcapWriter | None):
        self._source = source
        self.device = device
        self.kind = kind
        self.bpf_filter = bpf_filter
        self.link_type = source.link_type
        self._dump = dump
        self._iter: Iterator[tuple[int, int, bytes] | None] | None = None

    def packets(self) -> Iterator[tuple[int, int, bytes] | None]:
        """Always the same iterator: a caller may stop iterating and pick up again later."""
        if self._iter is None:
            self._iter = self._source.packets() if self._dump is None else self._dumping(self._dump)
        return self._iter

    def _dumping(self, dump: PcapWriter) -> Iterator[tuple[int, int, bytes] | None]:
        write = dump.write
        try:
            for item in self._source.packets():
                if item is not None:
                    write(item[0], item[2])
                yield item
        finally:
            dump.close()

    def close(self) -> None:
        self._source.close()

    def stats(self) -> dict[str, int]:
        out = self._source.stats()
        if self._dump is not None:
            out["dumped"] = self._dump.packets
        return out

    def __enter__(self) -> "LiveSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_live(
    iface: "InterfaceConfig",
    bpf_filter: str | None,
    *,
    dump_path: str | None = None,
    ignore_outgoing: bool = False,
) -> LiveSource:
    """Open ``iface`` for capture.

    ``bpf_filter`` is the generated filter (``bpf.build_filter``) or ``None``; a configured
    ``iface.bpf_filter`` overrides it. ``ignore_outgoing`` is the top-level
    ``packetbeat.ignore_outgoing``, or-ed with the interface's own key.
    """
    kind = iface.type or "pcap"
    if kind == "autodetect":
        kind = "pcap"
    if iface.fanout_group is not None and kind != "af_packet":
        raise CaptureError("fanout_group is only valid with af_packet type")
    device = resolve_device(iface.device)
    flt = iface.bpf_filter or bpf_filter or ""
    skip_out = ignore_outgoing or iface.ignore_outgoing
    source: _Source
    if kind == "af_packet":
        if not sys.platform.startswith("linux"):
            raise CaptureError("af_packet capture is only available on Linux; use type: pcap")
        from pybeat.capture.afpacket import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, AfPacketSource, _device_arp_type

        program = None
        if flt:
            if device == "any" or _device_arp_type(device) not in (1, 772):
                link = LINKTYPE_LINUX_SLL
            else:
                link = LINKTYPE_ETHERNET
            try:
                program = libpcap.compile_filter(flt, link, iface.snaplen)
            except CaptureError as exc:
                if "libpcap was not found" in str(exc):
                    raise CaptureError(
                        f"bpf_filter {flt!r} needs libpcap to compile it (apt-get install "
                        "libpcap0.8), or leave the filter empty"
                    ) from exc
                raise
        buffer_mb = iface.buffer_size_mb if iface.buffer_size_mb > 0 else 24  # Packetbeat's floor
        source = AfPacketSource(
            device,
            snaplen=iface.snaplen,
            buffer_size_mb=buffer_mb,
            bpf_program=program,
            fanout_group=iface.fanout_group,
            promisc=iface.auto_promisc_mode,
            ignore_outgoing=skip_out,
        )
    elif kind == "pcap":
        source = libpcap.PcapLiveSource(
            device,
            snaplen=iface.snaplen,
            bpf_filter=flt or None,
            promisc=True,
            buffer_size_mb=iface.buffer_size_mb,
            ignore_outgoing=skip_out,
        )
    else:
        raise CaptureError(f"packetbeat.interfaces.type {kind!r} is not supported (pcap or af_packet)")
    dump = None
    if dump_path:
        try:
            dump = PcapWriter(dump_path, source.link_type, iface.snaplen)
        except CaptureError:
            source.close()
            raise
    return LiveSource(source, device, kind, flt, dump)
