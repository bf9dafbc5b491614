# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The flow table's per-frame hook, compiled (optional: built by ``pip install`` when a C
compiler is there; without it ``FlowTable.observe_frame`` itself is the observer).

:class:`FlowObserver` is a ``PacketObserver`` (``pybeat/decode/_replay.pxd``): the compiled
replay loop calls it with a pointer into the capture, without a bytes object per frame. It
counts the common frame (Ethernet, IPv4 without options, not a fragment, UDP or TCP) of a
known flow itself, with the key ``FlowTable.observe_frame``'s inline path builds; any other
frame, and the first frame of a flow, goes to ``FlowTable.observe_general``. Tests:
tests/flows/test_flow_table.py (the same flows as the general path on every frame of every
capture). Bounds: only the first 38 bytes are read, after ``caplen >= 38``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memcmp, memcpy

from pybeat.decode._replay cimport PacketObserver

__all__ = ["FlowObserver"]


cdef class FlowObserver(PacketObserver):
    """Counts frames into ``table`` (a ``FlowTable``); ``frames`` is the number it saw."""

    cdef object table
    cdef dict flows
    cdef bytes pre_udp, pre_tcp
    cdef Py_ssize_t plen
    cdef public int64_t frames

    def __init__(self, table, bytes pre_udp, bytes pre_tcp):
        assert len(pre_udp) == len(pre_tcp)
        self.table = table
        self.flows = table.flows  # the table keeps this dict for its lifetime (flush clears it)
        self.pre_udp = pre_udp
        self.pre_tcp = pre_tcp
        self.plen = len(pre_udp)
        self.frames = 0

    cdef int observe(self, int64_t ts, int link, const uint8_t* f, Py_ssize_t caplen) except -1:
        cdef uint8_t proto
        cdef int c
        cdef bint fwd
        cdef bytes key
        cdef char* k
        cdef PyObject* hit
        self.frames += 1
        if (link == 1 and caplen >= 38 and f[12] == 8 and f[13] == 0 and f[14] == 0x45
                and not (f[20] & 0x3F or f[21])):
            proto = f[23]
            if proto == 17 or proto == 6:
                # FlowTable.observe_frame's direction: MACs, then IPs, then the ports as
                # little-endian bytes (Packetbeat writes them so), compared as bytes.
                c = memcmp(f + 6, f, 6)
                if c == 0:
                    c = memcmp(f + 26, f + 30, 4)
                if c == 0:
                    c = <int>f[35] - <int>f[37]
                    if c == 0:
                        c = <int>f[34] - <int>f[36]
                    fwd = c <= 0
                else:
                    fwd = c < 0
                key = PyBytes_FromStringAndSize(NULL, self.plen + 24)
                k = PyBytes_AS_STRING(key)
                memcpy(k, PyBytes_AS_STRING(self.pre_udp if proto == 17 else self.pre_tcp), self.plen)
                k += self.plen
                if fwd:
                    memcpy(k, f + 6, 6)
                    memcpy(k + 6, f, 6)
                    memcpy(k + 12, f + 26, 8)
                    k[20] = f[35]; k[21] = f[34]; k[22] = f[37]; k[23] = f[36]
                else:
                    memcpy(k, f, 6)
                    memcpy(k + 6, f + 6, 6)
                    memcpy(k + 12, f + 30, 4)
                    memcpy(k + 16, f + 26, 4)
                    k[20] = f[37]; k[21] = f[36]; k[22] = f[35]; k[23] = f[34]
                hit = PyDict_GetItem(self.flows, key)
                if hit is not NULL:
                    flow = <object>hit
                    side = flow.dir ^ (not fwd)
                    flow.packets[side] += 1
                    flow.bytes[side] += caplen
                    if ts > flow.last:
                        flow.last = ts
                        if ts > self.table.now:
                            self.table.now = ts
                    return 0
        self.table.observe_general(ts, link, PyBytes_FromStringAndSize(<const char*>f, caplen))
        return 0
