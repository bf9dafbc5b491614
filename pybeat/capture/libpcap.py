"""A small ctypes binding to libpcap (Npcap's wpcap.dll on Windows) and the ``type: pcap`` source.

Owns: loading the library, the handful of calls pybeat needs (create/activate, filter compile,
next_ex, stats, breakloop, findalldevs), and ``PcapLiveSource``. Never decodes a frame.

Why ctypes and not scapy's provider: scapy's libpcap layer builds a scapy packet (or at least a
Python object graph) per frame; here a frame costs one ``pcap_next_ex`` call and one copy. The
library is found with ``ctypes.util.find_library`` (Debian: ``libpcap0.8``); on Windows the
search goes through ``pybeat.capture.npcap``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import sys
import threading
from collections.abc import Generator, Iterator
from typing import Any

from pybeat.capture.base import WakeableSource
from pybeat.capture.errors import CaptureError
from pybeat.logs import get_logger

_log = get_logger("libpcap")

PCAP_ERRBUF_SIZE = 256
PCAP_TSTAMP_PRECISION_NANO = 1
PCAP_D_IN = 1
READ_TIMEOUT_MS = 500  # Packetbeat's pcap read timeout

# pcap_activate() results (pcap/pcap.h)
PCAP_ERROR = -1
PCAP_ERROR_NO_SUCH_DEVICE = -5
PCAP_ERROR_PERM_DENIED = -8
PCAP_ERROR_IFACE_NOT_UP = -9
PCAP_ERROR_PROMISC_PERM_DENIED = -11


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class PktHdr(ctypes.Structure):
    _fields_ = [("ts", Timeval), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class PcapStat(ctypes.Structure):
    _fields_ = [("ps_recv", ctypes.c_uint), ("ps_drop", ctypes.c_uint), ("ps_ifdrop", ctypes.c_uint)]


class BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(BpfInsn))]


class SockAddr(ctypes.Structure):
    # Linux layout (sa_family is 16 bits); BSD/macOS put a length byte first, handled in _family.
    _fields_ = [("sa_family", ctypes.c_ushort), ("sa_data", ctypes.c_ubyte * 26)]


class PcapAddr(ctypes.Structure):
    pass


PcapAddr._fields_ = [
    ("next", ctypes.POINTER(PcapAddr)),
    ("addr", ctypes.POINTER(SockAddr)),
    ("netmask", ctypes.POINTER(SockAddr)),
    ("broadaddr", ctypes.POINTER(SockAddr)),
    ("dstaddr", ctypes.POINTER(SockAddr)),
]


class PcapIf(ctypes.Structure):
    pass


PcapIf._fields_ = [
    ("next", ctypes.POINTER(PcapIf)),
    ("name", ctypes.c_char_p),
    ("description", ctypes.c_char_p),
    ("addresses", ctypes.POINTER(PcapAddr)),
    ("flags", ctypes.c_uint32),
]

_lib: Any = None
_lib_lock = threading.Lock()


def _find_library() -> str | None:
    if sys.platform == "win32":
        from pybeat.capture import npcap

        return npcap.find_wpcap()
    return ctypes.util.find_library("pcap")


def load() -> Any:
    """Return the loaded library, or raise ``CaptureError`` saying how to install it."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = _find_library()
        if path is None:
            if sys.platform == "win32":
                from pybeat.capture import npcap

                raise CaptureError(npcap.MISSING_MESSAGE)
            raise CaptureError(
                "libpcap was not found: install it (Debian/Ubuntu: apt-get install libpcap0.8; "
                "RHEL: dnf install libpcap) or use packetbeat.interfaces.type: af_packet"
            )
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise CaptureError(f"libpcap at {path!r} could not be loaded: {exc}") from exc
        _declare(lib)
        _lib = lib
        return lib


def available() -> bool:
    try:
        load()
    except CaptureError:
        return False
    return True


def _declare(lib: Any) -> None:
    p = ctypes.c_void_p
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "pcap_create": (p, [ctypes.c_char_p, ctypes.c_char_p]),
        "pcap_set_snaplen": (ctypes.c_int, [p, ctypes.c_int]),
        "pcap_set_promisc": (ctypes.c_int, [p, ctypes.c_int]),
        "pcap_set_timeout": (ctypes.c_int, [p, ctypes.c_int]),
        "pcap_set_buffer_size": (ctypes.c_int, [p, ctypes.c_int]),
        "pcap_set_tstamp_precision": (ctypes.c_int, [p, ctypes.c_int]),
        "pcap_activate": (ctypes.c_int, [p]),
        "pcap_setdirection": (ctypes.c_int, [p, ctypes.c_int]),
        "pcap_datalink": (ctypes.c_int, [p]),
        "pcap_compile": (
            ctypes.c_int,
            [p, ctypes.POINTER(BpfProgram), ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32],
        ),
        "pcap_setfilter": (ctypes.c_int, [p, ctypes.POINTER(BpfProgram)]),
        "pcap_freecode": (None, [ctypes.POINTER(BpfProgram)]),
        "pcap_next_ex": (
            ctypes.c_int,
            [p, ctypes.POINTER(ctypes.POINTER(PktHdr)), ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))],
        ),
        "pcap_stats": (ctypes.c_int, [p, ctypes.POINTER(PcapStat)]),
        "pcap_breakloop": (None, [p]),
        "pcap_close": (None, [p]),
        "pcap_geterr": (ctypes.c_char_p, [p]),
        "pcap_statustostr": (ctypes.c_char_p, [ctypes.c_int]),
        "pcap_findalldevs": (ctypes.c_int, [ctypes.POINTER(ctypes.POINTER(PcapIf)), ctypes.c_char_p]),
        "pcap_freealldevs": (None, [ctypes.POINTER(PcapIf)]),
        "pcap_open_dead": (p, [ctypes.c_int, ctypes.c_int]),
        "pcap_lib_version": (ctypes.c_char_p, []),
        "pcap_setnonblock": (ctypes.c_int, [p, ctypes.c_int, ctypes.c_char_p]),
        "pcap_get_selectable_fd": (ctypes.c_int, [p]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name, None)
        if fn is None:
            continue  # very old libraries lack e.g. pcap_set_tstamp_precision: checked at use
        fn.restype = restype
        fn.argtypes = argtypes


def version() -> str:
    return load().pcap_lib_version().decode("utf-8", "replace")


def compile_filter(expression: str, link_type: int, snaplen: int = 65535) -> bytes:
    """Compile ``expression`` for ``link_type`` and return the classic BPF program as bytes.

    The bytes are ``struct sock_filter`` records (8 bytes each), ready for SO_ATTACH_FILTER.
    """
    lib = load()
    dead = lib.pcap_open_dead(link_type, snaplen)
    if not dead:
        raise CaptureError("libpcap could not open a handle to compile the BPF filter")
    prog = BpfProgram()
    try:
        if lib.pcap_compile(dead, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) != 0:
            err = lib.pcap_geterr(dead).decode("utf-8", "replace")
            raise CaptureError(f"invalid bpf_filter {expression!r}: {err}")
        try:
            return ctypes.string_at(prog.bf_insns, prog.bf_len * ctypes.sizeof(BpfInsn))
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(dead)


def find_all_devices() -> list[tuple[str, str, list[str], int]]:
    """``pcap_findalldevs``: ``(name, description, addresses, flags)`` in libpcap's order."""
    import socket

    lib = load()
    head = ctypes.POINTER(PcapIf)()
    errbuf = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
    if lib.pcap_findalldevs(ctypes.byref(head), errbuf) != 0:
        raise CaptureError(f"listing devices failed: {errbuf.value.decode('utf-8', 'replace')}")
    out: list[tuple[str, str, list[str], int]] = []
    try:
        node = head
        while node:
            dev = node.contents
            addrs: list[str] = []
            a = dev.addresses
            while a:
                sa = a.contents.addr
                if sa:
                    raw = ctypes.string_at(sa, 28)
                    family = int.from_bytes(raw[0:2], sys.byteorder)
                    if family == socket.AF_INET:
                        addrs.append(socket.inet_ntop(socket.AF_INET, raw[4:8]))
                    elif family == socket.AF_INET6:
                        addrs.append(socket.inet_ntop(socket.AF_INET6, raw[8:24]))
                a = a.contents.next
            name = (dev.name or b"").decode("utf-8", "replace")
            desc = (dev.description or b"").decode("utf-8", "replace")
            out.append((name, desc, addrs, int(dev.flags)))
            node = dev.next
    finally:
        lib.pcap_freealldevs(head)
    return out


class PcapLiveSource(WakeableSource):
    """A live interface read through libpcap (``type: pcap``).

    Opened promiscuous (unless the device is ``any``) with a 500 ms read timeout, as Packetbeat
    does; nanosecond time stamps where the library offers them.
    """

    def __init__(
        self,
        device: str,
        *,
        snaplen: int = 65535,
        bpf_filter: str | None = None,
        promisc: bool = True,
        buffer_size_mb: int = 0,
        ignore_outgoing: bool = False,
    ):
        lib = load()
        self.device = device
        self._lib = lib
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self.received = 0
        self._last_stats = {"kernel_received": 0, "kernel_dropped": 0, "if_dropped": 0}
        self._open_wake()
        errbuf = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        handle = lib.pcap_create(device.encode(), errbuf)
        if not handle:
            raise CaptureError(
                f"cannot open device {device!r}: {errbuf.value.decode('utf-8', 'replace')}"
            )
        self._handle = handle
        try:
            lib.pcap_set_snaplen(handle, snaplen)
            lib.pcap_set_promisc(handle, 1 if promisc and device != "any" else 0)
            lib.pcap_set_timeout(handle, READ_TIMEOUT_MS)
            if buffer_size_mb > 0:
                lib.pcap_set_buffer_size(handle, buffer_size_mb * 1024 * 1024)
            nano = getattr(lib, "pcap_set_tstamp_precision", None)
            self._ts_scale = 1000
            if nano is not None and nano(handle, PCAP_TSTAMP_PRECISION_NANO) == 0:
                self._ts_scale = 1
            rc = lib.pcap_activate(handle)
            if rc < 0:
                raise self._activate_error(rc)
            if ignore_outgoing:
                lib.pcap_setdirection(handle, PCAP_D_IN)
            self.link_type = int(lib.pcap_datalink(handle))
            if bpf_filter:
                prog = BpfProgram()
                if lib.pcap_compile(handle, ctypes.byref(prog), bpf_filter.encode(), 1, 0xFFFFFFFF) != 0:
                    raise CaptureError(f"invalid bpf_filter {bpf_filter!r}: {self._geterr()}")
                try:
                    if lib.pcap_setfilter(handle, ctypes.byref(prog)) != 0:
                        raise CaptureError(f"cannot set bpf_filter on {device!r}: {self._geterr()}")
                finally:
                    lib.pcap_freecode(ctypes.byref(prog))
            _log.debug("libpcap handle active", device=device, snaplen=snaplen, link_type=self.link_type,
                       buffer_size_mb=buffer_size_mb, bpf_filter=bpf_filter, ignore_outgoing=ignore_outgoing)
        except BaseException:
            lib.pcap_close(handle)
            self._handle = None
            self._close_wake()
            raise

    def _geterr(self) -> str:
        return str(self._lib.pcap_geterr(self._handle).decode("utf-8", "replace"))

    def _activate_error(self, rc: int) -> CaptureError:
        detail = self._geterr() or self._lib.pcap_statustostr(rc).decode("utf-8", "replace")
        dev = self.device
        if rc == PCAP_ERROR_PERM_DENIED:
            return CaptureError(
                f"capturing on {dev!r} was refused ({detail}): capturing needs the CAP_NET_RAW "
                "capability; run as root or grant it (setcap cap_net_raw,cap_net_admin=eip)"
            )
        if rc == PCAP_ERROR_PROMISC_PERM_DENIED:
            return CaptureError(
                f"promiscuous mode on {dev!r} was refused ({detail}): it needs CAP_NET_ADMIN"
            )
        if rc == PCAP_ERROR_NO_SUCH_DEVICE:
            return CaptureError(f"no such device {dev!r} (see `pybeat devices`): {detail}")
        if rc == PCAP_ERROR_IFACE_NOT_UP:
            return CaptureError(f"device {dev!r} is not up")
        return CaptureError(f"cannot activate capture on {dev!r}: {detail}")

    def _read(self) -> Iterator[tuple[int, int, bytes] | None]:
        lib = self._lib
        handle = self._handle
        if handle is None or self._closing:
            return
        self._started = True
        hdr_p = ctypes.POINTER(PktHdr)()
        data_p = ctypes.POINTER(ctypes.c_ubyte)()
        next_ex = lib.pcap_next_ex
        string_at = ctypes.string_at
        link = self.link_type
        scale = self._ts_scale
        byref_h = ctypes.byref(hdr_p)
        byref_d = ctypes.byref(data_p)
        poller = self._poller()
        try:
            while not self._closing:
                rc = next_ex(handle, byref_h, byref_d)
                if rc == 1:
                    hdr = hdr_p.contents
                    self.received += 1
                    yield (
                        hdr.ts.tv_sec * 1_000_000_000 + hdr.ts.tv_usec * scale,
                        link,
                        string_at(data_p, hdr.caplen),
                    )
                elif rc == 0:
                    # Non-blocking: nothing buffered, so wait here. Blocking (Windows): the
                    # library's own read timeout has already passed.
                    if poller is None or not poller.poll(READ_TIMEOUT_MS):
                        yield None
                elif rc == -2:  # pcap_breakloop
                    return
                else:
                    if self._closing:
                        return
                    raise CaptureError(f"reading from {self.device!r} failed: {self._geterr()}")
        finally:
            self._release()

    def fileno(self) -> int:
        """The descriptor to poll for readiness; the handle becomes non-blocking. -1 if none."""
        lib = self._lib
        get_fd = getattr(lib, "pcap_get_selectable_fd", None)
        if get_fd is None or self._handle is None:
            return -1
        fd = int(get_fd(self._handle))
        errbuf = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        if fd < 0 or lib.pcap_setnonblock(self._handle, 1, errbuf) != 0:
            return -1
        return fd

    def drain_ready(self, max_packets: int) -> Generator[tuple[int, int, bytes], None, int]:
        """Yield what libpcap has buffered (at most ``max_packets``) without waiting (after
        ``fileno()`` made the handle non-blocking); return how many were read."""
        lib = self._lib
        handle = self._handle
        if handle is None:
            return 0
        self._started = True
        hdr_p = ctypes.POINTER(PktHdr)()
        data_p = ctypes.POINTER(ctypes.c_ubyte)()
        byref_h = ctypes.byref(hdr_p)
        byref_d = ctypes.byref(data_p)
        next_ex = lib.pcap_next_ex
        string_at = ctypes.string_at
        link = self.link_type
        scale = self._ts_scale
        n = 0
        while n < max_packets and not self._closing:
            rc = next_ex(handle, byref_h, byref_d)
            if rc != 1:
                if rc in (0, -2) or self._closing:
                    break
                raise CaptureError(f"reading from {self.device!r} failed: {self._geterr()}")
            hdr = hdr_p.contents
            self.received += 1
            n += 1
            yield hdr.ts.tv_sec * 1_000_000_000 + hdr.ts.tv_usec * scale, link, string_at(data_p, hdr.caplen)
        return n

    def _poller(self) -> "select.poll | None":
        """A poll set on the capture fd and the wake pipe, with the handle made non-blocking.

        libpcap's TPACKET_V3 reader waits in poll() with no timeout when the ring is empty (an
        empty block is never retired), so ``pcap_next_ex`` would not return on an idle link;
        polling here gives the 0.5 s tick and lets ``close`` wake the reader.
        """
        lib = self._lib
        get_fd = getattr(lib, "pcap_get_selectable_fd", None)
        if get_fd is None or not hasattr(select, "poll"):
            return None
        fd = get_fd(self._handle)
        if fd < 0:
            return None
        errbuf = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        if lib.pcap_setnonblock(self._handle, 1, errbuf) != 0:
            return None
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR)
        poller.register(self._wake_r, select.POLLIN)
        return poller

    def close(self) -> None:
        """Stop reading; safe from a signal handler or another thread."""
        self._wake()
        handle = self._handle
        if handle is not None:
            self._lib.pcap_breakloop(handle)
        if not self._started:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._closed or self._handle is None:
                return
            self.stats()
            self._closed = True
            handle, self._handle = self._handle, None
            self._lib.pcap_close(handle)
            self._close_wake()

    def stats(self) -> dict[str, int]:
        """Counters as libpcap reports them (received by the filter, dropped by the kernel)."""
        handle = self._handle
        if handle is not None and not self._closed:
            st = PcapStat()
            if self._lib.pcap_stats(handle, ctypes.byref(st)) == 0:
                self._last_stats = {
                    "kernel_received": int(st.ps_recv),
                    "kernel_dropped": int(st.ps_drop),
                    "if_dropped": int(st.ps_ifdrop),
                }
                _log.debug("libpcap counters", device=self.device, received=self.received, **self._last_stats)
        return {"received": self.received, **self._last_stats}
