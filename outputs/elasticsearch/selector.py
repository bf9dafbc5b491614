"""Index and pipeline names per event: Beats' format strings and selector rules.

Owns: ``%{[field.path]}`` / ``%{[field.path]:default}`` references (``@metadata.*`` included),
``%{+yyyy.MM.dd}`` Joda-style dates of the event's ``@timestamp`` (UTC), the ``indices`` /
``pipelines`` rule lists (``when``, ``mappings``, ``default``) and the ``@metadata`` overrides
(``raw_index``, ``index``, ``pipeline``). Pure functions of the event; names are lower-cased
as Elasticsearch requires.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

from pybeat.api import Event, build_condition

__all__ = ["FormatString", "SelectorError", "Selector", "joda_format"]

_TOKEN = re.compile(r"%\{\[([^\]]+)\](?::([^}]*))?\}|%\{\+([^}]+)\}")
_JODA = re.compile(r"yyyy|yy|MM|M|dd|d|HH|H|mm|ss|SSS|'[^']*'|.", re.S)


class SelectorError(ValueError):
    """A name could not be built for an event (a referenced field is missing)."""


def joda_format(pattern: str, ts_ns: int) -> str:
    """Format a UTC time with the Joda subset Beats configs use (``yyyy.MM.dd``, ``HH``...)."""
    sec, rem = divmod(ts_ns, 1_000_000_000)
    t = time.gmtime(sec)
    out = []
    for tok in _JODA.findall(pattern):
        if tok == "yyyy":
            out.append(f"{t.tm_year:04d}")
        elif tok == "yy":
            out.append(f"{t.tm_year % 100:02d}")
        elif tok == "MM":
            out.append(f"{t.tm_mon:02d}")
        elif tok == "M":
            out.append(str(t.tm_mon))
        elif tok == "dd":
            out.append(f"{t.tm_mday:02d}")
        elif tok == "d":
            out.append(str(t.tm_mday))
        elif tok == "HH":
            out.append(f"{t.tm_hour:02d}")
        elif tok == "H":
            out.append(str(t.tm_hour))
        elif tok == "mm":
            out.append(f"{t.tm_min:02d}")
        elif tok == "ss":
            out.append(f"{t.tm_sec:02d}")
        elif tok == "SSS":
            out.append(f"{rem // 1_000_000:03d}")
        elif len(tok) >= 2 and tok[0] == "'" and tok[-1] == "'":
            out.append(tok[1:-1])
        else:
            out.append(tok)
    return "".join(out)


def _lookup(event: Event, meta: dict[str, Any], path: str) -> Any:
    if path.startswith("@metadata."):
        node: Any = meta
        for part in path[len("@metadata."):].split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node
    if path == "@timestamp":
        return None
    return event.get(path)


class FormatString:
    """A compiled Beats format string (``packetbeat-%{[agent.version]}-%{+yyyy.MM.dd}``)."""

    def __init__(self, text: str):
        self.text = text
        self.parts: list[tuple[str, str, str | None]] = []  # (kind, value, default)
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.start() > pos:
                self.parts.append(("lit", text[pos:m.start()], None))
            if m.group(1) is not None:
                self.parts.append(("field", m.group(1), m.group(2)))
            else:
                self.parts.append(("time", m.group(3), None))
            pos = m.end()
        if pos < len(text):
            self.parts.append(("lit", text[pos:], None))
        self.constant = all(k == "lit" for k, _, _ in self.parts)
        # Date parts that change once a day are cached per UTC day (this runs per event).
        self._daily = {v for k, v, _ in self.parts if k == "time" and _daily(v)}
        self._time_cache: dict[str, tuple[int, str]] = {}

    def _time(self, pattern: str, ts_ns: int) -> str:
        if pattern not in self._daily:
            return joda_format(pattern, ts_ns)
        day = ts_ns // 86_400_000_000_000
        hit = self._time_cache.get(pattern)
        if hit is None or hit[0] != day:
            hit = self._time_cache[pattern] = (day, joda_format(pattern, ts_ns))
        return hit[1]

    def render(self, event: Event, meta: dict[str, Any]) -> str:
        if self.constant:
            return self.text
        out = []
        for kind, value, default in self.parts:
            if kind == "lit":
                out.append(value)
            elif kind == "time":
                out.append(self._time(value, event.timestamp_ns))
            else:
                got = _lookup(event, meta, value)
                if got is None or got == "":
                    if default is None:
                        raise SelectorError(f"key not found: {value} (in {self.text!r})")
                    got = default
                out.append(got if isinstance(got, str) else str(got))
        return "".join(out)


def _daily(pattern: str) -> bool:
    """True when a date pattern only changes once a day (safe to cache per UTC day)."""
    return not re.search(r"[HhmsSkK]", re.sub(r"'[^']*'", "", pattern))


class _Rule:
    def __init__(self, fmt: str, mappings: dict[str, str] | None, default: str | None, when: Any):
        self.fmt = FormatString(fmt)
        self.mappings = mappings
        self.default = default
        self.when: Callable[[Event], bool] | None = None
        if when:
            self.when = build_condition(when)


class Selector:
    """Picks the index (or pipeline) for an event, as libbeat's ``outil.Selector`` does:
    the ``@metadata`` override, then the first matching rule, then the default format."""

    def __init__(self, default: str | None, rules: list[Any], key: str, meta_keys: tuple[str, ...] = ()):
        self.default = FormatString(default) if default else None
        self.rules = [_Rule(getattr(r, key), r.mappings, r.default, r.when) for r in rules if getattr(r, key)]
        self.meta_keys = meta_keys
        self._raw_formats: dict[str, FormatString] = {}

    def select(self, event: Event, meta: dict[str, Any]) -> str | None:
        for mk in self.meta_keys:
            raw = event.meta.get(mk) if event.meta else None
            if raw:
                text = str(raw)
                if "%{" in text:  # a protocol's `index:` setting may still be a format string
                    fmt = self._raw_formats.get(text)
                    if fmt is None:
                        if len(self._raw_formats) > 256:
                            self._raw_formats.clear()
                        fmt = self._raw_formats[text] = FormatString(text)
                    text = fmt.render(event, meta)
                return text.lower()
        for rule in self.rules:
            if rule.when is not None and not rule.when(event):
                continue
            try:
                name = rule.fmt.render(event, meta)
            except SelectorError:
                continue  # a rule whose field is missing does not match (libbeat)
            if rule.mappings is not None:
                mapped = rule.mappings.get(name, rule.default)
                if mapped is None:
                    continue
                name = mapped
            if name:
                return name.lower()
        if self.default is None:
            return None
        return self.default.render(event, meta).lower()
