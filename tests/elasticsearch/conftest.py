"""Fixtures for tests/elasticsearch: real Elasticsearch 7.17, OpenSearch 2.19 and 3.3 nodes.

Nodes come from the embedded-node launcher (tests/tooling/esnode, built by its setup.sh). The
plain single nodes are session-scoped (one JVM each, started on first use, about 3 s); tests
that restart or overload nodes start their own in module-scoped fixtures. Every fixture stops
its JVM on teardown, failure included.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from conftest_es import PCAPS, Event, capture_events, esnode, need


def _start(engine: str, **kw: object) -> "esnode.NodeProcess":
    need(esnode.java(engine), f"a Java runtime for the embedded {engine} nodes (17; 21+ for OpenSearch 3)")
    need(esnode.built(engine), f"the {engine} node launcher: run tests/tooling/esnode/setup.sh (needs Maven)")
    return esnode.NodeProcess(engine, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def es_node() -> Iterator["esnode.NodeProcess"]:
    node = _start("es7")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(scope="session")
def os_node() -> Iterator["esnode.NodeProcess"]:
    node = _start("os2")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(scope="session")
def os3_node() -> Iterator["esnode.NodeProcess"]:
    node = _start("os3")
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(params=["es7", "os2", "os3"])
def search_node(request: pytest.FixtureRequest) -> "esnode.NodeProcess":
    """Each test using this runs against Elasticsearch 7.17, OpenSearch 2.19 and OpenSearch 3.3."""
    return request.getfixturevalue({"es7": "es_node", "os2": "os_node", "os3": "os3_node"}[request.param])


@pytest.fixture
def start_nodes() -> Iterator[object]:
    """A factory for nodes a test owns (restarts, tiny thread pools); all closed at teardown."""
    started: list[esnode.NodeProcess] = []

    def factory(engine: str = "es7", **kw: object) -> "esnode.NodeProcess":
        node = _start(engine, **kw)
        started.append(node)
        return node

    try:
        yield factory
    finally:
        for node in started:
            node.close()


@pytest.fixture(scope="session")
def bulk_capture_events(tmp_path_factory: pytest.TempPathFactory) -> list["Event"]:
    """The 50,000 DNS transactions of dns_bulk_100k.pcap, decoded by the agent once per session."""
    pcap = PCAPS / "dns_bulk_100k.pcap"
    need(pcap.exists(), f"the shared capture {pcap}")
    return capture_events(pcap, tmp_path_factory.mktemp("bulk-capture"))
