"""The plugin registry: protocols, outputs, processors and detectors found through entry points.

Built-ins register through the same entry-point groups as third-party plugins
(``pybeat.protocols``, ``pybeat.outputs``, ``pybeat.processors``, ``pybeat.detectors``). A
plugin is imported on first use and checked then: one that fails to import, breaks its
interface, asks for a ``pybeat.api`` version this agent cannot serve, or shares its name with
another plugin of its kind is marked broken, with the reason; using it in a config is an error
that says why, and every other plugin keeps working.

API versions: a plugin declares ``api_version = "1.0"`` (the version of ``pybeat.api`` it was
written for). This agent serves ``1.x`` up to its own minor version; a plugin that declares
nothing is served as written for 0.1, the first published API (see ``pybeat._compat``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pybeat.api import API_VERSION

GROUPS = {
    "protocols": "pybeat.protocols",
    "outputs": "pybeat.outputs",
    "processors": "pybeat.processors",
    "detectors": "pybeat.detectors",
}

#: what each kind's plugin object must have, for the current API and for 0.1
_REQUIRED = {
    "protocols": ("name", "transports", "config_model", "create"),
    "outputs": ("name", "config_model", "create"),
    "processors": ("name", "config_model", "create"),
    "detectors": ("name", "config_model", "protocols", "create"),
}
_REQUIRED_0_1 = {"outputs": ("name", "config_model", "create", "workers", "batch_size")}

LEGACY_API = (0, 1)
_CURRENT = tuple(int(x) for x in API_VERSION.split(".")[:2])

#: what changed since each version an old plugin may ask for (shown when it is refused)
CHANGES = {
    (0,): "1.0 made outputs return an OutputGroup from create() (the agent owns retries and "
          "backoff), gave processors a ProcessorContext, typed every context and added detectors; "
          "0.1 plugins that declare no api_version keep working",
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
    #: the pybeat.api version the plugin declares ("0.1" when it declares none)
    api_version: str = ""
    #: served through the 0.1 compatibility layer
    legacy: bool = False

    def load(self) -> None:
        """Import the plugin on first use (a run imports only the plugins its config names)."""
        if self.loaded:
            return
        self.loaded = True
        if self.error:  # refused before import (a name clash)
            return
        if self.entry_point is not None:
            try:
                self.plugin = self.entry_point.load()
            except Exception as exc:  # a broken plugin must not stop the agent from listing the rest
                self.error = f"import failed: {type(exc).__name__}: {exc}"
                return
        self.error = self._check()

    def _check(self) -> str | None:
        obj = self.plugin
        declared = getattr(obj, "api_version", None)
        if declared is None:
            self.api_version, self.legacy = "0.1", True
        else:
            self.api_version = str(declared)
            problem = api_version_problem(self.api_version)
            if problem:
                return problem
            self.legacy = _parse(self.api_version) == LEGACY_API
        required = _REQUIRED_0_1.get(self.kind, _REQUIRED[self.kind]) if self.legacy else _REQUIRED[self.kind]
        if self.kind == "detectors" and self.legacy:
            return "detectors need pybeat.api 1.0 or later (declare api_version = \"1.0\")"
        missing = [a for a in required if not hasattr(obj, a)]
        if missing:
            return f"does not provide {', '.join(missing)}"
        if getattr(obj, "name") != self.name:
            return f"calls itself {obj.name!r} but is registered as {self.name!r}"
        return None


def _parse(version: str) -> tuple[int, int] | None:
    parts = version.strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 else 0
    except (ValueError, IndexError):
        return None
    return major, minor


def api_version_problem(declared: str) -> str | None:
    """None when this agent can serve a plugin written for ``declared``, else why not."""
    version = _parse(declared)
    if version is None:
        return f"declares api_version {declared!r}, which is not a version such as \"1.0\""
    if version == LEGACY_API:
        return None
    major, minor = version
    if major == _CURRENT[0] and minor <= _CURRENT[1]:
        return None
    if major < _CURRENT[0]:
        return (f"is written for pybeat.api {declared}, which this agent ({API_VERSION}) no longer serves: "
                f"{CHANGES.get((major,), 'see CHANGELOG.md')}")
    return (f"needs pybeat.api {declared}, newer than this agent's {API_VERSION}: upgrade pybeat, "
            "or use a version of the plugin written for this API")


@dataclass
class Registry:
    plugins: dict[str, dict[str, PluginInfo]] = field(default_factory=lambda: {k: {} for k in GROUPS})

    def info(self, kind: str, name: str) -> PluginInfo:
        """The plugin's entry, imported and checked; KeyError if none has that name."""
        info = self.plugins[kind].get(name)
        if info is None:
            raise KeyError(name)
        info.load()
        return info

    def get(self, kind: str, name: str) -> Any:
        info = self.info(kind, name)
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

    def usable(self, kind: str) -> list[Any]:
        """Every plugin of a kind that loads and passes its checks (for capabilities such as
        ``export template`` that any installed plugin may offer)."""
        out = []
        for name in self.names(kind):
            info = self.info(kind, name)
            if not info.error:
                out.append(info.plugin)
        return out


def load_registry(extra: dict[str, dict[str, Any]] | None = None) -> Registry:
    """Find every entry point; ``extra`` adds in-process plugins (tests, embedding)."""
    reg = Registry()
    found = entry_points()  # one scan of the installed distributions for all groups
    dist_names: dict[int, str] = {}  # a distribution's name parses its metadata: once per distribution
    for kind, group in GROUPS.items():
        seen: dict[str, PluginInfo] = {}
        for ep in found.select(group=group):
            ep_dist = getattr(ep, "dist", None)
            if id(ep_dist) not in dist_names:
                dist_names[id(ep_dist)] = getattr(ep_dist, "name", "") or ""
            dist = dist_names[id(ep_dist)]
            info = PluginInfo(kind, ep.name, ep.value, dist, entry_point=ep)
            other = seen.get(ep.name)
            if other is not None and other.value != ep.value:
                # Neither is used: which one the agent picked would depend on install order.
                clash = (f"two {kind} plugins are named {ep.name!r}: {other.value} ({other.distribution or '?'}) "
                         f"and {ep.value} ({dist or '?'}); uninstall one of them")
                other.error = info.error = clash
                info.loaded = True
                seen[f"{ep.name} ({ep.value})"] = info  # listed by `pybeat plugins`, never resolved by name
                continue
            seen.setdefault(ep.name, info)
        reg.plugins[kind] = seen
    for kind, plugins in (extra or {}).items():
        for name, obj in plugins.items():
            info = PluginInfo(kind, name, f"{type(obj).__module__}:{type(obj).__name__}", "<in-process>", obj)
            if name in reg.plugins[kind]:
                existing = reg.plugins[kind][name]
                existing.error = info.error = (f"two {kind} plugins are named {name!r}: {existing.value} and "
                                               f"{info.value}; uninstall one of them")
                info.loaded = True
                reg.plugins[kind][f"{name} ({info.value})"] = info
                continue
            reg.plugins[kind][name] = info
    return reg
