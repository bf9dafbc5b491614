"""Fixtures for the live-capture tests: root, and a veth pair in namespaces the test made."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import need
from tests.live.netns import VethPair, veth_pair


def need_netns() -> None:
    need(os.geteuid() == 0, "root (network namespaces and packet sockets)")
    need(shutil.which("ip"), "the ip program (iproute2)")


@pytest.fixture
def link() -> Iterator[VethPair]:
    need_netns()
    with veth_pair() as pair:
        yield pair
