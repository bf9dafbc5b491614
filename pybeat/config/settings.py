"""Validate a raw config into :class:`Settings`: the core sections through models.py, each
protocol and output through its plugin's own model, processors through theirs.

Nothing here opens a socket, a file for writing or a capture: validating has no side effects.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any

from pybeat.config.errors import unknown_name, validate
from pybeat.config.loader import ConfigError, RawConfig
from pybeat.config.models import PLUGIN_SECTIONS, AgentConfig, no_effect_keys
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
    key: str  # packetbeat.detection.<name> (pybeat.detection.<name> in the file)


@dataclass
class Settings:
    agent: AgentConfig
    raw: RawConfig
    protocols: list[ProtocolSetup] = field(default_factory=list)
    outputs: list[OutputSetup] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    detectors: list[DetectorSetup] = field(default_factory=list)


def _protocol_items(protocols: Any) -> list[tuple[str, dict[str, Any]]]:
    """Both forms: the 7.x+ list of ``{type: ..}`` and the 6.x mapping ``{dns: {...}}``."""
    if isinstance(protocols, dict):
        return [(f"packetbeat.protocols.{name}", {"type": name, **(cfg if isinstance(cfg, dict) else {})})
                for name, cfg in protocols.items()]
    return [(f"packetbeat.protocols.{i}", dict(item) if isinstance(item, dict) else {}) for i, item in enumerate(protocols)]


def _apply_plugin_sections(raw: RawConfig, registry: Registry) -> None:
    """Top-level sections whose meaning an output plugin supplies (``cloud.id``/``cloud.auth``:
    the plugin that lists the section in its ``top_level_sections`` rewrites the raw config
    before validation, as libbeat's cloudid does). Output plugins are imported only when such a
    section is set."""
    present = [k for k in PLUGIN_SECTIONS if isinstance(raw.data.get(k), dict)
               and any(v not in (None, "") for v in raw.data[k].values())]
    if not present:
        return
    for section in present:
        owners = [p for p in registry.usable("outputs") if section in getattr(p, "top_level_sections", ())]
        if not owners:
            raise ConfigError(f"{section}{_where(raw, section)}: no installed output plugin handles this section")
        for plugin in owners:
            try:
                plugin.apply_top_level(raw.data)
            except ValueError as exc:
                body = raw.data[section]
                key = f"{section}.{next(iter(body))}" if body else section
                raise ConfigError(f"{key}{_where(raw, key)}: {exc}") from None


def _unset_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """A plugin's settings with keys written without a value left out (Beats: not set), in
    nested mappings too; lists are left as they are (``- add_host_metadata: ~`` means something)."""
    return {k: (_unset_nulls(v) if isinstance(v, dict) else v) for k, v in body.items() if v is not None}


def _off(value: Any) -> bool:
    """``enabled: false`` as written, or as a ``${VAR:false}`` leaves it (a string), read the
    way the models read booleans."""
    return value is False or (isinstance(value, str) and value.strip().lower() in ("false", "f", "no", "n", "off", "0"))


_WHERE = re.compile(r"^\S+ \(([^()]+):(\d+)\): ")


def by_line(problems: list[str]) -> list[str]:
    """The problems in the order of the config: by file (in the order the problems name them),
    then by line; those with no line (``-E`` overrides, missing keys) after them, as found."""
    files: dict[str, int] = {}
    for p in problems:
        m = _WHERE.match(p)
        if m:
            files.setdefault(m.group(1), len(files))

    def key(p: str) -> tuple[int, int, int]:
        m = _WHERE.match(p)
        return (0, files[m.group(1)], int(m.group(2))) if m else (1, 0, 0)

    return sorted(problems, key=key)


def _typed(value: Any, kind: type, default: Any) -> Any:
    """``value`` if it is a ``kind`` (a wrong shape is the core model's error to report)."""
    return value if isinstance(value, kind) else default


def _where(raw: RawConfig, key: str) -> str:
    where = raw.origin(key)
    return f" ({where})" if where else ""


def load_settings(raw: RawConfig, registry: Registry, require_output: bool = True) -> Settings:
    """Validate everything and report every problem at once: the core sections, each protocol,
    each output and each processor list (a mistake in one does not hide the others)."""
    problems: list[str] = []
    warnings: list[str] = []
    had_kibana = isinstance(raw.data.get("setup"), dict) and "kibana" in raw.data["setup"]
    try:
        _apply_plugin_sections(raw, registry)
    except ConfigError as exc:
        problems += exc.problems
    if not had_kibana and isinstance(raw.data.get("setup"), dict):
        raw.data["setup"].pop("kibana", None)  # cloud.id's Kibana URL: pybeat has no use for it

    agent: AgentConfig | None
    try:
        agent = validate(AgentConfig, raw.data, "", raw, warnings)
    except ConfigError as exc:
        problems += exc.problems
        agent = None
    for key in no_effect_keys(agent) if agent is not None else []:
        where = raw.origin(key)
        warnings.append(f"{key}{f' ({where})' if where else ''}: pybeat does not act on this Packetbeat setting; "
                        "it has no effect")
    # Protocols, outputs and processors are kept raw by the core model: read them from the tree,
    # so that they are checked even when a core key is wrong.
    pb = _typed(raw.data.get("packetbeat"), dict, {})
    protocols = _protocol_items(pb.get("protocols")) if isinstance(pb.get("protocols"), (list, dict)) else []
    outputs: dict[str, Any] = _typed(raw.data.get("output"), dict, {})
    global_processors: list[Any] = _typed(raw.data.get("processors"), list, [])

    protocol_setups = _protocols(protocols, raw, registry, problems, warnings)
    output_setups = _outputs(outputs, raw, registry, problems, warnings)
    detector_setups = _detectors(_typed(pb.get("detection"), dict, {}), raw, registry, problems, warnings)

    from pybeat.processors.build import validate_processors

    for key, specs in [("processors", global_processors)] + [
        (f"{p.key}.processors", getattr(p.config, "processors", [])) for p in protocol_setups
    ]:
        try:
            validate_processors(specs, registry, key, raw)
        except ConfigError as exc:
            problems += exc.problems

    if require_output and not output_setups and not problems:
        problems.append("output: no output is enabled (configure output.file, output.console, output.elasticsearch, ...)")
    if problems or agent is None:
        problems = by_line(problems)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems)
    return Settings(agent, raw, protocol_setups, output_setups, warnings, detector_setups)


def _detectors(
    detection: dict[str, Any], raw: RawConfig, registry: Registry, problems: list[str], warnings: list[str]
) -> list[DetectorSetup]:
    """``pybeat.detection.<name>``: each validated by its detector plugin's model."""
    setups: list[DetectorSetup] = []
    for name, body in detection.items():
        key = f"packetbeat.detection.{name}"
        at = _where(raw, key)
        if body is not None and not isinstance(body, dict):
            problems.append(f"{key}{at}: a detector's settings are a mapping, got a {type(body).__name__}")
            continue
        plugin = _plugin(registry, "detectors", name, f"{key}{at}", problems)
        config = _settings_of(plugin, _unset_nulls(dict(body or {})), key, raw, problems, warnings)
        if config is not None and getattr(config, "enabled", True):
            setups.append(DetectorSetup(name, plugin, config, key))
    return setups


def _plugin(registry: Registry, kind: str, name: str, where: str, problems: list[str],
            unsupported: set[str] | frozenset[str] = frozenset()) -> Any:
    """The plugin of that kind and name, or None with the reason added to ``problems`` (a
    name Beats has that pybeat does not implement says so; an unknown one gets a hint)."""
    try:
        return registry.get(kind, name)
    except KeyError:
        if name in unsupported:
            problems.append(f"{where}: the {name} {kind[:-1]} is not supported by pybeat")
        else:
            installed = registry.names(kind)
            problems.append(f"{where}: " + unknown_name(kind[:-1], name, installed, installed))
    except PluginError as exc:
        problems.append(f"{where}: {exc}")
    return None


def _settings_of(plugin: Any, body: dict[str, Any], key: str, raw: RawConfig, problems: list[str],
                 warnings: list[str]) -> Any:
    """``body`` validated by the plugin's model, or None with the problems recorded."""
    if plugin is None:
        return None
    try:
        return validate(plugin.config_model, body, key, raw, warnings)
    except ConfigError as exc:
        problems += exc.problems
        return None


def _protocols(
    items: list[tuple[str, dict[str, Any]]], raw: RawConfig, registry: Registry, problems: list[str], warnings: list[str]
) -> list[ProtocolSetup]:
    setups: list[ProtocolSetup] = []
    seen_types: dict[str, str] = {}
    for key, item in items:
        at = _where(raw, key)
        ptype = item.get("type")
        if not isinstance(ptype, str) or not ptype:
            problems.append(f"{key}{at}: every protocol needs a 'type' (e.g. type: dns)")
            continue
        try:
            plugin = registry.get("protocols", ptype)
        except KeyError:
            if ptype in PACKETBEAT_PROTOCOLS:
                if not _off(item.get("enabled", True)):
                    warnings.append(f"{key}{at}: protocol {ptype!r} is not supported by pybeat; skipped")
                continue
            installed = registry.names("protocols")
            problems.append(f"{key}.type{at}: " + unknown_name("protocol", ptype, PACKETBEAT_PROTOCOLS | set(installed), installed))
            continue
        except PluginError as exc:
            problems.append(f"{key}{at}: {exc}")
            continue
        try:
            config = validate(plugin.config_model, _unset_nulls(item), key, raw, warnings,
                              beats_prefix=f"packetbeat.protocols.{ptype}")
        except ConfigError as exc:
            problems += exc.problems
            continue
        if not getattr(config, "enabled", True):
            continue
        if ptype in seen_types:
            problems.append(f"{key}{at}: protocol {ptype!r} is configured twice (also {seen_types[ptype]})")
            continue
        seen_types[ptype] = key
        setups.append(ProtocolSetup(ptype, plugin, config, key))

    # Two protocols may not share a port on a transport they both use.
    owners: dict[tuple[str, int], str] = {}
    for p in setups:
        for port in getattr(p.config, "ports", []) or []:
            for transport in sorted(set(p.plugin.transports) & {"udp", "tcp"}):
                other = owners.get((transport, port))
                if other is not None and other != p.name:
                    problems.append(f"{p.key}.ports: duplicate port ({port}) exists in {other} and {p.name} protocols")
                owners[(transport, port)] = p.name
    return setups


def _outputs(
    outputs: dict[str, Any], raw: RawConfig, registry: Registry, problems: list[str], warnings: list[str]
) -> list[OutputSetup]:
    setups: list[OutputSetup] = []
    for name, body in outputs.items():
        key = f"output.{name}"
        at = _where(raw, key)
        if body is not None and not isinstance(body, dict):
            problems.append(f"{key}{at}: an output's settings are a mapping, got a {type(body).__name__}")
            continue
        body = _unset_nulls(dict(body or {}))
        if _off(body.get("enabled", True)):
            continue
        if body.get("queue") is not None:
            problems.append(f"{key}.queue{at}: a queue per output is not supported yet; set queue.mem at the top level")
            continue
        plugin = _plugin(registry, "outputs", name, f"{key}{at}", problems, BEATS_OUTPUTS)
        config = _settings_of(plugin, body, key, raw, problems, warnings)
        if config is not None and getattr(config, "enabled", True) is not False:
            setups.append(OutputSetup(name, plugin, config, key))
    return setups
