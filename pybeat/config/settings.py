"""Validate a raw config into :class:`Settings`: the core sections through models.py, each
protocol and output through its plugin's own model, processors through theirs.

Nothing here opens a socket, a file for writing or a capture: validating has no side effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pybeat.config.errors import unknown_name, validate
from pybeat.config.loader import ConfigError, RawConfig
from pybeat.config.models import AgentConfig
from pybeat.plugins import PluginError, Registry

#: Protocols Packetbeat has. A config naming one that pybeat does not implement still loads
#: (with a warning), so a site's packetbeat.yml works unchanged.
PACKETBEAT_PROTOCOLS = {
    "amqp", "cassandra", "dhcpv4", "dns", "http", "icmp", "memcache", "mongodb", "mysql", "nfs",
    "pgsql", "redis", "sip", "thrift", "tls",
}
#: Outputs libbeat has that pybeat does not implement.
BEATS_OUTPUTS = {"kafka", "redis", "discard", "otelconsumer"}


@dataclass
class ProtocolSetup:
    name: str
    plugin: Any
    config: Any
    key: str  # where in the config, e.g. packetbeat.protocols.2


@dataclass
class OutputSetup:
    name: str
    plugin: Any
    config: Any
    key: str


@dataclass
class DetectorSetup:
    name: str
    plugin: Any
    config: Any
    key: str  # pybeat.detection.<name>


@dataclass
class Settings:
    agent: AgentConfig
    raw: RawConfig
    protocols: list[ProtocolSetup] = field(default_factory=list)
    outputs: list[OutputSetup] = field(default_factory=list)
    detectors: list[DetectorSetup] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _protocol_items(protocols: Any) -> list[tuple[str, dict[str, Any]]]:
    """Both forms: the 7.x+ list of ``{type: ..}`` and the 6.x mapping ``{dns: {...}}``."""
    if isinstance(protocols, dict):
        return [(f"packetbeat.protocols.{name}", {"type": name, **(cfg or {})}) for name, cfg in protocols.items()]
    return [(f"packetbeat.protocols.{i}", dict(item or {})) for i, item in enumerate(protocols)]


def _core_keys() -> set[str]:
    keys = set()
    for name, f in AgentConfig.model_fields.items():
        keys.add(f.alias or name)
        keys.add(name)
    return keys


def _apply_plugin_sections(raw: RawConfig, registry: Registry) -> set[str]:
    """Top-level sections an output plugin owns (``cloud`` for Elastic Cloud's ``cloud.id``):
    the plugin that lists one in ``top_level_sections`` rewrites the raw config with it before
    validation. Returns the sections handled (left out of the core's validation)."""
    candidates = [k for k in raw.data if k not in _core_keys()]
    if not candidates:
        return set()
    handled: set[str] = set()
    for plugin in registry.usable("outputs"):
        for section in sorted(set(candidates) & set(getattr(plugin, "top_level_sections", ()))):
            try:
                plugin.apply_top_level(raw.data)
            except ValueError as exc:
                body = raw.data.get(section)
                key = f"{section}.{next(iter(body))}" if isinstance(body, dict) and body else section
                where = raw.origin(key)
                raise ConfigError(f"{key}{f' ({where})' if where else ''}: {exc}") from None
            handled.add(section)
    return handled


def load_settings(raw: RawConfig, registry: Registry, require_output: bool = True) -> Settings:
    owned = _apply_plugin_sections(raw, registry)
    agent = validate(AgentConfig, {k: v for k, v in raw.data.items() if k not in owned}, "", raw)
    settings = Settings(agent, raw)
    problems: list[str] = []

    seen_types: dict[str, str] = {}
    for key, item in _protocol_items(agent.packetbeat.protocols):
        where = raw.origin(key)
        at = f" ({where})" if where else ""
        ptype = item.get("type")
        if not isinstance(ptype, str) or not ptype:
            problems.append(f"{key}{at}: every protocol needs a 'type' (e.g. type: dns)")
            continue
        try:
            plugin = registry.get("protocols", ptype)
        except KeyError:
            if ptype in PACKETBEAT_PROTOCOLS:
                settings.warnings.append(f"{key}{at}: protocol {ptype!r} is not supported by pybeat; skipped")
                continue
            installed = registry.names("protocols")
            problems.append(f"{key}.type{at}: " + unknown_name("protocol", ptype, PACKETBEAT_PROTOCOLS | set(installed), installed))
            continue
        except PluginError as exc:
            problems.append(f"{key}{at}: {exc}")
            continue
        try:
            config = validate(plugin.config_model, item, key, raw)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if not getattr(config, "enabled", True):
            continue
        if ptype in seen_types:
            problems.append(f"{key}{at}: protocol {ptype!r} is configured twice (also {seen_types[ptype]})")
            continue
        seen_types[ptype] = key
        settings.protocols.append(ProtocolSetup(ptype, plugin, config, key))

    # Two protocols may not share a port on a transport they both use.
    owners: dict[tuple[str, int], str] = {}
    for p in settings.protocols:
        for port in getattr(p.config, "ports", []) or []:
            for transport in sorted(set(p.plugin.transports) & {"udp", "tcp"}):
                other = owners.get((transport, port))
                if other is not None and other != p.name:
                    problems.append(f"{p.key}.ports: duplicate port ({port}) exists in {other} and {p.name} protocols")
                owners[(transport, port)] = p.name

    for name, body in agent.output.items():
        key = f"output.{name}"
        where = raw.origin(key)
        at = f" ({where})" if where else ""
        body = dict(body or {})
        if body.get("enabled", True) is False:
            continue
        if body.get("queue") is not None:
            problems.append(f"{key}.queue{at}: a queue per output is not supported yet; set queue.mem at the top level")
            continue
        try:
            plugin = registry.get("outputs", name)
        except KeyError:
            if name in BEATS_OUTPUTS:
                problems.append(f"{key}{at}: the {name} output is not supported by pybeat")
                continue
            installed = registry.names("outputs")
            problems.append(f"{key}{at}: " + unknown_name("output", name, installed, installed))
            continue
        except PluginError as exc:
            problems.append(f"{key}{at}: {exc}")
            continue
        try:
            config = validate(plugin.config_model, body, key, raw)
        except ConfigError as exc:
            problems += exc.problems
            continue
        settings.outputs.append(OutputSetup(name, plugin, config, key))

    for name, body in (agent.packetbeat.detection or {}).items():
        key = f"packetbeat.detection.{name}"
        where = raw.origin(key)
        at = f" ({where})" if where else ""
        try:
            plugin = registry.get("detectors", name)
        except KeyError:
            installed = registry.names("detectors")
            problems.append(f"{key}{at}: " + unknown_name("detector", name, installed, installed))
            continue
        except PluginError as exc:
            problems.append(f"{key}{at}: {exc}")
            continue
        try:
            config = validate(plugin.config_model, dict(body or {}), key, raw)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if getattr(config, "enabled", True):
            settings.detectors.append(DetectorSetup(name, plugin, config, key))

    # Processors are validated with their models; nothing is created here.
    from pybeat.processors.build import validate_processors

    for key, specs in [("processors", agent.processors)] + [
        (f"{p.key}.processors", getattr(p.config, "processors", [])) for p in settings.protocols
    ]:
        try:
            validate_processors(specs, registry, key, raw)
        except ConfigError as exc:
            problems += exc.problems

    if require_output and not settings.outputs and not problems:
        problems.append("output: no output is enabled (configure output.file, output.console, output.elasticsearch, ...)")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems)
    return settings
