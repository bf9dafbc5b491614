"""The processor contract: one event in, the event (changed or not) or None out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pybeat._sdk.config import PluginConfig
from pybeat._sdk.events import BeatInfo, Event
from pybeat._sdk.support import Logger, Paths

__all__ = ["Processor", "ProcessorContext", "ProcessorPlugin"]


class Processor(Protocol):
    """Runs on one event; returns the event (changed in place, or a new one) or None to drop
    it. Called on the capture thread for every event of its chain: keep it cheap, never block
    on I/O per event (fetch what you need in ``create`` or in a background thread).

    An exception costs only that event's run of this processor: the agent keeps the event,
    adds ``processor <name> failed: <error>`` to its ``error.message``, counts it under
    ``processors.<name>.exceptions`` and logs each kind once. An optional ``close()`` is
    called at the end of the run."""

    def run(self, event: Event) -> Event | None: ...


@dataclass
class ProcessorContext:
    """What a processor is built with: who is running, a logger bound to the processor's name,
    its name, and the run's folders (state kept across restarts goes under ``paths.data``)."""

    beat: BeatInfo
    logger: Logger | None = None
    name: str = ""
    paths: Paths = field(default_factory=Paths.resolve)


class ProcessorPlugin(Protocol):
    """What a ``pybeat.processors`` entry point must provide: ``name`` (the key in a
    ``processors:`` list), ``config_model`` (``when`` is handled by the agent and never reaches
    it), ``api_version``, and ``create(config, ctx: ProcessorContext) -> Processor``.

    ``create`` must not do I/O that can fail at validation time: the agent validates a config
    with the model alone, and calls ``create`` only when it runs (or tests) the config."""

    @property
    def name(self) -> str: ...

    @property
    def config_model(self) -> type[PluginConfig]: ...

    def create(self, config: Any, ctx: ProcessorContext) -> Processor: ...
