"""Processor chains from config lists (global, per protocol), with ``when`` conditions and
``if``/``then``/``else`` blocks.

Two steps, as everywhere in the config layer: :func:`validate_processors` checks every
processor's settings with its model and creates nothing (validation has no side effects);
:func:`build_chain` creates the processors for a run. A :class:`Chain` keeps a processor's
fault inside it: an exception costs only that processor's work on that event (the event goes
on with a note in ``error.message``), counted per processor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pybeat.api import BeatInfo, Event, Paths, ProcessorContext
from pybeat.config.errors import unknown_name, validate
from pybeat.config.loader import ConfigError, RawConfig
from pybeat.pipeline.faults import FaultLog
from pybeat.plugins import PluginError, Registry
from pybeat.conditions import Condition, ConditionError, build_condition


def note_failure(event: Event, name: str, exc: BaseException) -> None:
    """Add ``processor <name> failed: ...`` to the event's ``error.message`` (a string for one
    note, a list for several, as Packetbeat writes notes)."""
    text = f"processor {name} failed: {type(exc).__name__}: {exc}"[:300]
    try:
        fields = event.fields
        err = fields.get("error")
        if not isinstance(err, dict):
            err = fields["error"] = {}
        msg = err.get("message")
        if msg is None:
            err["message"] = text
        elif isinstance(msg, list):
            msg.append(text)
        else:
            err["message"] = [msg, text]
    except Exception:  # an event a processor left in a state we cannot annotate
        pass


class Chain:
    """Processors run in order; one that raises is skipped for that event and counted."""

    __slots__ = ("steps", "faults")

    def __init__(self, steps: list[tuple[str, Any]], faults: FaultLog):
        self.steps = steps
        self.faults = faults

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def run(self, event: Event) -> Event | None:
        for name, proc in self.steps:
            try:
                result = proc.run(event)
            except Exception as exc:
                self.faults.record("processor", name, exc, "run")
                note_failure(event, name, exc)
                continue
            if result is None:
                return None
            event = result
        return event

    def close(self) -> None:
        for name, proc in self.steps:
            close = getattr(proc, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    self.faults.record("processor", name, exc, "close")


class When:
    """Runs ``inner`` only on events matching the condition."""

    def __init__(self, cond: Condition, inner: Any):
        self.cond = cond
        self.inner = inner

    def run(self, event: Event) -> Event | None:
        return self.inner.run(event) if self.cond(event) else event

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


class IfThenElse:
    def __init__(self, cond: Condition, then: Chain, otherwise: Chain):
        self.cond = cond
        self.then = then
        self.otherwise = otherwise

    def run(self, event: Event) -> Event | None:
        return (self.then if self.cond(event) else self.otherwise).run(event)

    def close(self) -> None:
        self.then.close()
        self.otherwise.close()


@dataclass
class BuildContext:
    """What building processors needs besides their specs."""

    registry: Registry
    beat: BeatInfo
    faults: FaultLog
    paths: Paths
    logger: Any = None
    raw: RawConfig | None = None


def _where(raw: RawConfig | None, key: str) -> str:
    where = raw.origin(key) if raw else None
    return f" ({where})" if where else ""


def _condition(spec: Any, key: str, raw: RawConfig | None) -> Condition:
    try:
        return build_condition(spec)
    except ConditionError as exc:
        raise ConfigError(f"{key}{_where(raw, key)}: {exc}") from None


def _walk(specs: list[Any], registry: Registry, prefix: str, raw: RawConfig | None,
          make: Callable[[str, Any, Any, str], Any] | None, sub: Callable[[list[Any], str], Any]) -> list[Any]:
    """Check every spec (settings validated by their model); with ``make``, build each."""
    steps: list[Any] = []
    problems: list[str] = []
    for i, spec in enumerate(specs or []):
        key = f"{prefix}.{i}"
        try:
            steps.append(_one(spec, key, registry, raw, make, sub))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems)
    return steps


def _one(spec: Any, key: str, registry: Registry, raw: RawConfig | None,
         make: Callable[[str, Any, Any, str], Any] | None, sub: Callable[[list[Any], str], Any]) -> Any:
    at = _where(raw, key)
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"{key}{at}: a processor must be a mapping such as {{drop_fields: {{fields: [...]}}}}")
    if "if" in spec:
        extra = set(spec) - {"if", "then", "else"}
        if extra or "then" not in spec:
            raise ConfigError(f"{key}{at}: an if block takes exactly 'if', 'then' and optionally 'else'")
        then = spec["then"] if isinstance(spec["then"], list) else [spec["then"]]
        other = spec.get("else") or []
        other = other if isinstance(other, list) else [other]
        cond = _condition(spec["if"], f"{key}.if", raw)
        then_steps = sub(then, f"{key}.then")
        else_steps = sub(other, f"{key}.else")
        return ("if", IfThenElse(cond, then_steps, else_steps)) if make else None
    if len(spec) != 1:
        raise ConfigError(f"{key}{at}: one processor per list item, found {', '.join(map(str, spec))}")
    (name, settings), = spec.items()
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError(
            f"{key}.{name}{at}: a processor's settings are a mapping (e.g. {name}: {{fields: [...]}}), "
            f"got a {type(settings).__name__}"
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
    when_cond = _condition(when, f"{key}.{name}.when", raw) if when is not None else None
    if make is None:
        return None
    proc = make(name, plugin, config, f"{key}.{name}")
    return (name, When(when_cond, proc) if when_cond is not None else proc)


def validate_processors(specs: list[Any], registry: Registry, prefix: str, raw: RawConfig | None = None) -> None:
    """Raise ConfigError listing every problem of a processor list; creates nothing."""

    def sub(inner: list[Any], key: str) -> None:
        _walk(inner, registry, key, raw, None, sub)

    _walk(specs, registry, prefix, raw, None, sub)


def build_chain(specs: list[Any], bctx: BuildContext, prefix: str) -> Chain:
    """Create the processors of a list for a run."""

    def make(name: str, plugin: Any, config: Any, key: str) -> Any:
        info = bctx.registry.info("processors", name)
        logger = bctx.logger.bind(processor=name) if bctx.logger is not None and hasattr(bctx.logger, "bind") \
            else bctx.logger
        try:
            if info.legacy:  # pybeat.api 0.1: create(config, beat)
                return plugin.create(config, bctx.beat)
            return plugin.create(config, ProcessorContext(bctx.beat, logger, name, bctx.paths))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{key}{_where(bctx.raw, key)}: processor {name} could not start: "
                              f"{type(exc).__name__}: {exc}") from None

    def sub(inner: list[Any], key: str) -> Chain:
        return Chain(_walk(inner, bctx.registry, key, bctx.raw, make, sub), bctx.faults)

    return sub(specs, prefix)


def build_processors(specs: list[dict[str, Any]], registry: Registry, beat: BeatInfo, prefix: str,
                     raw: RawConfig | None = None) -> Chain:
    """A chain with its own fault log (tests and tools; the agent uses build_chain)."""
    return build_chain(specs, BuildContext(registry, beat, FaultLog(None), Paths.resolve(), raw=raw), prefix)
