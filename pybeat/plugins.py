"""The plugin registry: protocols, outputs and processors found through entry points.

Built-ins register through the same entry-point groups as third-party plugins
(``pybeat.protocols``, ``pybeat.outputs``, ``pybeat.processors``). A plugin that fails to
import or does not satisfy its interface is reported by name and left out; using it in a config
is then an error that says why. Two plugins with one name in a group are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUPS = {
    "protocols": "pybeat.protocols",
    "outputs": "pybeat.outputs",
    "processors": "pybeat.processors",
}

_REQUIRED = {
    "protocols": ("name", "transports", "config_model", "create"),
    "outputs": ("name", "config_model", "create", "workers", "batch_size"),
    "processors": ("name", "config_model", "create"),
}


class PluginError(Exception):
    """A plugin cannot be used: it failed to load, breaks its interface, or clashes."""


@dataclass
class PluginInfo:
    kind: str
    name: str
    value: str  # "module:attr"
    distribution: str
    plugin: Any = None
    error: str | None = None


@dataclass
class Registry:
    plugins: dict[str, dict[str, PluginInfo]] = field(default_factory=lambda: {k: {} for k in GROUPS})

    def get(self, kind: str, name: str) -> Any:
        info = self.plugins[kind].get(name)
        if info is None:
            raise KeyError(name)
        if info.error:
            raise PluginError(f"{kind[:-1]} plugin {name!r} ({info.value}) cannot be used: {info.error}")
        return info.plugin

    def names(self, kind: str) -> list[str]:
        return sorted(n for n, i in self.plugins[kind].items() if not i.error)

    def all(self) -> list[PluginInfo]:
        return [i for group in self.plugins.values() for i in group.values()]


def _check(kind: str, name: str, obj: Any) -> str | None:
    missing = [a for a in _REQUIRED[kind] if not hasattr(obj, a)]
    if missing:
        return f"does not provide {', '.join(missing)}"
    if getattr(obj, "name") != name:
        return f"calls itself {obj.name!r} but is registered as {name!r}"
    return None


def _load_one(kind: str, ep: EntryPoint) -> PluginInfo:
    dist = getattr(getattr(ep, "dist", None), "name", "") or ""
    info = PluginInfo(kind, ep.name, ep.value, dist)
    try:
        info.plugin = ep.load()
    except Exception as exc:  # a broken plugin must not stop the agent from listing the rest
        info.error = f"import failed: {type(exc).__name__}: {exc}"
        return info
    info.error = _check(kind, ep.name, info.plugin)
    return info


def load_registry(extra: dict[str, dict[str, Any]] | None = None) -> Registry:
    """Load every entry point; ``extra`` adds in-process plugins (tests, embedding)."""
    reg = Registry()
    for kind, group in GROUPS.items():
        seen: dict[str, PluginInfo] = {}
        for ep in entry_points(group=group):
            info = _load_one(kind, ep)
            if ep.name in seen and seen[ep.name].value != ep.value:
                raise PluginError(
                    f"two {kind} plugins are named {ep.name!r}: {seen[ep.name].value} "
                    f"({seen[ep.name].distribution}) and {ep.value} ({info.distribution})"
                )
            seen[ep.name] = info
        reg.plugins[kind] = seen
    for kind, plugins in (extra or {}).items():
        for name, obj in plugins.items():
            if name in reg.plugins[kind]:
                raise PluginError(f"two {kind} plugins are named {name!r}")
            info = PluginInfo(kind, name, f"{type(obj).__module__}:{type(obj).__name__}", "<in-process>", obj)
            info.error = _check(kind, name, obj)
            reg.plugins[kind][name] = info
    return reg
