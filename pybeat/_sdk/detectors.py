"""The detector contract: a stage that watches transaction events, keeps state, and emits
events of its own (alerts), which a processor cannot do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pybeat._sdk.config import PluginConfig
from pybeat._sdk.events import BeatInfo, EmitFn, Event
from pybeat._sdk.support import Logger, Paths, Shard

__all__ = ["Detector", "DetectorContext", "DetectorPlugin"]


class Detector:
    """Base class of a detector; override what it uses.

    ``observe`` sees every transaction event of the protocols the plugin names, as the
    protocol emitted it (before any processor), in the order the capture emitted them (by the
    packet or tick that completed the transaction, then by timestamp), with ``expire`` at the
    ticks (every 0.5 s of packet time) between them. It runs in the detection process
    (``packetbeat.detection_process``, the default where the agent may use more than one CPU;
    one for every worker of a split replay) or on the capture thread; a detector shares
    nothing with the capture process either way. It must only read the event. Time is packet
    time: the event's ``timestamp_ns`` and the ``now_ns`` of ``expire``/``flush``, never the
    clock. An exception costs only that call (counted as ``detection.<name>.exceptions``).
    """

    def observe(self, event: Event) -> None:
        """One transaction event."""

    def expire(self, now_ns: int) -> None:
        """Called every 0.5 s of packet time: close windows, emit what is due, evict."""

    def flush(self, now_ns: int) -> None:
        """End of input: emit what is pending."""

    def close(self) -> None:
        """The run ends: persist state (under ``ctx.paths.data``) if the detector keeps any."""

    def stats(self) -> dict[str, int]:
        """Counters, reported as ``detection.<name>.<counter>``."""
        return {}


@dataclass
class DetectorContext:
    """What a detector is built with: ``emit`` for its alerts (they go through the global
    fields, tags and processors and to every output, beside the transactions), who is running,
    a logger, its name, the run's folders, and ``shard`` when a replay is split across
    processes and the detector runs in each of them (``detection_process: false``: the agent
    then splits by address pair, so all of one client's transactions reach the same process).
    In the detection process ``shard`` is None: it sees every worker's transactions."""

    emit: EmitFn
    beat: BeatInfo
    logger: Logger | None = None
    name: str = ""
    paths: Paths = field(default_factory=Paths.resolve)
    shard: Shard | None = None


class DetectorPlugin(Protocol):
    """What a ``pybeat.detectors`` entry point must provide: ``name`` (configured under
    ``pybeat.detection.<name>``, or ``packetbeat.detection.<name>``), ``config_model``,
    ``protocols`` (the protocols whose events it observes), ``api_version`` and
    ``create(config, ctx) -> Detector``. Optional: ``fields()`` as for protocols (the fields
    its alerts carry)."""

    @property
    def name(self) -> str: ...

    @property
    def config_model(self) -> type[PluginConfig]: ...

    @property
    def protocols(self) -> frozenset[str]: ...

    def create(self, config: Any, ctx: DetectorContext) -> Detector: ...
