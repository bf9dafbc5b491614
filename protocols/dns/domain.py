"""Registered domain, top-level domain and subdomain of a question name, and IDN decoding.

Uses the offline ``publicsuffixlist`` package (ICANN and private sections, unknown TLDs follow
the default rule ``*``), the same list Go's ``x/net/publicsuffix`` embeds. Names are lower-cased
before the lookup (Packetbeat's case bug elastic/beats#36535 is not reproduced), so the registered
domain and top-level domain are lower-case, while ``dns.question.name`` and ``subdomain`` keep the
case seen on the wire (as Packetbeat's do: in tunnels the case carries data). A query of the root
gets ``registered_domain: "."`` (Packetbeat's rule for a name with one dot).

Lookups are cached per name in a bounded dict (cleared when full): DNS traffic repeats names.
"""

from __future__ import annotations

import stringprep
import unicodedata
from typing import Any

from publicsuffixlist import PublicSuffixList

__all__ = ["DomainParts", "unicode_name"]

_Parts = tuple[str | None, str | None, str | None, bool]  # registered, tld, subdomain, is_etld1


_PSL: PublicSuffixList | None = None
_FULL_PSL: PublicSuffixList | None = None


def _shared_psl() -> PublicSuffixList:
    """One parsed list per process (read-only; built before a split run forks its workers)."""
    global _PSL
    if _PSL is None:
        _PSL = _build_psl(ascii_first=True)
    return _PSL


def _full_psl() -> PublicSuffixList:
    """The list with the IDNA forms of its non-ASCII rules, built on the first IDN name."""
    global _FULL_PSL
    if _FULL_PSL is None:
        _FULL_PSL = _build_psl()
    return _FULL_PSL


class _AsciiFirstPSL(PublicSuffixList):
    """``PublicSuffixList()`` without the IDNA forms of its ~460 non-ASCII rules, which cost
    most of the start-up (the ``idna`` codec is slow). Every encoded rule has an ``xn--``
    label and every raw one a non-ASCII character, so neither can match an ASCII name without
    ``xn--``: such names get the library's answer from this set, and any other name is handed
    to the full list, built on first use."""

    def _countpublic(self, labels: Any, accept_unknown: bool | None = None) -> int:
        # every lookup method comes here with the name's lower-cased labels
        for label in labels:
            if not label.isascii() or "xn--" in label:
                return int(_full_psl()._countpublic(labels, accept_unknown))  # type: ignore[attr-defined]
        return int(super()._countpublic(labels, accept_unknown))  # type: ignore[misc]


_IDNA_DOTS = "\u3002\uff0e\uff61"


def _may_encode_without_xn(rule: str) -> bool:
    """Whether IDNA (nameprep: drop some characters, case-fold, NFKC) might turn a non-ASCII
    label into plain ASCII, or split it at a Unicode full stop: such a rule is encoded up front,
    since an ASCII name without ``xn--`` could match its encoded form."""
    if any(dot in rule for dot in _IDNA_DOTS):
        return True
    for label in rule.split("."):
        if label.isascii():
            continue
        if any(stringprep.in_table_b1(ch) for ch in label):
            return True
        if unicodedata.normalize("NFKC", label.casefold()).isascii():
            return True
    return False


def _build_psl(ascii_first: bool = False) -> PublicSuffixList:
    """The packaged list, as ``PublicSuffixList()`` builds it (same rule set and label limit),
    but IDNA-encoding only the rules that are not ASCII (the library encodes all ~10,000; for
    ASCII rules the result is the rule itself). With ``ascii_first`` not even those: the list
    answers the names no encoded rule can match and hands the others on (``_AsciiFirstPSL``).
    Falls back to the library's own parser if its internals ever change."""
    try:
        from publicsuffixlist import PSLFILE, encode_idn

        with open(PSLFILE, "rb") as fh:
            text = fh.read().decode("utf-8")
        # The library's parse (lower-case, first word, comments and blank lines skipped), as
        # one comprehension: a line whose rule would start with "//" is a line that does.
        rules = {line.lower().split(" ")[0].rstrip() for line in text.splitlines() if line and line[:2] != "//"}
        rules.discard("")
        maxlabel = max(rule.count(".") for rule in rules) + 1
        for rule in [r for r in rules if not r.isascii()]:
            if not ascii_first or _may_encode_without_xn(rule):
                enc = encode_idn(rule.lstrip("!"))
                rules.add("!" + enc if rule[0] == "!" else enc)
        cls = _AsciiFirstPSL if ascii_first else PublicSuffixList
        psl = cls.__new__(cls)
        psl.accept_unknown = True
        psl._publicsuffix = frozenset(rules)
        psl._maxlabel = maxlabel
        psl.privatesuffix("www.example.co.uk")  # the internals still work
        if ascii_first and "_countpublic" not in vars(PublicSuffixList):
            return _build_psl()  # no hook left to send IDN names on
        return psl
    except Exception:
        return PublicSuffixList()


_NODES: frozenset[str] | None = None


def _rule_parents() -> frozenset[str]:
    """The names a rule can hang off: every rule of the shared list without its first label
    (``*.ck`` and ``!www.ck`` give ``ck``, ``co.uk`` gives ``uk``), and the parent of every
    wildcard's root, since the library makes the root public too (``*.ab.crm.dev`` makes
    ``ab.crm.dev`` public: ``crm.dev``; an exception stands beside a wildcard: its parent's
    parent as well). Too many names here only turn the shortcut off for them."""
    global _NODES
    if _NODES is None:
        rules = getattr(_shared_psl(), "_publicsuffix", None) or ()
        nodes = set()
        for rule in rules:
            bare = rule.lstrip("!")
            rest = bare.partition(".")[2]
            nodes.add(rest)
            if bare.startswith("*.") or rule.startswith("!"):
                nodes.add(rest.partition(".")[2])
        _NODES = frozenset(nodes)
    return _NODES


def prepare() -> None:
    """Build what every analyzer shares (the suffix list) once, e.g. before forking workers."""
    _shared_psl()
    _rule_parents()


class DomainParts:
    """``add_to(question, name)`` sets the PSL-derived keys of ``dns.question``."""

    def __init__(self, cache_size: int = 65536):
        self._psl = _shared_psl()
        # Empty when the list's internals are not the ones _rule_parents reads: no shortcut then.
        self._parents = _rule_parents() if isinstance(self._psl, _AsciiFirstPSL) else frozenset()
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
            try:
                etld1 = self._psl.privatesuffix(low)
            except Exception:  # the library's own parsing quirks: treat as no answer
                etld1 = None
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
