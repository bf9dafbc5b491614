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
    entry_point: EntryPoint | None = None
    loaded: bool = False

    def load(self) -> None:
        """Import the plugin on first use (a run imports only the plugins its config names)."""
        if self.loaded:
            return
        self.loaded = True
        if self.entry_point is not None:
            try:
                self.plugin = self.entry_point.load()
            except Exception as exc:  # a broken plugin must not stop the agent from listing the rest
                self.error = f"import failed: {type(exc).__name__}: {exc}"
                return
        self.error = _check(self.kind, self.name, self.plugin)


@dataclass
class Registry:
    plugins: dict[str, dict[str, PluginInfo]] = field(default_factory=lambda: {k: {} for k in GROUPS})

    def get(self, kind: str, name: str) -> Any:
        info = self.plugins[kind].get(name)
        if info is None:
            raise KeyError(name)
        info.load()
        if info.error:
            raise PluginError(f"{kind[:-1]} plugin {name!r} ({info.value}) cannot be used: {info.error}")
        return info.plugin

    def names(self, kind: str) -> list[str]:
        """Registered names (not imported: a broken one is reported when it is used)."""
        return sorted(self.plugins[kind])

    def all(self) -> list[PluginInfo]:
        """Every plugin, imported and checked (for ``pybeat plugins``)."""
        infos = [i for group in self.plugins.values() for i in group.values()]
        for info in infos:
            info.load()
        return infos


def _check(kind: str, name: str, obj: Any) -> str | None:
    missing = [a for a in _REQUIRED[kind] if not hasattr(obj, a)]
    if missing:
        return f"does not provide {', '.join(missing)}"
    if getattr(obj, "name") != name:
        return f"calls itself {obj.name!r} but is registered as {name!r}"
    return None


def load_registry(extra: dict[str, dict[str, Any]] | None = None) -> Registry:
    """Find every entry point; ``extra`` adds in-process plugins (tests, embedding)."""
    reg = Registry()
    found = entry_points()  # one scan of the installed distributions for all three groups
    dist_names: dict[int, str] = {}  # a distribution's name parses its metadata: once per distribution
    for kind, group in GROUPS.items():
        seen: dict[str, PluginInfo] = {}
        for ep in found.select(group=group):
            ep_dist = getattr(ep, "dist", None)
            if id(ep_dist) not in dist_names:
                dist_names[id(ep_dist)] = getattr(ep_dist, "name", "") or ""
            dist = dist_names[id(ep_dist)]
            if ep.name in seen and seen[ep.name].value != ep.value:
                raise PluginError(
                    f"two {kind} plugins are named {ep.name!r}: {seen[ep.name].value} "
                    f"({seen[ep.name].distribution}) and {ep.value} ({dist})"
                )
            seen[ep.name] = PluginInfo(kind, ep.name, ep.value, dist, entry_point=ep)
        reg.plugins[kind] = seen
    for kind, plugins in (extra or {}).items():
        for name, obj in plugins.items():
            if name in reg.plugins[kind]:
                raise PluginError(f"two {kind} plugins are named {name!r}")
            info = PluginInfo(kind, name, f"{type(obj).__module__}:{type(obj).__name__}", "<in-process>", obj)
            reg.plugins[kind][name] = info
    return reg
