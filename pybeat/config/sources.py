"""Where the config comes from, as the command line asks: which files (``-c``, repeatable, or
``pybeat.yml``/``packetbeat.yml`` in path.config), their ownership and mode (``--strict.perms``),
the files they include, ``-E`` overrides, ``path.*``, and the keystore that ``${KEY}`` reads
before the environment. Every secret found on the way is remembered for masking (secrets.py).

Reading only: nothing here writes, connects or captures.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any, Mapping

from pybeat import keystore
from pybeat.config.loader import ConfigError, RawConfig, expand_config, expand_vars, load
from pybeat.config.secrets import find_secrets, remember

DEFAULT_NAMES = ("pybeat.yml", "packetbeat.yml")


@dataclass
class Request:
    """What the command line says about the config."""

    files: list[str] = field(default_factory=list)  # -c, in order
    overrides: list[str] = field(default_factory=list)  # -E
    home: str | None = None  # --path.home, ...
    config: str | None = None
    data: str | None = None
    logs: str | None = None
    strict_perms: bool = True
    need_file: bool = True  # False: no file means the defaults (export template, ...)


@dataclass
class Paths:
    home: str
    config: str
    data: str
    logs: str

    def as_vars(self) -> dict[str, str]:
        return {"path.home": self.home, "path.config": self.config, "path.data": self.data, "path.logs": self.logs}


def resolve_paths(req: Request, raw: dict[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Paths:
    """Flags first, then ``path.*`` of the config, then Beats' defaults (config = home,
    data/logs under home)."""
    set_in = (raw or {}).get("path") if isinstance((raw or {}).get("path"), dict) else {}
    env = os.environ if env is None else env

    def given(flag: str | None, key: str, current: dict[str, str]) -> str | None:
        if flag:
            return flag
        value = set_in.get(key) if isinstance(set_in, dict) else None
        return expand_vars(value, env, None, f"path.{key}", current) if isinstance(value, str) else None

    home = os.path.abspath(given(req.home, "home", {}) or os.getcwd())
    current = {"path.home": home}
    config = os.path.abspath(given(req.config, "config", current) or home)
    current["path.config"] = config
    data = os.path.abspath(given(req.data, "data", current) or os.path.join(home, "data"))
    logs = os.path.abspath(given(req.logs, "logs", current) or os.path.join(home, "logs"))
    return Paths(home, config, data, logs)


def config_files(req: Request) -> list[str]:
    """The -c files (relative ones: the current directory, else path.config), or the default."""
    paths = resolve_paths(req)
    if req.files:
        found = []
        for name in req.files:
            path = name if os.path.isabs(name) or os.path.exists(name) else os.path.join(paths.config, name)
            if not os.path.exists(path):
                raise ConfigError(f"config file {name!r} not found")
            found.append(path)
        return found
    for name in DEFAULT_NAMES:
        candidate = os.path.join(paths.config, name)
        if os.path.exists(candidate):
            return [candidate]
    if req.need_file and not req.overrides:
        raise ConfigError("no config file: pass -c FILE (or put pybeat.yml in the current directory)")
    return []


def check_perms(path: str) -> None:
    """Beats' ``strict.perms``: a config file is owned by the user running pybeat (or root) and
    not writable by group or others."""
    if os.name != "posix":
        return
    st = os.stat(path)
    if st.st_uid not in (0, os.geteuid()):
        raise ConfigError(
            f"config file {path!r} must be owned by the user running pybeat or root (--strict.perms=false to skip)"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"config file {path!r} can be written by group or others (mode {oct(st.st_mode & 0o777)}); "
            "chmod go-w it, or run with --strict.perms=false"
        )


def keystore_path(raw: dict[str, Any], paths: Paths, env: Mapping[str, str]) -> str:
    """``keystore.path`` if set, else ``<path.data>/pybeat.keystore``."""
    node = raw.get("keystore")
    value = node.get("path") if isinstance(node, dict) else None
    if isinstance(value, str) and value:
        value = expand_vars(value, env, None, "keystore.path", paths.as_vars())
        return value if os.path.isabs(value) else os.path.join(paths.config, value)
    return keystore.default_path(paths.data)


def load_config(req: Request, env: Mapping[str, str] | None = None) -> tuple[RawConfig, Paths]:
    """The merged, expanded config and the paths it runs with."""
    env = os.environ if env is None else env
    files = config_files(req)
    for path in files:
        if req.strict_perms:
            check_perms(path)
    # path.* come from the flags and the -c files (not from included files): they say where
    # the includes and the keystore are.
    first = load(files, [o for o in req.overrides if o.startswith("path.")], env, expand=False, includes=False)
    paths = resolve_paths(req, first.data, env)
    raw = load(files, req.overrides, env, config_dir=paths.config, path_vars=paths.as_vars(), expand=False)
    store_path = keystore_path(raw.data, paths, env)
    try:
        secrets = keystore.load_values(store_path, keystore.passphrase_from_env(env), req.strict_perms)
    except keystore.KeystoreError as exc:
        raise ConfigError(str(exc)) from None
    remember(secrets.values())
    expand_config(raw, env, secrets, paths.as_vars())
    remember(find_secrets(raw.data))
    return raw, paths
