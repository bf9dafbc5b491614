"""The built-in processors through pybeat.testing.ProcessorHarness, the test kit a third-party
processor's author uses: the agent's chain builder, conditions and containment, on the plugins
the registry serves (the other files here drive each processor's own behaviour in detail)."""

from __future__ import annotations

import pytest

from pybeat.api import Event
from pybeat.plugins import load_registry
from pybeat.testing import BASE_NS, ConfigError, PluginFault, ProcessorHarness

REGISTRY = load_registry()


def plugin(name: str) -> object:
    return REGISTRY.get("processors", name)


def test_fingerprint_and_drop_fields_make_an_idempotent_id_for_dns_events_only() -> None:
    h = ProcessorHarness(plugin("fingerprint"), chain=[
        {"fingerprint": {"fields": ["dns.id", "client.ip"], "target_field": "@metadata._id",
                         "when": {"equals": {"type": "dns"}}}},
        {"drop_fields": {"fields": ["dns.flags"], "ignore_missing": True}},
    ])
    def dns(txid: int) -> Event:
        return Event(BASE_NS, {"type": "dns", "dns": {"id": txid, "flags": {"authoritative": False}},
                               "client": {"ip": "10.0.0.1"}})

    first, again, other_id = h.run_event(dns(7)), h.run_event(dns(7)), h.run_event(dns(8))
    assert first is not None and again is not None and other_id is not None
    assert len(first.meta["_id"]) == 64 and first.meta["_id"] == again.meta["_id"] != other_id.meta["_id"]
    assert "flags" not in first.fields["dns"]
    other = h.run({"type": "icmp", "client": {"ip": "10.0.0.1"}})
    assert other == {"type": "icmp", "client": {"ip": "10.0.0.1"}}
    h.close()


def test_add_id_gives_each_event_its_own_id() -> None:
    h = ProcessorHarness(plugin("add_id"), {"target_field": "event.id"})
    ids = {h.run({"type": "dns"})["event"]["id"] for _ in range(100)}  # type: ignore[index]
    assert len(ids) == 100


def test_a_script_that_drops_events_and_one_that_raises() -> None:
    keep = ProcessorHarness(plugin("script"), {"lang": "python", "source": "event.Get('dns.id') != 0"})
    assert keep.run({"dns": {"id": 0}}) is None and keep.run({"dns": {"id": 1}}) == {"dns": {"id": 1}}
    raising = {"lang": "python", "source": "event.Put('n', event.Get('dns.id') + 1)"}
    with pytest.raises(PluginFault, match="processor script raised TypeError"):
        ProcessorHarness(plugin("script"), raising).run({"dns": {}})
    contained = ProcessorHarness(plugin("script"), raising, strict=False)
    out = contained.run({"dns": {}})
    assert out is not None and out["tags"] == ["_python_exception"]
    assert out["error"]["message"].startswith("processor script failed: TypeError")
    assert contained.exceptions() == 1


def test_a_beats_key_with_a_typo_is_named_and_an_unsupported_processor_says_so() -> None:
    with pytest.raises(ConfigError, match=r"processors\.0\.fingerprint\.feilds"):
        ProcessorHarness(plugin("fingerprint"), {"fields": ["a"], "feilds": ["b"]})
    with pytest.raises(ConfigError, match="decode_cef is not supported by pybeat"):
        ProcessorHarness(plugin("decode_cef"), {})
