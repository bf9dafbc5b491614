"""Build processor chains from config lists (global, per protocol), with ``when`` conditions
and ``if``/``then``/``else`` blocks, validating each processor's settings with its model."""

from __future__ import annotations

from typing import Any

from pybeat.api import BeatInfo, Event
from pybeat.config.errors import unknown_name, validate
from pybeat.config.loader import ConfigError, RawConfig
from pybeat.plugins import PluginError, Registry
from pybeat.processors.conditions import Condition, ConditionError, build_condition


class When:
    """Runs ``inner`` only on events matching the condition."""

    def __init__(self, cond: Condition, inner: Any):
        self.cond = cond
        self.inner = inner

    def run(self, event: Event) -> Event | None:
        return self.inner.run(event) if self.cond(event) else event


class IfThenElse:
    def __init__(self, cond: Condition, then: list[Any], otherwise: list[Any]):
        self.cond = cond
        self.then = then
        self.otherwise = otherwise

    def run(self, event: Event) -> Event | None:
        chain = self.then if self.cond(event) else self.otherwise
        for p in chain:
            result = p.run(event)
            if result is None:
                return None
            event = result
        return event


def _condition(spec: Any, key: str, raw: RawConfig | None) -> Condition:
    try:
        return build_condition(spec)
    except ConditionError as exc:
        where = raw.origin(key) if raw else None
        raise ConfigError(f"{key}{f' ({where})' if where else ''}: {exc}") from None


def build_processors(
    specs: list[dict[str, Any]], registry: Registry, beat: BeatInfo | None, prefix: str, raw: RawConfig | None = None
) -> list[Any]:
    """The processors of ``specs``, created (``beat`` None: only validated, nothing created)."""
    chain: list[Any] = []
    problems: list[str] = []
    for i, spec in enumerate(specs or []):
        try:
            chain.append(_build_one(i, spec, registry, beat, prefix, raw))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems)
    return chain


def validate_processors(specs: list[dict[str, Any]], registry: Registry, prefix: str, raw: RawConfig | None = None) -> None:
    """Check ``specs`` through each processor's config model without creating any (no I/O)."""
    build_processors(specs, registry, None, prefix, raw)


def _build_one(i: int, spec: Any, registry: Registry, beat: BeatInfo | None, prefix: str, raw: RawConfig | None) -> Any:
    key = f"{prefix}.{i}"
    where = raw.origin(key) if raw else None
    at = f" ({where})" if where else ""
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{key}{at}: a processor must be a mapping such as {{drop_fields: {{fields: [...]}}}}")
    if "if" in spec:
        extra = set(spec) - {"if", "then", "else"}
        if extra or "then" not in spec:
            raise ConfigError(f"{key}{at}: an if block takes exactly 'if', 'then' and optionally 'else'")
        then = spec["then"] if isinstance(spec["then"], list) else [spec["then"]]
        other = spec.get("else") or []
        other = other if isinstance(other, list) else [other]
        return IfThenElse(
            _condition(spec["if"], f"{key}.if", raw),
            build_processors(then, registry, beat, f"{key}.then", raw),
            build_processors(other, registry, beat, f"{key}.else", raw),
        )
    if len(spec) != 1:
        raise ConfigError(f"{key}{at}: one processor per list item, found {', '.join(spec)}")
    (name, settings), = spec.items()
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError(
            f"{key}.{name}{at}: a processor's settings are a mapping (e.g. {name}: {{fields: [...]}}), "
            f"got {settings!r}"
        )
    settings = dict(settings or {})
    when = settings.pop("when", None)
    try:
        plugin = registry.get("processors", name)
    except KeyError:
        installed = registry.names("processors")
        raise ConfigError(f"{key}.{name}{at}: " + unknown_name("processor", name, installed, installed)) from None
    except PluginError as exc:
        raise ConfigError(f"{key}.{name}{at}: {exc}") from None
    config = validate(plugin.config_model, settings, f"{key}.{name}", raw)
    if beat is None:  # validating only
        if when is not None:
            _condition(when, f"{key}.{name}.when", raw)
        return None
    proc = plugin.create(config, beat)
    if when is not None:
        proc = When(_condition(when, f"{key}.{name}.when", raw), proc)
    return proc
