"""DomainParts on IDN names (the suffix index's answers on every rule of the list, against the
library's, are in tests/dns/test_suffixes.py)."""

from __future__ import annotations

from pybeat.protocols.dns import domain


def test_domain_parts_of_idn_names() -> None:
    parts = domain.DomainParts()
    assert parts.lookup("www.example.co.uk")[0] == "example.co.uk"
    assert parts.lookup("a.b.xn--fiqs8s")[0] == "b.xn--fiqs8s"
    assert parts.lookup("a.b.中国")[0] == "b.中国"
