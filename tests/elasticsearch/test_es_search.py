"""Real captures through the whole agent (``pybeat setup`` then ``pybeat run -I``) into real
Elasticsearch 7.17 and OpenSearch 2.19 nodes: every event is indexed, with the mappings the
Kibana dashboards and ML jobs need."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest_es import PCAPS, esnode, need, count

pytestmark = pytest.mark.integration

CAPTURES = ["dns_udp_mixed.pcap", "dns_tcp.pcap", "mdns.pcap", "icmp.pcap", "dhcp.pcap"]


def _config(tmp: Path, url: str, name: str) -> Path:
    cfg = {
        "packetbeat.interfaces.device": "any",
        "packetbeat.protocols": [
            {"type": "icmp"},
            {"type": "dhcpv4", "ports": [67, 68]},
            {"type": "dhcpv6", "ports": [546, 547]},
            {"type": "dns", "ports": [53, 5353], "include_authorities": True, "include_additionals": True},
        ],
        "output.elasticsearch": {"hosts": [url], "index": f"{name}-%{{+yyyy.MM.dd}}", "compression_level": 1},
        "setup.template.name": name,
        "setup.template.pattern": f"{name}-*",
        "setup.template.settings": {"index.number_of_shards": 1, "index.number_of_replicas": 0},
        "path.home": str(tmp),
        "logging.to_files": False,
    }
    path = tmp / "pybeat.yml"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def _pybeat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybeat.cli", *args], capture_output=True, text=True, timeout=300)


def test_captures_searchable_with_ecs_mappings(search_node: "esnode.NodeProcess", tmp_path: Path) -> None:
    """Shared captures replayed by the agent land in the engine one document per event, with
    client.ip as an ip field, a working terms aggregation on dns.question.registered_domain and
    @timestamp range queries."""
    need(PCAPS.is_dir(), f"shared captures at {PCAPS}")
    name = f"pbcap-{search_node.engine}"
    url = search_node.url()
    cfg = _config(tmp_path, url, name)
    setup = _pybeat("setup", "--index-management", "-c", str(cfg), "--strict.perms", "false")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert f"Index template {name} loaded" in setup.stdout
    produced = 0
    for cap in CAPTURES:
        run = _pybeat("run", "-c", str(cfg), "-I", str(PCAPS / cap), "-t", "--strict.perms", "false", "-e")
        assert run.returncode == 0, run.stdout + run.stderr
        m = re.search(r"^\s*events\s+([\d,]+)", run.stdout, re.M)
        assert m, run.stdout
        produced += int(m.group(1).replace(",", ""))
        assert re.search(r"elasticsearch: acked \d+, dropped 0", run.stdout), run.stdout
    assert produced > 300
    assert count(url, f"{name}-*") == produced

    code, fm = esnode.http_json(f"{url}/{name}-*/_mapping/field/client.ip,dns.resolved_ip,event.duration,@timestamp")
    assert code == 200
    types = {f: m["mapping"][f.rsplit(".", 1)[-1]]["type"] for idx in fm.values() for f, m in idx["mappings"].items()}
    assert types == {"client.ip": "ip", "dns.resolved_ip": "ip", "event.duration": "long", "@timestamp": "date"}

    code, agg = esnode.http_json(f"{url}/{name}-*/_search", "POST", {
        "size": 0, "query": {"term": {"network.protocol": "dns"}},
        "aggs": {"domains": {"terms": {"field": "dns.question.registered_domain", "size": 50}},
                 "clients": {"terms": {"field": "client.ip", "size": 5}}}})
    assert code == 200, agg
    domains = {b["key"]: b["doc_count"] for b in agg["aggregations"]["domains"]["buckets"]}
    assert domains and sum(domains.values()) > 100, domains
    assert any(b["key"] in ("127.0.0.1", "::1") or b["key"].startswith("10.99.") for b in agg["aggregations"]["clients"]["buckets"])

    # The captures were taken in November 2026: a range on @timestamp finds them, another does not.
    assert count(url, f"{name}-*", {"range": {"@timestamp": {"gte": "2026-11-01", "lt": "2026-12-01"}}}) == produced
    assert count(url, f"{name}-*", {"range": {"@timestamp": {"lt": "2026-01-01"}}}) == 0
    # CIDR queries work on the ip-typed fields.
    assert count(url, f"{name}-*", {"term": {"related.ip": "10.99.0.0/16"}}) > 0


@pytest.mark.parametrize("policy", ["drop", "dead_letter_index"])
def test_non_indexable_events_dropped_or_dead_lettered(search_node: "esnode.NodeProcess", policy: str) -> None:
    """A document the engine refuses (an ip field holding a non-address) is never retried in a
    loop: with the default policy it is dropped and counted, with dead_letter_index it is stored
    there with the original document and the engine's reason."""
    from conftest_es import Harness, dns_event

    url = search_node.url()
    index, dlq = f"pbbad-{policy}", f"pbdlq-{policy}"
    code, body = esnode.http_json(f"{url}/{index}", "PUT", {"mappings": {"properties": {"client": {"properties": {"ip": {"type": "ip"}}}}}})
    assert code == 200, body
    es: dict = {"hosts": [url], "index": index}
    if policy == "dead_letter_index":
        es["non_indexable_policy"] = {"dead_letter_index": {"index": dlq}}
    h = Harness(es)
    events = [dns_event(i, 1_795_000_000_000_000_000, with_id=False) for i in range(10)]
    events[3].fields["client"] = {"ip": "<nil>"}  # the value Packetbeat once produced (beats#21495)
    h.feed(events)
    assert h.close(60)
    st = h.runner.stats()
    assert count(url, index) == 9
    if policy == "drop":
        assert st["events.dropped"] == 1 and h.stats["dropped_non_indexable"] == 1
    else:
        assert st["events.acked"] == 10 and st["events.dropped"] == 0 and h.stats["dead_letter"] == 1
        esnode.http_json(f"{url}/{dlq}/_refresh", "POST")
        code, found = esnode.http_json(f"{url}/{dlq}/_search", "POST", {"query": {"match_all": {}}})
        doc = found["hits"]["hits"][0]["_source"]
        assert doc["error"]["type"] == 400 and "mapper_parsing_exception" in doc["error"]["message"]
        assert '"ip":"<nil>"' in doc["message"] and doc["@timestamp"].startswith("2026-11-18")


def test_ingest_pipeline_selected_per_event(search_node: "esnode.NodeProcess") -> None:
    """`pipelines` rules pick each event's ingest pipeline (lower-cased, as Beats does): DNS
    events go through an existing pipeline and are indexed, the others name a pipeline the
    cluster lacks and are refused as non-indexable, dropped and counted."""
    from conftest_es import Harness, dns_event

    url = search_node.url()
    code, body = esnode.http_json(f"{url}/_ingest/pipeline/pb-dns", "PUT", {"description": "t", "processors": []})
    assert code == 200, body
    h = Harness({"hosts": [url], "index": "pbpipe", "compression_level": 0, "pipelines": [
        {"pipeline": "PB-DNS", "when": {"equals": {"network.protocol": "dns"}}},
        {"pipeline": "pb-missing"},
    ]})
    events = [dns_event(i, 1_795_000_000_000_000_000, with_id=False) for i in range(20)]
    for ev in events[:5]:
        ev.fields["network"] = {"protocol": "icmp"}
    h.feed(events)
    assert h.close(60)
    assert count(url, "pbpipe") == 15
    assert count(url, "pbpipe", {"term": {"network.protocol": "icmp"}}) == 0
    assert h.runner.stats()["events.dropped"] == 5 and h.stats["dropped_non_indexable"] == 5
