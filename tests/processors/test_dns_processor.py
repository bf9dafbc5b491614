"""The dns processor against a real DNS server: BIND's named on 127.0.0.1 (a port of its own),
serving a reverse zone and a forward zone; never the host's resolver."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pybeat.processors.dns import decode_answers, encode_query
from tests.conftest import need
from tests.processors.support import ev, make

REVERSE = """$TTL 300
@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 300
@ IN NS ns.example.test.
10 IN PTR www.example.test.
11 IN PTR mail.example.test.
"""
FORWARD = """$TTL 300
@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 300
@ IN NS ns.example.test.
ns IN A 192.0.2.1
www IN A 192.0.2.10
www IN AAAA 2001:db8::10
www IN TXT "v=spf1 -all"
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    binary = shutil.which("named") or (Path("/usr/sbin/named") if Path("/usr/sbin/named").exists() else None)
    need(binary, "named (Debian's bind9 package)")
    d = tmp_path_factory.mktemp("named")
    (d / "rev.zone").write_text(REVERSE)
    (d / "fwd.zone").write_text(FORWARD)
    port = _free_port()
    (d / "named.conf").write_text(f"""
options {{ directory "{d}"; pid-file "{d}/named.pid"; session-keyfile "{d}/session.key";
  listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; }};
controls {{ }};
zone "2.0.192.in-addr.arpa" {{ type master; file "{d}/rev.zone"; }};
zone "example.test" {{ type master; file "{d}/fwd.zone"; }};
""")
    log = open(d / "named.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(binary), "-g", "-n", "1", "-c", str(d / "named.conf")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(0.3)
                    s.sendto(encode_query(7, "www.example.test", 1), ("127.0.0.1", port))
                    decode_answers(s.recv(4096), 7, 1)
                    break
            except (OSError, ValueError, Exception):
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail("named did not start: " + (d / "named.log").read_text()[-2000:])
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_reverse_lookup_fills_the_target_fields(named):
    p = make("dns", {"type": "reverse", "fields": {"source.ip": "source.domain", "destination.ip": "destination.domain"},
                     "nameservers": [named], "timeout": "1s"})
    out = p.run(ev({"source": {"ip": "192.0.2.10"}, "destination": {"ip": "192.0.2.11"}}))
    assert out.fields["source"]["domain"] == "www.example.test"
    assert out.fields["destination"]["domain"] == "mail.example.test"


def test_append_replace_cache_and_failure_tags(named):
    p = make("dns", {"type": "reverse", "fields": {"ip": "name"}, "nameservers": [named], "timeout": "1s",
                     "tag_on_failure": ["_dns_reverse_lookup_failed"]})
    appended = p.run(ev({"ip": "192.0.2.10", "name": "old"}))
    assert appended.fields["name"] == ["old", "www.example.test"]
    lookups = p.lookups
    for _ in range(50):
        p.run(ev({"ip": "192.0.2.10"}))
    assert p.lookups == lookups  # answered from the success cache
    failed = p.run(ev({"ip": "192.0.2.99"}))
    assert failed.fields["tags"] == ["_dns_reverse_lookup_failed"] and "name" not in failed.fields
    p.run(ev({"ip": "192.0.2.99"}))
    assert p.failures == 1  # the failure cache answered the second time
    r = make("dns", {"type": "reverse", "fields": {"ip": "name"}, "nameservers": [named], "action": "replace"})
    assert r.run(ev({"ip": "192.0.2.11", "name": "old"})).fields["name"] == "mail.example.test"
    assert r.run(ev({"name": "x"})).fields == {"name": "x"}  # no source field: nothing to do


@pytest.mark.parametrize("typ,want", [("A", "192.0.2.10"), ("AAAA", "2001:db8::10"), ("TXT", "v=spf1 -all")])
def test_forward_lookups(named, typ, want):
    p = make("dns", {"type": typ, "fields": {"host.name": "host.resolved"}, "nameservers": [named]})
    assert p.run(ev({"host": {"name": "www.example.test"}})).fields["host"]["resolved"] == want


def test_an_unreachable_nameserver_is_bounded_by_the_timeout():
    port = _free_port()  # nothing listens there
    p = make("dns", {"type": "reverse", "fields": {"ip": "name"}, "nameservers": [f"127.0.0.1:{port}"],
                     "timeout": "200ms", "tag_on_failure": ["dns_failed"]})
    t0 = time.monotonic()
    out = p.run(ev({"ip": "192.0.2.10"}))
    assert time.monotonic() - t0 < 1.0 and out.fields["tags"] == ["dns_failed"]
