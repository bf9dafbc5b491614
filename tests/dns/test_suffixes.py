"""pybeat's own index of the public suffix list (protocols/dns/suffixes.py) gives the
``publicsuffixlist`` package's answers (its public ``privatesuffix``, the oracle): for every rule
of the shipped list, names at and under it (wildcards and exceptions included), IDN rules as
written and encoded, and odd names."""

from __future__ import annotations

import random

from publicsuffixlist import PublicSuffixList

from pybeat.protocols.dns.suffixes import SuffixIndex


def _names(rules: set[str]) -> list[str]:
    rng = random.Random(5)
    out = []
    for rule in sorted(rules):
        base = rule.lstrip("!").replace("*", f"w{rng.randrange(100)}")
        forms = [base]
        if not base.isascii():
            try:
                forms.append(base.encode("idna").decode("ascii"))
            except UnicodeError:
                pass
        for form in forms:
            out += [form, f"a.{form}", f"b.a.{form}", f"c.b.a.{form}"]
            parent = form.partition(".")[2]
            if parent:
                out += [parent, f"q.{parent}"]
    out += ["", ".", "com", "a..b.com", "a.b.com.", "x.y.z.unknowntld", "a\\.b.example.com", "xn--bcher-kva.example.com",
            "www.example.co.uk", "a.b.c.kawasaki.jp", "city.kawasaki.jp", "x.city.kawasaki.jp", "x.y.github.io"]
    return out


def test_index_answers_as_the_library_on_every_rule():
    index, lib = SuffixIndex(), PublicSuffixList()
    names = _names(set(index.rules))
    assert len(names) > 40_000
    for name in names:
        assert index.private_suffix(name) == lib.privatesuffix(name), name


def test_index_reads_the_list_text_it_is_given():
    """Built from any list text (a site's own copy): rules, wildcards and exceptions."""
    index = SuffixIndex("// comment\nuk\nco.uk\n*.ck\n!www.ck\n\n")
    assert index.private_suffix("www.example.co.uk") == "example.co.uk"
    assert index.private_suffix("a.b.ck") == "a.b.ck" and index.private_suffix("www.ck") == "www.ck"
    assert index.private_suffix("x.www.ck") == "www.ck" and index.private_suffix("co.uk") is None
    assert index.private_suffix("example.unknown") == "example.unknown"
