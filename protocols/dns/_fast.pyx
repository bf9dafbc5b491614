# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The DNS protocol's compiled hot path: the lane of the compiled replay loop, and the parse and
render of the usual DNS messages.

Optional: built by ``pip install`` when a C compiler is there (Cython), else pybeat runs the
Python code it mirrors, with the same results. Owns no behaviour of its own: every branch is
the Python code's, and anything outside the subset handled here is handed to that code.

- :class:`DnsUdp4Lane` (a ``pybeat.decode._replay.UdpLane``, from ``DnsAnalyzer.udp4_lane``) is
  ``DnsAnalyzer.on_udp4`` for the usual message: a new query without notes, or a response,
  paired in the analyzer's own :class:`~pybeat.protocols.dns.pairing.TxnTable` (its methods,
  compiled from pairing.py: the one place where a response meets its query), the usual answer
  published as ``render.Renderer.publish_raw`` would; every other case calls the analyzer's
  ``message`` / ``answer``, and the analyzer's renderer for the dict path.
- :class:`DnsFastParser` is ``wire.parse_message`` plus event.py's memoised JSON parts for the
  usual messages (see the comment above it); None for the others, which the Python parser
  decodes. A pure function of the bytes, built on the Python parser's tables.

The results are the Python code's, document by document and counter by counter:
tests/unit/test_speedups.py (parser, template filler, split), tests/unit/test_replay_loop.py and
tests/dns/test_dns_udp4_inline.py (whole runs on every capture), tests/fuzz/ (hostile captures,
also under ASan/UBSan: tests/tooling/sanitizers). Bounds: every read is inside the DNS message
(each offset checked against its length before the read); output goes to buffers that grow.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, strlen
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_FromFormat, PyUnicode_DecodeASCII
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from orjson import dumps as _orjson_dumps

from pybeat.decode._replay cimport UdpLane
from pybeat.protocols.dns.pairing cimport Txn, TxnTable

from pybeat.api import format_ts as _format_ts

__all__ = ["DnsUdp4Lane", "DnsFastParser", "format_template"]


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


cdef bytes _fill(bytes tmpl, tuple holes, list values, dict cache):
    """``tmpl % tuple(values[h] for h in holes)`` (render.RawTemplate.fill) without parsing the
    template each time: the same bytes (tests/unit/test_speedups.py compares), ``%`` itself
    for anything unusual (another specifier, a negative number, an argument that is not int or
    bytes)."""
    cdef PyObject* hit = PyDict_GetItem(cache, tmpl)
    if hit is NULL:
        f = _compile_format(tmpl)
        if len(cache) >= 4096:
            cache.clear()
        cache[tmpl] = f
    else:
        f = <object>hit
    if f is None:
        return tmpl % tuple([values[h] for h in holes])
    cdef _Format fmt = <_Format>f
    cdef Py_ssize_t i, nargs = len(holes)
    if nargs != len(fmt.kinds):
        return tmpl % tuple([values[h] for h in holes])
    cdef const char* kinds = fmt.kinds
    cdef list parts = fmt.parts
    cdef _Buf out
    cdef char stack[4096]
    cdef long long v
    _buf_init(&out, stack, 4096)
    try:
        for i in range(nargs):
            _puts(&out, <bytes>parts[i])
            a = values[<Py_ssize_t>holes[i]]
            if kinds[i] == b'd':
                if type(a) is not int or not 0 <= a < 2**63:
                    return tmpl % tuple([values[h] for h in holes])
                v = a
                _putu(&out, <uint64_t>v)
            else:
                if type(a) is not bytes:
                    return tmpl % tuple([values[h] for h in holes])
                _puts(&out, <bytes>a)
        _puts(&out, <bytes>parts[nargs])
        return out.p[:out.n]
    finally:
        _buf_free(&out)


def format_template(bytes tmpl, tuple args):
    """For tests: what the lane makes of ``tmpl % args``."""
    return _fill(tmpl, tuple(range(len(args))), list(args), {})



# -- the lane ------------------------------------------------------------------------------------

cdef object _UDP = "udp"

# render.Hole's values (bound from the enum by the first lane: the names live there)
cdef Py_ssize_t H_REQUEST_BYTES, H_RESPONSE_BYTES, H_TOTAL_BYTES, H_START, H_END, H_DURATION
cdef Py_ssize_t H_RESOLVED, H_STATUS, H_HEAD, H_ID, H_DNS, H_REQUEST_ID, H_REQUEST, H_RESPONSE_ID
cdef Py_ssize_t H_RESPONSE, H_ERROR, H_COUNT = 0


cdef void _bind_holes(hole) except *:
    global H_REQUEST_BYTES, H_RESPONSE_BYTES, H_TOTAL_BYTES, H_START, H_END, H_DURATION, H_RESOLVED
    global H_STATUS, H_HEAD, H_ID, H_DNS, H_REQUEST_ID, H_REQUEST, H_RESPONSE_ID, H_RESPONSE, H_ERROR, H_COUNT
    H_REQUEST_BYTES = hole.REQUEST_BYTES
    H_RESPONSE_BYTES = hole.RESPONSE_BYTES
    H_TOTAL_BYTES = hole.TOTAL_BYTES
    H_START = hole.START
    H_END = hole.END
    H_DURATION = hole.DURATION
    H_RESOLVED = hole.RESOLVED
    H_STATUS = hole.STATUS
    H_HEAD = hole.HEAD
    H_ID = hole.ID
    H_DNS = hole.DNS
    H_REQUEST_ID = hole.REQUEST_ID
    H_REQUEST = hole.REQUEST
    H_RESPONSE_ID = hole.RESPONSE_ID
    H_RESPONSE = hole.RESPONSE
    H_ERROR = hole.ERROR
    H_COUNT = len(hole)


cdef class DnsUdp4Lane(UdpLane):
    """``DnsAnalyzer.on_udp4`` for a datagram the compiled loop owns (see the module docstring).
    Built by the analyzer with what it shares: its table, message cache, counters, renderer,
    and its general ``message`` / ``answer`` steps."""

    cdef TxnTable table
    cdef object cache, counters, render, on_udp4, message, answer, raw_error, event_type
    cdef object emit_raw, publish_dict, template
    cdef bint shareable, send_request, send_response
    cdef DnsFastParser parser
    cdef dict templates, formats, ips
    cdef Py_ssize_t cache_size
    cdef bint mdns, report_malformed
    cdef int64_t max_udp

    def __init__(self, TxnTable table, cache, dict counters, render, DnsFastParser parser, hole, raw_error,
                 event_type, on_udp4, message, answer, bint mdns, bint report_malformed, int64_t max_udp):
        _bind_holes(hole)
        self.event_type = event_type
        self.table = table
        self.cache = cache
        self.cache_size = cache.size  # MessageCache's configuration
        self.counters = counters
        self.render = render
        # the renderer's configuration, read once (it does not change after it is built)
        self.templates = render.templates
        self.shareable = render.shareable
        self.send_request = render.send_request
        self.send_response = render.send_response
        self.emit_raw = render.emit_raw
        self.publish_dict = render.publish_dict
        self.template = render.template
        self.parser = parser
        self.raw_error = raw_error
        self.on_udp4 = on_udp4
        self.message = message
        self.answer = answer
        self.mdns = mdns
        self.report_malformed = report_malformed
        self.max_udp = max_udp
        self.formats = {}
        self.ips = {}

    cdef uint32_t split_key(self, const uint8_t* payload, Py_ssize_t plen) noexcept:
        """DnsAnalyzer.shard_key: the DNS ID."""
        return ((payload[0] << 8) | payload[1]) if plen >= 2 else 0

    cdef inline object _ip(self, const uint8_t* p):
        """The address as text (the decoder's own cache holds bytes keys: this one needs none)."""
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
        cdef const uint8_t* p = f + 42
        src = self._ip(f + 26)
        dst = self._ip(f + 30)
        if plen < 12 or (self.mdns and (sport == 5353 or dport == 5353)):
            # what raises there, the loop counts as Decoder._udp4 does
            self.on_udp4(ts, src, sport, dst, dport, PyBytes_FromStringAndSize(<const char*>p, plen))
            return 0
        try:
            self._step(ts, src, sport, dst, dport, p, plen)
        except Exception:
            self.counters["internal_errors"] += 1
        return 0

    cdef int _step(self, int64_t ts, src, uint16_t sport, dst, uint16_t dport, const uint8_t* p,
                   Py_ssize_t plen) except -1:
        cdef PyObject* hit
        cdef int msg_id = (p[0] << 8) | p[1]
        cdef Txn txn
        msg = None
        cache = self.cache
        if self.cache_size > 0:
            entries = cache.entries  # MessageCache.parse's lookup, on the cache's own dict
            key = PyBytes_FromStringAndSize(<const char*>p + 2, plen - 2)
            hit = PyDict_GetItem(entries, key)
            if hit is not NULL:
                msg = <object>hit
                cache.hits += 1
        if msg is None:
            if self.cache_size > 0:
                msg = self.parser.parse_bytes(p, plen)
            if msg is not None:  # MessageCache.parse's bookkeeping
                if len(entries) >= self.cache_size:
                    entries.clear()
                entries[key] = msg
            else:
                msg = cache.parse(PyBytes_FromStringAndSize(<const char*>p, plen), False)
                if msg is None:
                    return 0
        c = self.counters
        c["messages"] += 1
        if msg.error is not None:
            c["malformed"] += 1
            if not self.report_malformed:
                return 0
        elif msg.qr == 0:
            if msg.opt is None or msg.length <= self.max_udp:  # no note: DnsAnalyzer._query's path
                txn = Txn(ts, src, sport, dst, dport, _UDP)
                txn.request = msg
                txn.req_id = msg_id
                self.table.add((_UDP, src, sport, dst, dport, msg_id), txn)
                return 0
        else:
            txn = self.table.take((_UDP, dst, dport, src, sport, msg_id), ts, None)
            req = txn.request if txn is not None else None
            if req is not None and (
                (msg.opt is None and req.opt is None and msg.length <= self.max_udp)
                or (msg.opt is not None and req.opt is not None)
            ):  # no note: DnsAnalyzer.answer's path for an answered UDP query
                txn.responses = [msg]
                txn.resp_id = msg_id
                txn.resp_ts = ts
                c["transactions"] += 1  # DnsAnalyzer._publish
                if not (self.shareable and self._publish_raw(txn, req, msg)):
                    self.publish_dict(txn)
                return 0
            self.answer(txn, msg, msg_id, ts, src, sport, dst, dport, _UDP, None)
            return 0
        self.message(msg, msg_id, ts, src, sport, dst, dport, _UDP, None)
        return 0

    cdef bint _publish_raw(self, Txn txn, req, resp) except -1:
        """Renderer.publish_raw (with its template cache hit inline); False where the dict path
        must build the event (as there, also for a value the encoder refuses)."""
        try:
            return self._publish_raw_inner(txn, req, resp)
        except TypeError:
            return False

    cdef bint _publish_raw_inner(self, Txn txn, req, resp) except -1:
        cdef int64_t start = txn.ts, end = txn.resp_ts
        if txn.mdns_only or not start or end < start:
            return False
        src, dst = txn.src_ip, txn.dst_ip
        cdef PyObject* hit = PyDict_GetItem(self.templates, (True, txn.transport, src, txn.src_port, dst, txn.dst_port))
        if hit is NULL:
            tmpl = self.template(txn, resp, True)
        else:
            tmpl = <object>hit
            resolved = resp.resolved
            if tmpl is None or (resolved and (src in resolved or dst in resolved)):
                tmpl = None
        if tmpl is None:
            return False
        cdef int64_t rl = req.length, sl = resp.length
        cdef bint ok = resp.rcode == 0
        notes = txn.notes
        resp_parts = resp.parts
        req_parts = req.parts
        cdef list v = [None] * H_COUNT
        v[H_REQUEST_BYTES] = rl
        v[H_RESPONSE_BYTES] = sl
        v[H_TOTAL_BYTES] = rl + sl
        ts_start = (<str>_format_ts(start)).encode()
        v[H_START] = ts_start
        v[H_END] = (<str>_format_ts(end)).encode() if end // 1_000_000 != start // 1_000_000 else ts_start
        v[H_DURATION] = end - start
        resolved = resp_parts.resolved_json
        v[H_RESOLVED] = resolved if resolved is not None else self.render_part("resolved_json", resp)
        v[H_STATUS] = b"OK" if ok else b"Error"
        head = req_parts.head_json
        v[H_HEAD] = head if head is not None else self.render_part("head_json", req)
        v[H_ID] = v[H_RESPONSE_ID] = txn.resp_id
        dns = resp_parts.dns_json
        v[H_DNS] = dns if dns is not None else self.render_part("dns_json", resp)
        v[H_REQUEST_ID] = txn.req_id
        if self.send_request:
            text = req_parts.text_json
            v[H_REQUEST] = text if text is not None else self.render_part("message_json", req)
        if self.send_response:
            text = resp_parts.text_json
            v[H_RESPONSE] = text if text is not None else self.render_part("message_json", resp)
        v[H_ERROR] = self.raw_error(notes) if notes else b""
        raw = _fill(tmpl.percent, tmpl.holes, v, self.formats)
        questions = resp.questions
        name = questions[0][0] if questions else None
        self.emit_raw(self.event_type(start, None, None, raw, ("dns", "OK" if ok else "Error", name, notes)))
        return True

    cdef object render_part(self, str which, msg):
        """A part the parser did not memoise (the Python parser's messages): event.py renders it."""
        return self.render.part(which, msg)


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


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)

cdef extern from "arpa/inet.h" nogil:
    const char* inet_ntop(int af, const void* src, char* dst, unsigned int size)

cdef extern from "sys/socket.h" nogil:
    int AF_INET6


cdef inline uint16_t _u16(const uint8_t* p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef Py_ssize_t _name(const uint8_t* m, Py_ssize_t n, Py_ssize_t off, char* out, Py_ssize_t* outlen,
                      const uint8_t* name_ok) noexcept nogil:
    """names.read_name for a name of safe characters (``name_ok``: a label's bytes printed as
    they are): the name (without the trailing dot, "." for the root) into ``out`` (256 bytes),
    and the offset after it; -1 for anything the Python reader would escape or refuse."""
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
                if not name_ok[c]:
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

    cdef object message_type, parts_type, flags_json, opcode_name, domains, render_opt, opt
    cdef dict types, type_info
    cdef bint authorities, additionals
    cdef dict questions, flags_cache
    cdef list methods
    cdef uint8_t name_ok[256]
    cdef uint8_t txt_ok[256]

    def __init__(self, message_type, parts_type, flags_json, types, opcode_name, domains, authorities,
                 additionals, render_opt, bytes name_safe, bytes txt_safe):
        """The Python parser's classes, renderers and tables: ``types`` (number -> name),
        ``name_safe`` (names.SAFE_BYTES: a name's bytes printed as they are; "." is a label
        separator here), ``txt_safe`` (rdata.TXT_SAFE: a character-string's)."""
        cdef int b
        for b in range(256):
            self.name_ok[b] = 0
            self.txt_ok[b] = 0
        for b in name_safe:
            if b != 0x2E:
                self.name_ok[b] = 1
        for b in txt_safe:
            self.txt_ok[b] = 1
        # the record types the compiled subset renders: their name and JSON piece
        self.type_info = {
            t: (types[t], ('","type":"' + types[t] + '","class":"IN","ttl":"').encode())
            for t in (1, 2, 5, 6, 12, 15, 16, 28, 33)
        }
        self.message_type = message_type
        self.parts_type = parts_type
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
        return self.parse_bytes(<const uint8_t*>(<const char*>data), len(data))

    cdef object parse_bytes(self, const uint8_t* m, Py_ssize_t n):
        if n < 12:
            return None
        cdef uint16_t flags = _u16(m + 2)
        cdef int qd = _u16(m + 4), an = _u16(m + 6), ns = _u16(m + 8), ar = _u16(m + 10)
        if qd != 1:
            return None
        cdef char qname[256]
        cdef Py_ssize_t qlen, off
        off = _name(m, n, 12, qname, &qlen, self.name_ok)
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
        # query's only if it stays unanswered, and event.py renders it then (see parts.dns_json below)
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
        parts = msg.parts = self.parts_type()
        if resolved:
            msg.resolved = tuple(resolved)
            parts.resolved_json = b"," + b",".join([_json_str(ip) for ip in dict.fromkeys(resolved)])
        else:
            msg.resolved = ()
            parts.resolved_json = b""
        if flags >> 15:  # a waiting query does not hold it (event.py renders it if needed)
            parts.dns_json = js.p[:js.n]
        _putc(tx, b'"')
        parts.text_json = tx.p[:tx.n]
        opcode = (flags >> 11) & 0xF
        method = self.methods[opcode]
        if method is None:
            method = self.methods[opcode] = (',"method":"' + self.opcode_name(opcode)).encode()
        parts.head_json = method + head_end
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
        off = _name(m, n, off, rname, &rlen, self.name_ok)
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
        info = self.type_info.get(rtype)
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
            after = _name(m, n, off, dname, &dlen, self.name_ok)
            if after != end:
                return -1
        elif rtype == 15 or rtype == 33:  # MX, SRV: numbers, then the target name
            p = 2 if rtype == 15 else 6
            if rdlen < p:
                return -1
            after = _name(m, n, off + p, dname, &dlen, self.name_ok)
            if after != end:
                return -1
            if rtype == 15:
                _number(rec, sect, _S_PREF, b',"preference":', _u16(m + off))
            else:
                _number(rec, sect, _S_PRIO, b',"priority":', _u16(m + off))
                _number(rec, sect, _S_WEIGHT, b',"weight":', _u16(m + off + 2))
                _number(rec, sect, _S_PORT, b',"port":', _u16(m + off + 4))
        elif rtype == 6:
            after = _name(m, n, off, dname, &dlen, self.name_ok)
            if after < 0 or after > end:
                return -1
            after = _name(m, n, after, d2name, &d2len, self.name_ok)
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
                    if not self.txt_ok[m[p]]:
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

