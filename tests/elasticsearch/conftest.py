"""Fixtures for tests/elasticsearch: real Elasticsearch 7.17 and OpenSearch 2.19 nodes.

Nodes come from the embedded-node launcher (tests/tooling/esnode, built by its setup.sh). The
plain single nodes are session-scoped (one JVM each, started on first use, about 3 s); tests
that restart or overload nodes start their own in module-scoped fixtures. Every fixture stops
its JVM on teardown, failure included.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from conftest_es import esnode, need


def _start(engine: str, **kw: object) -> "esnode.NodeProcess":
    need(esnode.java(), "a Java runtime (openjdk-17) for the embedded search nodes")
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


@pytest.fixture(params=["es7", "os2"])
def search_node(request: pytest.FixtureRequest) -> "esnode.NodeProcess":
    """Each test using this runs once against Elasticsearch and once against OpenSearch."""
    return request.getfixturevalue("es_node" if request.param == "es7" else "os_node")


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
