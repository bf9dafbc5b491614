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
import os
import select
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from pybeat.capture.base import PacketSource, WakeableSource
from pybeat.capture import libpcap
from pybeat.capture.devices import resolve_device
from pybeat.capture.dump import PcapWriter
from pybeat.capture.errors import CaptureError
from pybeat.logs import get_logger

if TYPE_CHECKING:
    from pybeat.config.models import InterfaceConfig

_log = get_logger("capture")

__all__ = ["CaptureError", "LiveSource", "MultiLiveSource", "RoutedLiveSource", "open_live", "open_live_many"]


class _Source(Protocol):
    link_type: int

    def packets(self) -> Iterator[tuple[int, int, bytes] | None]: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def fileno(self) -> int: ...

    def drain_ready(self, limit: int) -> Generator[tuple[int, int, bytes], None, int]: ...

    def _release(self) -> None: ...


class LiveSource(PacketSource):
    """One opened interface: ``device``, ``kind`` (``af_packet``/``pcap``), ``link_type``."""

    def __init__(self, source: _Source, device: str, kind: str, bpf_filter: str, dump: PcapWriter | None):
        self._source = source
        self.device = device
        self.kind = kind
        self.bpf_filter = bpf_filter
        self.link_type = source.link_type
        self._dump = dump

    def _read(self) -> Iterator[tuple[int, int, bytes] | None]:
        return self._source.packets() if self._dump is None else self._dumping(self._dump)

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

    # -- used by MultiLiveSource, which polls several sources from one thread ---------------
    def fileno(self) -> int:
        return self._source.fileno()

    def drain_ready(self, limit: int) -> Generator[tuple[int, int, bytes], None, int]:
        """What is ready now, without waiting (``limit``: ring blocks or libpcap packets)."""
        dump = self._dump
        if dump is None:
            return (yield from self._source.drain_ready(limit))
        inner = self._source.drain_ready(limit)
        write = dump.write
        while True:
            try:
                item = next(inner)
            except StopIteration as stop:
                return int(stop.value or 0)
            write(item[0], item[2])
            yield item

    def release(self) -> None:
        self._source._release()
        if self._dump is not None:
            self._dump.close()

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
) -> "LiveSource | RoutedLiveSource":
    """Open ``iface`` for capture.

    ``bpf_filter`` is the generated filter (``bpf.build_filter``) or ``None``; a configured
    ``iface.bpf_filter`` overrides it. ``ignore_outgoing`` is the top-level
    ``packetbeat.ignore_outgoing``, or-ed with the interface's own key. A ``default_route*``
    device with ``poll_default_route`` set follows route changes (``RoutedLiveSource``).
    """
    if (
        isinstance(iface.device, str)
        and iface.device.startswith("default_route")
        and iface.poll_default_route > 0
    ):
        return RoutedLiveSource(iface, bpf_filter, dump_path=dump_path, ignore_outgoing=ignore_outgoing)
    return _open_one(iface, bpf_filter, dump_path=dump_path, ignore_outgoing=ignore_outgoing)


def _open_one(
    iface: "InterfaceConfig",
    bpf_filter: str | None,
    *,
    dump_path: str | None = None,
    ignore_outgoing: bool = False,
    device: str | None = None,
) -> LiveSource:
    kind = iface.type or "pcap"
    if kind == "autodetect":
        kind = "pcap"
    if iface.fanout_group is not None and kind != "af_packet":
        raise CaptureError("fanout_group is only valid with af_packet type")
    device = device or resolve_device(iface.device)
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
    _log.debug("live capture opened", device=device, type=kind, snaplen=iface.snaplen, bpf_filter=flt,
               buffer_size_mb=iface.buffer_size_mb, link_type=source.link_type, dump=dump_path)
    return LiveSource(source, device, kind, flt, dump)


class MultiLiveSource(WakeableSource):
    """Several interfaces read from one thread (``packetbeat.interfaces`` as a list, 8.x form).

    One ``poll`` over all of them; each ready source is drained a bounded amount in turn
    (``FAIR_BLOCKS`` ring blocks or ``FAIR_PACKETS`` libpcap packets) so a busy interface cannot
    starve a quiet one. Frames carry their own link type; ``link_type`` is the first source's.
    ``stats()`` sums the counters and also gives them per device (``<device>.<counter>``).
    """

    FAIR_BLOCKS = 4
    FAIR_PACKETS = 2048

    def __init__(self, sources: Sequence[LiveSource]):
        self.sources = list(sources)
        self.device = ",".join(s.device for s in self.sources)
        self.kind = ",".join(s.kind for s in self.sources)
        self.link_type = self.sources[0].link_type
        self._open_wake()
        self._fds = [s.fileno() for s in self.sources]
        if any(fd < 0 for fd in self._fds):
            self._close_wake()
            raise CaptureError("several interfaces at once need pollable capture handles (Linux)")

    def _read(self) -> Iterator[tuple[int, int, bytes] | None]:
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, select.POLLIN | select.POLLERR)
        poller.register(self._wake_r, select.POLLIN)
        batches = [
            (s.drain_ready, self.FAIR_BLOCKS if s.kind == "af_packet" else self.FAIR_PACKETS) for s in self.sources
        ]
        try:
            while not self._closing:
                got = 0
                for drain, limit in batches:
                    got += yield from drain(limit)
                if not got and not poller.poll(500):
                    yield None
        finally:
            for s in self.sources:
                s.release()
            self._close_wake()

    def close(self) -> None:
        """Stop reading; safe from a signal handler or another thread."""
        self._wake()
        for s in self.sources:
            s.close()
        if self._iter is None:
            for s in self.sources:
                s.release()
            self._close_wake()

    def stats(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for s in self.sources:
            for key, value in s.stats().items():
                total[key] = total.get(key, 0) + value
                total[f"{s.device}.{key}"] = value
        return total

    def __enter__(self) -> "MultiLiveSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RoutedLiveSource(PacketSource):
    """A ``default_route*`` device that follows route changes (``poll_default_route``).

    As in Packetbeat 8.x: the route is looked up again every ``poll_default_route`` (at least
    1 s) and after more than 10 read timeouts in a row; when it names another interface, that
    one is opened and the old one closed. Counters of closed sources are kept in ``stats()``.
    With ``--dump``, each later interface gets its own file (``-<device>`` before the extension).
    """

    MAX_IDLE_TICKS = 10

    def __init__(self, iface: "InterfaceConfig", bpf_filter: str | None, *, dump_path: str | None,
                 ignore_outgoing: bool):
        self._iface = iface
        self._spec = str(iface.device)
        self._filter = bpf_filter
        self._dump_path = dump_path
        self._ignore_outgoing = ignore_outgoing
        self.interval = max(1.0, float(iface.poll_default_route))
        self._closing = False
        self._past: dict[str, int] = {}
        self.switches = 0
        self._current = _open_one(iface, bpf_filter, dump_path=dump_path, ignore_outgoing=ignore_outgoing)
        self.kind = self._current.kind
        self.bpf_filter = self._current.bpf_filter

    @property
    def device(self) -> str:
        return self._current.device

    @property
    def link_type(self) -> int:
        return self._current.link_type

    def _read(self) -> Iterator[tuple[int, int, bytes] | None]:
        import time

        monotonic = time.monotonic
        try:
            while not self._closing:
                due = monotonic() + self.interval
                idle = 0
                n = 0
                ended = True
                for item in self._current.packets():
                    if item is None:
                        idle += 1
                        yield None
                        if idle > self.MAX_IDLE_TICKS or monotonic() >= due:
                            ended = False
                            break
                        continue
                    idle = 0
                    n += 1
                    yield item
                    if not n & 1023 and monotonic() >= due:
                        ended = False
                        break
                if ended:  # closed
                    return
                self._follow_route()
        finally:
            self._finish(self._current, keep_stats=False)  # stats() still reads its last counts

    def _follow_route(self) -> None:
        try:
            device = resolve_device(self._spec)
        except CaptureError:
            return  # no default route right now: keep the interface we have
        if device == self._current.device or self._closing:
            return
        path = None
        if self._dump_path:
            stem, ext = os.path.splitext(self._dump_path)
            path = f"{stem}-{device}{ext or '.pcap'}"
        try:
            new = _open_one(self._iface, self._filter, dump_path=path,
                            ignore_outgoing=self._ignore_outgoing, device=device)
        except CaptureError:
            return  # try again at the next poll
        old, self._current = self._current, new
        self.switches += 1
        _log.debug("default route moved: capture follows it", old=old.device, new=device, switches=self.switches)
        self._finish(old)

    def _finish(self, source: LiveSource, keep_stats: bool = True) -> None:
        source.close()
        for _ in source.packets():  # ends at once; its reader releases the socket and the dump
            pass
        if not keep_stats:
            return
        for key, value in source.stats().items():
            self._past[key] = self._past.get(key, 0) + value

    def close(self) -> None:
        """Stop reading; safe from a signal handler or another thread."""
        self._closing = True
        self._current.close()

    def stats(self) -> dict[str, int]:
        out = dict(self._past)
        for key, value in self._current.stats().items():
            out[key] = out.get(key, 0) + value
        out["route_changes"] = self.switches
        return out

    def __enter__(self) -> "RoutedLiveSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_live_many(
    ifaces: "Sequence[InterfaceConfig]",
    bpf_filter: str | None,
    *,
    dump_path: str | None = None,
    ignore_outgoing: bool = False,
) -> LiveSource | MultiLiveSource:
    """Open every interface of a ``packetbeat.interfaces`` list; one entry gives a LiveSource.

    Devices listed twice are refused (as Packetbeat does). With several interfaces ``--dump
    FILE`` writes one file per device, ``FILE`` with ``-<device>`` before its extension.
    """
    if len(ifaces) == 1:
        return _open_one(ifaces[0], bpf_filter, dump_path=dump_path, ignore_outgoing=ignore_outgoing)
    if not ifaces:
        raise CaptureError("packetbeat.interfaces: no interface configured")
    seen: set[str] = set()
    for iface in ifaces:
        dev = resolve_device(iface.device)
        if dev in seen:
            raise CaptureError(f"packetbeat.interfaces: device {dev!r} is listed more than once")
        seen.add(dev)
    opened: list[LiveSource] = []
    try:
        for iface in ifaces:
            path = None
            if dump_path:
                stem, ext = os.path.splitext(dump_path)
                path = f"{stem}-{resolve_device(iface.device)}{ext or '.pcap'}"
            opened.append(_open_one(iface, bpf_filter, dump_path=path, ignore_outgoing=ignore_outgoing))
        return MultiLiveSource(opened)
    except BaseException:
        for s in opened:
            s.close()
        raise
