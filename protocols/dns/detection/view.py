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

from typing import Any, NamedTuple

import orjson

from pybeat.api import Event

from .features import shape

__all__ = ["Message", "TxnView", "view_of", "view_of_fields"]


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


def _message(dns: dict[str, Any]) -> Message:
    q = dns.get("question")
    if not isinstance(q, dict):
        q = {}
    raw_answers = dns.get("answers")
    answers: tuple[tuple[str, str], ...] = ()
    if isinstance(raw_answers, list):
        answers = tuple(
            (str(a.get("type", "")), str(a.get("data", ""))) for a in raw_answers if isinstance(a, dict))
    count = dns.get("answers_count")
    sub = str(q.get("subdomain") or "")
    data = [d for t, d in answers if t not in _ADDRESS_TYPES]
    return Message(
        str(q.get("name") or ""), str(q.get("type") or ""), str(q.get("registered_domain") or "").lower(),
        sub, str(dns.get("response_code") or ""), answers, count if isinstance(count, int) else len(answers),
        sub.lower(), sum(map(len, data)), any(shape(max(d.split(), key=len, default="")) for d in data),
    )


def _view_raw(ts: int, raw: bytes) -> TxnView | None:
    # Pre-encoded events are answered transactions and unanswered queries only (a response
    # on its own always takes the dict path), so "type" says which halves were seen. The
    # message ends before the last ',"type":"answer"}' (what follows, the request/response
    # strings and the agent's fields, cannot hold it unescaped), so it is searched from the end.
    c = raw.find(b'"client":{"ip":"') + 16
    if c < 16:
        return None
    q = raw.find(b'"', c)
    p = raw.find(b",", q + 9)
    end = raw.rfind(b',"type":"answer"}')
    answered = end >= 0
    if not answered:
        end = raw.rfind(b',"type":"query"}')
    d = raw.rfind(b',"dns":{"id":', p, end)
    if d < 0:
        return None
    start = d + 13
    comma = raw.find(b",", start, end)
    body = raw[comma + 1:end]
    key = hash(body)  # the bytes themselves would make the cache ten times bigger
    msg = _messages.get(key)
    if msg is None:
        if len(_messages) >= _CACHE_MAX:
            _messages.clear()
        msg = _messages[key] = _message(orjson.loads(b"{" + body + b"}"))
    # tuple.__new__ skips the NamedTuple's Python-level constructor (this runs per event)
    return _new(TxnView, (ts, raw[c:q].decode(), int(raw[q + 9:p]), "", int(raw[start:comma]), True, answered, msg))


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


def view_of(event: Event) -> TxnView | None:
    """The view of a DNS transaction event, pre-encoded or not; None for anything else."""
    raw = event.raw
    if raw is not None:
        try:
            return _view_raw(event.timestamp_ns, raw)
        except ValueError:  # not the DNS protocol's layout: read it the slow way
            pass
    return view_of_fields(event.timestamp_ns, event.fields)
