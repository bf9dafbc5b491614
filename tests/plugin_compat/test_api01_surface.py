"""Everything pybeat.api 0.1 published (its ``__all__``, each name's public attributes and how
it was called) still works in this pybeat: a 0.1 plugin may have used any of it.

The 0.1 surface is written down here (from pybeat 0.1.0's ``pybeat/api.py``, commit 28a2b9a),
so this test does not depend on the repository's history."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import pytest

import pybeat.api as api

#: pybeat.api 0.1's __all__ and, for each class, the public attributes it had
API_01: dict[str, list[str]] = {
    "Analyzer": ["expire", "flush", "on_icmp", "on_tcp_close", "on_tcp_data", "on_tcp_gap", "on_udp", "on_udp4",
                 "shard_by_key_only", "shard_key", "stats", "udp4_lane"],
    "Batch": ["ack", "drop", "events", "retries", "retry", "settle", "settled"],
    "BeatInfo": ["agent_id", "beat", "ephemeral_id", "hostname", "name", "product", "version"],
    "CommonProtocolConfig": ["enabled", "fields", "fields_under_root", "index", "interface", "keep_null",
                             "model_config", "ports", "processors", "send_request", "send_response", "tags",
                             "transaction_timeout", "type"],
    "EmitFn": [],
    "Event": ["delete", "digest", "fields", "get", "meta", "put", "raw", "timestamp_ns"],
    "Output": ["close", "publish"],
    "OutputContext": ["beat", "extra", "logger", "metrics", "name"],
    "OutputPlugin": ["create"],  # name, config_model, workers, batch_size: attributes of the plugin's own class
    "Packet": ["dst_ip", "dst_port", "ip_version", "src_ip", "src_port", "transport", "ts_ns", "vlans"],
    "PluginConfig": ["model_config"],
    "Processor": ["run"],
    "ProcessorPlugin": ["create"],
    "ProtocolContext": ["beat", "emit", "emit_closed", "envelope", "events_may_share", "logger", "protocol_name",
                        "raw_close"],
    "ProtocolPlugin": ["create"],
    "TcpConnection": ["client_ip", "client_port", "ip_version", "server_ip", "server_port", "state", "vlans"],
}


def test_every_name_is_still_there() -> None:
    missing = [name for name in API_01 if not hasattr(api, name)]
    assert missing == []


@pytest.mark.parametrize("name", [n for n, attrs in API_01.items() if attrs])
def test_every_attribute_of_a_class_is_still_there(name: str) -> None:
    cls = getattr(api, name)
    instance_only = {"ProtocolContext": {"beat", "emit", "envelope", "events_may_share", "logger", "protocol_name"},
                     "OutputContext": {"beat", "extra", "logger", "metrics", "name"}, "Batch": {"events", "retries"},
                     "Event": {"timestamp_ns", "meta", "raw", "digest"},
                     "Packet": set(API_01["Packet"]), "TcpConnection": set(API_01["TcpConnection"]) - {"state"},
                     "BeatInfo": set(), "CommonProtocolConfig": set(API_01["CommonProtocolConfig"]) - {"model_config"}}
    on_class = [a for a in API_01[name] if a not in instance_only.get(name, set())]
    assert [a for a in on_class if not hasattr(cls, a) and a not in getattr(cls, "model_fields", {})] == []


def test_the_classes_are_built_as_0_1_built_them() -> None:
    """Positional and keyword arguments as 0.1's signatures had them."""
    beat = api.BeatInfo("packetbeat", "n", "h", "1", "id", "eph", "pybeat")
    event = api.Event(1, {"a": 1}, {"m": 1}, None, None)
    pkt = api.Packet(1, "10.0.0.1", "10.0.0.2", 1, 2, "udp", 4, (5,))
    conn = api.TcpConnection("10.0.0.1", 1, "10.0.0.2", 2, 4, ())
    emitted: list[Any] = []
    ctx = api.ProtocolContext(emitted.append, beat, "kv", None, None, False, None, None)
    ctx2 = api.ProtocolContext(emit=emitted.append, beat=beat, protocol_name="kv", envelope=None, logger=None,
                               events_may_share=True, raw_close=b"}", emit_closed=emitted.append)
    octx = api.OutputContext(beat, None, None, "out", {"path_data": "/tmp"})
    assert (event.fields, pkt.vlans, conn.state, ctx.protocol_name, octx.extra["path_data"]) == (
        {"a": 1}, (5,), None, "kv", "/tmp")
    assert ctx.envelope is not None  # 0.1 left it None when not given; now always usable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert (ctx.raw_close, ctx.emit_closed) == (None, None)
        assert ctx2.raw_close == b"}" and ctx2.emit_closed == emitted.append
    cfg = api.CommonProtocolConfig(type="kv", ports=[1], transaction_timeout="2s")
    assert cfg.transaction_timeout == 2.0
    with pytest.raises(Exception):
        api.PluginConfig(unknown=1)  # type: ignore[call-arg]


def test_the_0_1_dataclasses_still_are_dataclasses() -> None:
    """BeatInfo, ProtocolContext and OutputContext were dataclasses: replace() worked on them."""
    beat = api.BeatInfo(name="a")
    assert dataclasses.replace(beat, name="b").name == "b"
    octx = api.OutputContext(beat, None, None, "out")
    assert dataclasses.replace(octx, name="other").name == "other"
    ctx = api.ProtocolContext(emit=print, beat=beat, protocol_name="kv")
    assert dataclasses.replace(ctx, protocol_name="kv2").protocol_name == "kv2"


def test_a_batch_with_a_0_1_settle_callback() -> None:
    """0.1's Batch told its callback (batch, acked + duplicates, duplicates, retry, dropped)."""
    seen: list[tuple[Any, ...]] = []

    def on_settle(batch: Any, acked: int, duplicates: int, retry: list[Any], dropped: int) -> None:
        seen.append((acked, duplicates, len(retry), dropped))

    events = [api.Event(i, {}) for i in range(6)]
    api.Batch(events, on_settle).settle(acked=2, duplicates=1, retry=events[:2], dropped=1)
    api.Batch(events[:1], on_settle).ack()
    api.Batch(events[:2], on_settle, retries=3).retry()
    api.Batch(events[:1], on_settle).drop()
    assert seen == [(3, 1, 2, 1), (1, 0, 0, 0), (0, 0, 2, 0), (0, 0, 0, 1)]
    with pytest.raises(RuntimeError):
        batch = api.Batch(events[:1], on_settle)
        batch.ack()
        batch.ack()


def test_the_protocols_of_0_1_can_be_subclassed_and_checked() -> None:
    class Plugin(api.ProtocolPlugin):
        name = "p"
        transports = frozenset({"udp"})
        config_model = api.CommonProtocolConfig

        def create(self, config: Any, ctx: api.ProtocolContext) -> api.Analyzer:
            return api.Analyzer()

    class Client:
        def publish(self, batch: api.Batch) -> None:
            batch.ack()

        def close(self) -> None:
            pass

    assert Plugin().name == "p" and isinstance(Client(), api.Output)
    assert api.Analyzer().udp4_lane() is None
    assert api.Analyzer().shard_key(b"x") == 0 and api.Analyzer().stats() == {}


def test_a_0_1_settle_callback_may_be_a_method_or_an_object() -> None:
    seen: list[int] = []

    class Sink:
        def on_settle(self, batch: Any, acked: int, duplicates: int, retry: list[Any], dropped: int) -> None:
            seen.append(acked)

        def __call__(self, batch: Any, acked: int, duplicates: int, retry: list[Any], dropped: int) -> None:
            seen.append(-acked)

    api.Batch([api.Event(0, {})], Sink().on_settle).ack()
    api.Batch([api.Event(0, {})], Sink()).ack()
    api.Batch([api.Event(0, {})], lambda *args: seen.append(len(args))).ack()  # any arity: 1.0's six
    assert seen == [1, -1, 6]


def test_a_hand_built_context_has_a_logger_0_1_code_can_use() -> None:
    """0.1 gave plugins the agent's structlog logger (or None): bind() and exception() work on
    the stand-in a context built without one gets."""
    ctx = api.ProtocolContext(emit=print, beat=api.BeatInfo(), protocol_name="kv")
    log = ctx.logger.bind(protocol="kv")  # type: ignore[attr-defined]
    log.info("ready")
    log.exception("oops")


def test_names_0_1s_module_had_by_accident_still_import() -> None:
    """0.1's api.py imported pydantic's and typing's names at module level; a plugin may have
    taken them from there (``from pybeat.api import BaseModel``). They resolve, with a warning."""
    import pydantic

    with pytest.warns(DeprecationWarning, match="import it from pydantic"):
        from pybeat.api import BaseModel  # type: ignore[attr-defined]
    assert BaseModel is pydantic.BaseModel
    with pytest.warns(DeprecationWarning):
        assert api.Duration is not None and api.field_validator is pydantic.field_validator  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from pybeat.api import NoSuchName  # type: ignore[attr-defined] # noqa: F401
