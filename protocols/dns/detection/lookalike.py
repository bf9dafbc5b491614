"""dns_lookalike: registered domains that imitate a protected domain.

A looked-up registered domain D imitates a protected domain P when its first label, decoded
from punycode:

- has the same *skeleton* as P's but is not P's label: confusable characters (Cyrillic and
  Greek letters that look Latin, accents, fullwidth forms) and digit/letter swaps (0/o, 1/l,
  3/e, 5/s, rn/m, vv/w, cl/d) are mapped to what they look like first (in the spirit of
  Unicode TR39's skeletons, with a table small enough to read: ``CONFUSABLES``);
- is one edit away from P's label (insert, delete, replace, swap two neighbours), under the
  same public suffix, for labels of at least ``min_length_for_edits`` characters;
- is P's label (or its skeleton) with a hyphenated addition (``example-login``,
  ``secure-example``).

An IDN name is judged like any other: only its skeleton matters, so ``münchen`` or ``пример``
are not lookalikes of ``example``. Each registered domain is judged once (cached); each
lookalike alerts once.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Callable, NamedTuple

from pybeat.api import Event

from .alerts import alert
from .config import LookalikeConfig
from .view import TxnView

__all__ = ["CONFUSABLES", "LookalikeDetector", "skeleton", "unicode_label", "edit_distance_one"]

#: characters that look like a Latin letter (after NFKD has removed accents and folded
#: fullwidth and other compatibility forms), and digits that pass for letters
CONFUSABLES = {
    # Cyrillic
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y", "\u0445": "x",
    "\u0456": "i", "\u0458": "j", "\u0455": "s", "\u0501": "d", "\u04bb": "h", "\u051b": "q", "\u051d": "w",
    "\u04cf": "l", "\u043f": "n", "\u0433": "r", "\u044c": "b", "\u043a": "k", "\u0432": "b", "\u0442": "t",
    "\u0454": "e", "\u0451": "e", "\u04e7": "o",
    # Greek
    "\u03b1": "a", "\u03bf": "o", "\u03c1": "p", "\u03bd": "v", "\u03c4": "t", "\u03b9": "i", "\u03ba": "k",
    "\u03c5": "u", "\u03c7": "x", "\u03b5": "e", "\u03f2": "c", "\u03b7": "n", "\u03bc": "u", "\u03c9": "w",
    # Latin look-alikes
    "\u0131": "i", "\u0251": "a", "\u0269": "i", "\u2113": "l", "\u01c0": "l", "\u0261": "g", "\u0262": "g",
    "\u1d0f": "o", "\u0585": "o", "\u0578": "n", "\u057d": "u",
    # digits and symbols that pass for letters
    "0": "o", "1": "l", "3": "e", "5": "s", "4": "a", "7": "t", "|": "l", "!": "i",
}
_SEQUENCES = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("nn", "m"))


class Finding(NamedTuple):
    protected: str
    technique: str  # "confusable", "one_edit", "hyphenated"
    distance: int


def unicode_label(label: str) -> str:
    """A punycode label decoded (``xn--mnchen-3ya`` -> ``münchen``); others as they are."""
    if label.startswith("xn--"):
        try:
            return label.encode("ascii").decode("idna")
        except (UnicodeError, ValueError):
            return label
    return label


def skeleton(label: str) -> str:
    s = unicodedata.normalize("NFKD", label.lower())
    s = "".join(CONFUSABLES.get(ch, ch) for ch in s if not unicodedata.combining(ch))
    for seq, rep in _SEQUENCES:
        s = s.replace(seq, rep)
    return s


def edit_distance_one(a: str, b: str) -> bool:
    """Whether a and b are exactly one edit apart (insert, delete, replace, adjacent swap)."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


class _Protected(NamedTuple):
    domain: str
    label: str
    suffix: str
    skeleton: str


def _split(domain: str) -> tuple[str, str]:
    label, _, suffix = domain.partition(".")
    return label, suffix


class LookalikeDetector:
    def __init__(self, config: LookalikeConfig, protected: list[str], emit: Callable[[Event], None]):
        self.config = config
        self.emit = emit
        self.protected = [_Protected(d, *_split(d), skeleton(_split(d)[0])) for d in protected]
        self.exact = frozenset(protected)
        self.allow = frozenset(a.strip(".").lower() for a in config.allowlist)
        self.judged: dict[str, bool] = {}
        self.counters = {"alerts": 0, "judged": 0, "cache_cleared": 0}

    def judge(self, rd: str) -> Finding | None:
        """Whether a registered domain (as on the wire, lower-case) imitates a protected one."""
        if rd in self.exact or rd in self.allow:
            return None
        label, suffix = _split(rd)
        text = unicode_label(label)
        skel = skeleton(text)
        for p in self.protected:
            if text == p.label:
                continue  # the same name under another suffix is not a lookalike by itself
            if skel == p.skeleton:
                return Finding(p.domain, "confusable", 0)
            for part in (text, skel):
                if part.startswith(p.label + "-") or part.endswith("-" + p.label) or ("-" + p.label + "-") in part:
                    return Finding(p.domain, "hyphenated", 0)
            if suffix == p.suffix and len(p.label) >= self.config.min_length_for_edits and (
                    edit_distance_one(text, p.label) or edit_distance_one(skel, p.skeleton)):
                return Finding(p.domain, "one_edit", 1)
        return None

    def observe(self, v: TxnView) -> None:
        rd = v.msg.registered_domain
        if rd in self.judged or not rd:
            return
        if len(self.judged) >= self.config.max_tracked:
            self.judged.clear()
            self.counters["cache_cleared"] += 1
        self.counters["judged"] += 1
        finding = self.judge(rd)
        self.judged[rd] = finding is not None
        if finding is None:
            return
        self.counters["alerts"] += 1
        label, _ = _split(rd)
        shown = unicode_label(label) + rd[len(label):]
        evidence: dict[str, Any] = {
            "protected_domain": finding.protected, "technique": finding.technique,
            "edit_distance": finding.distance, "unicode": shown,
        }
        p = finding.protected
        how = {"confusable": f"which imitates {p} with confusable characters",
               "one_edit": f"one edit away from {p}",
               "hyphenated": f"which imitates {p} with a hyphenated addition"}[finding.technique]
        name = v.msg.name
        spelled = f" ({shown})" if shown != rd else ""  # an IDN: how it reads on screen
        msg = f"Lookalike domain: {v.client_ip} looked up {name}{spelled}, {how}"
        self.emit(alert("dns_lookalike", v.ts, msg, key=(rd,), evidence=evidence, client_ip=v.client_ip,
                        name=name, registered_domain=rd))
