"""Packetbeat settings that pybeat accepts without acting on them.

A site's ``packetbeat.yml`` names things pybeat has no use for: Kibana and dashboards, stack
monitoring, APM instrumentation, Kerberos, ``output.elasticsearch.preset``, options of
protocols pybeat lacks... Such a key is accepted with one warning saying it has no effect, so
the file loads unchanged; a key no Packetbeat config has (a typo) is still an error.

What counts as a Packetbeat key: every key of Packetbeat's reference configs (beats_keys.py,
generated from tests/data/configs/stock) and everything under the sections in
``NO_EFFECT_SECTIONS``, whose content changes from release to release. Nothing here does I/O.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pybeat.config.beats_keys import KEYS

#: Whole sections pybeat does not act on: any key below them is a Packetbeat key.
NO_EFFECT_SECTIONS = (
    "setup.kibana", "setup.dashboards", "setup.dsl", "setup.template.json", "monitoring", "xpack",
    "instrumentation", "migration", "seccomp", "features", "timestamp", "queue.spool", "http.named_pipe",
    "http.pprof", "logging.event_data", "logging.files.suffix",
)

_KEYS = frozenset(KEYS.split())


def pattern(parts: list[str]) -> str:
    """``packetbeat.protocols.dns.ports`` from a key's parts: list indexes become ``*``, except
    a protocol's item, which the caller already named by its type."""
    return ".".join("*" if p.isdigit() else p for p in parts)


def _section(key: str) -> str | None:
    for section in NO_EFFECT_SECTIONS:
        if key == section or key.startswith(section + "."):
            return section
    return None


def _leaves(key: str, value: Any) -> list[str]:
    """The keys set under ``key`` (itself, when its value is not a mapping or is empty)."""
    if isinstance(value, dict) and value:
        out: list[str] = []
        for k, v in value.items():
            out += _leaves(f"{key}.{k}", v)
        return out
    return [key]


def is_beats_key(key: str) -> bool:
    """A key Packetbeat's configs have (or a section holding some)."""
    return _section(key) is not None or key in _KEYS or any(k.startswith(key + ".") for k in _KEYS)


def _documented(key: str) -> bool:
    return _section(key) is not None or key in _KEYS


def disabled(value: Any) -> bool:
    """``enabled: false`` (or a section holding it): turning off what pybeat lacks needs no warning."""
    return value is False or (isinstance(value, dict) and value.get("enabled") is False)


@dataclass
class Verdict:
    """What to do with a key a model does not know."""

    warn: str | None = None  # a Packetbeat key (or its section) with no effect: warn about it
    silent: bool = False  # a Packetbeat key turned off (enabled: false): accept without a word
    unknown: str | None = None  # a key below (relative to the one judged) no Packetbeat config has
    hint: str | None = None  # the closest Packetbeat name to ``unknown``


def judge(key: str, value: Any) -> Verdict:
    """``key`` is the catalogue form (``pattern``) of a key a model refused as unknown."""
    section = _section(key)
    if section is not None:
        return Verdict(warn=section, silent=disabled(value))
    for leaf in _leaves(key, value):
        if not _documented(leaf):
            return Verdict(unknown=leaf[len(key):].lstrip("."), hint=suggest(leaf))
    return Verdict(warn=key, silent=disabled(value))


def siblings(parent: str) -> set[str]:
    """The names Packetbeat's configs use directly under ``parent``."""
    prefix = parent + "." if parent else ""
    return {k[len(prefix):].split(".")[0] for k in _KEYS if k.startswith(prefix)}


def suggest(key: str) -> str | None:
    """The closest Packetbeat key next to ``key`` (for "did you mean")."""
    parent, _, name = key.rpartition(".")
    hint = difflib.get_close_matches(name, sorted(siblings(parent)), 1, 0.6)
    return hint[0] if hint else None
