"""DHCP config models: defaults, pybeat's keys, and refusals with the offending key named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pybeat.protocols.dhcpv4.plugin import plugin as v4
from pybeat.protocols.dhcpv6.plugin import plugin as v6


def test_defaults():
    """Default ports are Packetbeat's for DHCPv4 and the DHCPv6 ones; both feed on UDP."""
    assert v4.config_model(type="dhcpv4").ports == [67, 68]
    assert v6.config_model(type="dhcpv6").ports == [546, 547]
    assert v4.name == "dhcpv4" and v6.name == "dhcpv6"
    assert v4.transports == v6.transports == frozenset({"udp"})


def test_custom_options_are_validated():
    """Custom option codes, names and types are checked when the config is read."""
    ok = v4.config_model(type="dhcpv4", custom_options={224: {"name": "site_tag", "type": "string"}})
    assert ok.custom_options[224].name == "site_tag"
    with pytest.raises(ValidationError, match="between 1 and 254"):
        v4.config_model(type="dhcpv4", custom_options={255: {"name": "x"}})
    with pytest.raises(ValidationError, match="already a dhcpv4.option field"):
        v4.config_model(type="dhcpv4", custom_options={224: {"name": "hostname"}})
    with pytest.raises(ValidationError):
        v4.config_model(type="dhcpv4", custom_options={224: {"name": "x", "type": "float"}})
    with pytest.raises(ValidationError):
        v4.config_model(type="dhcpv4", custom_optoins={})
    with pytest.raises(ValidationError, match="positive"):
        v6.config_model(type="dhcpv6", transaction_timeout=0)
