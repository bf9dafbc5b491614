"""The plugin registry: built-ins come through entry points; broken, misnamed and duplicate
plugins are reported by name instead of crashing the agent."""

from __future__ import annotations

import pytest

from pybeat.plugins import PluginError, load_registry


def test_builtins_register_through_entry_points():
    reg = load_registry()
    assert {"dns", "icmp", "dhcpv4"} <= set(reg.names("protocols"))
    assert {"file", "console"} <= set(reg.names("outputs"))
    assert {"add_fields", "drop_event", "add_host_metadata"} <= set(reg.names("processors"))
    info = reg.plugins["outputs"]["file"]
    assert info.distribution == "pybeat" and info.value == "pybeat.outputs.file.plugin:plugin"


def test_a_plugin_missing_its_interface_is_reported_when_used():
    class Half:
        name = "half"

    reg = load_registry(extra={"outputs": {"half": Half()}})
    with pytest.raises(PluginError, match="does not provide config_model, create, workers, batch_size"):  # 0.1
        reg.get("outputs", "half")


def test_a_misnamed_plugin_is_reported():
    class Other:
        name = "other"
        config_model = object
        create = transports = None

    reg = load_registry(extra={"protocols": {"mine": Other()}})
    with pytest.raises(PluginError, match="calls itself 'other' but is registered as 'mine'"):
        reg.get("protocols", "mine")


def test_duplicate_names_make_only_that_plugin_unusable():
    """Two plugins with one name: neither is used (which one won would depend on install order),
    and every other plugin still works."""

    class Dup:
        name = "file"

    reg = load_registry(extra={"outputs": {"file": Dup()}})
    with pytest.raises(PluginError, match="two outputs plugins are named 'file'"):
        reg.get("outputs", "file")
    assert reg.get("outputs", "console").name == "console"
    assert any(i.error and "two outputs plugins" in i.error for i in reg.all())
