"""Built-in processors: add_fields, add_tags, add_labels, add_host_metadata, drop_event,
drop_fields, include_fields, rename, copy_fields. Each module-level object is a plugin
registered in the ``pybeat.processors`` entry-point group.
"""

from __future__ import annotations

import copy
import os
import platform
import socket
import threading
import time
from typing import Any

from pydantic import Field

from pybeat.api import Duration, Event, PluginConfig, ProcessorContext

from ._fields import MISSING, FieldError, delete_value, get_value, has_value, put_value


class _Plugin:
    name = ""
    api_version = "1.0"
    config_model: type[PluginConfig] = PluginConfig

    def create(self, config: Any, ctx: ProcessorContext) -> Any:
        raise NotImplementedError


def add_error(event: Event, message: str) -> None:
    """Append ``message`` to ``error.message`` (a string for one, a list for several)."""
    err = event.fields.get("error")
    if not isinstance(err, dict):
        err = event.fields["error"] = {}
    msg = err.get("message")
    if msg is None:
        err["message"] = message
    elif isinstance(msg, list):
        msg.append(message)
    else:
        err["message"] = [msg, message]


# -- add_fields ---------------------------------------------------------------------------
class AddFieldsConfig(PluginConfig):
    target: str | None = None
    fields: dict[str, Any]


class AddFields:
    def __init__(self, target: str, fields: dict[str, Any]):
        self.target = target
        self.fields = fields

    def run(self, event: Event) -> Event:
        node = event.fields
        target = self.target
        if target == "@metadata" or target.startswith("@metadata."):
            node, target = event.meta, target[len("@metadata."):]
        if target:
            for part in target.split("."):
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
        _deep_merge(node, copy.deepcopy(self.fields))
        return event


class AddFieldsPlugin(_Plugin):
    name = "add_fields"
    config_model = AddFieldsConfig

    def create(self, config: AddFieldsConfig, ctx: ProcessorContext) -> AddFields:
        return AddFields("fields" if config.target is None else config.target, config.fields)


def _deep_merge(target: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(target.get(k), dict):
            _deep_merge(target[k], v)
        else:
            target[k] = v


# -- add_tags / add_labels ---------------------------------------------------------------
class AddTagsConfig(PluginConfig):
    tags: list[str] | str
    target: str = "tags"


class AddTags:
    def __init__(self, tags: list[str], target: str):
        self.tags = tags
        self.target = target

    def run(self, event: Event) -> Event:
        existing = event.get(self.target)
        if not isinstance(existing, list):
            existing = [] if existing is None else [existing]
        for t in self.tags:
            if t not in existing:
                existing.append(t)
        event.put(self.target, existing)
        return event


class AddTagsPlugin(_Plugin):
    name = "add_tags"
    config_model = AddTagsConfig

    def create(self, config: AddTagsConfig, ctx: ProcessorContext) -> AddTags:
        tags = [config.tags] if isinstance(config.tags, str) else list(config.tags)
        return AddTags(tags, config.target)


class AddLabelsConfig(PluginConfig):
    labels: dict[str, Any]


class AddLabelsPlugin(_Plugin):
    name = "add_labels"
    config_model = AddLabelsConfig

    def create(self, config: AddLabelsConfig, ctx: ProcessorContext) -> AddFields:
        flat: dict[str, Any] = {}

        def walk(prefix: str, node: dict[str, Any]) -> None:
            for k, v in node.items():
                key = f"{prefix}.{k}" if prefix else k
                if isinstance(v, dict):
                    walk(key, v)
                else:
                    flat[key] = v

        walk("", config.labels)
        return AddFields("labels", flat)


# -- add_host_metadata (its netinfo/cache/geo settings are add_observer_metadata's too) ----
class NetInfo(PluginConfig):
    enabled: bool = True


class CacheConfig(PluginConfig):
    ttl: Duration = 300.0


class GeoConfig(PluginConfig):
    name: str | None = None
    location: str | None = None
    continent_name: str | None = None
    country_iso_code: str | None = None
    region_name: str | None = None
    region_iso_code: str | None = None
    city_name: str | None = None

    def fields(self) -> dict[str, Any]:
        """``host.geo`` / ``observer.geo``: the set keys; ``location`` "lat, lon" as a geo point (Beats)."""
        g = {k: v for k, v in self.model_dump().items() if v is not None}
        if "location" in g:
            try:
                lat, lon = (float(x) for x in str(g["location"]).split(","))
            except ValueError:
                raise ValueError("geo.location must be 'latitude, longitude'") from None
            g["location"] = {"lat": lat, "lon": lon}
        return g


class AddHostMetadataConfig(PluginConfig):
    netinfo: NetInfo = NetInfo()
    cache: CacheConfig = CacheConfig()
    geo: GeoConfig | None = None
    replace_fields: bool = True
    name: str | None = None


def host_metadata(netinfo: bool = True, name: str | None = None) -> dict[str, Any]:
    """ECS ``host.*`` of this machine (what libbeat's add_host_metadata reports)."""
    hostname = socket.gethostname()
    host: dict[str, Any] = {
        "name": name or hostname,
        "hostname": hostname,
        "architecture": platform.machine(),
        "os": {
            "type": platform.system().lower(),
            "family": "",
            "platform": "",
            "name": platform.system(),
            "kernel": platform.release(),
        },
    }
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            rel = dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)
        strip = lambda v: v.strip().strip('"')  # noqa: E731
        host["os"].update(
            {
                "name": strip(rel.get("NAME", "")),
                "platform": strip(rel.get("ID", "")),
                "version": strip(rel.get("VERSION", "")),
                "family": strip(rel.get("ID_LIKE", rel.get("ID", ""))).split()[0] if rel.get("ID_LIKE") or rel.get("ID") else "",
                "codename": strip(rel.get("VERSION_CODENAME", "")),
            }
        )
    except OSError:
        pass
    try:
        with open("/etc/machine-id", encoding="utf-8") as fh:
            host["id"] = fh.read().strip()
    except OSError:
        pass
    if netinfo:
        host.update(netinfo_fields())
    host["os"] = {k: v for k, v in host["os"].items() if v}
    return host


def netinfo_fields() -> dict[str, list[str]]:
    """``ip`` and ``mac`` of this machine, each when known (``netinfo.enabled`` of
    add_host_metadata and add_observer_metadata)."""
    ips, macs = _interfaces()
    return {k: v for k, v in (("ip", ips), ("mac", macs)) if v}


def _interfaces() -> tuple[list[str], list[str]]:
    ips: list[str] = []
    macs: list[str] = []
    try:
        import fcntl  # noqa: F401  (Linux only; elsewhere fall back to resolver)

        base = "/sys/class/net"
        for ifname in sorted(os.listdir(base)):
            try:
                with open(f"{base}/{ifname}/address", encoding="ascii") as fh:
                    mac = fh.read().strip().upper().replace(":", "-")
                if mac and mac != "00-00-00-00-00-00":
                    macs.append(mac)
            except OSError:
                pass
    except (ImportError, OSError):
        pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            for line in fh:
                raw = line.split()[0]
                ips.append(str(__import__("ipaddress").ip_address(int(raw, 16))))
    except OSError:
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addr = str(info[4][0])
            if addr not in ips:
                ips.insert(0, addr)
    except OSError:
        pass
    return ips, sorted(set(macs))


class AddHostMetadata:
    """Adds ``host.*`` (with ``host.geo`` when configured); the lookup is cached for
    ``cache.ttl`` (5 minutes) and refreshed off the event path."""

    def __init__(self, netinfo: bool, name: str | None, replace: bool, ttl: float = 300.0,
                 geo: dict[str, Any] | None = None):
        self.netinfo = netinfo
        self.name = name
        self.replace = replace
        self.ttl = ttl
        self.geo = geo or {}
        self._host = self._lookup()
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _lookup(self) -> dict[str, Any]:
        host = host_metadata(self.netinfo, self.name)
        if self.geo:
            host["geo"] = dict(self.geo)
        return host

    def _current(self) -> dict[str, Any]:
        if time.monotonic() - self._stamp > self.ttl:
            with self._lock:
                if time.monotonic() - self._stamp > self.ttl:
                    self._stamp = time.monotonic()
                    threading.Thread(target=self._refresh, daemon=True).start()
        return self._host

    def _refresh(self) -> None:
        self._host = self._lookup()

    def run(self, event: Event) -> Event:
        host = event.fields.get("host")
        if isinstance(host, dict) and not self.replace and len(host) > 1:
            return event
        event.fields["host"] = copy.deepcopy(self._current())
        return event


class AddHostMetadataPlugin(_Plugin):
    name = "add_host_metadata"
    config_model = AddHostMetadataConfig

    def create(self, config: AddHostMetadataConfig, ctx: ProcessorContext) -> AddHostMetadata:
        return AddHostMetadata(config.netinfo.enabled, config.name, config.replace_fields, config.cache.ttl,
                               config.geo.fields() if config.geo is not None else None)


# -- drop_event / drop_fields / include_fields ------------------------------------------
class EmptyConfig(PluginConfig):
    pass


class DropEvent:
    def run(self, event: Event) -> None:
        return None


class DropEventPlugin(_Plugin):
    name = "drop_event"
    config_model = EmptyConfig

    def create(self, config: EmptyConfig, ctx: ProcessorContext) -> DropEvent:
        return DropEvent()


class DropFieldsConfig(PluginConfig):
    fields: list[str]
    ignore_missing: bool = False


_PROTECTED = {"@timestamp", "type"}


class DropFields:
    """Beats' drop_fields: names, or ``/regexp/`` matched against every dotted key; a named
    field that is missing is logged at debug (once per field) unless ``ignore_missing``."""

    def __init__(self, fields: list[str], ignore_missing: bool = False, logger: Any = None):
        import re

        self.fields = [f for f in fields if f not in _PROTECTED and not (len(f) > 2 and f[0] == f[-1] == "/")]
        self.patterns = [re.compile(f[1:-1]) for f in fields if len(f) > 2 and f[0] == f[-1] == "/"]
        self.ignore_missing = ignore_missing
        self.logger = logger
        self.missing = 0
        self._reported: set[str] = set()

    def run(self, event: Event) -> Event:
        for f in self.fields:
            if not delete_value(event, f) and not self.ignore_missing:
                self.missing += 1
                if f not in self._reported and self.logger is not None and len(self._reported) < 64:
                    self._reported.add(f)
                    self.logger.debug("drop_fields: field not found (set ignore_missing: true to silence)", field=f)
        if self.patterns:
            for key in _dotted_keys(event.fields):
                if key not in _PROTECTED and any(p.search(key) for p in self.patterns):
                    delete_value(event, key)
        return event


def _dotted_keys(node: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for k, v in node.items():
        key = f"{prefix}.{k}" if prefix else k
        out.append(key)
        if isinstance(v, dict):
            out += _dotted_keys(v, key)
    return out


class DropFieldsPlugin(_Plugin):
    name = "drop_fields"
    config_model = DropFieldsConfig

    def create(self, config: DropFieldsConfig, ctx: ProcessorContext) -> DropFields:
        return DropFields(config.fields, config.ignore_missing, ctx.logger)


class IncludeFieldsConfig(PluginConfig):
    fields: list[str]


class IncludeFields:
    def __init__(self, fields: list[str]):
        self.fields = list(dict.fromkeys([*fields, "type"]))

    def run(self, event: Event) -> Event:
        kept = Event(event.timestamp_ns, {}, event.meta)
        for f in self.fields:
            value = event.get(f)
            if value is not None:
                kept.put(f, value)
        event.fields = kept.fields
        return event


class IncludeFieldsPlugin(_Plugin):
    name = "include_fields"
    config_model = IncludeFieldsConfig

    def create(self, config: IncludeFieldsConfig, ctx: ProcessorContext) -> IncludeFields:
        return IncludeFields(config.fields)


# -- rename / copy_fields ----------------------------------------------------------------
class FromTo(PluginConfig):
    from_: str = Field(alias="from")
    to: str


class RenameConfig(PluginConfig):
    fields: list[FromTo]
    ignore_missing: bool = False
    fail_on_error: bool = True


class Rename:
    """Beats' rename and copy_fields: a target that exists is an error (never overwritten); a
    missing source is an error unless ``ignore_missing``. On an error with ``fail_on_error``
    (the default) the event is restored as it was before this processor and the error is
    added to ``error.message``; without it, the remaining pairs still run."""

    def __init__(self, pairs: list[tuple[str, str]], copy_only: bool = False, ignore_missing: bool = False,
                 fail_on_error: bool = True):
        self.pairs = pairs
        self.copy_only = copy_only
        self.ignore_missing = ignore_missing
        self.fail_on_error = fail_on_error

    def _one(self, event: Event, src: str, dst: str) -> None:
        if has_value(event, dst):
            raise FieldError(f"target field {dst} already exists, drop or rename this field first")
        value = get_value(event, src)
        if value is MISSING:
            if self.ignore_missing:
                return
            raise FieldError(f"could not fetch value for key: {src}, Error: key not found")
        if self.copy_only:
            put_value(event, dst, copy.deepcopy(value))
        else:
            delete_value(event, src)
            put_value(event, dst, value)

    def run(self, event: Event) -> Event:
        backup = None
        if self.fail_on_error:
            backup = (copy.deepcopy(event.fields), copy.deepcopy(event.meta))
        for src, dst in self.pairs:
            try:
                self._one(event, src, dst)
            except FieldError as exc:
                if backup is not None:
                    event.fields, event.meta = backup
                    verb = "copy" if self.copy_only else "rename"
                    add_error(event, f"Failed to {verb} fields in processor: {exc}")
                    return event
        return event


class RenamePlugin(_Plugin):
    name = "rename"
    config_model = RenameConfig

    def create(self, config: RenameConfig, ctx: ProcessorContext) -> Rename:
        return Rename([(p.from_, p.to) for p in config.fields], False, config.ignore_missing, config.fail_on_error)


class CopyFieldsConfig(PluginConfig):
    fields: list[FromTo]
    ignore_missing: bool = False
    fail_on_error: bool = True


class CopyFieldsPlugin(_Plugin):
    name = "copy_fields"
    config_model = CopyFieldsConfig

    def create(self, config: CopyFieldsConfig, ctx: ProcessorContext) -> Rename:
        return Rename([(p.from_, p.to) for p in config.fields], True, config.ignore_missing, config.fail_on_error)


add_fields = AddFieldsPlugin()
add_tags = AddTagsPlugin()
add_labels = AddLabelsPlugin()
add_host_metadata = AddHostMetadataPlugin()
drop_event = DropEventPlugin()
drop_fields = DropFieldsPlugin()
include_fields = IncludeFieldsPlugin()
rename = RenamePlugin()
copy_fields = CopyFieldsPlugin()
