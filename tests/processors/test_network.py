"""add_network_direction, community_id (libbeat's test vectors), registered_domain and
add_observer_metadata."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pybeat.processors._fields import FieldError
from tests.processors.support import ev, make


@pytest.mark.parametrize("src,dst,want", [  # add_network_direction_test.go
    ("10.0.0.1", "10.0.0.2", "internal"),
    ("10.0.0.1", "8.8.8.8", "outbound"),
    ("8.8.8.8", "10.0.0.1", "inbound"),
    ("8.8.8.8", "8.8.4.4", "external"),
])
def test_network_direction(src, dst, want):
    p = make("add_network_direction", {"source": "source.ip", "destination": "destination.ip",
                                       "target": "network.direction", "internal_networks": ["private"]})
    assert p.run(ev({"source": {"ip": src}, "destination": {"ip": dst}})).fields["network"]["direction"] == want


def test_network_direction_cidrs_and_missing_addresses():
    p = make("add_network_direction", {"source": "s", "destination": "d", "target": "dir",
                                       "internal_networks": ["192.0.2.0/24", "loopback"]})
    assert p.run(ev({"s": "192.0.2.9", "d": "127.0.0.1"})).fields["dir"] == "internal"
    assert "dir" not in p.run(ev({"s": "192.0.2.9"})).fields
    assert "dir" not in p.run(ev({"s": "192.0.2.9", "d": "not-an-ip"})).fields
    with pytest.raises(ValidationError):
        make("add_network_direction", {"source": "s", "destination": "d"})


def _flow(**over):
    base = {"source": {"ip": "128.232.110.120", "port": 34855}, "destination": {"ip": "66.35.250.204", "port": 80},
            "network": {"transport": "TCP"}}
    for k, v in over.items():
        node = base
        *parents, leaf = k.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if v is None:
            node.pop(leaf, None)
        else:
            node[leaf] = v
    return base


@pytest.mark.parametrize("seed,fields,want", [  # communityid_test.go
    (0, _flow(), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (123, _flow(), "1:hTSGlFQnR58UCk+NfKRZzA32dPg="),
    (0, _flow(source__ip=2162716280), None),
    (0, _flow(source__port=0), None),
    (0, _flow(destination__ip="308.111.1.2.3"), None),
    (0, _flow(source__port=None), None),
    (0, _flow(network__transport="xyz"), None),
    (0, _flow(network__transport="icmp", icmp__type=3, icmp__code=3), "1:KF3iG9XD24nhlSy4r1TcYIr5mfE="),
    (0, _flow(network__transport="icmp"), "1:PAE85ZfR4SbNXl5URZwWYyDehwU="),
    (0, _flow(source__port=None, destination__port=None, network__transport="igmp"), "1:D3t8Q1aFA6Ev0A/AO4i9PnU3AeI="),
    (0, _flow(source__port=None, destination__port=None, network__transport="2"), "1:D3t8Q1aFA6Ev0A/AO4i9PnU3AeI="),
    (0, _flow(source__port=None, destination__port=None, network__transport=2), "1:D3t8Q1aFA6Ev0A/AO4i9PnU3AeI="),
])
def test_community_id_vectors(seed, fields, want):
    out = make("community_id", {"seed": seed}).run(ev(fields))
    assert out.fields.get("network", {}).get("community_id") == want


def test_community_id_keeps_an_existing_value():
    f = _flow()
    f["network"]["community_id"] = "1:existing"
    assert make("community_id").run(ev(f)).fields["network"]["community_id"] == "1:existing"


def test_registered_domain():
    p = make("registered_domain", {"field": "dns.question.name", "target_field": "dns.question.registered_domain",
                                   "target_etld_field": "dns.question.top_level_domain",
                                   "target_subdomain_field": "dns.question.subdomain"})
    q = p.run(ev({"dns": {"question": {"name": "www.Example.co.uk."}}})).fields["dns"]["question"]
    assert (q["registered_domain"], q["top_level_domain"], q["subdomain"]) == ("Example.co.uk", "co.uk", "www")
    bare = p.run(ev({"dns": {"question": {"name": "example.com"}}})).fields["dns"]["question"]
    assert bare["registered_domain"] == "example.com" and "subdomain" not in bare
    with pytest.raises(FieldError, match="not found"):
        p.run(ev({}))
    with pytest.raises(FieldError, match="failed to determine the registered domain"):
        p.run(ev({"dns": {"question": {"name": "co.uk"}}}))
    quiet = make("registered_domain", {"field": "n", "target_field": "r", "ignore_missing": True, "ignore_failure": True})
    assert quiet.run(ev({})).fields == {} and quiet.run(ev({"n": "co.uk"})).fields == {"n": "co.uk"}


def test_observer_metadata():
    p = make("add_observer_metadata", {"geo": {"name": "dc1", "location": "37.9, -122.4", "city_name": "SF"}})
    obs = p.run(ev({})).fields["observer"]
    assert obs["hostname"] and obs["geo"] == {"name": "dc1", "location": {"lat": 37.9, "lon": -122.4}, "city_name": "SF"}
    kept = p.run(ev({"observer": {"hostname": "tap-1"}}))
    assert kept.fields["observer"] == {"hostname": "tap-1"}
    over = make("add_observer_metadata", {"overwrite": True, "netinfo": {"enabled": False}}).run(ev({"observer": {"x": 1}}))
    assert set(over.fields["observer"]) == {"hostname"}
