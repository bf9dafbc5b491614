"""Fields where pybeat writes what Packetbeat 7.17 writes (issue #16's side-by-side run), on
messages built for each case, through the dict path and the pre-encoded path alike.

- An EDNS extended RCODE (the OPT record's high bits above the header's 4) is the response
  code: 16 is miekg's BADSIG, and the transaction's status is Error.
- ``dns.question.subdomain`` keeps the wire's case (only the suffix match ignores case).
- ``dns.header_flags`` is written, empty, for a message without flags.
- A query of the root has ``registered_domain: "."``.
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import orjson
import pytest

from tests.dns.dnstest import SECOND, make, udp

CLIENT = ("10.0.0.1", 40000, "10.0.0.2", 53)
SERVER = ("10.0.0.2", 53, "10.0.0.1", 40000)


def _pair(query: dns.message.Message, response: dns.message.Message, raw: bool) -> dict:
    an, events = make(send_request=True, send_response=True)
    an.render.shareable = raw
    udp(an, SECOND, *CLIENT, query.to_wire())
    udp(an, SECOND + 1_000_000, *SERVER, response.to_wire())
    assert len(events) == 1
    ev = events[0]
    if raw:
        assert ev.raw is not None
        return orjson.loads(ev.raw[:-1] + b"}" if not ev.raw.endswith(b"}") else ev.raw)
    return ev.fields


@pytest.mark.parametrize("raw", [False, True], ids=["dict", "pre-encoded"])
def test_extended_rcode_is_the_response_code(raw):
    query = dns.message.make_query("example.test", "A", use_edns=0)
    query.id = 7
    response = dns.message.make_response(query)
    response.set_rcode(16)  # BADVERS: header 0, OPT extended bits 1
    doc = _pair(query, response, raw)
    assert doc["dns"]["response_code"] == "BADSIG"
    assert doc["dns"]["opt"]["ext_rcode"] == "BADSIG"
    assert doc["status"] == "Error"
    assert "RCODE BADSIG" in doc["response"]


@pytest.mark.parametrize("raw", [False, True], ids=["dict", "pre-encoded"])
def test_subdomain_keeps_the_wire_case(raw):
    query = dns.message.make_query("PaYlOaD.Data.Example.COM", "TXT", use_edns=False)
    response = dns.message.make_response(query)
    doc = _pair(query, response, raw)
    q = doc["dns"]["question"]
    assert q["name"] == "PaYlOaD.Data.Example.COM"
    assert q["subdomain"] == "PaYlOaD.Data"
    assert q["registered_domain"] == "example.com" and q["top_level_domain"] == "com"


@pytest.mark.parametrize("raw", [False, True], ids=["dict", "pre-encoded"])
def test_header_flags_written_empty(raw):
    query = dns.message.make_query("example.test", "A", use_edns=False)
    query.flags = 0
    response = dns.message.make_response(query)
    response.flags = dns.flags.QR
    doc = _pair(query, response, raw)
    assert doc["dns"]["header_flags"] == []


@pytest.mark.parametrize("raw", [False, True], ids=["dict", "pre-encoded"])
def test_root_query_registered_domain(raw):
    query = dns.message.make_query(".", "NS", use_edns=False)
    response = dns.message.make_response(query)
    doc = _pair(query, response, raw)
    q = doc["dns"]["question"]
    assert q["name"] == "."
    assert q["registered_domain"] == "."
    assert "etld_plus_one" not in q and "top_level_domain" not in q and "subdomain" not in q
