"""What every plugin kind is given besides its own context: a logger, a metrics registry,
the run's paths, the split of a run across processes, and the error to raise from
``create()``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

__all__ = ["Logger", "Metrics", "Paths", "PluginSetupError", "Shard", "SummaryField"]


class Logger(Protocol):
    """A structlog-style logger: an event name and key/value pairs.

    ``logger.warning("cannot connect", host=host, error=str(exc))``. Never log per packet or
    per event: count instead (``stats()``), and log what changed once.
    """

    def debug(self, event: str, **kw: Any) -> Any: ...

    def info(self, event: str, **kw: Any) -> Any: ...

    def warning(self, event: str, **kw: Any) -> Any: ...

    def error(self, event: str, **kw: Any) -> Any: ...


class Metrics(Protocol):
    """The metrics registry: register a function that returns your counters; the agent calls
    it when it reports (the periodic log line, the stats endpoint, the exit summary). Keep
    counters as plain integers in your objects: nothing here runs per event."""

    def register(self, namespace: str, provider: Callable[[], Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True)
class Paths:
    """The run's folders (``--path.home/config/data/logs``); a plugin that keeps state across
    restarts keeps it under ``data``."""

    home: str
    config: str
    data: str
    logs: str

    @classmethod
    def resolve(cls, home: str | None = None, config: str | None = None, data: str | None = None,
                logs: str | None = None) -> "Paths":
        home = os.path.abspath(home or os.getcwd())
        return cls(
            home,
            os.path.abspath(config or home),
            os.path.abspath(data or os.path.join(home, "data")),
            os.path.abspath(logs or os.path.join(home, "logs")),
        )


@dataclass(frozen=True)
class Shard:
    """A capture-file replay split across ``count`` processes: this process is ``index``.

    Each process runs its own plugins on its share of the traffic; an output that writes files
    must not collide with its siblings: :attr:`suffix` (``-w1``) is meant for file names."""

    index: int
    count: int

    @property
    def suffix(self) -> str:
        return f"-w{self.index}"


@dataclass(frozen=True)
class SummaryField:
    """What the exit summary counts for a protocol: ``label`` and the dotted field whose most
    frequent values it lists (DNS: ``SummaryField("names", "dns.question.name")``)."""

    label: str
    field: str


class PluginSetupError(Exception):
    """Raise from ``create()`` (or a capability such as ``test_connection``) when the plugin
    cannot start: the agent prints ``pybeat: error: <kind> <name>: <message>`` in one line and
    exits, without a traceback. Say what failed and what to change (never a secret)."""
