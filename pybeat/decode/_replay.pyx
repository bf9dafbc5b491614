# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled replay loop of a classic pcap file (``-I FILE -t``), protocol-blind.

Optional: built by ``pip install`` when a C compiler is there (Cython); without it the agent
reads the file through ``PcapFileSource``'s iterator and ``Decoder.decode``, with the same
results. This is their twin, fused: the record framing and the ``-l`` time shift of
``PcapFileSource._read_pcap``, the counters, ticks and common-frame test of ``Decoder.decode``,
the port lookup and the split check of ``Decoder.decode_udp4`` (with ``split_hash``), in C, so that a datagram of another worker process costs no Python object.

A datagram for an analyzer with a compiled lane (``Analyzer.udp4_lane()`` returning a
:class:`UdpLane`, declared in ``_replay.pxd``) goes to the lane; a datagram for any other
analyzer to ``Decoder.decode_udp4``; every other frame to ``Decoder.decode``. A
:class:`PacketObserver` set as ``Decoder.observer`` sees every frame (nothing is done for it
when none is set). The decoder is driven through its public surface only (listed in
decoder.py's docstring). Tests: tests/unit/test_replay_loop.py (whole runs against the generator
loop), tests/unit/test_speedups.py (splits, ``split_hash`` against ``decoder.split_hash``),
tests/fuzz/test_compiled_loop_fuzz.py (hostile captures). Bounds: every read is inside the
record (``caplen >= 42`` and the IPv4 total length inside it, the UDP payload inside that).
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char* buf, unsigned int len)

__all__ = ["UdpLane", "PacketObserver", "replay", "split_hash_of", "common_udp4_of"]


cdef class UdpLane:
    """Base of a protocol's compiled lane: ``handle`` is ``on_udp4`` for the datagram whose
    payload is ``frame[42:42 + plen]`` (``plen`` > 0); ``split_key`` is ``shard_key``."""

    cdef int handle(self, int64_t ts, const uint8_t* frame, Py_ssize_t plen, uint16_t sport,
                    uint16_t dport) except -1:
        return 0

    cdef uint32_t split_key(self, const uint8_t* payload, Py_ssize_t plen) noexcept:
        return 0


cdef class PacketObserver:
    """Base of a compiled per-packet observer (flows): ``observe`` sees each frame before it is
    decoded. ``observe_frame`` is the same for ``Decoder.decode`` (the Python path)."""

    cdef int observe(self, int64_t ts, int link, const uint8_t* frame, Py_ssize_t caplen) except -1:
        return 0

    def observe_frame(self, int64_t ts, int link, bytes frame):
        self.observe(ts, link, <const uint8_t*>(<const char*>frame), len(frame))


cdef uint32_t split_hash(const uint8_t* src, uint16_t sport, const uint8_t* dst, uint16_t dport,
                         uint32_t key) noexcept nogil:
    """``pybeat.decode.decoder.split_hash`` for IPv4 addresses (zlib's CRC-32, as Python's)."""
    cdef uint32_t h = <uint32_t>crc32(sport, src, 4) ^ <uint32_t>crc32(dport, dst, 4)
    return <uint32_t>(<uint64_t>(h ^ key) * 0x9E3779B1ULL) >> 8


cdef uint32_t common_udp4(const uint8_t* f, Py_ssize_t caplen) noexcept nogil:
    """``pybeat.decode.decoder.common_udp4``: the IPv4 total length of an Ethernet frame of
    UDP in IPv4 without options, not a fragment, all inside the frame; else 0."""
    cdef uint32_t total
    if (caplen >= 42 and f[23] == 17 and f[14] == 0x45 and f[12] == 8 and f[13] == 0
            and not (f[20] & 0x3F or f[21])):
        total = (f[16] << 8) | f[17]
        if 28 <= total <= caplen - 14:
            return total
    return 0


def split_hash_of(bytes src, uint16_t sport, bytes dst, uint16_t dport, uint32_t key):
    """For tests: split_hash of two 4-byte addresses."""
    assert len(src) == 4 and len(dst) == 4
    return split_hash(<const uint8_t*>(<const char*>src), sport, <const uint8_t*>(<const char*>dst), dport, key)


def common_udp4_of(bytes frame):
    """For tests: common_udp4 of a frame."""
    return common_udp4(<const uint8_t*>(<const char*>frame), len(frame))


cdef inline uint32_t _rd32(const uint8_t* p, bint little) noexcept nogil:
    if little:
        return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)
    return p[3] | (<uint32_t>p[2] << 8) | (<uint32_t>p[1] << 16) | (<uint32_t>p[0] << 24)


cdef class _Counts:
    """Decoder counters kept in C between two calls into Python, then added to the decoder."""
    cdef int64_t packets, nbytes, dispatched, skipped, now_ns

    cdef inline void sync(self, object decoder) except *:
        decoder.packets += self.packets
        decoder.bytes += self.nbytes
        decoder.dispatched += self.dispatched
        decoder.skipped_other_shard += self.skipped
        decoder.now_ns = self.now_ns
        self.packets = self.nbytes = self.dispatched = self.skipped = 0


# A pcap stamp is below 2**62 ns (at most 2**32 - 1 s, plus a fraction below 2**32 units of at
# most 1,000 ns), so ts = stamp + shift stays inside 64 bits while |shift| is at most this.
cdef int64_t _MAX_SHIFT = 4611686018427387904LL  # 2**62


def replay(source, decoder, check):
    """Replay ``source`` (a ``PcapFileSource``) through ``decoder``; ``check`` runs every 64
    packets and returns True to stop. None when the file is not classic pcap of Ethernet
    frames (nothing was read: use the source's iterator); else whether the whole file was read
    (False: stopped by ``check``)."""
    layout = source.classic_layout()
    if layout is None or layout[3] != 1:
        return None
    buf = layout[0]
    cdef int64_t scale = layout[2]
    cdef int link = layout[3]
    source.link_types.add(link)
    cdef const uint8_t[::1] view = buf
    cdef const uint8_t* base = &view[0]
    cdef Py_ssize_t end = view.shape[0]
    cdef bint little = base[3] == 0xA1

    # Port -> 0 (no analyzer), 1 (an analyzer without a compiled lane: Decoder.decode_udp4) or
    # 2 + the index of its lane in ``lanes``; the decoder's rule: source port first.
    cdef uint8_t[65536] kinds
    cdef int port
    for port in range(65536):
        kinds[port] = 0
    lanes = []
    lane_analyzers = []  # the analyzer of each lane, for Decoder.analyzer_failed
    lane_of = {}
    for port_obj, analyzer in decoder.udp_ports.items():
        port = port_obj
        if not 0 <= port < 65536 or not analyzer:
            continue
        idx = lane_of.get(id(analyzer))
        if idx is None:
            lane_factory = getattr(analyzer, "udp4_lane", None)
            lane = lane_factory() if lane_factory is not None else None
            if isinstance(lane, UdpLane) and len(lanes) < 250:
                lanes.append(lane)
                lane_analyzers.append(analyzer)
                idx = lane_of[id(analyzer)] = len(lanes) + 1
            else:
                idx = lane_of[id(analyzer)] = 1
        kinds[port] = idx

    shard = decoder.shard
    cdef bint sharded = shard is not None
    cdef uint32_t shard_index = shard[0] if sharded else 0
    cdef uint32_t shard_count = shard[1] if sharded else 1
    cdef bint by_pair = decoder.split_by == "address_pair"
    observer = decoder.observer
    cdef PacketObserver c_observer = observer if isinstance(observer, PacketObserver) else None
    py_observe = observer.observe_frame if observer is not None and c_observer is None else None

    decode = decoder.decode
    udp4 = decoder.decode_udp4
    tick_at = decoder.packet_tick
    cdef _Counts cnt = _Counts()
    cnt.now_ns = decoder.now_ns
    cdef int64_t next_tick = decoder.next_tick
    cdef int64_t loops = source.loops
    cdef int64_t passes = 0, shift = 0, n = 0, first, last, ts
    cdef int64_t packets, nbytes
    cdef Py_ssize_t pos
    cdef uint32_t sec, frac, caplen, total, ulen, key
    cdef const uint8_t* f
    cdef uint16_t sport, dport
    cdef uint8_t kind
    cdef Py_ssize_t plen
    cdef UdpLane lane_
    cdef bint whole

    while loops == 0 or passes < loops:
        pos = 24
        packets = nbytes = 0
        first = last = -1
        whole = True
        try:
            while pos + 16 <= end:
                sec = _rd32(base + pos, little)
                frac = _rd32(base + pos + 4, little)
                caplen = _rd32(base + pos + 8, little)
                pos += 16
                if pos + caplen > end:
                    source.truncated_records += 1
                    whole = False
                    break
                f = base + pos
                pos += caplen
                packets += 1
                nbytes += caplen
                last = <int64_t>sec * 1_000_000_000 + <int64_t>frac * scale
                if first < 0:
                    first = last
                ts = last + shift
                total = common_udp4(f, caplen)
                if total:
                    if c_observer is not None:
                        c_observer.observe(ts, link, f, caplen)
                    elif py_observe is not None:
                        py_observe(ts, link, PyBytes_FromStringAndSize(<const char*>f, caplen))
                    # Decoder.decode's counters and tick, then Decoder.decode_udp4, in C.
                    cnt.packets += 1
                    cnt.nbytes += caplen
                    if ts >= next_tick:
                        cnt.sync(decoder)
                        tick_at(ts)
                        next_tick = decoder.next_tick
                    cnt.now_ns = ts
                    sport = (f[34] << 8) | f[35]
                    dport = (f[36] << 8) | f[37]
                    kind = kinds[sport] or kinds[dport]
                    if kind >= 2:
                        ulen = (f[38] << 8) | f[39]
                        plen = ulen - 8 if 8 <= ulen <= total - 20 else total - 28
                        lane_ = <UdpLane>lanes[kind - 2]
                        if sharded:  # Decoder._udp_mine (by split_hash, as decode_udp4)
                            if by_pair:
                                key = split_hash(f + 26, 0, f + 30, 0, 0)
                            else:
                                key = split_hash(f + 26, sport, f + 30, dport, lane_.split_key(f + 42, plen))
                            if key % shard_count != shard_index:
                                cnt.skipped += 1
                                plen = -1
                        if plen > 0:
                            cnt.dispatched += 1
                            # the packet clock, as Decoder.decode keeps it: what a detector's
                            # feed reads as the emission time of the events this packet emits
                            decoder.now_ns = ts
                            try:  # as Decoder.decode_udp4 around the analyzer's call
                                lane_.handle(ts, f, plen, sport, dport)
                            except Exception as exc:
                                cnt.sync(decoder)
                                decoder.analyzer_failed(exc, lane_analyzers[kind - 2])
                    elif kind == 1:
                        cnt.sync(decoder)
                        frame = PyBytes_FromStringAndSize(<const char*>f, caplen)
                        udp4(ts, frame, total)
                else:  # Decoder.decode (which shows the frame to the observer itself)
                    cnt.sync(decoder)
                    decode(ts, link, PyBytes_FromStringAndSize(<const char*>f, caplen))
                    cnt.now_ns = decoder.now_ns
                    next_tick = decoder.next_tick
                n += 1
                if not n & 63:
                    cnt.sync(decoder)
                    if check():
                        return False
                    next_tick = decoder.next_tick
            if whole and pos != end:
                source.truncated_records += 1
        finally:
            cnt.sync(decoder)
            source.packets += packets
            source.bytes += nbytes
        passes += 1
        if first < 0:
            return True
        shift += last - first + 1000
        if shift > _MAX_SHIFT or shift < -_MAX_SHIFT:
            # The next pass's times could overflow 64 bits: the source's own reader, with
            # unbounded integers, makes the remaining passes.
            return _finish(source, decoder, check, passes, shift)
    return True


def _finish(source, decoder, check, passes, shift):
    """The passes left after ``passes``, shifted by ``shift``, through the source's iterator
    and ``Decoder.decode`` (the agent's own loop)."""
    decode = decoder.decode
    n = 0
    for ts, link, frame in source.passes(passes, shift):
        decode(ts, link, frame)
        n += 1
        if not n & 63 and check():
            return False
    return True
