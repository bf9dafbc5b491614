"""Registered domain, top-level domain and subdomain of a question name, and IDN decoding.

Uses the public suffix list that the ``publicsuffixlist`` package ships, through pybeat's own
index of it (``suffixes.py``: ICANN and private sections, unknown TLDs follow the default rule
``*``), the same list Go's ``x/net/publicsuffix`` embeds. Names are lower-cased
before the lookup (Packetbeat's case bug elastic/beats#36535 is not reproduced), so the registered
domain and top-level domain are lower-case, while ``dns.question.name`` and ``subdomain`` keep the
case seen on the wire (as Packetbeat's do: in tunnels the case carries data). A query of the root
gets ``registered_domain: "."`` (Packetbeat's rule for a name with one dot).

Lookups are cached per name in a bounded dict (cleared when full): DNS traffic repeats names.
"""

from __future__ import annotations

from typing import Any

from pybeat.protocols.dns.suffixes import SuffixIndex

__all__ = ["DomainParts", "unicode_name", "prepare"]

_Parts = tuple[str | None, str | None, str | None, bool]  # registered, tld, subdomain, is_etld1


_INDEX: SuffixIndex | None = None
_PARENTS: frozenset[str] | None = None


def _shared_index() -> SuffixIndex:
    """One index per process (read-only; built before a split run forks its workers)."""
    global _INDEX
    if _INDEX is None:
        _INDEX = SuffixIndex()
    return _INDEX


def _rule_parents() -> frozenset[str]:
    global _PARENTS
    if _PARENTS is None:
        _PARENTS = _shared_index().parents()
    return _PARENTS


def prepare() -> None:
    """Build what every analyzer shares (the suffix index) once, e.g. before forking workers."""
    _shared_index()
    _rule_parents()


class DomainParts:
    """``add_to(question, name)`` sets the PSL-derived keys of ``dns.question``."""

    def __init__(self, cache_size: int = 65536):
        self._index = _shared_index()
        self._parents = _rule_parents()  # emptied by tests to compare with full lookups
        self._cache: dict[str, _Parts] = {}
        self._cache_size = cache_size

    def lookup(self, name: str) -> _Parts:
        hit = self._cache.get(name)
        if hit is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            hit = self._from_parent(name) or self._compute(name)
            self._cache[name] = hit
        return hit

    def _from_parent(self, name: str) -> _Parts | None:
        """The parts of ``label.parent`` from those of ``parent``, without a list lookup.

        Exact when no rule is ``X.parent`` (X a label, ``*`` or ``!label``): the rules that
        match the name are then those that match its parent, so both have the same public
        suffix; if the parent has a registered domain, so has the name, the same one, and the
        name's subdomain is its first label in front of the parent's. Plain ASCII names
        without ``xn--`` only (the others go to the full list). Tested against the library.
        """
        if not self._parents:
            return None
        dot = name.find(".")
        if dot <= 0:
            return None
        parent = name[dot + 1 :]
        low_parent = parent.lower()
        if (
            not parent or low_parent in self._parents or not name.isascii() or "xn--" in name.lower()
            or name.endswith(".") or ".." in name
        ):
            return None
        reg, tld, sub, full = self.lookup(parent)
        if not full or reg is None:
            return None
        first = name[:dot]  # the wire's case: it carries data in tunnels
        return (reg, tld, f"{first}.{sub}" if sub else first, True)

    def _compute(self, name: str) -> _Parts:
        low = name.lower()
        if low == ".":
            return (".", None, None, False)  # the root: Packetbeat's one-dot rule gives "."
        if not low:
            return (None, None, None, False)
        etld1 = None
        if not (low.startswith(".") or low.endswith(".") or ".." in low):
            etld1 = self._index.private_suffix(low)
        if etld1:
            dot = etld1.find(".")
            tld = etld1[dot + 1 :] if dot >= 0 else None
            # the subdomain keeps the wire's case (only the suffix match ignores it)
            wire = name if len(name) == len(low) else low
            sub = wire[: len(low) - len(etld1)].rstrip(".") or None
            return (etld1, tld, sub, True)
        if low.count(".") == 1:
            tld = low.split(".")[1] or None
            return (low, tld, None, False)
        return (None, None, None, False)

    def add_to(self, question: dict[str, Any], name: str) -> None:
        reg, tld, sub, full = self.lookup(name)
        if reg is None:
            return
        question["registered_domain"] = reg
        if full:
            question["etld_plus_one"] = reg
        if tld:
            question["top_level_domain"] = tld
        if sub:
            question["subdomain"] = sub


def unicode_name(name: str) -> str | None:
    """The Unicode form of a name with punycode (``xn--``) labels, or None if it has none
    or they do not decode to text (punycode can encode surrogates, which UTF-8 and JSON
    cannot hold)."""
    if "xn--" not in name.lower():
        return None
    out = []
    for label in name.split("."):
        if label[:4].lower() == "xn--":
            try:
                label = label[4:].encode("ascii").decode("punycode")
                label.encode("utf-8")  # a lone surrogate raises here
            except (UnicodeError, ValueError):
                return None
        out.append(label)
    return ".".join(out)
