"""What the detectors read of a DNS transaction event: :class:`TxnView`, a small typed tuple.

The DNS protocol's events may arrive pre-encoded (``Event.raw``, the built-in protocol's fast
path). Reading ``Event.fields`` would decode the whole document (about 10 µs with the request
and response strings) and turn the event into an ordinary one, which costs the outputs their
splice (measured: the replay runs four times slower). :func:`view_of` reads a pre-encoded
event without decoding it: the client's address from the flow's head and the ``dns`` object
alone, which the protocol renders once per distinct message (so equal messages give equal
bytes, parsed once here and kept in a bounded cache). The document's layout is the DNS
protocol's ECS output (``"client":{"ip":..,"port":..,"bytes":..}``, ``"dns":{"id":N,
<message>,"type":"answer"|"query"}``); ``tests/detection/test_view.py`` reads every event of
every shared capture both ways and requires the same view, so a change of layout is caught.

Never changes the event.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import orjson

from pybeat.api import Event

from .features import shape

__all__ = ["Message", "TxnView", "reduce_raw", "view_of", "view_of_fields"]


class Message(NamedTuple):
    """The per-message part of a view: what ``dns`` holds besides its id, and what the
    detectors derive from it (computed once per distinct message)."""

    name: str
    qtype: str
    registered_domain: str  # lower-case ("" when unknown)
    subdomain: str          # as on the wire ("" for the registered domain itself)
    rcode: str
    answers: tuple[tuple[str, str], ...]  # (type, data) of each answer record shown
    answers_count: int
    sub_key: str            # subdomain, lower-case
    bytes_down: int         # characters of record data in answers other than A/AAAA
    encoded_down: bool      # some such record's data looks like encoded data (features.shape)


class TxnView(NamedTuple):
    ts: int                 # packet time of the transaction's first packet (ns)
    client_ip: str
    client_port: int
    server_ip: str          # "" when not read (pre-encoded events: the detectors do not need it)
    id: int                 # dns.id (-1 when absent)
    has_query: bool         # False: a response on its own
    has_response: bool      # False: a query that got no answer
    msg: Message


_ADDRESS_TYPES = frozenset({"A", "AAAA"})
_new = tuple.__new__
_CACHE_MAX = 65_536
#: hash of a message's bytes -> its Message (a collision, about 1 in 10^14 per pair, would
#: only give one event another message's view)
_messages: dict[int, Message] = {}


def down(data: list[str]) -> tuple[int, bool]:
    """``bytes_down`` and ``encoded_down`` of the data of a message's answers other than A/AAAA."""
    return sum(map(len, data)), any(shape(max(d.split(), key=len, default="")) for d in data)


_NO_DATA = (0, False)


def _message(dns: dict[str, Any]) -> Message:
    q = dns.get("question")
    if not isinstance(q, dict):
        q = {}
    raw_answers = dns.get("answers")
    answers: tuple[tuple[str, str], ...] = ()
    data: list[str] = []
    if isinstance(raw_answers, list):
        answers = tuple(
            (str(a.get("type", "")), str(a.get("data", ""))) for a in raw_answers if isinstance(a, dict))
        data = [d for t, d in answers if t not in _ADDRESS_TYPES]
    count = dns.get("answers_count")
    sub = q.get("subdomain") or ""
    if not isinstance(sub, str):
        sub = str(sub)
    # tuple.__new__: a new message is the per-event case of random-name traffic
    return _new(Message, (
        str(q.get("name") or ""), str(q.get("type") or ""), str(q.get("registered_domain") or "").lower(),
        sub, str(dns.get("response_code") or ""), answers, count if isinstance(count, int) else len(answers),
        sub.lower(), *(down(data) if data else _NO_DATA),
    ))


def message_of_body(body: bytes) -> Message:
    """The Message of the ``dns`` object's members (``body``: the object without its braces
    and its leading ``"id":N,``)."""
    return _message(orjson.loads(b"{" + body + b"}"))


class _Members(NamedTuple):
    """Where a pre-encoded DNS event's members are (offsets into it)."""

    client: int      # the client's address: raw[client:quote]
    quote: int
    port_end: int    # its port: raw[quote + 9:port_end]
    dns: int         # ',"dns":{"id":' (the id: raw[dns + 13:comma])
    comma: int
    end: int         # ',"type":"answer"}' or ',"type":"query"}': the end of the dns object
    answered: bool
    key_start: int   # the members the message is read from and cached by: raw[key_start:key_end]
    key_end: int


def _members(raw: bytes) -> _Members | None:
    """Where the members of a pre-encoded DNS event are; None when it has no client or no
    ``dns`` object, ValueError when it is not the layout described in the module docstring.
    Each string searched for is found once in the document: it has quotes, and a quote inside
    a JSON string is escaped. Pre-encoded events are answered transactions and unanswered
    queries only (a response on its own always takes the dict path), so "type" says which
    halves were seen."""
    c = raw.find(b'"client":{"ip":"') + 16
    if c < 16:
        return None
    q = raw.find(b'"', c)
    p = raw.find(b",", q + 9)
    if q < 0 or p < 0:
        raise ValueError("not a pre-encoded DNS event")
    d = raw.find(b',"dns":{"id":', p)
    if d < 0:
        return None
    end = raw.find(b',"type":"answer"}', d)
    answered = end >= 0
    if not answered:
        end = raw.find(b',"type":"query"}', d)
    comma = raw.find(b",", d + 13, end)
    if end < 0 or comma < 0:
        raise ValueError("not a pre-encoded DNS event")
    # The message is cached by the hash of the members it is read from (the response code to
    # the answers; the bytes themselves would make the cache ten times bigger).
    ks = raw.find(b'"response_code":"', comma + 1, end)
    if ks < 0:
        ks = comma + 1
    ke = raw.find(b',"authorities_count":', ks, end)
    return _Members(c, q, p, d, comma, end, answered, ks, end if ke < 0 else ke)


def read_raw(ts: int, raw: bytes) -> TxnView | None:
    """The view of a pre-encoded DNS event (see the module docstring); None when it has no
    client or no ``dns`` object, ValueError when it is not the layout described there. The
    compiled twin (``_view.pyx``, the same steps in C) replaces it where it was built."""
    m = _members(raw)
    if m is None:
        return None
    key = hash(raw[m.key_start:m.key_end])
    msg = _messages.get(key)
    if msg is None:
        if len(_messages) >= _CACHE_MAX:
            _messages.clear()
        msg = _messages[key] = message_of_body(raw[m.comma + 1:m.end])
    # tuple.__new__ skips the NamedTuple's Python-level constructor (this runs per event)
    return _new(TxnView, (ts, raw[m.client:m.quote].decode(), _digits(raw[m.quote + 9:m.port_end]), "",
                          _digits(raw[m.dns + 13:m.comma]), True, m.answered, msg))


def reduce_raw(raw: bytes) -> bytes:
    """The part of a pre-encoded DNS event that :func:`read_raw` reads, as a document it reads
    the same way (the client's address and port, the ``dns`` object's id, and its members
    from the response code to the answers): what a capture process hands to the detection
    process (pybeat/agent/detection.py), about a fifth of the event. Anything not of that
    layout is returned whole. The compiled twin (``_view.pyx``) replaces it where built."""
    try:
        m = _members(raw)
    except ValueError:
        return raw
    if m is None:
        return raw
    tail = b',"type":"answer"}' if m.answered else b',"type":"query"}'
    return b"".join((raw[m.client - 16:m.port_end], raw[m.dns:m.comma + 1], raw[m.key_start:m.key_end], tail))


_reduce_raw_py = reduce_raw  # the reference, kept where the compiled twin replaces it


def _digits(text: bytes) -> int:
    """A JSON number of this layout (digits only: int() would also take signs, spaces and _)."""
    if not text.isdigit():
        raise ValueError("not a pre-encoded DNS event")
    return int(text)


_view_raw = read_raw


def view_of_fields(ts: int, fields: dict[str, Any]) -> TxnView | None:
    """The view of an ordinary (dict) DNS event."""
    dns = fields.get("dns")
    if not isinstance(dns, dict):
        return None
    client = fields.get("client")
    server = fields.get("server")
    client = client if isinstance(client, dict) else {}
    server = server if isinstance(server, dict) else {}
    mid = dns.get("id")
    return TxnView(
        ts, str(client.get("ip") or ""), int(client.get("port") or 0), str(server.get("ip") or ""),
        mid if isinstance(mid, int) else -1, bool(client.get("bytes")), bool(server.get("bytes")), _message(dns),
    )


def raw_reader() -> Any:
    """:func:`read_raw`, or its compiled twin where it was built."""
    return _view_raw


def view_of(event: Event) -> TxnView | None:
    """The view of a DNS transaction event, pre-encoded or not; None for anything else."""
    raw = event.raw
    if raw is not None:
        try:
            return _view_raw(event.timestamp_ns, raw)
        except ValueError:  # not the DNS protocol's layout: read it the slow way
            pass
    return view_of_fields(event.timestamp_ns, event.fields)


# The compiled twin of read_raw and view_of (_view.pyx), where it was built
if os.environ.get("PYBEAT_PURE_PYTHON", "") in ("", "0"):
    try:
        from ._view import bind as _bind
        from ._view import read_raw as _compiled_read_raw
        from ._view import reduce_raw as _compiled_reduce_raw
        from ._view import view_of as _compiled_view_of
    except ImportError:  # not built: the Python reader above
        pass
    else:
        _bind(TxnView, Message, _messages, _CACHE_MAX, message_of_body, down, view_of_fields)
        _view_raw = _compiled_read_raw
        reduce_raw = _compiled_reduce_raw  # noqa: F811
        view_of = _compiled_view_of  # noqa: F811
