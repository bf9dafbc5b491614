"""DomainParts derives a name's registered domain from its parent's when no suffix-list rule
hangs off the parent (DomainParts._from_parent): the answers equal full lookups."""

from __future__ import annotations

import random

from pybeat.protocols.dns.domain import DomainParts
from pybeat.protocols.dns.suffixes import SuffixIndex


def _names() -> list[str]:
    rules = sorted(SuffixIndex().rules)
    rng = random.Random(7)
    out = []
    for rule in rules:
        base = rule.lstrip("!").replace("*", "wild")
        if not base.isascii():
            continue
        out += [base, f"a.{base}", f"B.a.{base}", f"c.b.a.{base}", f"x{rng.randrange(10**6)}.{base}"]
        parent = base.partition(".")[2]
        if parent:
            out += [f"q.{parent}", f"r.q.{parent}", f"s.r.q.{parent}"]
        if rule.lstrip("!").startswith("*."):
            # a wildcard's root is public too (the library's implicit root): "*.ab.crm.dev"
            # makes "ab.crm.dev" public, although no rule hangs off "crm.dev"
            root = rule.lstrip("!")[2:]
            out += [root, f"z.{root}", f"y.z.{root}"]
    out += ["a\\.b.example.com", "www.example.com", "x.y.z.unknowntld", "a..b.com", "a.b.com.", "EXAMPLE.Co.Uk",
            "w.x.EXAMPLE.co.uk", "xn--bcher-kva.example.com", "a.xn--p1ai", "b.a.xn--p1ai"]
    return out


def test_shortcut_answers_equal_full_lookups():
    """Every rule of the list, and names one to three labels under it and under its parent,
    looked up in an order that lets parents be cached first, give the library's answer."""
    names = _names()
    fast = DomainParts(cache_size=1 << 20)
    slow = DomainParts(cache_size=1 << 20)
    slow._parents = frozenset()  # every name by a full lookup
    assert fast._parents, "the shortcut is on with the packaged list"
    # parents first (the bulk-traffic case), then the names themselves in a shuffled order
    for name in names:
        fast.lookup(name.partition(".")[2])
    shuffled = names[:]
    random.Random(3).shuffle(shuffled)
    for name in shuffled:
        assert fast.lookup(name) == slow._compute(name), name
