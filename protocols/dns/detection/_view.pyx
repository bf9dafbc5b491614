# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled twin of ``view.read_raw`` and ``view.message_of_body``: what the detectors
read of a pre-encoded DNS event, by the same steps, in C.

Pure functions (the event's bytes in, a ``TxnView`` out); the cache of messages they fill is
view.py's ``_messages`` (handed over by :func:`bind`, never owned here). A message this reader
does not take (a string with an escape, a value that is not a string where it expects one,
members it does not find) is read by view.py's ``message_of_body``, so every unusual case
stays in one place. ``tests/detection/test_view.py`` compares both readers on every event of
every capture and on hand-made bodies.

Measured on dns_bulk_100k.pcap (docs/detection.md, "Speed"): the view of an event went from
3.7 to ~1 µs.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport Py_INCREF, PyObject
from cpython.tuple cimport PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t
from libc.string cimport memchr, memcmp, memcpy, strchr

cdef object _TxnView = None
cdef object _Message = None
cdef dict _messages = None
cdef Py_ssize_t _cache_max = 0
cdef object _message_of_body = None
cdef object _down = None
cdef object _view_of_fields = None


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    ctypedef struct PyTypeObject:
        pass
    object PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t nitems)
    # what hash() of a bytes object computes, on the bytes in place (no copy to hash)
    Py_hash_t _Py_HashBytes(const void* data, Py_ssize_t n)


cdef inline void _put(object t, Py_ssize_t i, object v):
    Py_INCREF(v)  # PyTuple_SET_ITEM steals a reference
    PyTuple_SET_ITEM(t, i, v)


cdef object _txn_view(object ts, object ip, object port, object mid, object answered, object msg):
    """TxnView(ts, ip, port, "", mid, True, answered, msg), allocated as the tuple subclass it
    is (a NamedTuple instance is a tuple and nothing more): no Python-level constructor and no
    temporary tuple, as for the Message below."""
    t = PyType_GenericAlloc(<PyTypeObject*>_TxnView, 8)
    _put(t, 0, ts)
    _put(t, 1, ip)
    _put(t, 2, port)
    _put(t, 3, _EMPTY)
    _put(t, 4, mid)
    _put(t, 5, True)
    _put(t, 6, answered)
    _put(t, 7, msg)
    return t
cdef object _EMPTY = ""
cdef object _NO_DATA = (0, False)


def bind(txn_view, message, dict messages, Py_ssize_t cache_max, message_of_body, down, view_of_fields):
    """The view's types, its message cache and the Python functions this falls back on."""
    global _TxnView, _Message, _messages, _cache_max, _message_of_body, _down, _view_of_fields
    _TxnView, _Message, _messages, _cache_max = txn_view, message, messages, cache_max
    _message_of_body, _down, _view_of_fields = message_of_body, down, view_of_fields


def view_of(event):
    """view.view_of in C (this runs per event)."""
    raw = event.raw
    if raw is not None:
        try:
            return _read_raw(event.timestamp_ns, <bytes?>raw)
        except ValueError:  # not the DNS protocol's layout: read it the slow way
            pass
    return _view_of_fields(event.timestamp_ns, event.fields)


cdef struct _Pattern:
    const char* text
    Py_ssize_t n
    Py_ssize_t anchor  # the index of the pattern's rarest byte in these documents


cdef void _prepare(_Pattern* pat, const char* text, const char* anchor) noexcept:
    pat.text = text
    pat.n = len(<bytes>text)
    pat.anchor = <Py_ssize_t>(strchr(text, anchor[0]) - text)


cdef inline Py_ssize_t _find(const char* s, Py_ssize_t start, Py_ssize_t end, _Pattern* pat) noexcept nogil:
    """bytes.find: the first pat in s[start:end], or -1. memchr finds each place of the
    pattern's anchor, a byte that is rare in these documents (a brace, a bracket or an
    underscore), and the pattern is compared there: most of a document is passed over at
    memchr's speed."""
    cdef Py_ssize_t n = pat.n, a = pat.anchor
    cdef Py_ssize_t i = start + a, last = end - n + a  # the anchor's first and last places
    cdef char c = pat.text[a]
    cdef const char* hit
    if start < 0:
        return -1
    while i <= last:
        hit = <const char*>memchr(s + i, c, last - i + 1)
        if hit == NULL:
            return -1
        i = hit - s
        if memcmp(s + i - a, pat.text, n) == 0:
            return i - a
        i += 1
    return -1


cdef inline Py_ssize_t _find_byte(const char* s, Py_ssize_t start, Py_ssize_t end, char c) noexcept nogil:
    if start < 0 or start >= end:
        return -1
    cdef const char* hit = <const char*>memchr(s + start, c, end - start)
    return -1 if hit == NULL else hit - s


cdef _Pattern _CLIENT, _DNS, _ANSWER, _QUERY, _RCODE, _AUTHORITIES, _QUESTION, _COUNT, _ANSWERS
_prepare(&_CLIENT, b'"client":{"ip":"', b'{')
_prepare(&_DNS, b',"dns":{"id":', b'{')
_prepare(&_ANSWER, b',"type":"answer"}', b'}')
_prepare(&_QUERY, b',"type":"query"}', b'}')
_prepare(&_RCODE, b'"response_code":"', b'_')
_prepare(&_AUTHORITIES, b',"authorities_count":', b'_')
_prepare(&_QUESTION, b'"question":{', b'{')
_prepare(&_COUNT, b'"answers_count":', b'_')
_prepare(&_ANSWERS, b'"answers":[', b'[')


cdef inline Py_ssize_t _digits(const char* s, Py_ssize_t start, Py_ssize_t end) except -2:
    """The number s[start:end] (digits only), as view._digits."""
    cdef Py_ssize_t v = 0, i
    if end <= start or end - start > 18:
        raise ValueError("not a pre-encoded DNS event")
    for i in range(start, end):
        if s[i] < 48 or s[i] > 57:
            raise ValueError("not a pre-encoded DNS event")
        v = v * 10 + (s[i] - 48)
    return v


def read_raw(int64_t ts, bytes raw):
    """view.read_raw in C."""
    return _read_raw(ts, raw)


cdef struct _Members:
    # view._Members: where a pre-encoded DNS event's members are
    Py_ssize_t client, quote, port_end, dns, comma, end, key_start, key_end
    bint answered


cdef int _members(const char* s, Py_ssize_t n, _Members* m) except -1:
    """view._members in C: 1 when found, 0 when the event has no client or no ``dns`` object,
    ValueError when it is not the layout."""
    cdef Py_ssize_t c = _find(s, 0, n, &_CLIENT)
    if c < 0:
        return 0
    m.client = c + 16
    m.quote = _find_byte(s, m.client, n, 34)
    m.port_end = _find_byte(s, m.quote + 9, n, 44) if m.quote >= 0 else -1
    if m.quote < 0 or m.port_end < 0:
        raise ValueError("not a pre-encoded DNS event")
    m.dns = _find(s, m.port_end, n, &_DNS)
    if m.dns < 0:
        return 0
    m.end = _find(s, m.dns, n, &_ANSWER)
    m.answered = m.end >= 0
    if not m.answered:
        m.end = _find(s, m.dns, n, &_QUERY)
    m.comma = _find_byte(s, m.dns + 13, m.end, 44)
    if m.end < 0 or m.comma < 0:
        raise ValueError("not a pre-encoded DNS event")
    m.key_start = _find(s, m.comma + 1, m.end, &_RCODE)
    if m.key_start < 0:
        m.key_start = m.comma + 1
    m.key_end = _find(s, m.key_start, m.end, &_AUTHORITIES)
    if m.key_end < 0:
        m.key_end = m.end
    return 1


cdef object _read_raw(int64_t ts, bytes raw):
    cdef const char* s = PyBytes_AS_STRING(raw)
    cdef _Members m
    if not _members(s, PyBytes_GET_SIZE(raw), &m):
        return None
    key = _Py_HashBytes(s + m.key_start, m.key_end - m.key_start)  # == hash(raw[ks:ke]), view.py's key
    cdef PyObject* hit = PyDict_GetItem(_messages, key)
    if hit is NULL:
        if len(_messages) >= _cache_max:
            _messages.clear()
        msg = _message(PyBytes_FromStringAndSize(s + m.comma + 1, m.end - m.comma - 1))
        _messages[key] = msg
    else:
        msg = <object>hit
    port = _digits(s, m.quote + 9, m.port_end)
    mid = _digits(s, m.dns + 13, m.comma)
    return _txn_view(ts, PyUnicode_DecodeUTF8(s + m.client, m.quote - m.client, NULL), port, mid, m.answered, msg)


def reduce_raw(bytes raw):
    """view.reduce_raw in C: the same cuts, one allocation."""
    cdef const char* s = PyBytes_AS_STRING(raw)
    cdef _Members m
    try:
        if not _members(s, PyBytes_GET_SIZE(raw), &m):
            return raw
    except ValueError:
        return raw
    cdef Py_ssize_t tail = 17 if m.answered else 16  # ',"type":"answer"}' or ',"type":"query"}'
    cdef Py_ssize_t a = m.port_end - m.client + 16, b = m.comma + 1 - m.dns, k = m.key_end - m.key_start
    out = PyBytes_FromStringAndSize(NULL, a + b + k + tail)
    cdef char* o = PyBytes_AS_STRING(out)
    memcpy(o, s + m.client - 16, a)
    memcpy(o + a, s + m.dns, b)
    memcpy(o + a + b, s + m.key_start, k)
    memcpy(o + a + b + k, s + m.end, tail)
    return out


# -- a message -------------------------------------------------------------------------------------

cdef inline Py_ssize_t _string_end(const char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Where the JSON string whose first character is at i ends (its closing quote), or -1 when
    it has an escape (view.py reads those) or no end."""
    while i < n:
        if s[i] == 34:  # "
            return i
        if s[i] == 92:  # backslash
            return -1
        i += 1
    return -1


cdef inline Py_ssize_t _member(const char* s, Py_ssize_t j, Py_ssize_t n, Py_ssize_t* ke) noexcept nogil:
    """At j, a ``"key":"value"`` member of a flat object of strings: the value's closing quote
    (``ke[0]``: the key's), or -1 when it is not one this reader takes."""
    if j >= n or s[j] != 34:
        return -1
    ke[0] = _string_end(s, j + 1, n)
    if ke[0] < 0 or ke[0] + 2 >= n or s[ke[0] + 1] != 58 or s[ke[0] + 2] != 34:  # "key":"
        return -1
    cdef Py_ssize_t ve = _string_end(s, ke[0] + 3, n)
    return ve if ve >= 0 and ve + 1 < n else -1


cdef inline object _lower(str text):
    """text.lower(), or text itself when it has no upper-case letter (names are lower-case)."""
    cdef Py_ssize_t i, n = len(text)
    cdef Py_UCS4 ch
    if not PyUnicode_IS_ASCII(text):
        return text.lower()
    for i in range(n):
        ch = text[i]
        if 65 <= ch <= 90:
            return text.lower()
    return text


cdef object _message(bytes body):
    cdef const char* s = PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t i = _find(s, 0, n, &_QUESTION)
    cdef Py_ssize_t r = _find(s, 0, n, &_RCODE)
    cdef Py_ssize_t k = _find(s, 0, n, &_COUNT)
    if i < 0 or r < 0 or k < 0:
        return _message_of_body(body)
    # the question: a flat object of strings
    name = qtype = rd = sub = _EMPTY
    cdef Py_ssize_t j = i + 12, ke, ve, klen
    while True:
        ve = _member(s, j, n, &ke)
        if ve < 0:
            return _message_of_body(body)
        klen = ke - j - 1
        if klen == 4 and memcmp(s + j + 1, b"name", 4) == 0:
            name = PyUnicode_DecodeUTF8(s + ke + 3, ve - ke - 3, NULL)
        elif klen == 4 and memcmp(s + j + 1, b"type", 4) == 0:
            qtype = PyUnicode_DecodeUTF8(s + ke + 3, ve - ke - 3, NULL)
        elif klen == 17 and memcmp(s + j + 1, b"registered_domain", 17) == 0:
            rd = PyUnicode_DecodeUTF8(s + ke + 3, ve - ke - 3, NULL)
        elif klen == 9 and memcmp(s + j + 1, b"subdomain", 9) == 0:
            sub = PyUnicode_DecodeUTF8(s + ke + 3, ve - ke - 3, NULL)
        if s[ve + 1] == 125:  # }
            break
        if s[ve + 1] != 44:  # ,
            return _message_of_body(body)
        j = ve + 2
    # the response code (a string) and the count (a number)
    ve = _string_end(s, r + 17, n)
    if ve < 0:
        return _message_of_body(body)
    rcode = PyUnicode_DecodeUTF8(s + r + 17, ve - r - 17, NULL)
    j = k + 16
    while j < n and 48 <= s[j] <= 57:
        j += 1
    if j == k + 16 or j - k - 16 > 9 or (j < n and s[j] != 44):  # (the last member: reduce_raw's cut)
        return _message_of_body(body)
    count = _digits(s, k + 16, j)
    # the answers: flat objects of strings; (type, data) of each
    answers = ()
    data = None
    cdef Py_ssize_t a = _find(s, 0, n, &_ANSWERS)
    cdef bint plain
    if a >= 0:
        items = []
        j = a + 11
        if j < n and s[j] == 93:  # ]: an empty list
            j = -1
        while j >= 0:
            if j >= n or s[j] != 123:  # {
                return _message_of_body(body)
            j += 1
            atype = adata = _EMPTY
            plain = False
            while True:
                ve = _member(s, j, n, &ke)
                if ve < 0:
                    return _message_of_body(body)
                klen = ke - j - 1
                if klen == 4 and memcmp(s + j + 1, b"type", 4) == 0:
                    atype = PyUnicode_DecodeUTF8(s + ke + 3, ve - ke - 3, NULL)
                    plain = (ve - ke - 3 == 1 and s[ke + 3] == 65) or (
                        ve - ke - 3 == 4 and memcmp(s + ke + 3, b"AAAA", 4) == 0)
                elif klen == 4 and memcmp(s + j + 1, b"data", 4) == 0:
                    adata = PyUnicode_DecodeUTF8(s + ke + 3, ve - ke - 3, NULL)
                j = ve + 2
                if s[ve + 1] == 125:  # }
                    break
                if s[ve + 1] != 44:
                    return _message_of_body(body)
            items.append((atype, adata))
            if not plain:
                if data is None:
                    data = []
                data.append(adata)
            if j >= n:
                return _message_of_body(body)
            if s[j] == 93:  # ]
                break
            if s[j] != 44:
                return _message_of_body(body)
            j += 1
        answers = tuple(items)
    down = _down(data) if data else _NO_DATA
    t = PyType_GenericAlloc(<PyTypeObject*>_Message, 10)
    _put(t, 0, name)
    _put(t, 1, qtype)
    _put(t, 2, _lower(rd))
    _put(t, 3, sub)
    _put(t, 4, rcode)
    _put(t, 5, answers)
    _put(t, 6, count)
    _put(t, 7, _lower(sub))
    _put(t, 8, down[0])
    _put(t, 9, down[1])
    return t
