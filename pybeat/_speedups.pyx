# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled replay of a classic Ethernet pcap, the DNS analyzer's usual UDP/IPv4 step, and the
parse and render of the usual DNS messages.

Optional: built by ``pip install`` when a C compiler is there (Cython), else pybeat runs the pure
Python code it mirrors, with the same results. Owns no behaviour of its own: every branch is
the Python code's, and anything outside the subset handled here is handed to that code.

- :func:`replay_classic_pcap` is ``pybeat.decode.replay.replay_classic_pcap`` (record framing,
  the decoder's inline Ethernet/IPv4/UDP case, the split check of ``Decoder._mine``) with the
  per-packet work in C: a datagram for another worker process is skipped without creating any
  Python object. Datagrams for an analyzer with a compiled lane (``Analyzer.udp4_lane``) go to
  the lane; other frames go to ``Decoder.decode`` / ``Decoder._udp4`` unchanged.
- :class:`DnsUdp4Lane` is ``DnsAnalyzer.on_udp4`` and ``_publish_raw``: a new query, or the
  answer to a pending one, on the analyzer's own tables (message cache, pending transactions,
  counters, template cache), published as the same pre-encoded event. Everything else calls
  the analyzer.
- :class:`DnsFastParser` is ``parse_message`` plus event.py's memoised JSON parts for the usual
  messages (see the comment above it); None for the others, which the Python parser decodes.

The results are the Python code's, document by document and counter by counter:
tests/unit/test_speedups.py (parser, template filler, split), tests/unit/test_replay_loop.py and
tests/dns/test_dns_udp4_inline.py (whole runs on every shared capture),
tests/fuzz/test_compiled_loop_fuzz.py (hostile captures). Bounds: every read is inside the frame
the loop checked (``caplen >= 42``, the IPv4 total length inside the frame, the UDP payload
inside the IPv4 total length) and inside the DNS message (each offset checked against its
length before the read); output goes to buffers that grow.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, strlen
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_FromFormat
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

import struct as _struct

from orjson import dumps as _orjson_dumps

cdef uint32_t _CRC[256]


cdef void _crc_init() noexcept:
    cdef uint32_t c, n, k
    for n in range(256):
        c = n
        for k in range(8):
            if c & 1:
                c = 0xEDB88320U ^ (c >> 1)
            else:
                c >>= 1
        _CRC[n] = c


_crc_init()


cdef inline uint32_t _crc32(const uint8_t* p, Py_ssize_t n, uint32_t start) noexcept nogil:
    """zlib.crc32(p[:n], start)."""
    cdef uint32_t c = start ^ 0xFFFFFFFFU
    cdef Py_ssize_t i
    for i in range(n):
        c = _CRC[(c ^ p[i]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFU


def crc32(bytes data, uint32_t start=0):
    """For tests: the same value as zlib.crc32(data, start)."""
    return _crc32(<const uint8_t*>(<char*>data), len(data), start)


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


def replay_classic_pcap(source, decoder, check):
    """As ``pybeat.decode.replay.replay_classic_pcap`` (same arguments, same result)."""
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

    # Port -> 0 (no analyzer), 1 (an analyzer without a compiled lane: Decoder._udp4) or
    # 2 + the index of its lane in ``lanes``; the decoder's rule: source port first.
    cdef uint8_t[65536] kinds
    cdef int port
    for port in range(65536):
        kinds[port] = 0
    lanes = []
    lane_of = {}
    for port_obj, analyzer in decoder.udp_ports.items():
        port = port_obj
        if not 0 <= port < 65536 or not analyzer:
            continue
        idx = lane_of.get(id(analyzer))
        if idx is None:
            lane_factory = getattr(analyzer, "udp4_lane", None)
            lane = lane_factory() if lane_factory is not None else None
            if isinstance(lane, DnsUdp4Lane) and len(lanes) < 250:
                lanes.append(lane)
                idx = lane_of[id(analyzer)] = len(lanes) + 1
            else:
                idx = lane_of[id(analyzer)] = 1
        kinds[port] = idx

    shard = decoder.shard
    cdef bint sharded = shard is not None
    cdef uint32_t shard_index = shard[0] if sharded else 0
    cdef uint32_t shard_count = shard[1] if sharded else 1
    cdef bint by_pair = decoder.split_by == "address_pair"

    decode = decoder.decode
    udp4 = decoder._udp4
    tick_at = decoder._packet_tick
    cdef _Counts cnt = _Counts()
    cnt.now_ns = decoder.now_ns
    cdef int64_t next_tick = decoder._next_tick
    cdef int64_t loops = source.loops
    cdef int64_t passes = 0, shift = 0, n = 0, first, last, ts
    cdef int64_t packets, nbytes
    cdef Py_ssize_t pos
    cdef uint32_t sec, frac, caplen, total, ulen, h, key
    cdef const uint8_t* f
    cdef uint16_t sport, dport
    cdef uint8_t kind
    cdef Py_ssize_t plen
    cdef DnsUdp4Lane dns_lane
    cdef bint whole
    errors = (_struct.error, IndexError, ValueError, OSError)

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
                if (
                    caplen >= 42 and f[23] == 17 and f[14] == 0x45 and f[12] == 8 and f[13] == 0
                    and not (f[20] & 0x3F or f[21])
                ):
                    total = (f[16] << 8) | f[17]
                else:
                    total = 0
                if 28 <= total <= caplen - 14:
                    # Decoder.decode's counters and tick, then Decoder._udp4, in C.
                    cnt.packets += 1
                    cnt.nbytes += caplen
                    if ts >= next_tick:
                        cnt.sync(decoder)
                        tick_at(ts)
                        next_tick = decoder._next_tick
                    cnt.now_ns = ts
                    sport = (f[34] << 8) | f[35]
                    dport = (f[36] << 8) | f[37]
                    kind = kinds[sport] or kinds[dport]
                    if kind >= 2:
                        ulen = (f[38] << 8) | f[39]
                        plen = ulen - 8 if 8 <= ulen <= total - 20 else total - 28
                        if sharded:
                            # Decoder._mine with DnsAnalyzer.shard_key (the DNS ID), or the
                            # address pair alone (Decoder.split_by)
                            if by_pair:
                                key = 0
                                h = _crc32(f + 26, 4, 0) ^ _crc32(f + 30, 4, 0)
                            else:
                                key = ((f[42] << 8) | f[43]) if plen >= 2 else 0
                                h = _crc32(f + 26, 4, sport) ^ _crc32(f + 30, 4, dport)
                            h = <uint32_t>(<uint64_t>(h ^ key) * 0x9E3779B1ULL) >> 8
                            if h % shard_count != shard_index:
                                cnt.skipped += 1
                                plen = -1
                        if plen > 0:
                            cnt.dispatched += 1
                            dns_lane = <DnsUdp4Lane>lanes[kind - 2]
                            try:  # as Decoder._udp4 around the analyzer's call
                                dns_lane.handle(ts, f, plen, sport, dport)
                            except Exception as exc:
                                cnt.sync(decoder)
                                decoder._analyzer_failed(exc)
                    elif kind == 1:
                        cnt.sync(decoder)
                        frame = PyBytes_FromStringAndSize(<const char*>f, caplen)
                        try:
                            udp4(ts, frame, total)
                        except errors:
                            decoder._error("malformed")
                        except Exception as exc:
                            decoder._analyzer_failed(exc)
                else:
                    cnt.sync(decoder)
                    decode(ts, link, PyBytes_FromStringAndSize(<const char*>f, caplen))
                    cnt.now_ns = decoder.now_ns
                    next_tick = decoder._next_tick
                n += 1
                if not n & 63:
                    cnt.sync(decoder)
                    if check():
                        return False
                    next_tick = decoder._next_tick
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
            # The next pass's times (a stamp is below 2**62 ns) could overflow 64 bits: the
            # Python loop, with unbounded integers, makes the remaining passes.
            from pybeat.decode.replay import replay_classic_pcap as python_replay

            return python_replay(source, decoder, check, passes, shift)
    return True


# A pcap stamp is below 2**62 ns (at most 2**32 - 1 s, plus a fraction below 2**32 units of at
# most 1,000 ns), so ts = stamp + shift stays inside 64 bits while |shift| is at most this.
cdef int64_t _MAX_SHIFT = 4611686018427387904LL  # 2**62


# -- output buffers (on the caller's stack until they outgrow it) --------------------------

cdef struct _Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    bint heap  # p was allocated here (else it is the caller's stack array)


cdef inline void _buf_init(_Buf* b, char* stack, Py_ssize_t size) noexcept:
    b.p = stack
    b.n = 0
    b.cap = size
    b.heap = False


cdef inline void _buf_free(_Buf* b) noexcept:
    if b.heap:
        free(b.p)
    b.heap = False


cdef int _grow(_Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else 1024
    while cap < b.n + need:
        cap *= 2
    cdef char* q
    if b.heap:
        q = <char*>realloc(b.p, cap)
    else:
        q = <char*>malloc(cap)
        if q != NULL and b.n:
            memcpy(q, b.p, b.n)
    if q == NULL:
        raise MemoryError()
    b.p = q
    b.cap = cap
    b.heap = True
    return 0


cdef inline int _put(_Buf* b, const char* s, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        _grow(b, n)
    memcpy(b.p + b.n, s, n)
    b.n += n
    return 0


cdef inline int _puts(_Buf* b, bytes s) except -1:
    return _put(b, <const char*>s, len(s))


cdef inline int _putc(_Buf* b, char c) except -1:
    if b.n + 1 > b.cap:
        _grow(b, 1)
    b.p[b.n] = c
    b.n += 1
    return 0


cdef int _putu(_Buf* b, uint64_t v) except -1:
    cdef char tmp[24]
    cdef int i = 24
    if v == 0:
        return _putc(b, b'0')
    while v:
        i -= 1
        tmp[i] = <char>(48 + v % 10)
        v //= 10
    return _put(b, tmp + i, 24 - i)


# -- %-templates -------------------------------------------------------------------------------


cdef class _Format:
    """A bytes %-template cut at its specifiers (only ``%d``, ``%b`` and ``%%``)."""
    cdef list parts  # the literal bytes before each specifier, and after the last
    cdef bytes kinds  # b"d" or b"b" per specifier


cdef object _compile_format(bytes tmpl):
    """The _Format of ``tmpl``, or None when it has another specifier (``%`` then formats it)."""
    cdef _Format f = _Format()
    parts = []
    kinds = bytearray()
    cdef Py_ssize_t i = 0, n = len(tmpl)
    cur = bytearray()
    while i < n:
        c = tmpl[i]
        if c == 0x25:
            if i + 1 >= n:
                return None
            k = tmpl[i + 1]
            if k == 0x25:
                cur.append(0x25)
            elif k == 0x64 or k == 0x62:  # d, b
                parts.append(bytes(cur))
                cur = bytearray()
                kinds.append(k)
            else:
                return None
            i += 2
        else:
            cur.append(c)
            i += 1
    parts.append(bytes(cur))
    f.parts = parts
    f.kinds = bytes(kinds)
    return f


cdef bytes _fill(bytes tmpl, tuple args, dict cache):
    """``tmpl % args`` for the pre-encoded templates, without parsing the template each time:
    the same bytes (tests/unit/test_speedups.py compares), ``%`` itself for anything unusual
    (another specifier, a negative number, an argument that is not int or bytes)."""
    cdef PyObject* hit = PyDict_GetItem(cache, tmpl)
    if hit is NULL:
        f = _compile_format(tmpl)
        if len(cache) >= 4096:
            cache.clear()
        cache[tmpl] = f
    else:
        f = <object>hit
    if f is None:
        return tmpl % args
    cdef _Format fmt = <_Format>f
    cdef Py_ssize_t i, nargs = len(args)
    if nargs != len(fmt.kinds):
        return tmpl % args
    cdef const char* kinds = fmt.kinds
    cdef list parts = fmt.parts
    cdef _Buf out
    cdef char stack[4096]
    cdef long long v
    _buf_init(&out, stack, 4096)
    try:
        for i in range(nargs):
            _puts(&out, <bytes>parts[i])
            a = args[i]
            if kinds[i] == b'd':
                if type(a) is not int or not 0 <= a < 2**63:
                    return tmpl % args
                v = a
                _putu(&out, <uint64_t>v)
            else:
                if type(a) is not bytes:
                    return tmpl % args
                _puts(&out, <bytes>a)
        _puts(&out, <bytes>parts[nargs])
        return out.p[:out.n]
    finally:
        _buf_free(&out)


def format_template(bytes tmpl, tuple args):
    """For tests: what the lane makes of ``tmpl % args``."""
    return _fill(tmpl, args, {})


# -- DNS -------------------------------------------------------------------------------------

cdef object _UDP = "udp"


cdef class DnsUdp4Lane:
    """``DnsAnalyzer.on_udp4`` for a datagram the compiled loop owns (see the module docstring).

    Holds references to the analyzer's own tables, so the analyzer's Python code and this lane
    work on one state."""

    cdef object cache, entries, pending, counters, txn_type, ips
    cdef object on_udp4, message, publish_dict, raw_template, emit, event_type, format_ts
    cdef object dns_json, message_json, head_json, resolved_json, raw_error, domains
    cdef DnsFastParser parser
    cdef dict templates, formats
    cdef int64_t last_ms
    cdef bytes last_ts
    cdef bint mdns, report_malformed, shareable, send_request, send_response, include_auth, include_add
    cdef int64_t timeout_ns
    cdef Py_ssize_t max_pending, cache_size

    def __init__(self, analyzer, txn_type, event_type, format_ts, dns_json, message_json, head_json,
                 resolved_json, raw_error, DnsFastParser parser):
        self.parser = parser
        self.cache = analyzer.cache
        self.entries = analyzer.cache.entries
        self.cache_size = analyzer.cache.size
        self.pending = analyzer.pending
        self.counters = analyzer.counters
        self.txn_type = txn_type
        self.event_type = event_type
        self.format_ts = format_ts
        self.dns_json = dns_json
        self.message_json = message_json
        self.head_json = head_json
        self.resolved_json = resolved_json
        self.raw_error = raw_error
        self.domains = analyzer.domains
        self.ips = {}
        self.on_udp4 = analyzer.on_udp4
        self.message = analyzer._message
        self.publish_dict = analyzer._publish_dict
        self.raw_template = analyzer._raw_template
        self.templates = analyzer._raw_templates
        self.formats = {}
        self.last_ms = -1
        self.emit = analyzer._emit_raw
        self.mdns = bool(analyzer.mdns)
        self.report_malformed = bool(analyzer.report_malformed)
        self.shareable = bool(analyzer._shareable)
        self.send_request = bool(analyzer.send_request)
        self.send_response = bool(analyzer.send_response)
        self.include_auth = bool(analyzer.include_authorities)
        self.include_add = bool(analyzer.include_additionals)
        self.timeout_ns = analyzer.timeout_ns
        self.max_pending = analyzer.max_pending

    cdef inline object _ip(self, const uint8_t* p):
        cdef uint32_t v = (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
        ips = self.ips
        cdef PyObject* hit = PyDict_GetItem(ips, v)
        if hit is not NULL:
            return <object>hit
        if len(ips) > 65536:
            ips.clear()
        s = PyUnicode_FromFormat("%d.%d.%d.%d", <int>p[0], <int>p[1], <int>p[2], <int>p[3])
        ips[v] = s
        return s

    cdef int handle(self, int64_t ts, const uint8_t* f, Py_ssize_t plen, uint16_t sport, uint16_t dport) except -1:
        """The datagram whose payload is ``f[42:42 + plen]`` (``plen`` > 0), in ``f``'s IPv4/UDP."""
        cdef const uint8_t* p = f + 42
        src = self._ip(f + 26)
        dst = self._ip(f + 30)
        if plen < 12 or (self.mdns and (sport == 5353 or dport == 5353)):
            self._python(ts, src, sport, dst, dport, p, plen)
            return 0
        try:
            self._step(ts, src, sport, dst, dport, p, plen)
        except Exception as exc:
            self.counters["internal_errors"] += 1
        return 0

    cdef int _python(self, int64_t ts, src, uint16_t sport, dst, uint16_t dport, const uint8_t* p,
                     Py_ssize_t plen) except -1:
        """The analyzer's own on_udp4 (what it raises, the loop counts as Decoder._udp4 does)."""
        self.on_udp4(ts, src, sport, dst, dport, PyBytes_FromStringAndSize(<const char*>p, plen))
        return 0

    cdef int _step(self, int64_t ts, src, uint16_t sport, dst, uint16_t dport, const uint8_t* p,
                   Py_ssize_t plen) except -1:
        cdef PyObject* hit
        cdef int msg_id = (p[0] << 8) | p[1]
        msg = None
        if self.cache_size > 0:
            key = PyBytes_FromStringAndSize(<const char*>p + 2, plen - 2)
            hit = PyDict_GetItem(self.entries, key)
            if hit is not NULL:
                msg = <object>hit
                self.cache.hits += 1
        if msg is None:
            if self.cache_size > 0:
                msg = self.parser._parse(p, plen)
            if msg is not None:  # MessageCache.parse's bookkeeping
                entries = self.entries
                if len(entries) >= self.cache_size:
                    entries.clear()
                entries[key] = msg
            else:
                msg = self.cache.parse(PyBytes_FromStringAndSize(<const char*>p, plen), False)
                if msg is None:
                    return 0
        c = self.counters
        c["messages"] += 1
        if msg.error is None:
            pending = self.pending
            if msg.qr == 0:
                tkey = (_UDP, src, sport, dst, dport, msg_id)
                if tkey not in pending and len(pending) < self.max_pending and (
                    msg.opt is None or msg.length <= 512
                ):
                    # _Txn.__init__'s slots, set here (tests/unit/test_speedups.py compares)
                    txn = self.txn_type.__new__(self.txn_type)
                    txn.ts = ts
                    txn.src_ip = src
                    txn.src_port = sport
                    txn.dst_ip = dst
                    txn.dst_port = dport
                    txn.transport = _UDP
                    txn.request = msg
                    txn.req_id = msg_id
                    txn.responses = None
                    txn.resp_id = 0
                    txn.resp_ts = 0
                    txn.notes = None
                    txn.mdns_only = False
                    pending[tkey] = txn
                    return 0
            else:
                tkey = (_UDP, dst, dport, src, sport, msg_id)
                txn = pending.get(tkey)
                if txn is not None and ts - <int64_t>txn.ts < self.timeout_ns:
                    req = txn.request
                    if req is not None and txn.responses is None and (
                        (msg.opt is None and req.opt is None and msg.length <= 512)
                        or (msg.opt is not None and req.opt is not None)
                    ):
                        del pending[tkey]
                        txn.responses = [msg]
                        txn.resp_id = msg_id
                        txn.resp_ts = ts
                        self._publish(txn, req, msg)
                        return 0
        else:
            c["malformed"] += 1
            if not self.report_malformed:
                return 0
        self.message(msg, msg_id, ts, src, sport, dst, dport, _UDP, None)
        return 0

    cdef int _publish(self, txn, req, resp) except -1:
        """DnsAnalyzer._publish for a query and its one response."""
        self.counters["transactions"] += 1
        if self.shareable:
            try:
                if self._publish_raw(txn, req, resp):
                    return 0
            except TypeError:
                pass
        self.publish_dict(txn)
        return 0

    cdef bytes _ts(self, int64_t ns):
        """format_ts(ns).encode(), the last millisecond's cached."""
        if ns < 0:  # C division truncates where Python's floors: no cache for these
            return (<str>self.format_ts(ns)).encode()
        cdef int64_t ms = ns // 1_000_000
        if ms != self.last_ms or self.last_ts is None:
            self.last_ts = (<str>self.format_ts(ns)).encode()
            self.last_ms = ms
        return self.last_ts

    cdef bint _publish_raw(self, txn, req, resp) except -1:
        """DnsAnalyzer._publish_raw (with its _raw_template's cache hit inline)."""
        cdef int64_t start = txn.ts, end = txn.resp_ts
        if txn.mdns_only or not start or end < start:
            return False
        src, dst = txn.src_ip, txn.dst_ip
        cdef PyObject* hit = PyDict_GetItem(self.templates, (True, txn.transport, src, txn.src_port, dst, txn.dst_port))
        if hit is NULL:
            tmpl = self.raw_template(txn, resp, True)
        else:
            tmpl = <object>hit
            resolved = resp.resolved
            if not tmpl or (resolved and (src in resolved or dst in resolved)):
                tmpl = None
        if tmpl is None:
            return False
        cdef int64_t rl = req.length, sl = resp.length
        cdef bint ok = resp.rcode == 0
        notes = txn.notes
        error = self.raw_error(notes) if notes else b""
        ts_start = self._ts(start)
        ts_end = self._ts(end)
        resp_id = txn.resp_id
        memo = resp.memo
        resolved = memo[7]
        if resolved is None:
            resolved = self.resolved_json(resp)
        dns = memo[4]
        if dns is None:
            dns = self.dns_json(resp, self.domains, self.include_auth, self.include_add)
        head = req.memo[6]
        if head is None:
            head = self.head_json(req)
        status = b"OK" if ok else b"Error"
        if self.send_request:
            req_text = req.memo[5]
            if req_text is None:
                req_text = self.message_json(req)
            if self.send_response:
                resp_text = memo[5]
                if resp_text is None:
                    resp_text = self.message_json(resp)
                raw = _fill(tmpl, (rl, sl, rl, sl, rl + sl, ts_start, ts_end, end - start, resolved, status, head,
                              resp_id, dns, txn.req_id, req_text, resp_id, resp_text, error), self.formats)
            else:
                raw = _fill(tmpl, (rl, sl, rl, sl, rl + sl, ts_start, ts_end, end - start, resolved, status, head,
                              resp_id, dns, txn.req_id, req_text, error), self.formats)
        elif self.send_response:
            resp_text = memo[5]
            if resp_text is None:
                resp_text = self.message_json(resp)
            raw = _fill(tmpl, (rl, sl, rl, sl, rl + sl, ts_start, ts_end, end - start, resolved, status, head,
                          resp_id, dns, resp_id, resp_text, error), self.formats)
        else:
            raw = _fill(tmpl, (rl, sl, rl, sl, rl + sl, ts_start, ts_end, end - start, resolved, status, head,
                          resp_id, dns, error), self.formats)
        questions = resp.questions
        name = questions[0][0] if questions else None
        # Event(start, None, raw=raw, digest=...), its slots set here
        event = self.event_type.__new__(self.event_type)
        event.timestamp_ns = start
        event._fields = None
        event.meta = {}
        event.raw = raw
        event.digest = ("dns", "OK" if ok else "Error", name, notes)
        self.emit(event)
        return True


# -- the DNS parser's common subset ------------------------------------------------------------
#
# ``parse_message`` + the memoised JSON parts of event.py (dns_json, message_json, head_json,
# resolved_json) in one walk, for the messages most traffic is made of: one question of class
# IN, records of class IN of types A, AAAA, NS, CNAME, PTR, MX, SOA, TXT and SRV, at most one
# EDNS (OPT) record, in the additional section (its dns.opt made by rdata.render_opt), names and
# text made of characters that need no escaping (so the JSON is the text itself), and nothing
# malformed. Anything else returns None and the Python parser decodes it (so
# every error note, escape and rare type stays in one place). The result is a regular
# Message: tests/unit/test_speedups.py compares it field by field, and its JSON parts byte by
# byte, with the Python parser's on every message of the shared captures and on fuzzed ones.

from cpython.unicode cimport PyUnicode_DecodeASCII

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)

cdef extern from "arpa/inet.h" nogil:
    const char* inet_ntop(int af, const void* src, char* dst, unsigned int size)

cdef extern from "sys/socket.h" nogil:
    int AF_INET6

# Label bytes printed as they are (names.py's _SAFE_BYTES without "."), and character-string
# bytes printed as they are (rdata.py's _TXT_SAFE): both need no JSON escaping either.
cdef uint8_t _NAME_OK[256]
cdef uint8_t _TXT_OK[256]


cdef void _tables_init() noexcept:
    cdef int b
    for b in range(256):
        _NAME_OK[b] = 1 if (0x21 <= b < 0x7F and b not in (0x2E, 0x20, 0x27, 0x40, 0x3B, 0x28, 0x29, 0x22, 0x5C)) else 0
        _TXT_OK[b] = 1 if (0x20 <= b < 0x7F and b != 0x22 and b != 0x5C) else 0


_tables_init()


cdef inline uint16_t _u16(const uint8_t* p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef Py_ssize_t _name(const uint8_t* m, Py_ssize_t n, Py_ssize_t off, char* out, Py_ssize_t* outlen) noexcept nogil:
    """names.read_name for a name of safe characters: the name (without the trailing dot,
    "." for the root) into ``out`` (256 bytes), and the offset after it; -1 for anything the
    Python reader would escape or refuse."""
    cdef Py_ssize_t end = -1, limit = off, k = 0
    cdef int wire_len = 1, length, i
    cdef uint8_t c
    while True:
        if off >= n:
            return -1
        length = m[off]
        if length == 0:
            off += 1
            break
        if length <= 63:
            if off + 1 + length > n:
                return -1
            wire_len += length + 1
            if wire_len > 255:
                return -1
            if k:
                out[k] = b'.'
                k += 1
            for i in range(length):
                c = m[off + 1 + i]
                if not _NAME_OK[c]:
                    return -1
                out[k] = <char>c
                k += 1
            off += 1 + length
        elif length >= 0xC0:
            if off + 1 >= n:
                return -1
            if (((length & 0x3F) << 8) | m[off + 1]) >= limit:
                return -1
            if end < 0:
                end = off + 2
            off = limit = ((length & 0x3F) << 8) | m[off + 1]
        else:
            return -1
    if end < 0:
        end = off
    if k == 0:
        out[0] = b'.'
        k = 1
    outlen[0] = k
    return end


cdef inline str _ascii(const char* s, Py_ssize_t n):
    return PyUnicode_DecodeASCII(s, n, NULL)


cdef object _S_NAME = "name", _S_TYPE = "type", _S_CLASS = "class", _S_TTL = "ttl", _S_DATA = "data"
cdef object _S_IN = "IN"
cdef object _S_PREF = "preference", _S_RNAME = "rname", _S_SERIAL = "serial", _S_REFRESH = "refresh"
cdef object _S_RETRY = "retry", _S_EXPIRE = "expire", _S_MINIMUM = "minimum"
cdef object _S_PRIO = "priority", _S_WEIGHT = "weight", _S_PORT = "port"


cdef class DnsFastParser:
    """The compiled subset of ``parse_message`` (see the comment above this class)."""

    cdef object message_type, flags_json, opcode_name, domains, render_opt, opt
    cdef dict types
    cdef bint authorities, additionals
    cdef dict questions, flags_cache
    cdef list methods

    def __init__(self, message_type, flags_json, types, opcode_name, domains, authorities, additionals,
                 render_opt):
        self.message_type = message_type
        self.render_opt = render_opt
        self.opt = None
        self.flags_json = flags_json
        self.types = types
        self.opcode_name = opcode_name
        self.domains = domains
        self.authorities = bool(authorities)
        self.additionals = bool(additionals)
        self.questions = {}
        self.flags_cache = {}
        self.methods = [None] * 16

    def parse(self, bytes data):
        """For tests: the Message for ``data``, or None where the Python parser must decode it."""
        return self._parse(<const uint8_t*>(<const char*>data), len(data))

    cdef object _parse(self, const uint8_t* m, Py_ssize_t n):
        if n < 12:
            return None
        cdef uint16_t flags = _u16(m + 2)
        cdef int qd = _u16(m + 4), an = _u16(m + 6), ns = _u16(m + 8), ar = _u16(m + 10)
        if qd != 1:
            return None
        cdef char qname[256]
        cdef Py_ssize_t qlen, off
        off = _name(m, n, 12, qname, &qlen)
        if off < 0 or off + 4 > n:
            return None
        cdef int qtype = _u16(m + off), qclass = _u16(m + off + 2)
        if qclass != 1:
            return None
        off += 4
        cdef Py_ssize_t i
        for i in range(qlen - 2):  # "n--" / "N--": the Python renderer adds name_unicode
            if qname[i + 1] == b'-' and qname[i + 2] == b'-' and (qname[i] == b'n' or qname[i] == b'N'):
                return None
        cdef _Buf js, tx, sect
        cdef char js_stack[4096]
        cdef char tx_stack[2048]
        cdef char sect_stack[2048]
        _buf_init(&js, js_stack, 4096)
        _buf_init(&tx, tx_stack, 2048)
        _buf_init(&sect, sect_stack, 2048)
        try:
            return self._build(m, n, off, flags, qd, an, ns, ar, qname, qlen, qtype, &js, &tx, &sect)
        finally:
            _buf_free(&js)
            _buf_free(&tx)
            _buf_free(&sect)

    cdef object _build(self, const uint8_t* m, Py_ssize_t n, Py_ssize_t off, uint16_t flags, int qd, int an,
                       int ns, int ar, char* qname, Py_ssize_t qlen, int qtype, _Buf* js, _Buf* tx, _Buf* sect):
        # The question's parts depend on the name and type alone: a query and its response
        # (and every repeat of the question) share them.
        qname[qlen] = <char>(qtype >> 8)  # the key: the name and the type's two bytes
        qname[qlen + 1] = <char>(qtype & 0xFF)
        qkey = PyBytes_FromStringAndSize(qname, qlen + 2)
        cached = self.questions.get(qkey)
        if cached is None:
            cached = self._question(qname, qlen, qtype)
            if len(self.questions) >= 16384:  # a response follows its query within moments
                self.questions.clear()
            self.questions[qkey] = cached
        name, question_json, question_text, head_end = <tuple>cached
        # the text: head; QUESTION class IN, type T, name (the head does not depend on EDNS)
        prefix, text_head = self._flags(flags, False)
        _puts(tx, text_head)
        _puts(tx, b"; QUESTION ")
        _puts(tx, question_text)

        # The sections: records into ``sect`` one after the other (their JSON spans in
        # ``spans``), their text into ``tx``; dns.* is assembled afterwards, since an OPT record
        # at the end changes what comes before the sections.
        resolved = []
        sections = []
        self.opt = None
        cdef int sect_no, count, k
        cdef Py_ssize_t spans[3][2]
        for sect_no in range(3):
            count = an if sect_no == 0 else ns if sect_no == 1 else ar
            records = []
            spans[sect_no][0] = sect.n
            for k in range(count):
                if off >= n:
                    break
                off = self._record(m, n, off, records, sect, spans[sect_no][0], tx, sect_no, resolved,
                                   len(records) == 0)
                if off < 0:
                    return None
            spans[sect_no][1] = sect.n
            sections.append(records)
        opt = self.opt
        self.opt = None
        if opt is not None:
            prefix = self._flags(flags, opt["do"])[0]
        # dns.* members (event.py's _render): flags part, question, opt, then the sections; a
        # query's only if it stays unanswered, and event.py renders it then (see memo[4] below)
        if flags >> 15:
            _puts(js, prefix)
            _puts(js, question_json)
            if opt is not None:
                _puts(js, b',"opt":')
                _puts(js, _orjson_dumps(opt))
            _puts(js, b',"answers_count":')
            _putu(js, len(sections[0]))
            if spans[0][1] > spans[0][0]:
                _puts(js, b',"answers":[')
                _put(js, sect.p + spans[0][0], spans[0][1] - spans[0][0])
                _putc(js, b']')
            if resolved:
                _puts(js, b',"resolved_ip":[')
                for k in range(len(resolved)):  # addresses: nothing to escape
                    if k:
                        _putc(js, b',')
                    _putc(js, b'"')
                    _puts(js, (<str>resolved[k]).encode("ascii"))
                    _putc(js, b'"')
                _putc(js, b']')
            _puts(js, b',"authorities_count":')
            _putu(js, len(sections[1]))
            if self.authorities and spans[1][1] > spans[1][0]:
                _puts(js, b',"authorities":[')
                _put(js, sect.p + spans[1][0], spans[1][1] - spans[1][0])
                _putc(js, b']')
            _puts(js, b',"additionals_count":')
            _putu(js, len(sections[2]) - 1 if opt is not None else len(sections[2]))
            if self.additionals and spans[2][1] > spans[2][0]:
                _puts(js, b',"additionals":[')
                _put(js, sect.p + spans[2][0], spans[2][1] - spans[2][0])
                _putc(js, b']')
        # Message.__init__'s slots, set here with their final values (the test compares every
        # slot with the Python parser's Message)
        msg = self.message_type.__new__(self.message_type)
        msg.id = (m[0] << 8) | m[1]
        msg.flags = flags
        msg.qr = flags >> 15
        msg.opcode = (flags >> 11) & 0xF
        msg.rcode = flags & 0xF
        msg.questions = ((name, qtype, 1),)
        msg.answers = tuple(sections[0])
        msg.authorities = tuple(sections[1])
        msg.additionals = tuple(sections[2])
        msg.opt = opt
        msg.length = n
        msg.error = None
        msg.mdns = False
        msg.counts = (qd, an, ns, ar)
        memo = msg.memo = [None, None, None, None, None, None, None, None]
        if resolved:
            msg.resolved = tuple(resolved)
            memo[7] = b"," + b",".join([_json_str(ip) for ip in dict.fromkeys(resolved)])
        else:
            msg.resolved = ()
            memo[7] = b""
        memo[4] = js.p[:js.n] if flags >> 15 else None  # a waiting query does not hold it
        _putc(tx, b'"')
        memo[5] = tx.p[:tx.n]
        opcode = (flags >> 11) & 0xF
        method = self.methods[opcode]
        if method is None:
            method = self.methods[opcode] = (',"method":"' + self.opcode_name(opcode)).encode()
        memo[6] = method + head_end
        return msg

    cdef tuple _flags(self, uint16_t flags, bint do):
        """event.flags_json(flags, do), memoised per value."""
        cdef int key = flags | (0x10000 if do else 0)
        cdef PyObject* hit = PyDict_GetItem(self.flags_cache, key)
        if hit is not NULL:
            return <tuple>hit
        parts = self.flags_json(flags, do)
        self.flags_cache[key] = parts
        return parts

    cdef tuple _question(self, char* qname, Py_ssize_t qlen, int qtype):
        """(name, ``,"question":{..}`` encoded, the question's text encoded, the end of
        head_json after the method) for class IN."""
        cdef _Buf js, tx
        cdef char js_stack[1024]
        cdef char tx_stack[600]
        _buf_init(&js, js_stack, 1024)
        _buf_init(&tx, tx_stack, 600)
        name = _ascii(qname, qlen)
        cdef PyObject* hit = PyDict_GetItem(self.types, qtype)
        qtype_name = <object>hit if hit is not NULL else None
        if not qtype_name:
            qtype_name = str(qtype)
        cdef bytes tb = (<str>qtype_name).encode("ascii")  # type names are plain ASCII
        try:
            _puts(&js, b',"question":{"name":"')
            _put(&js, qname, qlen)
            _puts(&js, b'","type":"')
            _puts(&js, tb)
            _puts(&js, b'","class":"IN"')
            reg, tld, sub, full = self.domains.lookup(name)
            if reg is not None:
                _puts(&js, b',"registered_domain":')
                _put_json_str(&js, reg)
                if full:
                    _puts(&js, b',"etld_plus_one":')
                    _put_json_str(&js, reg)
                if tld:
                    _puts(&js, b',"top_level_domain":')
                    _put_json_str(&js, tld)
                if sub:
                    _puts(&js, b',"subdomain":')
                    _put_json_str(&js, sub)
            _putc(&js, b'}')
            _puts(&tx, b"class IN, type ")
            _puts(&tx, tb)
            _puts(&tx, b", ")
            _put(&tx, qname, qlen)
            text = tx.p[:tx.n]
            _puts(&tx, b'","resource":"')
            _put(&tx, qname, qlen)
            _putc(&tx, b'"')
            return (name, js.p[:js.n], text, b'","query":"' + tx.p[:tx.n])
        finally:
            _buf_free(&js)
            _buf_free(&tx)

    cdef Py_ssize_t _record(self, const uint8_t* m, Py_ssize_t n, Py_ssize_t off, list records, _Buf* sect,
                            Py_ssize_t sect_start, _Buf* tx, int sect_no, list resolved, bint first) except -2:
        """One record of a section: its dict appended to ``records``, its JSON to ``sect``, its
        text to ``tx``; the offset after it, or -1 where the Python parser must decode."""
        cdef char rname[256]
        cdef char dname[256]
        cdef char d2name[256]
        cdef char num[24]
        cdef char* dptr = dname  # the data's text, when it is made here
        cdef Py_ssize_t rlen, dlen = 0, d2len, after, end, p, q, nlen
        off = _name(m, n, off, rname, &rlen)
        if off < 0 or off + 10 > n:
            return -1
        cdef int rtype = _u16(m + off), rclass = _u16(m + off + 2)
        cdef uint32_t ttl = _u32(m + off + 4)
        cdef int rdlen = _u16(m + off + 8)
        off += 10
        end = off + rdlen
        if end > n:
            return -1
        if rtype == 41:
            # EDNS (OPT) in the additional section, once: rdata.render_opt makes dns.opt; the
            # record is counted, not rendered, and its text is empty (event.py's _rr_string)
            if sect_no != 2 or self.opt is not None or ttl >> 24:
                return -1  # an extended RCODE changes the text's head: the Python parser
            try:
                self.opt = self.render_opt(PyBytes_FromStringAndSize(<const char*>m, n), off, end, rclass, ttl)
            except Exception:  # a damaged option: the Python parser notes it
                return -1
            _puts(tx, b"; ADDITIONAL " if first else b"; ")
            records.append(None)
            return end
        if rclass != 1:
            return -1
        info = _TYPE_INFO.get(rtype)
        if info is None:
            return -1
        type_name, type_json = <tuple>info
        nlen = _utoa(num, ttl)
        rec = {_S_NAME: _ascii(rname, rlen), _S_TYPE: type_name, _S_CLASS: _S_IN, _S_TTL: _ascii(num, nlen)}
        if sect.n > sect_start:
            _putc(sect, b',')
        _puts(sect, b'{"name":"')
        _put(sect, rname, rlen)
        _puts(sect, <bytes>type_json)  # ","type":"A","class":"IN","ttl":"
        _put(sect, num, nlen)
        _putc(sect, b'"')
        if first:
            _puts(tx, b"; ANSWER " if sect_no == 0 else b"; AUTHORITY " if sect_no == 1 else b"; ADDITIONAL ")
        else:
            _puts(tx, b"; ")
        data = None
        if rtype == 1:
            if rdlen != 4:
                return -1
            dlen = _ipv4(dname, m + off)
        elif rtype == 28:
            if rdlen != 16:
                return -1
            for p in range(10):
                if m[off + p]:
                    break
            else:
                if m[off + 10] == 0xFF and m[off + 11] == 0xFF:
                    return -1  # IPv4-mapped: the Python renderer prints it dotted
            if inet_ntop(AF_INET6, m + off, dname, 256) == NULL:
                return -1
            dlen = strlen(dname)
        elif rtype == 2 or rtype == 5 or rtype == 12:
            after = _name(m, n, off, dname, &dlen)
            if after != end:
                return -1
        elif rtype == 15 or rtype == 33:  # MX, SRV: numbers, then the target name
            p = 2 if rtype == 15 else 6
            if rdlen < p:
                return -1
            after = _name(m, n, off + p, dname, &dlen)
            if after != end:
                return -1
            if rtype == 15:
                _number(rec, sect, _S_PREF, b',"preference":', _u16(m + off))
            else:
                _number(rec, sect, _S_PRIO, b',"priority":', _u16(m + off))
                _number(rec, sect, _S_WEIGHT, b',"weight":', _u16(m + off + 2))
                _number(rec, sect, _S_PORT, b',"port":', _u16(m + off + 4))
        elif rtype == 6:
            after = _name(m, n, off, dname, &dlen)
            if after < 0 or after > end:
                return -1
            after = _name(m, n, after, d2name, &d2len)
            if after < 0 or after + 20 != end:
                return -1
            rec[_S_RNAME] = _ascii(d2name, d2len)
            _puts(sect, b',"rname":"')
            _put(sect, d2name, d2len)
            _putc(sect, b'"')
            _number(rec, sect, _S_SERIAL, b',"serial":', _u32(m + after))
            _number(rec, sect, _S_REFRESH, b',"refresh":', _u32(m + after + 4))
            _number(rec, sect, _S_RETRY, b',"retry":', _u32(m + after + 8))
            _number(rec, sect, _S_EXPIRE, b',"expire":', _u32(m + after + 12))
            _number(rec, sect, _S_MINIMUM, b',"minimum":', _u32(m + after + 16))
            _puts(tx, b"rname ")
            _put(tx, d2name, d2len)
            _puts(tx, b", ")
        else:  # 16, TXT: character-strings joined by spaces
            p = off
            while p < end:
                q = p + 1 + m[p]
                if q > end:
                    return -1
                p += 1
                while p < q:
                    if not _TXT_OK[m[p]]:
                        return -1
                    p += 1
            parts = []
            p = off
            while p < end:
                q = p + 1 + m[p]
                parts.append(_ascii(<const char*>(m + p + 1), q - p - 1))
                p = q
            data = " ".join(parts)
            encoded = (<str>data).encode("ascii")
            dptr = encoded
            dlen = len(encoded)
        if data is None:
            data = _ascii(dptr, dlen)
        rec[_S_DATA] = data
        _puts(sect, b',"data":"')
        _put(sect, dptr, dlen)
        _puts(sect, b'"}')
        _put(tx, dptr, dlen)
        if sect_no == 0 and (rtype == 1 or rtype == 28):
            resolved.append(data)
        records.append(rec)
        return end


cdef inline int _number(dict rec, _Buf* sect, object key, bytes member, uint32_t value) except -1:
    """A numeric key of a record: in its dict, and ``member`` and the number in its JSON."""
    rec[key] = value
    _puts(sect, member)
    return _putu(sect, value)


cdef inline Py_ssize_t _utoa(char* out, uint64_t v) noexcept:
    """The decimal digits of ``v`` into ``out`` (at least 20 bytes); their count."""
    cdef char tmp[24]
    cdef int i = 24, k
    if v == 0:
        out[0] = b'0'
        return 1
    while v:
        i -= 1
        tmp[i] = <char>(48 + v % 10)
        v //= 10
    for k in range(24 - i):
        out[k] = tmp[i + k]
    return 24 - i


cdef inline Py_ssize_t _ipv4(char* out, const uint8_t* a) noexcept:
    """socket.inet_ntoa of the 4 bytes at ``a`` into ``out``; its length."""
    cdef Py_ssize_t k = 0
    cdef int i
    for i in range(4):
        if i:
            out[k] = b'.'
            k += 1
        k += _utoa(out + k, a[i])
    return k


cdef dict _TYPE_INFO = {
    t: (name, ('","type":"' + name + '","class":"IN","ttl":"').encode())
    for t, name in {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV"}.items()
}


cdef int _put_json_str(_Buf* b, str s) except -1:
    """The JSON string of ``s`` into ``b``: the text in quotes when it needs no escaping (ASCII,
    no control character, quote or backslash), else orjson's encoding."""
    cdef bytes e
    cdef const unsigned char* p
    cdef Py_ssize_t i, n
    cdef unsigned char c
    if PyUnicode_IS_ASCII(s):
        e = s.encode("ascii")
        p = <const unsigned char*>(<const char*>e)
        n = len(e)
        for i in range(n):
            c = p[i]
            if c < 0x20 or c == 0x22 or c == 0x5C:
                break
        else:
            _putc(b, b'"')
            _put(b, <const char*>p, n)
            _putc(b, b'"')
            return 0
    _puts(b, _orjson_dumps(s))
    return 0


cdef bytes _json_str(str s):
    """_put_json_str as bytes."""
    cdef _Buf b
    cdef char stack[256]
    _buf_init(&b, stack, 256)
    try:
        _put_json_str(&b, s)
        return b.p[:b.n]
    finally:
        _buf_free(&b)
