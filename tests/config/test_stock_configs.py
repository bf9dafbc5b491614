"""Packetbeat's own shipped configs (tests/data/configs/stock/) load unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybeat.config import load, load_settings
from pybeat.plugins import load_registry
from tests.conftest import DATA

STOCK = sorted((DATA / "configs" / "stock").glob("*/*.yml"))


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_the_stock_configs_are_there():
    assert {p.name for p in STOCK} >= {"packetbeat.yml", "packetbeat.reference.yml", "packetbeat.docker.yml"}


@pytest.mark.parametrize("path", STOCK, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_stock_config_reads_as_yaml(path: Path):
    raw = load(str(path), env={})
    assert "packetbeat" in raw.data and "output" in raw.data


@pytest.mark.parametrize("path", [p for p in STOCK if p.name == "packetbeat.reference.yml"],
                         ids=lambda p: p.parent.name)
def test_every_stock_reference_config_validates(path: Path, registry):
    settings = load_settings(load(str(path), env={}), registry)
    assert [p.name for p in settings.protocols] == ["icmp", "dhcpv4", "dns"]
    assert [o.name for o in settings.outputs] == ["elasticsearch"]


def test_the_packetbeat_key_catalogue_is_up_to_date():
    """pybeat/config/beats_keys.py holds every key of every stock reference config
    (regenerate it with ``python -m tests.config.reference_keys`` after adding one)."""
    from pybeat.config.beats_keys import KEYS
    from tests.config.reference_keys import catalogue_keys

    refs = [p.read_text() for p in STOCK if p.name == "packetbeat.reference.yml"]
    assert len(refs) >= 2 and catalogue_keys(refs) <= set(KEYS.split())
