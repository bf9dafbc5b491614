# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled twins of the per-transaction steps of the dns detector: the dispatch of a view
to the detectors (``DnsDetector.observe_raw``/``observe_view``), and the ``observe`` of the
tunnel, poisoning and rate-anomaly detectors, with their per-key state as typed objects.

The Python code stays the reference and does everything that is not per transaction: alerts
(``_judge``, ``_response``, ``_fire``), allowlists, ``expire``, ``stats``. A twin holds the
same tables as its detector (``state``, ``queries``, ``clients`` and the counters are the
detector's own dicts), so the Python side reads them as it reads its own. Built and chosen as
``fast.CORE`` (``PYBEAT_PURE_PYTHON=1`` keeps it out); ``tests/detection`` runs every detector
test both ways and compares both on random streams and on every capture.

Measured on dns_bulk_100k.pcap (docs/detection.md, "Speed").
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.ref cimport PyObject

cdef object _evict_oldest = None
cdef object _name_features = None
cdef object _Event = None
cdef dict _features = None
cdef Py_ssize_t _min_encoded_label = 16


def bind(evict_oldest, name_features, dict features, min_encoded_label, event_type):
    """The Python helpers the twins call (caps.evict_oldest, features.name_features and its
    cache, read here first)."""
    global _evict_oldest, _name_features, _features, _min_encoded_label, _Event
    _evict_oldest = evict_oldest
    _name_features = name_features
    _features = features
    _min_encoded_label = min_encoded_label
    _Event = event_type


cdef inline tuple _view(object v):
    """A TxnView (a tuple subclass) as the tuple it is, with its message checked too: the
    twins read both by index without bounds checks."""
    if not isinstance(v, tuple) or len(<tuple>v) != 8:
        raise TypeError(f"expected a TxnView, got {type(v).__name__}")
    m = (<tuple>v)[7]
    if not isinstance(m, tuple) or len(<tuple>m) != 10:
        raise TypeError(f"expected a TxnView's Message, got {type(m).__name__}")
    # the numbers the twins hold in C types: ints (a float would be truncated there)
    if not isinstance((<tuple>v)[0], int) or not isinstance((<tuple>m)[8], int):
        raise TypeError("a TxnView's time and bytes_down are ints")
    return <tuple>v


# -- tunnel ---------------------------------------------------------------------------------------

cdef class TunnelWindow:
    """tunnel.py's ``_Window``, typed."""

    cdef public long long start, first_seen, last
    cdef public long long queries, distinct, bytes_up, bytes_down, data_answers, encoded_answers
    cdef public long long packed, encoded, refreshes
    cdef public bint alerted, partial
    cdef public set names, lengths
    cdef public dict types

    def __init__(self, long long ts):
        self.first_seen = ts
        self.partial = False
        self.refreshes = 0
        self.reset(ts)

    cpdef reset(self, long long ts):
        self.start = ts
        self.queries = 0
        self.names = set()
        self.distinct = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.data_answers = 0
        self.encoded_answers = 0
        self.packed = 0
        self.encoded = 0
        self.lengths = set()
        self.types = {}
        self.alerted = False
        self.last = ts


cdef class Tunnel:
    """``TunnelDetector.observe``, the same steps."""

    cdef dict state, counters
    cdef object allow, judge
    cdef long long window_ns, min_distinct, packed_label_length
    cdef Py_ssize_t max_tracked, max_names
    cdef double min_encoded_ratio

    def __init__(self, det):
        cfg = det.config
        self.state = det.state
        self.counters = det.counters
        self.allow = det.allow
        self.judge = det._judge
        self.window_ns = det.window_ns
        self.max_tracked = cfg.max_tracked
        self.max_names = cfg.max_names_per_domain
        self.min_distinct = cfg.min_distinct_subdomains
        self.min_encoded_ratio = cfg.min_encoded_ratio
        self.packed_label_length = cfg.packed_label_length

    def __call__(self, v):
        self.observe(_view(v))

    cdef int observe(self, tuple v) except -1:
        cdef tuple m = <tuple>v[7]
        cdef object rd = m[2]
        cdef object sub = m[7]
        cdef TunnelWindow st
        cdef long long ts, length, bytes_down
        cdef PyObject* found
        if not sub or not rd or rd == ".":
            return 0
        ts = v[0]
        key = (v[1], rd)
        found = PyDict_GetItem(self.state, key)
        if found is NULL:
            name = m[0]
            if self.allow.matches(rd, name):
                self.counters["allowlisted"] += 1
                return 0
            if len(self.state) >= self.max_tracked:
                self.counters["evicted"] += _evict_oldest(self.state, self.max_tracked)
            st = TunnelWindow(ts)
            self.state[key] = st
            st.partial = self.allow.partial_below(rd)
        else:
            st = <TunnelWindow?><object>found  # (checked: the table is the detector's, open to Python)
            if ts - st.start >= self.window_ns:
                st.reset(ts)
        if st.partial and self.allow.matches(rd, m[0]):
            return 0
        st.queries += 1
        st.last = ts
        bytes_down = m[8]
        if bytes_down:
            st.bytes_down += bytes_down
            st.data_answers += 1
            if m[9]:
                st.encoded_answers += 1
        names = st.names
        if sub in names:
            return 0
        if len(names) < self.max_names:
            names.add(sub)
        else:
            self.counters["names_over_cap"] += 1
        st.distinct += 1
        qtype = m[1]
        found = PyDict_GetItem(st.types, qtype)
        st.types[qtype] = (<object>found + 1) if found is not NULL else 1
        cdef str raw = m[3]  # (a TypeError, not a crash, if a view were built with another type)
        length = len(raw)
        if "\\" in raw:
            length -= 3 * raw.count("\\")
        st.bytes_up += length
        st.lengths.add(length)
        if len(raw) >= _min_encoded_label:
            found = PyDict_GetItem(_features, raw)
            f = <object>found if found is not NULL else _name_features(raw)
            if f.shape:
                st.encoded += 1
                if f.longest_label >= self.packed_label_length:
                    st.packed += 1
        if (not st.alerted and st.distinct >= self.min_distinct
                and <double>st.encoded >= self.min_encoded_ratio * <double>st.distinct):
            self.judge(key, st, v)
        return 0


# -- poisoning ------------------------------------------------------------------------------------

cdef class Poisoning:
    """``PoisoningDetector.observe``: the queries compiled, a response on its own in Python."""

    cdef dict queries, counters
    cdef object response
    cdef Py_ssize_t max_tracked

    def __init__(self, det):
        self.queries = det.queries
        self.counters = det.counters
        self.response = det._response
        self.max_tracked = det.max_tracked

    def __call__(self, v):
        self.observe(_view(v))

    cdef int observe(self, tuple v) except -1:
        key = (v[1], v[2], v[4])
        if v[5]:
            if len(self.queries) >= self.max_tracked and key not in self.queries:
                self.counters["evicted"] += _evict_oldest(self.queries, self.max_tracked)
            PyDict_SetItem(self.queries, key, v)
            return 0
        self.response(v, key)
        return 0


# -- rate anomaly ---------------------------------------------------------------------------------

cdef class RateClient:
    """rate.py's ``_Client``, typed."""

    cdef public long long start, count, history
    cdef public double baseline
    cdef public bint alerted

    def __init__(self, long long ts):
        self.start = ts
        self.count = 0
        self.baseline = 0.0
        self.history = 0
        self.alerted = False


cdef class Rate:
    """``RateDetector.observe`` and ``_roll``, the same steps."""

    cdef dict clients, counters
    cdef object allow, fire
    cdef long long window_ns, min_history, min_queries
    cdef Py_ssize_t max_tracked
    cdef double factor, alpha

    def __init__(self, det, double alpha):
        cfg = det.config
        self.clients = det.clients
        self.counters = det.counters
        self.allow = det.allow
        self.fire = det._fire
        self.window_ns = det.window_ns
        self.max_tracked = cfg.max_tracked
        self.min_history = cfg.min_history
        self.min_queries = cfg.min_queries
        self.factor = cfg.factor
        self.alpha = alpha

    def __call__(self, v):
        self.observe(_view(v))

    cdef void _roll(self, RateClient c, long long ts):
        cdef long long buckets = (ts - c.start) // self.window_ns
        cdef long long i, count
        for i in range(min(buckets, 100)):
            count = c.count if i == 0 else 0
            c.baseline = <double>count if c.history == 0 else (1 - self.alpha) * c.baseline + self.alpha * count
            c.history += 1
        if buckets > 100:
            c.baseline = 0.0
        c.start += buckets * self.window_ns
        c.count = 0
        c.alerted = False

    cdef int observe(self, tuple v) except -1:
        cdef RateClient c
        cdef PyObject* found
        cdef long long ts
        if not v[5]:
            return 0
        ip = v[1]
        ts = v[0]
        found = PyDict_GetItem(self.clients, ip)
        if found is NULL:
            if ip in self.allow:
                return 0
            if len(self.clients) >= self.max_tracked:
                self.counters["evicted"] += _evict_oldest(self.clients, self.max_tracked)
            c = RateClient(ts)
            self.clients[ip] = c
        else:
            c = <RateClient?><object>found  # (checked: the table is the detector's, open to Python)
            if ts - c.start >= self.window_ns:
                self._roll(c, ts)
        c.count += 1
        if (not c.alerted and c.history >= self.min_history and c.count >= self.min_queries
                and <double>c.count >= self.factor * max(c.baseline, 1.0)):
            c.alerted = True
            self.fire(ip, c, ts, v)
        return 0


# -- dispatch -------------------------------------------------------------------------------------

cdef class Dispatch:
    """``DnsDetector.observe_raw`` and ``observe_view``: one view per transaction, to the
    per-transaction detectors (in the order of ``DnsDetector.parts``), then through the gate
    to the per-domain ones."""

    cdef object read_raw, slow
    cdef Tunnel tunnel
    cdef Poisoning poisoning
    cdef Rate rate
    cdef list domain_observers
    cdef dict gate
    cdef int mdns_port, period_shift
    cdef Py_ssize_t gate_max
    cdef public long long events, unreadable

    def __init__(self, read_raw, slow, tunnel, poisoning, rate, list domain_observers, dict gate, int mdns_port,
                 int period_shift, Py_ssize_t gate_max):
        self.read_raw = read_raw
        self.slow = slow
        self.tunnel = tunnel
        self.poisoning = poisoning
        self.rate = rate
        self.domain_observers = domain_observers
        self.gate = gate
        self.mdns_port = mdns_port
        self.period_shift = period_shift
        self.gate_max = gate_max
        self.events = 0
        self.unreadable = 0

    def observe_raw(self, ts, raw):
        try:
            v = self.read_raw(ts, raw)
        except ValueError:  # not the DNS protocol's layout: read it the slow way
            self.slow(_Event(ts, None, raw=raw))
            return
        if v is None:
            self.unreadable += 1
            return
        self.view(_view(v))

    def observe_view(self, v):
        self.view(_view(v))

    cdef int view(self, tuple v) except -1:
        cdef long long period
        cdef PyObject* found
        if v[2] == self.mdns_port:
            return 0  # multicast DNS: local service discovery, not lookups
        self.events += 1
        if self.tunnel is not None:
            self.tunnel.observe(v)
        if self.poisoning is not None:
            self.poisoning.observe(v)
        if self.rate is not None:
            self.rate.observe(v)
        if self.domain_observers:
            rd = (<tuple>v[7])[2]
            period = (<long long>v[0]) >> self.period_shift
            found = PyDict_GetItem(self.gate, rd)
            if found is NULL or <object>found != period:
                if len(self.gate) >= self.gate_max:
                    self.gate.clear()
                self.gate[rd] = period
                for observe in self.domain_observers:
                    observe(v)
        return 0
