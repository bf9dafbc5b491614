"""Fixtures of the delivery tests: agents a failed test left running are killed, and the bulk
capture's transactions (the reference the end-to-end tests count against) are made once."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.delivery.agents import reference_keys, stop_leftovers


@pytest.fixture(autouse=True)
def _no_leftover_agents() -> Iterator[None]:
    yield
    stop_leftovers()


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every transaction of dns_bulk_100k.pcap, by content (tests.delivery.agents.key)."""
    return reference_keys(tmp_path_factory.mktemp("reference"))
