# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled twin of ``detection._PyBatch``: what a capture process keeps of each event for
the detectors, written straight into the buffers of the next feed frame (emission times,
timestamps, lengths, codes, bodies) instead of lists of objects.

The same bytes as the Python reference: ``tests/detection/test_detection_process.py`` feeds both
the same events and compares their frames. Chosen in ``detection.py`` where it was built
(``PYBEAT_PURE_PYTHON=1`` keeps it out).
"""

from cpython.number cimport PyNumber_Index
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcpy

cdef object _dumps = None


def bind(dumps):
    """The JSON encoder of events that are not pre-encoded (detection._snapshot)."""
    global _dumps
    _dumps = dumps


cdef inline int _put(bytearray buf, const void* data, Py_ssize_t n) except -1:
    cdef Py_ssize_t at = PyByteArray_GET_SIZE(buf)
    PyByteArray_Resize(buf, at + n)  # (over-allocates as bytearray does: amortised O(1))
    memcpy(PyByteArray_AS_STRING(buf) + at, data, n)
    return 0


cdef class Batch:
    """The events kept since the last frame. ``clock``: a one-item list holding the object
    whose ``now_ns`` is the emission clock; ``full``: called when ``limit`` events are kept."""

    cdef bytearray es, tss, lens, codes, bodies
    cdef list clock
    cdef object full
    cdef Py_ssize_t count, limit
    #: events the detectors could not be handed (their snapshot failed); published all the same
    cdef public Py_ssize_t failed

    def __init__(self, list clock, full, Py_ssize_t limit):
        self.clock = clock
        self.full = full
        self.limit = limit
        self.failed = 0
        self._reset()

    cdef void _reset(self):
        self.es = bytearray()
        self.tss = bytearray()
        self.lens = bytearray()
        self.codes = bytearray()
        self.bodies = bytearray()
        self.count = 0

    def watcher(self, int code, reduce=None):
        return Watcher(self, code, reduce)

    cdef int keep(self, bytes body, unsigned char code, int64_t ts) except -1:
        cdef int64_t e = self.clock[0].now_ns
        cdef uint32_t n = len(body)
        _put(self.es, &e, 8)
        _put(self.tss, &ts, 8)
        _put(self.lens, &n, 4)
        _put(self.codes, &code, 1)
        _put(self.bodies, <const char*>body, n)
        self.count += 1
        if self.count >= self.limit:
            self.full()
        return 0

    def take(self):
        """(count, the frame's body: emission times, timestamps, lengths, codes, bodies) of
        what was kept since the last call."""
        out = (self.count, b"".join((self.es, self.tss, self.lens, self.codes, self.bodies)))
        self._reset()
        return out


cdef class Watcher:
    """The watcher of one protocol (``code``): keeps ``reduce(raw)`` of a pre-encoded event
    without meta, else the JSON of its fields and meta."""

    cdef Batch batch
    cdef unsigned char plain, as_json
    cdef object reduce

    def __init__(self, Batch batch not None, int code, reduce):
        if not 0 <= code < 128:
            raise ValueError(f"a protocol's code is 0-127, not {code}")
        self.batch = batch
        self.plain = code << 1
        self.as_json = (code << 1) | 1
        self.reduce = reduce

    def __call__(self, event):
        cdef unsigned char code
        cdef int64_t ts
        try:
            raw = event.raw
            if raw is not None and not event.meta:
                if type(raw) is not bytes:  # (another bytes-like type: kept as bytes, as the Python batch does)
                    raw = bytes(raw)
                body = self.reduce(raw) if self.reduce is not None else raw
                code = self.plain
            else:
                body = _dumps(event)
                code = self.as_json
            ts = PyNumber_Index(event.timestamp_ns)  # (as operator.index; an OverflowError past an int64)
            if type(body) is not bytes:
                raise TypeError(f"a snapshot is bytes, not {type(body).__name__}")
        except Exception:  # the event is published all the same; only the detectors miss it
            self.batch.failed += 1
            return
        self.batch.keep(<bytes>body, code, ts)
