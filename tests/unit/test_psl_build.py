"""The suffix list pybeat builds at start (protocols/dns/domain.py) answers exactly as the
library's own ``PublicSuffixList()``, for every rule of the packaged list."""

from __future__ import annotations

import pytest
from publicsuffixlist import PublicSuffixList

from pybeat.protocols.dns import domain


@pytest.fixture(scope="module")
def library() -> PublicSuffixList:
    return PublicSuffixList()


def test_full_list_is_the_library_list(library: PublicSuffixList) -> None:
    full = domain._full_psl()
    assert type(full) is PublicSuffixList
    assert full._publicsuffix == library._publicsuffix
    assert full._maxlabel == library._maxlabel


def test_ascii_first_list_leaves_out_only_rules_no_plain_ascii_name_can_match(library: PublicSuffixList) -> None:
    fast = domain._build_psl(ascii_first=True)
    assert isinstance(fast, domain._AsciiFirstPSL)
    assert fast._maxlabel == library._maxlabel
    assert fast._publicsuffix <= library._publicsuffix
    for rule in library._publicsuffix - fast._publicsuffix:
        assert not rule.isascii() or "xn--" in rule, rule


def _names(rule: str) -> list[str]:
    base = rule.lstrip("!").replace("*", "x")
    return [base, "a." + base, "b.a." + base, "WWW.A." + base.upper()]


def test_every_rule_answers_as_the_library(library: PublicSuffixList) -> None:
    fast = domain._build_psl(ascii_first=True)
    for rule in sorted(library._publicsuffix):
        for name in _names(rule):
            assert fast.privatesuffix(name) == library.privatesuffix(name), name
            assert fast.publicsuffix(name) == library.publicsuffix(name), name


def test_domain_parts_of_idn_names() -> None:
    parts = domain.DomainParts()
    assert parts.lookup("www.example.co.uk")[0] == "example.co.uk"
    assert parts.lookup("a.b.xn--fiqs8s")[0] == "b.xn--fiqs8s"
    assert parts.lookup("a.b.中国")[0] == "b.中国"
