"""The ``type: af_packet`` source: a TPACKET_V3 memory-mapped ring read block by block.

Owns: the packet socket, its ring, BPF attachment, fanout, promiscuous membership and the
kernel's drop counters. Linux only. Never decodes a frame beyond re-inserting a VLAN tag the
kernel took off (so the decoder sees what was on the wire, as libpcap does).

Why TPACKET_V3: the kernel fills whole blocks of variable-size frames and hands a block over at
once (when full, or after ``RETIRE_BLOCK_MS``), so the cost per packet here is one
``struct.unpack_from`` and one slice of the mapping: no syscall per packet. ``poll`` is only
called when the next block is not ready yet, with a timeout so the caller's timers keep running.

Ring geometry: blocks of 128 KiB (or the next power of two that holds a ``snaplen`` frame), as
many as fit in ``buffer_size_mb``. Packetbeat's Go sniffer uses ``snaplen``-sized frames, 128 per
block; V3 frames are packed, so small DNS packets take ~200 bytes of ring instead of 64 KiB.
Blocks are small on purpose: the kernel retires a block after ``RETIRE_BLOCK_MS`` even when it
is far from full, and that unused tail is lost ring space while the reader is behind. With
1 MiB blocks a 50k packets/s burst filled only half of each block and the ring held half as many
packets; 128 KiB blocks waste at most ~1.3 MB/s.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Generator, Iterator

from pybeat.capture.base import WakeableSource
from pybeat.capture.errors import CaptureError, explain_os_error
from pybeat.logs import get_logger

_log = get_logger("afpacket")

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772

RETIRE_BLOCK_MS = 100  # a partly filled block is handed over after this long
POLL_TIMEOUT_MS = 500  # at most this long without yielding (None) to the caller
MIN_BLOCK_SIZE = 1 << 17
TPACKET3_HDRLEN = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr)); sockaddr_ll follows it

_BLOCK_HDR = struct.Struct("=III")  # block_status, num_pkts, offset_to_first_pkt (at +8)
_PKT_HDR = struct.Struct("=IIIIIIHHIHH")  # tpacket3_hdr up to hv1 (tci, tpid)
_SLL = struct.Struct("=HHiHBB8s")  # sockaddr_ll
_STATS = struct.Struct("=III")  # tpacket_stats_v3


def ring_geometry(buffer_size_mb: int, snaplen: int, page_size: int = mmap.PAGESIZE) -> tuple[int, int]:
    """Return ``(block_size, block_count)`` for a ring of about ``buffer_size_mb``."""
    need = snaplen + 256  # frame header, sockaddr_ll, alignment and a re-inserted VLAN tag
    block_size = MIN_BLOCK_SIZE
    while block_size < need:
        block_size <<= 1
    block_size = max(block_size, page_size)
    total = max(buffer_size_mb, 1) * 1024 * 1024
    return block_size, max(2, total // block_size)


_INSN = struct.Struct("=HBBI")  # struct sock_filter
BPF_LD, BPF_LDX = 0x00, 0x01
BPF_ABS, BPF_IND, BPF_MSH = 0x20, 0x40, 0xA0
SLL_HDR_LEN = 16
SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4


def cook_program(program: bytes) -> bytes | None:
    """Rewrite a filter compiled for Linux cooked (SLL) frames to run on a SOCK_DGRAM socket.

    The kernel runs the filter on the packet without the 16-byte SLL header we build later:
    loads past the header move back by 16, the packet type and protocol fields become the
    kernel's ancillary loads (libpcap's ``fix_program`` does the same). ``None`` when the
    filter reads other header bytes (the link-layer address), which the kernel cannot supply.
    """
    out = bytearray()
    for off in range(0, len(program), 8):
        code, jt, jf, k = _INSN.unpack_from(program, off)
        if code & 0x07 in (BPF_LD, BPF_LDX) and code & 0xE0 in (BPF_ABS, BPF_IND, BPF_MSH):
            if k >= SLL_HDR_LEN:
                k -= SLL_HDR_LEN
            elif k == 0:
                k = (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF
            elif k == 14:
                k = (SKF_AD_OFF + SKF_AD_PROTOCOL) & 0xFFFFFFFF
            else:
                return None
        out += _INSN.pack(code, jt, jf, k)
    return bytes(out)


def _loopback_index() -> int:
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        return -1


def _device_arp_type(device: str) -> int:
    try:
        with open(f"/sys/class/net/{device}/type") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return ARPHRD_ETHER


class AfPacketSource(WakeableSource):
    """A live interface read through a TPACKET_V3 ring (``type: af_packet``)."""

    def __init__(
        self,
        device: str,
        *,
        snaplen: int = 65535,
        buffer_size_mb: int = 30,
        bpf_program: bytes | None = None,
        fanout_group: int | None = None,
        promisc: bool = False,
        ignore_outgoing: bool = False,
    ):
        self.device = device
        self.snaplen = snaplen
        self.received = 0
        self._kernel_packets = 0
        self._kernel_dropped = 0
        self._freeze_q = 0
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self._ignore_outgoing_in_ring = False
        self._block = 0
        self.any_device = device == "any"
        if self.any_device:
            ifindex = 0
            kind = socket.SOCK_DGRAM  # frames of mixed link types: cooked, as libpcap does
            self.link_type = LINKTYPE_LINUX_SLL
        else:
            try:
                ifindex = socket.if_nametoindex(device)
            except OSError:
                raise CaptureError(
                    f"no such device {device!r} (see `pybeat devices` for the list)"
                ) from None
            arp_type = _device_arp_type(device)
            if arp_type in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
                kind = socket.SOCK_RAW
                self.link_type = LINKTYPE_ETHERNET
            else:
                kind = socket.SOCK_DGRAM
                self.link_type = LINKTYPE_LINUX_SLL
        self._cooked = kind == socket.SOCK_DGRAM
        self._lo_index = _loopback_index() if self.any_device else -1
        # On loopback every packet passes twice (out, then in); libpcap keeps only the incoming
        # copy, and so do we, or every DNS query would be seen twice.
        if not self.any_device and arp_type == ARPHRD_LOOPBACK:
            ignore_outgoing = True
        self.ifindex = ifindex
        # "any" cannot be bound through Python's AF_PACKET address, so it listens from the
        # start; a named device gets protocol 0 (deaf) until its filter and ring are in place.
        proto = socket.htons(ETH_P_ALL) if self.any_device else 0
        try:
            sock = socket.socket(socket.AF_PACKET, kind, proto)
        except OSError as exc:
            raise explain_os_error(exc, "opening a packet socket", device) from exc
        self._sock = sock
        self._ring: mmap.mmap | None = None
        self._open_wake()
        try:
            self._setup(sock, buffer_size_mb, bpf_program, fanout_group, promisc, ignore_outgoing)
        except BaseException:
            self._free()
            raise

    def _setup(
        self,
        sock: socket.socket,
        buffer_size_mb: int,
        bpf_program: bytes | None,
        fanout_group: int | None,
        promisc: bool,
        ignore_outgoing: bool,
    ) -> None:
        device = self.device
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        except OSError as exc:
            raise explain_os_error(exc, "selecting TPACKET_V3", device) from exc
        if ignore_outgoing:
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:  # kernels before 4.20: drop them while reading instead
                self._ignore_outgoing_in_ring = True
        if bpf_program:
            self._attach_filter(sock, bpf_program)
        block_size, block_nr = ring_geometry(buffer_size_mb, self.snaplen)
        frame_size = 2048  # only checked for alignment by V3; frames are packed in blocks
        req = struct.pack(
            "=IIIIIII",
            block_size,
            block_nr,
            frame_size,
            block_size // frame_size * block_nr,
            RETIRE_BLOCK_MS,
            0,
            0,
        )
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        except OSError as exc:
            raise explain_os_error(exc, f"allocating a {buffer_size_mb} MB capture ring", device) from exc
        self.block_size = block_size
        self.block_count = block_nr
        try:
            self._ring = mmap.mmap(
                sock.fileno(), block_size * block_nr, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        except OSError as exc:
            raise explain_os_error(exc, "mapping the capture ring", device) from exc
        if not self.any_device:
            try:
                sock.bind((device, ETH_P_ALL))
            except OSError as exc:
                raise explain_os_error(exc, "binding the packet socket", device) from exc
        if fanout_group is not None:
            arg = fanout_group | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", arg))
            except OSError as exc:
                raise explain_os_error(exc, f"joining fanout group {fanout_group}", device) from exc
        if promisc and not self.any_device:
            mreq = struct.pack("=iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
            try:
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            except OSError as exc:
                raise explain_os_error(exc, "enabling promiscuous mode", device) from exc
        _log.debug("af_packet ring ready", device=device, block_size=block_size, blocks=block_nr,
                   fanout_group=fanout_group, promisc=promisc, bpf=bool(bpf_program),
                   ignore_outgoing=ignore_outgoing, in_ring_filter=self._ignore_outgoing_in_ring)

    def _attach_filter(self, sock: socket.socket, program: bytes) -> None:
        import ctypes

        if len(program) % 8:
            raise CaptureError("compiled BPF program has a partial instruction")
        if self._cooked:
            cooked = cook_program(program)
            if cooked is None:
                raise CaptureError(
                    f"this bpf_filter cannot run in the kernel on device {self.device!r} "
                    "(it reads link-layer address bytes); use type: pcap for it"
                )
            program = cooked
        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }: the kernel
        # copies the instructions during the call, so the buffer only has to live until then.
        buf = ctypes.create_string_buffer(program, len(program))
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        except OSError as exc:
            raise explain_os_error(exc, "attaching the BPF filter", self.device) from exc

    # -- reading --------------------------------------------------------------------
    def _read(self) -> Iterator[tuple[int, int, bytes] | None]:
        if self._ring is None or self._closing:
            return
        self._started = True
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLERR)
        poller.register(self._wake_r, select.POLLIN)
        drain = self.drain_ready
        try:
            while not self._closing:
                if not (yield from drain(1 << 30)) and not poller.poll(POLL_TIMEOUT_MS):
                    yield None
            # Closing. The kernel hands over a partly filled block only after RETIRE_BLOCK_MS:
            # a caller that keeps iterating after close() gets those last packets too.
            time.sleep((RETIRE_BLOCK_MS + 20) / 1000)
            yield from drain(1 << 30, final=True)
        finally:
            self._release()

    def fileno(self) -> int:
        """The descriptor to poll for readiness (when reading several sources at once)."""
        return self._sock.fileno()

    def drain_ready(self, max_blocks: int, final: bool = False) -> Generator[tuple[int, int, bytes], None, int]:
        """Yield the frames of the blocks the kernel has handed over (at most ``max_blocks``),
        without waiting; return how many blocks were read. ``final``: also after close()."""
        ring = self._ring
        if ring is None:
            return 0
        self._started = True
        block_size = self.block_size
        block_count = self.block_count
        link = self.link_type
        cooked = self._cooked
        skip_outgoing = self._ignore_outgoing_in_ring
        # On `any`, loopback traffic shows up twice (out, then in): keep the incoming copy, as
        # libpcap does (Packetbeat's af_packet on `any` reported every loopback packet twice).
        lo_index = self._lo_index
        unpack_block = _BLOCK_HDR.unpack_from
        unpack_pkt = _PKT_HDR.unpack_from
        unpack_sll = _SLL.unpack_from
        pack_into = struct.pack_into
        blocks = 0
        while blocks < max_blocks and (final or not self._closing):
            base = self._block * block_size
            status, count, first = unpack_block(ring, base + 8)
            if not status & TP_STATUS_USER:
                break
            pos = base + first
            for _ in range(count):
                (next_off, sec, nsec, snap, _wire, pstatus, mac, _net, _hash, tci, tpid) = unpack_pkt(ring, pos)
                start = pos + mac
                if cooked or skip_outgoing:
                    _fam, proto_be, ifidx, hatype, pkttype, halen, addr = unpack_sll(ring, pos + TPACKET3_HDRLEN)
                    if pkttype == PACKET_OUTGOING and (skip_outgoing or ifidx == lo_index):
                        pos += next_off
                        continue
                if cooked:
                    frame = (
                        struct.pack(">HHH", pkttype, hatype, halen)
                        + addr
                        + struct.pack("=H", proto_be)
                        + ring[start : start + snap]
                    )
                elif pstatus & TP_STATUS_VLAN_VALID:
                    tag_type = tpid if pstatus & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
                    frame = (
                        ring[start : start + 12]
                        + struct.pack(">HH", tag_type, tci)
                        + ring[start + 12 : start + snap]
                    )
                else:
                    frame = ring[start : start + snap]
                self.received += 1
                yield sec * 1_000_000_000 + nsec, link, frame
                pos += next_off
            # Handed back only once all of it was yielded: a reader abandoned mid-block (at
            # shutdown) leaves it to be read again from its start.
            pack_into("=I", ring, base + 8, TP_STATUS_KERNEL)
            self._block = (self._block + 1) % block_count
            blocks += 1
        return blocks

    # -- life cycle -----------------------------------------------------------------
    def close(self) -> None:
        """Stop reading; safe from a signal handler or another thread (one pipe write)."""
        self._wake()
        if not self._started:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._read_kernel_stats()
            self._closed = True
            self._free()

    def _free(self) -> None:
        if self._ring is not None:
            try:
                self._ring.close()
            except BufferError:  # a memoryview still refers to it; the socket close frees it
                pass
            self._ring = None
        self._sock.close()
        self._close_wake()

    def _read_kernel_stats(self) -> None:
        # PACKET_STATISTICS resets the kernel's counters on each read: accumulate here.
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            return
        packets, drops, freezes = _STATS.unpack(raw)
        self._kernel_packets += packets
        self._kernel_dropped += drops
        self._freeze_q += freezes
        _log.debug("af_packet kernel counters", device=self.device, received=self._kernel_packets,
                   dropped=self._kernel_dropped, freeze_queue=self._freeze_q, handed_on=self.received)

    def stats(self) -> dict[str, int]:
        """``received`` (handed to the caller), and the kernel's counts since the socket opened.

        ``kernel_received`` is what the kernel saw pass the filter (including drops),
        ``kernel_dropped`` what it could not put in the ring because the ring was full.
        """
        with self._lock:
            if not self._closed:
                self._read_kernel_stats()
            return {
                "received": self.received,
                "kernel_received": self._kernel_packets,
                "kernel_dropped": self._kernel_dropped,
                "kernel_freeze_queue": self._freeze_q,
                "if_dropped": 0,
            }
