"""#14's end-to-end test into a real Elasticsearch: the agent SIGKILLed at random points of
the delivery of the 100k-packet DNS capture, with the disk queue, then restarted on the same
path.data with an empty replay (-t): 0 of 50,000 transactions lost, counted by an independent
reader of the index (a scroll over every document); with fingerprint ``_id``s (the exactly-once
config of docs/outputs.md), 0 duplicate documents either."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import REPO, need
from tests.delivery.agents import (
    BULK, BULK_TRANSACTIONS, Agent, config, empty_pcap, free_port, key, queued_on_disk, wait_for,
)

sys.path.insert(0, str(REPO / "tests" / "tooling" / "esnode"))
import esnode  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def es() -> Iterator[esnode.NodeProcess]:
    need(esnode.java("es7"), "a Java runtime for the embedded Elasticsearch node (17)")
    need(esnode.built("es7"), "the es7 node launcher: run tests/tooling/esnode/setup.sh (needs Maven)")
    node = esnode.NodeProcess("es7")
    try:
        yield node
    finally:
        node.close()


def _outputs(url: str, index: str) -> dict[str, Any]:
    return {
        "output.elasticsearch": {"hosts": [url], "index": index, "bulk_max_size": 1600, "compression_level": 1},
        "setup.template.name": index,
        "setup.template.pattern": f"{index}*",
        "setup.template.settings": {"index.number_of_shards": 1, "index.number_of_replicas": 0,
                                    "index.refresh_interval": "1s"},
        "setup.ilm.enabled": False,
    }


def _count(url: str, index: str) -> int:
    esnode.http_json(f"{url}/{index}/_refresh", "POST")
    code, body = esnode.http_json(f"{url}/{index}/_count")
    return int(body["count"]) if code == 200 and isinstance(body, dict) else 0


def _documents(url: str, index: str) -> list[dict[str, Any]]:
    """Every document of the index, by scroll (the test's own reader, not the agent's)."""
    esnode.http_json(f"{url}/{index}/_refresh", "POST")
    code, body = esnode.http_json(f"{url}/{index}/_search?scroll=1m", "POST", {"size": 10_000, "sort": ["_doc"]})
    assert code == 200, body
    docs: list[dict[str, Any]] = []
    while True:
        hits = body["hits"]["hits"]  # type: ignore[index]
        if not hits:
            break
        docs += [h["_source"] for h in hits]
        code, body = esnode.http_json(f"{url}/_search/scroll", "POST", {"scroll": "1m", "scroll_id": body["_scroll_id"]})  # type: ignore[index]
        assert code == 200, body
    return docs


def _crash_and_restart(tmp: Path, url: str, index: str, rng: random.Random,
                       extra: dict[str, Any] | None = None) -> int:
    port = free_port()
    cfg = config(tmp, _outputs(url, index), extra={"http.enabled": True, "http.host": "127.0.0.1", "http.port": port,
                                                   **(extra or {})})
    data = tmp / "data"
    agent = Agent(cfg, data, BULK)
    assert wait_for(lambda: queued_on_disk(port) >= BULK_TRANSACTIONS or agent.proc.poll() is not None, 180), \
        agent.tail()
    target = rng.randrange(_count(url, index), 45_000)
    assert wait_for(lambda: _count(url, index) >= target or agent.proc.poll() is not None, 180, poll=0.2), \
        agent.tail()
    agent.kill()
    at_kill = _count(url, index)
    assert at_kill < BULK_TRANSACTIONS, f"everything was indexed before the kill ({at_kill})"
    restart = Agent(cfg, data, empty_pcap(tmp / "empty.pcap"))
    assert restart.wait(300) == 0, restart.tail()
    return at_kill


@pytest.mark.parametrize("seed", [11, 12])
def test_killed_mid_delivery_into_elasticsearch_loses_nothing(tmp_path: Path, es: esnode.NodeProcess,
                                                              reference: set[str], seed: int) -> None:
    """Disk queue, SIGKILL mid-delivery, empty replay: every transaction is in the index."""
    url = es.url()
    index = f"pbcrash-{seed}"
    at_kill = _crash_and_restart(tmp_path, url, index, random.Random(seed))
    counts = Counter(key(d) for d in _documents(url, index))
    lost = len(reference - set(counts))
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    print(f"seed {seed}: killed at {at_kill} indexed; after the restart: lost {lost}, duplicate documents "
          f"{duplicates} (no _id configured)")
    assert set(counts) <= reference
    assert lost == 0
def _have_fingerprint() -> bool:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "pybeat.cli", "plugins"], capture_output=True, text=True, timeout=60)
    return "fingerprint" in out.stdout


def test_killed_mid_delivery_with_fingerprint_ids_gives_exactly_once(tmp_path: Path, es: esnode.NodeProcess,
                                                                   reference: set[str]) -> None:
    """The exactly-once config of docs/outputs.md (disk queue + fingerprint into @metadata._id):
    SIGKILL mid-delivery, empty replay: 50,000 documents, each transaction once."""
    need(_have_fingerprint(), "the fingerprint processor (pybeat/processors/ids.py)")
    url = es.url()
    index = "pbcrash-exactly-once"
    fingerprint = {"processors": [{"fingerprint": {
        "fields": ["client.ip", "client.port", "server.ip", "server.port", "network.transport", "dns.id",
                   "event.start"],
        "target_field": "@metadata._id"}}]}
    at_kill = _crash_and_restart(tmp_path, url, index, random.Random(21), extra=fingerprint)
    counts = Counter(key(d) for d in _documents(url, index))
    print(f"fingerprint: killed at {at_kill} indexed; after the restart {sum(counts.values())} documents")
    assert len(reference - set(counts)) == 0
    assert sum(counts.values()) == BULK_TRANSACTIONS
