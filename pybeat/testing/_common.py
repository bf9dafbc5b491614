"""What every harness shares: the plugin check the registry runs, config validation as the
config layer does it, a logger that records, and the fault log that turns a plugin's
exception into a test failure (or, with ``strict=False``, into the agent's counted fault)."""

from __future__ import annotations

import copy
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from pybeat.api import BeatInfo, Event
from pybeat.config.errors import validate
from pybeat.config.loader import ConfigError
from pybeat.pipeline.faults import FaultLog
from pybeat.plugins import PluginError, PluginInfo, Registry, load_registry
from pybeat.version import __version__

__all__ = ["LogRecord", "PluginFault", "RecordingLogger", "fixed_beat"]


def fixed_beat() -> BeatInfo:
    """The :class:`BeatInfo` the harnesses use: fixed names and ids, so events compare equal
    from run to run (``agent.name`` and ``host.name`` are ``pybeat-test``)."""
    return BeatInfo(beat="packetbeat", name="pybeat-test", hostname="pybeat-test", version=__version__,
                    agent_id=str(uuid.UUID(int=1)), ephemeral_id=str(uuid.UUID(int=2)))


class PluginFault(AssertionError):
    """A plugin raised while a harness drove it. The agent would have contained it (counted
    as ``<kind>.<name>.exceptions``, logged once); a test fails instead, with the plugin's
    own exception as the cause. Pass ``strict=False`` to a harness to see the agent's
    containment instead."""

    def __init__(self, kind: str, name: str, exc: BaseException, during: str):
        super().__init__(f"{kind} {name} raised {type(exc).__name__} during {during}: {exc}")
        self.kind = kind
        self.name = name
        self.exception = exc


@dataclass(frozen=True)
class LogRecord:
    """One call to a plugin's logger: its level, event text and key/values (the bound ones
    included)."""

    level: str
    event: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{self.level}: {self.event}" + (f" {extra}" if extra else "")


class RecordingLogger:
    """A :class:`pybeat.api.Logger` that keeps what it is told (``records``), shared by the
    loggers ``bind`` derives from it. Thread-safe (output clients log from their threads)."""

    def __init__(self, records: list[LogRecord] | None = None, context: Mapping[str, Any] | None = None,
                 lock: threading.Lock | None = None):
        self.records: list[LogRecord] = records if records is not None else []
        self._context = dict(context or {})
        self._lock = lock or threading.Lock()

    def bind(self, **kw: Any) -> "RecordingLogger":
        return RecordingLogger(self.records, {**self._context, **kw}, self._lock)

    def _add(self, level: str, event: str, kw: Mapping[str, Any]) -> None:
        with self._lock:
            self.records.append(LogRecord(level, event, {**self._context, **kw}))

    def debug(self, event: str, **kw: Any) -> None:
        self._add("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._add("error", event, kw)

    def critical(self, event: str, **kw: Any) -> None:
        self._add("critical", event, kw)

    def messages(self, level: str | None = None) -> list[str]:
        """The event texts logged (at ``level`` only, if given)."""
        with self._lock:
            return [r.event for r in self.records if level is None or r.level == level]


class _Faults(FaultLog):
    """The agent's fault log (counts per plugin, one log line per kind) that also keeps each
    exception, so a harness can raise it in the test."""

    def __init__(self, logger: Any):
        super().__init__(logger)
        self.seen: list[tuple[str, str, BaseException, str]] = []

    def record(self, kind: str, name: str, exc: BaseException, what: str = "") -> None:
        super().record(kind, name, exc, what)
        with self._lock:
            self.seen.append((kind, name, exc, what))

    def take(self) -> list[tuple[str, str, BaseException, str]]:
        with self._lock:
            seen, self.seen = self.seen, []
        return seen


def raise_first(faults: _Faults, strict: bool) -> None:
    """In strict mode, the first plugin exception since the last check, as a :class:`PluginFault`."""
    seen = faults.take()
    if strict and seen:
        kind, name, exc, what = seen[0]
        raise PluginFault(kind, name, exc, what or "a call") from exc


def checked(kind: str, plugin: Any, name: str | None = None) -> PluginInfo:
    """The registry's checks on a plugin object (interface, ``api_version``), as if it were
    installed: raises :class:`pybeat.plugins.PluginError` saying why the agent would refuse it."""
    plugin_name = name or getattr(plugin, "name", None)
    if not isinstance(plugin_name, str) or not plugin_name:
        raise PluginError(f"{kind[:-1]} plugin {plugin!r} has no name")
    info = PluginInfo(kind, plugin_name, f"{type(plugin).__module__}:{type(plugin).__name__}", "<test>", plugin)
    info.load()
    if info.error:
        raise PluginError(f"{kind[:-1]} plugin {plugin_name!r} cannot be used: {info.error}")
    return info


def registry_with(kind: str, info: PluginInfo) -> Registry:
    """The installed plugins, with ``info`` taking its name's place (the plugin under test may
    be installed, or not: either way, this object is the one used)."""
    registry = load_registry()
    registry.plugins[kind] = {n: i for n, i in registry.plugins[kind].items()
                              if n != info.name and not n.startswith(f"{info.name} (")}
    registry.plugins[kind][info.name] = info
    return registry


def config_of(model: type[Any], config: Any, prefix: str, defaults: Mapping[str, Any] | None = None) -> Any:
    """A plugin's config: a model instance as it is, a mapping validated by ``model`` as the
    config layer validates it (keys written without a value are unset; every problem named
    with its key). Raises :class:`pybeat.config.loader.ConfigError`."""
    if config is not None and not isinstance(config, Mapping):
        if isinstance(config, model):
            return config
        raise TypeError(f"config must be a mapping or a {model.__name__}, not {type(config).__name__}")
    body = {**(defaults or {}), **_unset_nulls(dict(config or {}))}
    return validate(model, body, prefix)


def _unset_nulls(body: dict[str, Any]) -> dict[str, Any]:
    return {k: (_unset_nulls(v) if isinstance(v, dict) else v) for k, v in body.items() if v is not None}


def snapshot(event: Event) -> Event:
    """An independent copy of an event as it is now (later changes by the pipeline do not
    reach it)."""
    if event.raw is not None:  # pre-encoded (built-in protocols): bytes do not change
        return Event(event.timestamp_ns, None, copy.deepcopy(event.meta), raw=event.raw, digest=event.digest)
    return Event(event.timestamp_ns, copy.deepcopy(event.fields), copy.deepcopy(event.meta))

