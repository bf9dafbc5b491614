"""Read a Beats-style YAML config into a plain nested dict, remembering where each key was.

Owns: YAML loading with line numbers, dotted keys (``packetbeat.interfaces.device: any``) merged
with nested ones, ``${VAR}`` / ``${VAR:default}`` expansion, ``-E key=value`` overrides, and the
``pybeat.*`` alias of ``packetbeat.*``. Validation is models.py's job; this module only reads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

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
    path: str | None = None

    def origin(self, dotted: str) -> str | None:
        """Where ``dotted`` (or its nearest parent) was set."""
        key = dotted
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key.rpartition(".")[0]
        return None


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


def expand_vars(value: Any, env: Mapping[str, str], keystore: Mapping[str, str] | None = None, key: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:default}`` (keystore first, then environment)."""
    if isinstance(value, dict):
        return {k: expand_vars(v, env, keystore, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, env, keystore, f"{key}.{i}") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
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


def load(
    path: str | None,
    overrides: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    keystore: Mapping[str, str] | None = None,
) -> RawConfig:
    """Read ``path`` (None: an empty config), apply ``-E`` overrides, expand variables."""
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from exc
        data, origins = parse_yaml(text, os.path.basename(path))
    raw = RawConfig(data, origins, path)
    for setting in overrides or []:
        apply_override(raw, setting)
    merge_alias(raw.data, raw.origins)
    raw.data = expand_vars(raw.data, os.environ if env is None else env, keystore)
    return raw
