# The compiled replay loop's interfaces (pybeat/decode/_replay.pyx), for compiled code of other
# packages (a protocol's lane, a per-packet observer) to cimport.

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t


cdef class UdpLane:
    """A protocol's compiled stand-in for ``Analyzer.on_udp4`` (``Analyzer.udp4_lane()``)."""

    cdef int handle(self, int64_t ts, const uint8_t* frame, Py_ssize_t plen, uint16_t sport,
                    uint16_t dport) except -1
    cdef uint32_t split_key(self, const uint8_t* payload, Py_ssize_t plen) noexcept


cdef class PacketObserver:
    """Sees every frame the loop reads, before it is decoded (``Decoder.observer``)."""

    cdef int observe(self, int64_t ts, int link, const uint8_t* frame, Py_ssize_t caplen) except -1


cdef uint32_t split_hash(const uint8_t* src, uint16_t sport, const uint8_t* dst, uint16_t dport,
                         uint32_t key) noexcept nogil
cdef uint32_t common_udp4(const uint8_t* f, Py_ssize_t caplen) noexcept nogil
