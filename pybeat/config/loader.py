"""Read a Beats-style YAML config into a plain nested dict, remembering where each key was.

Owns: YAML loading with line numbers (yamltree.py), dotted keys (``packetbeat.interfaces.device:
any``) merged with nested ones, several files merged in order (maps deeply, lists replaced),
the files ``pybeat.config.d`` includes, ``${VAR}`` / ``${VAR:default}`` expansion (path.*,
keystore, environment), ``-E key=value`` overrides, and the ``pybeat.*`` alias of ``packetbeat.*``. Validation is models.py's job; this module only reads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import yaml

from pybeat.config import yamltree

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^}]*))?\}")


class ConfigError(Exception):
    """A config problem, phrased for the person who wrote the file."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


@dataclass
class RawConfig:
    """The merged config tree plus where each dotted key came from (``file:line`` or ``-E``)."""

    data: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # the first -c file
    paths: list[str] = field(default_factory=list)  # every file merged, in order

    def origin(self, dotted: str) -> str | None:
        """Where ``dotted`` (or its nearest parent) was set."""
        key = dotted
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key.rpartition(".")[0]
        return None

    def written(self, dotted: str) -> str:
        """``dotted`` as the config wrote it: a ``packetbeat.*`` key set through its
        ``pybeat.*`` alias is named ``pybeat.*`` (merge_alias keeps both origins)."""
        if not dotted.startswith("packetbeat."):
            return dotted
        parts = dotted.split(".")
        for i in range(len(parts), 1, -1):  # the nearest key (or parent) set in either spelling
            alias = ".".join(["pybeat", *parts[1:i]])
            own = self.origins.get(".".join(parts[:i]))
            if alias in self.origins:
                return "pybeat" + dotted[len("packetbeat"):] if own == self.origins[alias] else dotted
            if own is not None:
                return dotted
        return dotted


def _merge(target: dict[str, Any], key_path: list[str], value: Any) -> None:
    node: Any = target
    for i, part in enumerate(key_path[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            # -E packetbeat.protocols.0.ports=[53]: an index into an existing list
            if not isinstance(node[int(part)], dict):
                node[int(part)] = {}
            node = node[int(part)]
            continue
        if isinstance(node, list):
            raise ConfigError(f"{'.'.join(key_path)}: {part} is not an index of the list {'.'.join(key_path[:i])}")
        child = node.get(part)
        if not isinstance(child, (dict, list)) or (isinstance(child, list) and not key_path[i + 1].isdigit()):
            child = node[part] = {}
        node = child
    leaf = key_path[-1]
    if isinstance(node, list):
        if leaf.isdigit() and int(leaf) < len(node):
            node[int(leaf)] = value
            return
        raise ConfigError(f"{'.'.join(key_path)}: index {leaf} is past the end of the list")
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        for k, v in value.items():
            _merge(node[leaf], [k], v)
    else:
        node[leaf] = value


def parse_yaml(text: str, where: str = "<config>") -> tuple[dict[str, Any], dict[str, str]]:
    """One YAML file's keys (dotted ones expanded) and the ``file:line`` of each."""
    try:
        data, origins = yamltree.parse(text, where, _merge)
    except yamltree.YamlInputError as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        return {}, origins
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the config must be a mapping of keys, not a {type(data).__name__}")
    return data, origins


def expand_vars(
    value: Any, env: Mapping[str, str], keystore: Mapping[str, str] | None = None, key: str = "",
    path_vars: Mapping[str, str] | None = None,
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:default}``: ``${path.home|config|data|logs}`` first, then
    the keystore, then the environment."""
    if isinstance(value, dict):
        return {k: expand_vars(v, env, keystore, f"{key}.{k}" if key else k, path_vars) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, env, keystore, f"{key}.{i}", path_vars) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if path_vars and name in path_vars:
            return path_vars[name]
        if keystore and name in keystore:
            return keystore[name]
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{key}: the variable ${{{name}}} is not set (set it in the environment, or give a "
            f"default as ${{{name}:value}})"
        )

    # The result stays a string: the models convert it where a number or a boolean is expected
    # (``port: ${PORT:9200}``), and a secret such as ``0123`` or ``yes`` is not re-read as YAML.
    return _VAR.sub(lookup, value)


def apply_override(raw: RawConfig, setting: str) -> None:
    """Apply one ``-E key=value`` (value parsed as YAML, like Beats)."""
    key, sep, text = setting.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"-E {setting!r}: expected key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    _merge(raw.data, key.split("."), value)
    raw.origins[key] = f"-E {key}"


def merge_alias(data: dict[str, Any], origins: dict[str, str]) -> None:
    """``pybeat.*`` is an alias of ``packetbeat.*``; both may be used, pybeat wins on conflicts."""
    alias = data.pop("pybeat", None)
    if isinstance(alias, dict):
        target = data.setdefault("packetbeat", {})
        for k, v in alias.items():
            _merge(target, [k], v)
        for key in [k for k in origins if k == "pybeat" or k.startswith("pybeat.")]:
            origins["packetbeat" + key[len("pybeat"):]] = origins[key]


def read_file(path: str) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(yamltree.MAX_FILE_BYTES + 1)
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {path!r}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from None
    return parse_yaml(text, os.path.basename(path))


def merge_file(raw: RawConfig, data: dict[str, Any], origins: dict[str, str]) -> None:
    """Merge one file's keys over ``raw``: mappings merge key by key, anything else (a list, a
    scalar) replaces what was there; a later file wins."""
    for key, value in data.items():
        if isinstance(value, list) or not isinstance(value, dict):
            _forget_below(raw.origins, key)
        _merge(raw.data, [key], value)
    _replaced_lists(raw.origins, data, "")
    raw.origins.update(origins)


def _replaced_lists(origins: dict[str, str], node: Any, prefix: str) -> None:
    """A list a later file sets replaces the earlier list: forget where the old items were."""
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, list):
                _forget_below(origins, key)
            else:
                _replaced_lists(origins, v, key)


def _forget_below(origins: dict[str, str], key: str) -> None:
    for k in [k for k in origins if k.startswith(key + ".")]:
        del origins[k]


#: The key that names further config files to merge (``pybeat.config.d`` also works: pybeat.*
#: is an alias of packetbeat.*): a glob or a list of globs, relative to path.config.
INCLUDE_KEY = ("config", "d")


def include(raw: RawConfig, config_dir: str, env: Mapping[str, str], path_vars: Mapping[str, str]) -> list[str]:
    """Merge the files named by ``pybeat.config.d`` after the -c files, in name order within each
    glob. Included files may not include further. Returns the files merged."""
    import glob

    patterns: Any = None
    where: str | None = None
    for section in ("packetbeat", "pybeat"):
        node = raw.data.get(section)
        if isinstance(node, dict) and isinstance(node.get("config"), dict) and "d" in node["config"]:
            patterns = node["config"]["d"]
            where = raw.origin(f"{section}.config.d")
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    at = f" ({where})" if where else ""
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"pybeat.config.d{at}: a glob such as pybeat.d/*.yml, or a list of globs")
    merged: list[str] = []
    for pattern in patterns:
        pattern = expand_vars(pattern, env, None, "pybeat.config.d", path_vars)
        full = pattern if os.path.isabs(pattern) else os.path.join(config_dir, pattern)
        for path in sorted(glob.glob(full)):
            if not os.path.isfile(path) or path in raw.paths or path in merged:
                continue
            data, origins = read_file(path)
            for section in ("packetbeat", "pybeat"):
                node = data.get(section)
                if isinstance(node, dict) and isinstance(node.get("config"), dict) and "d" in node["config"]:
                    raise ConfigError(f"{os.path.basename(path)}: an included file cannot include others "
                                      f"(pybeat.config.d is for the main config)")
            merge_file(raw, data, origins)
            merged.append(path)
    raw.paths += merged
    return merged


def load(
    path: str | Sequence[str] | None,
    overrides: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    keystore: Mapping[str, str] | None = None,
    *,
    config_dir: str | None = None,
    path_vars: Mapping[str, str] | None = None,
    expand: bool = True,
    includes: bool = True,
) -> RawConfig:
    """Read the config files in order (None or []: an empty config), merge the files that
    ``pybeat.config.d`` names, apply ``-E`` overrides and expand variables (``expand=False``
    leaves that to :func:`expand_config`, once the keystore is open)."""
    paths = [path] if isinstance(path, str) else list(path or [])
    raw = RawConfig({}, {}, paths[0] if paths else None, list(paths))
    for p in paths:
        merge_file(raw, *read_file(p))
    env = os.environ if env is None else env
    base = config_dir or (os.path.dirname(os.path.abspath(paths[0])) if paths else os.getcwd())
    if includes:
        include(raw, base, env, path_vars or {})
    for setting in overrides or []:
        apply_override(raw, setting)
    merge_alias(raw.data, raw.origins)
    if expand:
        expand_config(raw, env, keystore, path_vars)
    return raw


def expand_config(
    raw: RawConfig, env: Mapping[str, str], keystore: Mapping[str, str] | None = None,
    path_vars: Mapping[str, str] | None = None,
) -> None:
    raw.data = expand_vars(raw.data, env, keystore, "", path_vars)
