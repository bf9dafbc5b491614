"""The per-site example (docs/examples/sites) against a real Elasticsearch node: site A (a
self-managed cluster: TLS with a private CA, basic auth, password from the keystore) and site B
(Elastic Cloud: cloud.id + cloud.auth from the keystore). The node sits behind nginx, which
terminates TLS with the test's CA and checks basic auth (test_es_tls.py's Proxy). Each run
replays a capture with `pybeat run -c base.yml -c site-….yml`, only the addresses and the CA
overridden with -E; site B's cloud.id is overridden with one whose decoded host is 127.0.0.1,
so hosts and credentials are still derived from cloud.id and cloud.auth."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from conftest_es import count, esnode, need_tool
from test_es_tls import Proxy
from tests.config.sites import SECRETS, make_keystore, run_site

pytestmark = pytest.mark.integration

EVENTS = 120  # dns_udp_mixed.pcap: 118 DNS transactions and 2 ICMP ones


@pytest.fixture
def site_proxy(es_node: "esnode.NodeProcess", tmp_path: Path) -> Iterator[Proxy]:
    need_tool("nginx")
    need_tool("openssl")
    (tmp_path / "nginx").mkdir()
    p = Proxy(tmp_path / "nginx", es_node.url())
    try:
        yield p
    finally:
        p.close()


def _docs(url: str, index: str) -> list[dict]:
    esnode.http_json(f"{url}/{index}/_refresh", "POST")
    code, body = esnode.http_json(f"{url}/{index}/_search", "POST", {"size": 1000})
    assert code == 200, body
    assert isinstance(body, dict)
    return [hit["_source"] for hit in body["hits"]["hits"]]


def test_site_a_self_managed_elasticsearch(site_proxy: Proxy, es_node: "esnode.NodeProcess", tmp_path: Path) -> None:
    make_keystore(tmp_path / "data", SECRETS["a"])
    out = run_site("a", tmp_path,
                   f'output.elasticsearch.hosts=["https://127.0.0.1:{site_proxy.tls_port}"]',
                   "output.elasticsearch.username=elastic",
                   f'output.elasticsearch.ssl.certificate_authorities=["{site_proxy.ca}"]')
    assert out.returncode == 0, out.stderr
    assert count(es_node.url(), "packetbeat-site-a*") == EVENTS
    doc = _docs(es_node.url(), "packetbeat-site-a*")[0]
    assert doc["observer"]["name"] == "sensor-site-a" and doc["observer"]["vendor"] == "Example Corp"
    assert doc["tags"] == ["dns-monitoring", "site-a"]


def test_site_b_elastic_cloud(site_proxy: Proxy, es_node: "esnode.NodeProcess", tmp_path: Path) -> None:
    make_keystore(tmp_path / "data", SECRETS["b"])
    out = run_site("b", tmp_path, f"cloud.id={site_proxy.cloud_id()}",
                   f'output.elasticsearch.ssl.certificate_authorities=["{site_proxy.ca}"]')
    assert out.returncode == 0, out.stderr
    assert count(es_node.url(), "packetbeat-site-b*") == EVENTS
    doc = _docs(es_node.url(), "packetbeat-site-b*")[0]
    assert doc["observer"]["geo"]["name"] == "site-b" and "site-b" in doc["tags"]


def test_a_wrong_keystore_password_is_refused_by_the_server(site_proxy: Proxy, tmp_path: Path) -> None:
    """The credentials really come from the keystore: with another value nginx says 401."""
    make_keystore(tmp_path / "data", {"SITE_B_CLOUD_AUTH": "elastic:not-the-password"})
    from tests.config.sites import pybeat, site_args

    out = pybeat("test", "output", *site_args("b", tmp_path / "data"), "-E", f"cloud.id={site_proxy.cloud_id()}",
                 "-E", f'output.elasticsearch.ssl.certificate_authorities=["{site_proxy.ca}"]')
    assert out.returncode == 1 and "401" in out.stdout + out.stderr
    assert "not-the-password" not in out.stdout + out.stderr
