"""Event serialisation as Beats' JSON codec writes it (file, console and Logstash outputs).

``{"@timestamp": "<UTC ms Z>", "@metadata": {"beat", "type": "_doc", "version", ...meta}, ...}``

Also ``codec.format.string`` (``%{[field.path]}`` references, as Beats' fmtstr).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from pydantic import Field

from pybeat._sdk.config import PluginConfig
from pybeat._sdk.events import BeatInfo, Event
from pybeat.timefmt import format_ts

_FIELD_REF = re.compile(r"%\{\[([^\]]+)\]\}")


class JsonCodecConfig(PluginConfig):
    pretty: bool = False
    escape_html: bool = False


class FormatCodecConfig(PluginConfig):
    string: str


class CodecConfig(PluginConfig):
    json_: JsonCodecConfig | None = Field(default=None, alias="json")
    format: FormatCodecConfig | None = None


def escape_html(data: bytes) -> bytes:
    """JSON bytes with ``<``, ``>`` and ``&`` escaped, as Beats' ``escape_html: true`` writes."""
    return data.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def encode_json(obj: Any, escape: bool = False) -> bytes:
    """``obj`` as compact JSON the way the outputs write events: keys that are not strings
    and values JSON lacks (bytes, sets, tuples, anything else) are turned into strings or
    lists instead of failing."""
    try:
        data = orjson.dumps(obj)
    except TypeError:
        data = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=json_default)
    return escape_html(data) if escape else data


class Codec:
    """Turns an event into one line (bytes, without the newline)."""

    def __init__(self, beat: BeatInfo, config: CodecConfig | None = None, pretty: bool = False, index: str | None = None):
        self.beat_name = (index or beat.beat).lower()
        self.version = beat.version
        cfg = config or CodecConfig()
        self.format = cfg.format.string if cfg.format else None
        self.pretty = pretty or bool(cfg.json_ and cfg.json_.pretty)
        self.escape = bool(cfg.json_ and cfg.json_.escape_html)
        self._opts = orjson.OPT_INDENT_2 if self.pretty else 0
        self._meta = {"beat": self.beat_name, "type": "_doc", "version": self.version}
        self._meta_json = b'","@metadata":' + orjson.dumps(self._meta) + b","
        self._last_head: tuple[int, bytes] = (-1, b"")

    def document(self, event: Event) -> dict[str, Any]:
        meta = {**self._meta, **event.meta} if event.meta else self._meta
        fields = event.fields
        extra_meta = fields.get("@metadata")
        if isinstance(extra_meta, dict):  # a processor wrote into @metadata (add_fields target "@metadata")
            meta = {**meta, **extra_meta}
        doc = {"@timestamp": format_ts(event.timestamp_ns), "@metadata": meta}
        doc.update(fields)
        doc["@metadata"] = meta
        return doc

    def encode(self, event: Event) -> bytes:
        if self.format is not None:
            return self._format(self.document(event)).encode()
        raw = event.raw
        if raw is not None and not self.pretty and not event.meta and len(raw) > 2:
            # A pre-encoded document (see Event): spliced behind the envelope as it is.
            data = b'{"@timestamp":"' + format_ts(event.timestamp_ns).encode() + self._meta_json + raw[1:]
            return escape_html(data) if self.escape else data
        fields = event.fields
        if self.pretty or event.meta or not fields or "@timestamp" in fields or "@metadata" in fields:
            return self._encode_doc(self.document(event))
        # Fast path: splice the pre-encoded envelope in front of the encoded fields.
        try:
            body = orjson.dumps(event.fields)
        except TypeError:
            return self._encode_doc(self.document(event))
        data = b'{"@timestamp":"' + format_ts(event.timestamp_ns).encode() + self._meta_json + body[1:]
        return escape_html(data) if self.escape else data

    def encode_into(self, event: Event, out: list[Any]) -> int:
        """Append ``encode(event)`` and a newline to ``out`` as pieces (bytes-like objects whose
        ``b"".join`` is the line), and return the line's length with its newline. Outputs that
        write many lines join them once: a pre-encoded document is not copied on the way."""
        raw = event.raw
        if raw is not None and self.format is None and not self.pretty and not self.escape and not event.meta \
                and len(raw) > 2:
            head = self._head(event.timestamp_ns)
            out += (head, memoryview(raw)[1:], b"\n")
            return len(head) + len(raw)
        line = self.encode(event)
        out += (line, b"\n")
        return len(line) + 1

    def _head(self, ts_ns: int) -> bytes:
        """``{"@timestamp":"..","@metadata":{..},`` for a time, the last millisecond's cached."""
        ms = ts_ns // 1_000_000
        last = self._last_head
        if last[0] == ms:
            return last[1]
        head = b'{"@timestamp":"' + format_ts(ts_ns).encode() + self._meta_json
        self._last_head = (ms, head)  # one tuple: another output thread never sees half of it
        return head

    def _encode_doc(self, doc: dict[str, Any]) -> bytes:
        try:
            data = orjson.dumps(doc, option=self._opts)
        except TypeError:  # a plugin used a non-string key or an exotic value: slower path
            data = orjson.dumps(doc, option=self._opts | orjson.OPT_NON_STR_KEYS, default=json_default)
        return escape_html(data) if self.escape else data

    def _format(self, doc: dict[str, Any]) -> str:
        def lookup(m: re.Match[str]) -> str:
            node: Any = doc
            for part in m.group(1).split("."):
                if not isinstance(node, dict) or part not in node:
                    return ""
                node = node[part]
            return node if isinstance(node, str) else orjson.dumps(node).decode()

        return _FIELD_REF.sub(lookup, self.format or "")


def json_default(obj: Any) -> Any:
    """orjson's ``default`` for the values JSON lacks: text for bytes, lists for sets and
    tuples, ``str()`` for the rest."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)
